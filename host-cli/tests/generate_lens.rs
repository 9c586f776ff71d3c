//! `tinylens generate` (greedy, sampled, sliding past the context) and `tinylens lens` (the
//! logit lens), run as the binary and checked against the library.

mod common;
use common::*;

use tinylens_cli::commands::demo::DEMO_PROMPT;

/// The embedded demo model's file.
fn demo_blob() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.tlb").to_string()
}

/// The l2_ln checkpoint: LayerNorm, standard positions, n_ctx 24, a 40-letter vocabulary.
fn l2_ln() -> String {
    fixture("l2_ln")
        .join("model.safetensors")
        .to_str()
        .unwrap()
        .to_string()
}

/// The last line of `generate`'s output, `(N tokens, S slides)`, as numbers.
fn counts(out: &str) -> (usize, usize) {
    let last = out.lines().last().expect("a summary line");
    let inner = last
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(" slides)"))
        .unwrap_or_else(|| panic!("summary line: {last:?}"));
    let (n, s) = inner.split_once(" tokens, ").expect("N tokens, S slides");
    (n.parse().unwrap(), s.parse().unwrap())
}

/// The generated text: everything before the summary line, with the prompt cut off.
fn new_text<'a>(out: &'a str, prompt: &str) -> &'a str {
    let body = out.rsplit_once("\n(").expect("a summary line").0;
    body.strip_prefix(prompt)
        .unwrap_or_else(|| panic!("output does not start with the prompt: {body:?}"))
}

#[test]
fn greedy_generation_is_the_demo_continuation() {
    let demo = ok(&["demo"]);
    let line = demo
        .lines()
        .find(|l| l.starts_with("greedy continuation (8 steps"))
        .expect("the demo's continuation line");
    let expected = line.rsplit_once(" + ").unwrap().1;
    let out = ok(&["generate", &demo_blob(), "--prompt", DEMO_PROMPT, "-n", "8"]);
    let text = new_text(&out, DEMO_PROMPT);
    assert_eq!(format!("{text:?}"), expected, "{out}");
    assert_eq!(counts(&out), (8, 0));
}

#[test]
fn seeded_sampling_repeats_and_seeds_differ() {
    let run = |seed: &str| {
        ok(&[
            "generate",
            &demo_blob(),
            "--prompt",
            "Mr and Mrs Dura",
            "-n",
            "40",
            "--temperature",
            "1.0",
            "--top-k",
            "10",
            "--seed",
            seed,
        ])
    };
    let (a, again, b) = (run("1"), run("1"), run("2"));
    assert_eq!(a, again);
    assert_ne!(a, b);
    assert_eq!(counts(&a), (40, 0));
    let greedy = ok(&[
        "generate",
        &demo_blob(),
        "--prompt",
        "Mr and Mrs Dura",
        "-n",
        "40",
    ]);
    assert_ne!(a, greedy, "temperature 1 should leave the greedy path");
}

#[test]
fn generation_past_the_context_slides_and_goes_on() {
    // n_ctx 24: the 4-token prompt and the first 20 new tokens fill the cache; each slide keeps
    // 13, so it fills again 12 new tokens later: slides at new tokens 21, 33, 45 and 57.
    let o = tinylens(&["generate", &l2_ln(), "--prompt", "abcd", "-n", "60"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(counts(&out), (60, 4), "{out}");
    assert_eq!(new_text(&out, "abcd").chars().count(), 60, "{out}");
    let err = stderr(&o);
    assert_eq!(err.matches("sliding the window").count(), 1, "{err}");
    assert!(err.contains("newest 13 tokens"), "{err}");
}

#[test]
fn int_and_i8_blobs_generate() {
    let int = fixture("../golden/l2_ln.int.tlb");
    let int = int.to_str().unwrap();
    let out = ok(&["generate", int, "--tokens", "1,2,3", "-n", "30"]);
    assert_eq!(counts(&out), (30, 1), "{out}");
    let sampled = ok(&[
        "generate",
        int,
        "--tokens",
        "1,2,3",
        "-n",
        "30",
        "--temperature",
        "0.7",
        "--seed",
        "3",
    ]);
    assert_eq!(counts(&sampled), (30, 1), "{sampled}");
    let i8 = tmp("l2_ln.i8.tlb");
    let i8 = i8.to_str().unwrap();
    ok(&["quantize", &l2_ln(), "-o", i8, "--format", "i8"]);
    let out = ok(&["generate", i8, "--prompt", "abc", "-n", "5"]);
    assert_eq!(new_text(&out, "abc").chars().count(), 5, "{out}");
}

#[test]
fn without_a_vocabulary_ids_are_printed() {
    let ckpt = fixture("l2_ln").join("model.safetensors");
    let cfg = fixture("l2_ln").join("config.json");
    let plain = tmp("l2_ln_novocab.safetensors");
    std::fs::copy(&ckpt, &plain).unwrap();
    let (plain, cfg) = (plain.to_str().unwrap(), cfg.to_str().unwrap());
    let out = ok(&[
        "generate", plain, "--config", cfg, "--tokens", "1,2,3", "-n", "4",
    ]);
    let first = out.lines().next().unwrap();
    let (prompt, new) = first.split_once(" | ").expect("prompt | new ids");
    assert_eq!(prompt, "1 2 3");
    let ids: Vec<u32> = new.split(' ').map(|s| s.parse().unwrap()).collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|&i| i < 40), "{ids:?}");
}

#[test]
fn bad_generate_flags_are_named() {
    let m = l2_ln();
    let base = ["generate", m.as_str(), "--tokens", "1,2"];
    let cases: [(&[&str], &str); 7] = [
        (&["-n", "0"], "-n 0: expected 1 to 100000"),
        (&["-n", "100001"], "-n 100001: expected 1 to 100000"),
        (
            &["--temperature", "-1"],
            "--temperature -1: expected a finite",
        ),
        (
            &["--temperature", "nan"],
            "--temperature NaN: expected a finite",
        ),
        (
            &["--temperature", "inf"],
            "--temperature inf: expected a finite",
        ),
        (&["--top-k", "0"], "--top-k 0: expected 1 to d_vocab = 40"),
        (&["--top-k", "41"], "--top-k 41: expected 1 to d_vocab = 40"),
    ];
    for (extra, msg) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        fails_with(&args, msg);
    }
    fails_with(
        &["generate", &m, "--tokens", "1,99"],
        "token 99 is out of range",
    );
}
