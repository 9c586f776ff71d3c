//! `tinylens train` end to end, on a run of a few steps: the files it writes, and that the
//! checkpoint loads back into `tinylens run` with its tokenizer.

use std::path::PathBuf;
use std::process::{Command, Output};

fn tinylens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinylens"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinylens-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

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

#[test]
fn bad_training_input_gets_a_clear_error() {
    let o = tinylens(&["train", "--task", "poems", "-o", tmp("x").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown --task \"poems\""));
}
