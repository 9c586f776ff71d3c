//! `tinylens circuits | heads | ablate | plot` end to end: what a user types, sees and gets,
//! the bad input they may give, and the attention page rendered by a real browser.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tinylens::{Config, Norm, PosEmbed};
use tinylens_cli::params::{LayerParams, Params};
use tinylens_tests::read_safetensors;

fn model(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/tl")
        .join(name)
        .join("model.safetensors")
        .to_string_lossy()
        .into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinylens-analysis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn heads_names_the_induction_and_previous_token_heads_of_the_trained_model() {
    let out = tmp("heads.safetensors");
    let text = ok(&[
        "heads",
        &model("l2_induction"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(text.contains("induction head (induction"), "{text}");
    assert!(
        text.contains("previous-token head (previous-token"),
        "{text}"
    );
    assert!(text.contains("thresholds"), "{text}");
    assert!(text.contains("random baseline"), "{text}");
    let t = read_safetensors(&out);
    for (key, shape) in [
        ("prev_token_score", vec![2, 4]),
        ("duplicate_token_score", vec![2, 4]),
        ("induction_score", vec![2, 4]),
        ("copying_score", vec![2, 4]),
        ("composition_scores.Q", vec![2, 4, 2, 4]),
        ("composition_scores.K", vec![2, 4, 2, 4]),
        ("composition_scores.V", vec![2, 4, 2, 4]),
    ] {
        assert_eq!(t[key].shape, shape, "{key}");
    }
}

#[test]
fn circuits_prints_the_tables_and_writes_dense_circuits() {
    let out = tmp("circuits.safetensors");
    let text = ok(&[
        "circuits",
        &model("l2_induction"),
        "--head",
        "1.1",
        "--out",
        out.to_str().unwrap(),
    ]);
    for needle in [
        "direct path W_E W_U",
        "OV circuit",
        "QK circuit",
        "skip-trigrams",
        "head 1.1",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let t = read_safetensors(&out);
    assert_eq!(t["full_OV"].shape, vec![2, 4, 48, 48]);
    assert_eq!(t["full_QK"].shape, vec![2, 4, 48, 48]);
    assert_eq!(t["direct_path"].shape, vec![48, 48]);
    assert_eq!(t["blocks.1.attn.1.ov_top_ids"].shape, vec![48, 5]);
}

#[test]
fn an_induction_heads_ov_circuit_copies() {
    // A copying head's OV row for a source token puts that same token first: for most of the
    // 48 tokens in the trained induction head 1.1 (about 1 by chance).
    let text = ok(&[
        "circuits",
        &model("l2_induction"),
        "--head",
        "1.1",
        "--no-direct",
        "--rows",
        "0",
        "--top",
        "1",
    ]);
    let copies = text
        .lines()
        .skip_while(|l| !l.contains("OV circuit"))
        .take_while(|l| !l.contains("QK circuit"))
        .filter(|l| {
            let parts: Vec<&str> = l.split('|').collect();
            parts.len() == 2 && parts[1].trim().starts_with(parts[0].trim())
        })
        .count();
    assert!(
        copies > 24,
        "only {copies} of 48 source tokens copy themselves (about 1 by chance):\n{text}"
    );
}

#[test]
fn ablate_prints_the_loss_change_of_every_term() {
    let out = tmp("ablate.safetensors");
    let text = ok(&[
        "ablate",
        &model("l2_induction"),
        "--prompt",
        "abcdefgabcdefg",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(text.contains("clean loss"), "{text}");
    assert!(
        text.contains("head 1.1") && text.contains("direct path"),
        "{text}"
    );
    let t = read_safetensors(&out);
    assert_eq!(t["ablate.zero"].shape, vec![2, 4]);
}

#[test]
fn bad_input_gives_clear_errors() {
    let m = model("l2_induction");
    fails_with(
        &["circuits", &m, "--head", "2.0"],
        "layer 2 is out of range: the model has 2 layers (0..1)",
    );
    fails_with(
        &["circuits", &m, "--head", "0.4"],
        "head 4 is out of range: the model has 4 heads per layer (0..3)",
    );
    fails_with(
        &["circuits", &m, "--head", "x"],
        "is not of the form LAYER.HEAD",
    );
    fails_with(
        &["ablate", &m, "--prompt", "abc!"],
        "the prompt has '!' at byte 3, which is not in the model's vocabulary",
    );
    fails_with(
        &[
            "plot",
            "attention",
            &m,
            "--prompt",
            "ab~",
            "-o",
            "/dev/null",
        ],
        "'~' at byte 2",
    );
    fails_with(
        &["ablate", &m, "--tokens", "3"],
        "ablation needs at least 2 tokens",
    );
    fails_with(
        &["heads", &m, "--seqs", "0"],
        "--seqs 0: expected 1 to 10000 sequences",
    );
}

#[test]
fn a_model_too_large_for_dense_out_is_refused_before_any_work() {
    let cfg = Config {
        n_layers: 1,
        n_heads: 1,
        d_model: 4,
        d_head: 2,
        d_vocab: 5000,
        n_ctx: 4,
        norm: Norm::None,
        pos: PosEmbed::Standard,
    };
    let (v, m, d) = (cfg.d_vocab, cfg.d_model, cfg.d_head);
    let p = Params {
        config: cfg,
        vocab: None,
        w_e: vec![0.1; v * m],
        w_pos: Some(vec![0.0; 4 * m]),
        layers: vec![LayerParams {
            ln1: None,
            w_q: vec![0.1; m * d],
            w_k: vec![0.1; m * d],
            w_v: vec![0.1; m * d],
            b_q: vec![0.0; d],
            b_k: vec![0.0; d],
            b_v: vec![0.0; d],
            w_o: vec![0.1; d * m],
            b_o: vec![0.0; m],
        }],
        ln_final: None,
        w_u: vec![0.1; m * v],
        b_u: vec![0.0; v],
    };
    let dir = tmp("big");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    tinylens_cli::import::save_checkpoint(&p, &path).unwrap();
    fails_with(
        &[
            "circuits",
            path.to_str().unwrap(),
            "--out",
            tmp("x.safetensors").to_str().unwrap(),
        ],
        "the model is too large for dense --out: direct_path, full_OV and full_QK \
         ([1, 1, 5000, 5000] f32) would take 0.3 GiB, the limit is 256 MiB",
    );
}

#[test]
fn plots_are_written() {
    let m = model("l2_induction");
    let svg = tmp("bars.svg");
    ok(&[
        "plot",
        "attribution",
        &m,
        "--prompt",
        "abcabc",
        "-o",
        svg.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("head 1.3"), "{text}");
    let grid = tmp("heads.svg");
    ok(&["plot", "heads", &m, "-o", grid.to_str().unwrap()]);
    let text = std::fs::read_to_string(&grid).unwrap();
    assert!(text.contains("induction score") && text.contains("K-composition"));
    let dir = tmp("svgs");
    let page = tmp("attention.html");
    ok(&[
        "plot",
        "attention",
        &m,
        "--prompt",
        "abcdabcd",
        "-o",
        page.to_str().unwrap(),
        "--svg-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(dir.join("attention_1_3.svg").exists());
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "the page loads nothing"
    );
}

/// Opens the attention page in headless Chromium and checks that its script drew every head.
/// Runs when `chromium` is installed (the test command installs it and sets
/// `TINYLENS_BROWSER_TEST=1`, which makes a missing browser a failure).
#[test]
fn the_attention_page_renders_every_head_in_chromium() {
    let required = std::env::var("TINYLENS_BROWSER_TEST").is_ok_and(|v| v == "1");
    let Some(browser) = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        assert!(
            !required,
            "TINYLENS_BROWSER_TEST=1 but chromium is not installed"
        );
        eprintln!("skipped: chromium is not installed");
        return;
    };
    let page = tmp("browser.html");
    ok(&[
        "plot",
        "attention",
        &model("l2_induction"),
        "--prompt",
        "the cat the cat",
        "-o",
        page.to_str().unwrap(),
    ]);
    let profile = tmp("chromium-profile");
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &format!("file://{}", page.display()),
        ])
        .output()
        .expect("chromium runs");
    let dom = stdout(&o);
    assert!(
        dom.contains("data-rendered-heads=\"8\""),
        "the script did not render 8 heads:\n{}",
        stderr(&o)
    );
    assert_eq!(dom.matches("class=\"head").count(), 8, "one panel per head");
    assert_eq!(
        dom.matches("<svg class=\"heatmap\"").count(),
        8,
        "one heatmap per head"
    );
    for h in ["0.0", "0.3", "1.0", "1.3"] {
        assert!(
            dom.contains(&format!("data-head=\"{h}\"")),
            "head {h} missing"
        );
    }
}

#[test]
fn a_blob_gives_the_same_tables_as_its_checkpoint() {
    let blob = tmp("induction.tlb");
    ok(&[
        "quantize",
        &model("l2_induction"),
        "-o",
        blob.to_str().unwrap(),
    ]);
    let args =
        |m: &str| ["circuits", m, "--head", "1.2", "--top", "3", "--rows", "0"].map(String::from);
    let from_checkpoint = ok(&args(&model("l2_induction")).each_ref().map(String::as_str));
    let from_blob = ok(&args(blob.to_str().unwrap()).each_ref().map(String::as_str));
    assert_eq!(from_checkpoint, from_blob);
}
