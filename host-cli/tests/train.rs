//! `tinylens train` end to end, on a run of a few steps: the files it writes, and that the
//! checkpoint loads back into `tinylens run` with its tokenizer.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

#[test]
fn a_short_run_on_a_text_file_writes_a_loadable_checkpoint() {
    let text = tmp("text.txt");
    std::fs::write(&text, "keep it in mind. keep them at bay. ".repeat(20)).unwrap();
    let out = tmp("model");
    let tiny = [
        "--layers",
        "1",
        "--heads",
        "2",
        "--d-model",
        "8",
        "--d-head",
        "4",
        "--n-ctx",
        "8",
        "--batch",
        "2",
        "--steps",
        "6",
    ];
    let mut args = vec![
        "train",
        "--text",
        text.to_str().unwrap(),
        "--tokenizer",
        "word",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(tiny);
    let o = tinylens(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("vocabulary of 10"), "{stdout}");
    for file in [
        "model.safetensors",
        "config.json",
        "vocab.json",
        "loss.csv",
        "loss.svg",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7);
    let vocab: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(out.join("vocab.json")).unwrap()).unwrap();
    assert!(vocab.contains(&" mind".to_string()), "{vocab:?}");

    let o = tinylens(&[
        "run",
        out.join("model.safetensors").to_str().unwrap(),
        "--prompt",
        "keep it in",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(3 tokens)"));
}

/// The tiny shape of the story runs: two layers of two heads, a context of 16.
const TINY_STORIES: [&str; 16] = [
    "--layers",
    "2",
    "--heads",
    "2",
    "--d-model",
    "16",
    "--d-head",
    "8",
    "--n-ctx",
    "16",
    "--batch",
    "4",
    "--steps",
    "8",
    "--corpus-tokens",
    "3000",
];

#[test]
fn a_story_run_with_repeated_random_sequences_trains_and_scores_names() {
    let out = tmp("mixed");
    let mut args = vec![
        "train",
        "--task",
        "stories",
        "--repeated-random",
        "0.25",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(TINY_STORIES);
    let stdout = ok(&args);
    assert!(
        stdout.contains("mix: 0.25 of the windows are repeated random sequences"),
        "{stdout}"
    );
    assert!(stdout.contains("of the mentions"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9);
    // The same run again gives the same weights: the mix is drawn from the seed.
    let first = std::fs::read(out.join("model.safetensors")).unwrap();
    let again = tmp("mixed-again");
    args[6] = again.to_str().unwrap();
    ok(&args);
    assert_eq!(
        std::fs::read(again.join("model.safetensors")).unwrap(),
        first
    );

    let bad = tmp("mixed-bad");
    args[4] = "1.5";
    args[6] = bad.to_str().unwrap();
    fails_with(&args, "--repeated-random must be a fraction from 0 to 1");
}

#[test]
fn bad_training_input_gets_a_clear_error() {
    let o = tinylens(&["train", "--task", "poems", "-o", tmp("x").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown --task \"poems\""));
}

/// `tinylens train --task stories --corpus-only` of 700 tokens with `seed`, into `path`.
fn write_stories(seed: &str, path: &Path) -> Output {
    tinylens(&[
        "train",
        "--task",
        "stories",
        "--seed",
        seed,
        "--corpus-tokens",
        "700",
        "--write-corpus",
        path.to_str().unwrap(),
        "--corpus-only",
    ])
}

/// `tinylens validate` of demo-2l's f32 blob against its checkpoint on the text at `path`.
fn validate_demo_2l_on(path: &Path) -> Output {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo-2l");
    tinylens(&[
        "validate",
        models.join("model.safetensors").to_str().unwrap(),
        models.join("demo-2l.tlb").to_str().unwrap(),
        "--text",
        path.to_str().unwrap(),
    ])
}

#[test]
fn a_held_out_corpus_validates_a_demo_blob_as_text() {
    let text = tmp("held-out.txt");
    let o = write_stories("5", &text);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(stdout.contains("seed 5"), "{stdout}");
    // Nothing trained, nothing else written; another seed gives another text.
    let first = std::fs::read_to_string(&text).unwrap();
    assert!(first.len() > 1000, "{first}");
    write_stories("6", &text);
    assert_ne!(std::fs::read_to_string(&text).unwrap(), first);
    std::fs::write(&text, &first).unwrap();

    // demo-2l's f32 blob against its checkpoint on that text: windows of n_ctx = 64.
    let o = validate_demo_2l_on(&text);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("windows of up to 64 tokens"));
    let tokens: usize = line
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no window line in {stdout}"));
    assert!(tokens >= 600, "{stdout}");
    assert!(
        line.unwrap()
            .contains(&format!("{} windows", tokens.div_ceil(64))),
        "{stdout}"
    );
    assert!(
        stdout.contains("top-1 agreement                          1.0000"),
        "{stdout}"
    );

    // A text the vocabulary cannot spell, and --corpus-only without a file.
    std::fs::write(&text, "Mr Latim ☃").unwrap();
    let o = validate_demo_2l_on(&text);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("cannot tokenize") && stderr.contains("'☃'"),
        "{stderr}"
    );
    let o = tinylens(&["train", "--task", "stories", "--corpus-only"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--write-corpus"));
}
