//! The `tinylens` binary end to end: what a user types, what they see, what files they get.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tinylens_tests::{assert_close, read_safetensors, tolerance};

#[test]
fn run_out_matches_transformer_lens() {
    for name in ["l2_ln", "l2_shortformer_ln", "l1_nonorm"] {
        let dir = fixture(name);
        let reference = read_safetensors(&dir.join("reference.safetensors"));
        let tokens: Vec<String> = reference["tokens"]
            .row(1)
            .iter()
            .map(|&t| (t as u32).to_string())
            .collect();
        let out = tmp(&format!("{name}-hooks.safetensors"));
        let o = tinylens(&[
            "run",
            dir.join("model.safetensors").to_str().unwrap(),
            "--tokens",
            &tokens.join(","),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("top 5 next tokens"));
        assert!(stdout(&o).contains("head 0.1"));
        let ours = read_safetensors(&out);
        assert_close(
            "logits",
            &ours["logits"].data,
            reference["logits"].row(1),
            tolerance::LOGIT,
        );
        for l in 0..2usize.min(if name == "l1_nonorm" { 1 } else { 2 }) {
            let key = format!("blocks.{l}.attn.hook_pattern");
            assert_close(
                &key,
                &ours[&key].data,
                reference[&key].row(1),
                tolerance::PATTERN,
            );
            let key = format!("blocks.{l}.hook_resid_post");
            assert_close(
                &key,
                &ours[&key].data,
                reference[&key].row(1),
                tolerance::ACTIVATION,
            );
        }
        for key in ["dla.direct", "dla.direct_embed", "dla.direct_pos"] {
            assert_close(
                key,
                &ours[key].data,
                reference[key].row(1),
                tolerance::LOGIT,
            );
        }
        assert_eq!(ours["dla.heads"].shape[1], tokens.len());
        assert_eq!(ours.contains_key("dla.heads_tl"), name != "l1_nonorm");
    }
}

#[test]
fn quantize_then_run_the_blob_gives_the_checkpoints_numbers() {
    let dir = fixture("l3_ln_f16");
    let blob = tmp("l3.tlb");
    let o = tinylens(&[
        "quantize",
        dir.join("model.safetensors").to_str().unwrap(),
        "-o",
        blob.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (tmp("from-ckpt.safetensors"), tmp("from-blob.safetensors"));
    for (model, out) in [(dir.join("model.safetensors"), &a), (blob.clone(), &b)] {
        let o = tinylens(&[
            "run",
            model.to_str().unwrap(),
            "--prompt",
            "abc abc",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    let o = tinylens(&["inspect", blob.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "(verified)",
        "blocks.2.attn.W_O",
        "[2, 8, 16]",
        "vocab:     32 tokens",
    ] {
        assert!(text.contains(needle), "inspect lacks {needle:?}:\n{text}");
    }

    let o = tinylens(&[
        "validate",
        dir.join("model.safetensors").to_str().unwrap(),
        blob.to_str().unwrap(),
        "--random",
        "3",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("PASS"));
    assert!(stdout(&o).contains("dla.heads_tl"));
}

#[test]
fn demo_runs_the_embedded_model() {
    let o = tinylens(&["demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "prompt: \"Mr and Mrs Durasoli, of number 4,",
        "top 5 next tokens",
        // The repeated invented name goes on as it did the first time...
        "   1. \"so\"",
        "attribution of logit[\"so\"]",
        "sum",
        // ...because a layer-1 head attends to what followed "Dura" last time.
        "the largest term is head 1.",
        "(\"so\" in \"...",
        "That is an induction head",
        "greedy continuation",
        "+ \"soli",
        "wrote the attention of every head on this story to",
        "tinylens explore",
    ] {
        assert!(text.contains(needle), "demo lacks {needle:?}:\n{text}");
    }
    let page = std::env::temp_dir().join("tinylens-demo.html");
    let html = std::fs::read_to_string(&page).expect("the demo writes its attention page");
    let heads = html.matches("head 1.").count();
    assert!(html.contains("Du") && heads >= 4, "{}", page.display());
}

#[test]
fn bad_input_gets_a_clear_error() {
    let ckpt = fixture("l2_ln").join("model.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    fails_with(
        &["run", ckpt, "--tokens", "1,2,40"],
        "token 40 is out of range",
    );
    fails_with(&["run", ckpt, "--tokens", "1,x"], "is not a token id");
    fails_with(&["run", ckpt, "--prompt", "hello!"], "'!' at byte 5");
    fails_with(
        &["run", ckpt, "--prompt", &"a".repeat(25)],
        "longer than the model's context",
    );
    fails_with(
        &["run", "/nonexistent/model.tlb", "--tokens", "1"],
        "cannot read",
    );
    fails_with(
        &["quantize", ckpt, "-o", "/tmp/x.tlb", "--format", "q4"],
        "unsupported --format",
    );

    // Blobs: truncated, corrupted, wrong version.
    let blob = tmp("bad-src.tlb");
    assert!(tinylens(&["quantize", ckpt, "-o", blob.to_str().unwrap()])
        .status
        .success());
    let good = std::fs::read(&blob).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = tmp(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let truncated = write("truncated.tlb", &good[..good.len() / 2]);
    fails_with(&["inspect", &truncated], "blob truncated");
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 4;
    let flipped = write("flipped.tlb", &flipped);
    fails_with(&["run", &flipped, "--tokens", "1"], "CRC32 mismatch");
    let mut future = good.clone();
    future[8] = 9;
    let future = write("future.tlb", &future);
    fails_with(&["inspect", &future], "format version 9 is not supported");
    let torch = write("model.pt", b"PK\x03\x04 a torch.save zip");
    fails_with(&["run", &torch, "--tokens", "1"], "it is a PyTorch file");
    let not_a_blob = write("text.tlb", b"hello, this is not a model at all");
    fails_with(&["inspect", &not_a_blob], "not a tinylens blob");

    // Validate refuses a blob of another model.
    let other = fixture("l2_nonorm").join("model.safetensors");
    fails_with(
        &["validate", other.to_str().unwrap(), blob.to_str().unwrap()],
        "does not match",
    );
}

/// Writes a copy of a fixture checkpoint with `edit` applied to its tensor list, beside a copy
/// of its config.json, and returns the checkpoint's path.
fn edited_checkpoint(
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) -> String {
    let src = fixture("l1_nonorm");
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let dir = tmp(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let path = dir.join("model.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn bad_checkpoints_name_the_tensor() {
    let out = tmp("never-written.tlb");
    let out = out.to_str().unwrap();
    let missing = edited_checkpoint("missing", |t| t.retain(|(n, ..)| n != "blocks.0.attn.W_V"));
    fails_with(
        &["quantize", &missing, "-o", out],
        "missing tensor blocks.0.attn.W_V",
    );
    let shape = edited_checkpoint("shape", |t| {
        let e = t.iter_mut().find(|(n, ..)| n == "embed.W_E").unwrap();
        e.2 = vec![e.2[0] * 2, e.2[1] / 2];
    });
    fails_with(
        &["quantize", &shape, "-o", out],
        "tensor embed.W_E has shape [80, 16], expected [40, 32]",
    );
    let dtype = edited_checkpoint("dtype", |t| {
        let e = t
            .iter_mut()
            .find(|(n, ..)| n == "blocks.0.attn.W_Q")
            .unwrap();
        e.1 = safetensors::Dtype::I32;
    });
    fails_with(
        &["quantize", &dtype, "-o", out],
        "tensor blocks.0.attn.W_Q has unsupported dtype I32",
    );
    let nan = edited_checkpoint("nan", |t| {
        let e = t.iter_mut().find(|(n, ..)| n == "unembed.W_U").unwrap();
        e.3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    fails_with(
        &["quantize", &nan, "-o", out],
        "tensor unembed.W_U contains a non-finite value (NaN)",
    );
    let mlp = edited_checkpoint("mlp", |t| {
        t.push((
            "blocks.0.mlp.W_in".into(),
            safetensors::Dtype::F32,
            vec![2],
            vec![0; 8],
        ));
    });
    fails_with(
        &["quantize", &mlp, "-o", out],
        "not attention-only: found MLP tensor blocks.0.mlp.W_in",
    );
    fails_with(
        &[
            "run",
            &fixture("l2_ln").join("model.safetensors").to_string_lossy(),
            "--prompt",
            "",
        ],
        "the prompt has no tokens",
    );
    assert!(!Path::new(out).exists(), "a failed quantize writes nothing");
}

#[test]
fn quantized_formats_end_to_end() {
    let ckpt = fixture("l2_ln").join("model.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    for format in ["i8", "i8-block32", "int"] {
        let blob = tmp(&format!("l2_ln.{format}.tlb"));
        let blob = blob.to_str().unwrap();
        let o = tinylens(&["quantize", ckpt, "-o", blob, "--format", format]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = tinylens(&["inspect", blob]);
        assert!(
            stdout(&o).contains(&format!("format:    {format}")),
            "{}",
            stdout(&o)
        );
        assert!(
            stdout(&o).contains("the int8 parameter bytes"),
            "{}",
            stdout(&o)
        );
        let o = tinylens(&["run", blob, "--prompt", "abcabc"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("attribution of logit"),
            "{}",
            stdout(&o)
        );
    }
    // Calibration files are checked against the model.
    let calib = tmp("calibration.txt");
    std::fs::write(&calib, "1 2 3\n4 5 99\n").unwrap();
    let out = tmp("bad.int.tlb");
    for (format, message) in [
        (
            "int",
            "calibration sequence 2 has token 99, out of range (d_vocab = 40)",
        ),
        (
            "i8",
            "--calibrate sets activation ranges of the int format and the statistics of --rounding gptq; this is --format i8 rounded to nearest",
        ),
    ] {
        let (out, calib) = (out.to_str().unwrap(), calib.to_str().unwrap());
        fails_with(
            &[
                "quantize",
                ckpt,
                "-o",
                out,
                "--format",
                format,
                "--calibrate",
                calib,
            ],
            message,
        );
    }
}

/// A valid blob of a model that is small in flash and huge in activations: 1000 heads and a
/// vocabulary of 100000 (3.2 MB as f32).
fn wide_blob() -> PathBuf {
    use tinylens_cli::params::{LayerParams, Params};
    let (h, m, d, v) = (1000, 4, 1, 100_000);
    let cfg = tinylens::Config {
        n_layers: 1,
        n_heads: h,
        d_model: m,
        d_head: d,
        d_vocab: v,
        n_ctx: 32,
        norm: tinylens::Norm::None,
        pos: tinylens::PosEmbed::Standard,
    };
    let ramp = |n: usize| {
        (0..n)
            .map(|i| ((i % 7) as f32 - 3.0) * 0.1)
            .collect::<Vec<_>>()
    };
    let params = Params {
        config: cfg,
        vocab: None,
        w_e: ramp(v * m),
        w_pos: Some(ramp(cfg.n_ctx * m)),
        layers: vec![LayerParams {
            ln1: None,
            w_q: ramp(h * m * d),
            w_k: ramp(h * m * d),
            w_v: ramp(h * m * d),
            b_q: vec![0.0; h * d],
            b_k: vec![0.0; h * d],
            b_v: vec![0.0; h * d],
            w_o: ramp(h * d * m),
            b_o: vec![0.0; m],
        }],
        ln_final: None,
        w_u: ramp(m * v),
        b_u: vec![0.0; v],
    };
    let path = tmp("wide.tlb");
    let bytes = tinylens_cli::blobio::blob_from_params(&params).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn run_computes_the_attribution_it_prints_and_refuses_what_would_not_fit() {
    let blob = wide_blob();
    let blob = blob.to_str().unwrap();
    let tokens: Vec<String> = (0..24).map(|i| (i * 37).to_string()).collect();
    let tokens = tokens.join(",");
    // Printing the top tokens and one logit's attribution needs no [heads, seq, vocab] table.
    let o = tinylens(&["run", blob, "--tokens", &tokens]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("head 0.999"), "{}", stdout(&o));
    // Every position's attribution of every logit would take 9 GiB: refused with its size.
    let out = tmp("wide.safetensors");
    fails_with(
        &[
            "run",
            blob,
            "--tokens",
            &tokens,
            "--out",
            out.to_str().unwrap(),
        ],
        "2048 MiB hold at most 2 tokens, not 24; give fewer tokens, add --no-attribution, or leave out --out",
    );
    assert!(!out.exists());
    // `inspect` says so before anything runs.
    let o = tinylens(&["inspect", blob]);
    assert!(
        stdout(&o).contains("limit 2048 MiB): --out takes prompts of up to 2 tokens"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn counts_have_a_stated_maximum() {
    let ckpt = fixture("l2_ln").join("model.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    let blob = tmp("counts.tlb");
    assert!(tinylens(&["quantize", ckpt, "-o", blob.to_str().unwrap()])
        .status
        .success());
    let blob = blob.to_str().unwrap();
    for n in ["0", "10001", "1000000000"] {
        fails_with(
            &["validate", ckpt, blob, "--random", n],
            "expected 1 to 10000 sequences",
        );
    }
    fails_with(
        &["heads", ckpt, "--seqs", "18446744073709551615"],
        "--seqs 18446744073709551615: expected 1 to 10000 sequences",
    );
    fails_with(
        &["validate", ckpt, blob, "--tolerance", "speed=2"],
        "is not a tolerance",
    );
}

#[test]
fn validate_is_a_gate_for_quantized_blobs_and_prints_each_tolerance() {
    let ckpt = fixture("l2_ln").join("model.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    for format in ["i8", "int"] {
        let blob = tmp(&format!("gate.{format}.tlb"));
        let blob = blob.to_str().unwrap();
        assert!(
            tinylens(&["quantize", ckpt, "-o", blob, "--format", format])
                .status
                .success()
        );
        let o = tinylens(&["validate", ckpt, blob, "--random", "4"]);
        assert!(o.status.success(), "{format}: {}{}", stdout(&o), stderr(&o));
        let text = stdout(&o);
        for needle in ["top-1 at clear positions", "<= 0.1", "PASS"] {
            assert!(text.contains(needle), "{format} lacks {needle:?}:\n{text}");
        }
        // The same blob held to a KL of zero fails, and says so.
        let o = tinylens(&[
            "validate",
            ckpt,
            blob,
            "--random",
            "4",
            "--tolerance",
            "kl=0",
        ]);
        assert!(!o.status.success());
        assert!(stdout(&o).contains("FAIL"), "{}", stdout(&o));
    }
}

#[test]
fn no_command_writes_over_its_input() {
    let src = fixture("l2_ln").join("model.safetensors");
    let ckpt = tmp("own-input.safetensors");
    std::fs::copy(&src, &ckpt).unwrap();
    std::fs::copy(
        src.with_file_name("config.json"),
        ckpt.with_file_name("config.json"),
    )
    .unwrap();
    let before = std::fs::read(&ckpt).unwrap();
    let ckpt = ckpt.to_str().unwrap();
    fails_with(&["quantize", ckpt, "-o", ckpt], "over its own input");
    let blob = tmp("own-input.tlb");
    let blob = blob.to_str().unwrap();
    ok(&["quantize", ckpt, "-o", blob]);
    let blob_before = std::fs::read(blob).unwrap();
    for args in [
        vec!["run", blob, "--tokens", "1,2", "--out", blob],
        vec!["run", ckpt, "--tokens", "1,2", "--out", ckpt],
        vec!["ablate", blob, "--tokens", "1,2", "--out", blob],
        vec!["heads", blob, "--out", blob],
        vec!["circuits", blob, "--out", blob],
        vec!["plot", "attention", blob, "--tokens", "1,2", "-o", blob],
        vec!["plot", "attribution", blob, "--tokens", "1,2", "-o", blob],
        vec!["plot", "heads", blob, "-o", blob],
    ] {
        fails_with(&args, "over its own input");
    }
    assert_eq!(std::fs::read(ckpt).unwrap(), before);
    assert_eq!(std::fs::read(blob).unwrap(), blob_before);
    // A failed write leaves no partial file behind.
    fails_with(
        &["quantize", ckpt, "-o", "/nonexistent-dir/x.tlb"],
        "cannot write /nonexistent-dir/x.tlb",
    );
}

#[test]
fn huge_weights_give_a_named_error_not_a_silent_nan() {
    use tinylens_cli::import::load_checkpoint;
    let mut p = load_checkpoint(&fixture("l1_nonorm").join("model.safetensors"), None).unwrap();
    // Finite weights whose products overflow f32: 1e30 squared in the attention scores.
    for w in p.w_e.iter_mut() {
        *w *= 1e30;
    }
    let blob = tmp("huge.tlb");
    std::fs::write(&blob, tinylens_cli::blobio::blob_from_params(&p).unwrap()).unwrap();
    fails_with(
        &["run", blob.to_str().unwrap(), "--tokens", "1,2,3"],
        "too large for f32 arithmetic",
    );
}

#[test]
fn run_out_on_an_int_blob_says_which_hooks_it_left_out() {
    let ckpt = fixture("l2_ln").join("model.safetensors");
    let blob = tmp("hooks.int.tlb");
    let out = tmp("hooks.int.safetensors");
    let blob = blob.to_str().unwrap();
    assert!(tinylens(&[
        "quantize",
        ckpt.to_str().unwrap(),
        "-o",
        blob,
        "--format",
        "int"
    ])
    .status
    .success());
    let o = tinylens(&[
        "run",
        blob,
        "--tokens",
        "1,2,3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("left out, as the int format keeps them as integers")
            && text.contains("blocks.0.attn.hook_z")
            && text.contains("blocks.1.hook_resid_post"),
        "{text}"
    );
    let written = read_safetensors(&out);
    assert!(written.contains_key("blocks.0.attn.hook_pattern"));
    assert!(!written.contains_key("blocks.0.attn.hook_z"));
}

#[test]
fn a_long_context_is_calibrated_and_validated_on_bounded_sequences() {
    use tinylens_cli::params::{LayerParams, Params};
    // 49 KB of weights, a context of 8192 and no positional embedding: nothing in the file
    // limits how long a sequence may be, so the commands choose, and say so.
    let (h, m, d, v) = (2, 16, 8, 64);
    let cfg = tinylens::Config {
        n_layers: 2,
        n_heads: h,
        d_model: m,
        d_head: d,
        d_vocab: v,
        n_ctx: 8192,
        norm: tinylens::Norm::None,
        pos: tinylens::PosEmbed::None,
    };
    let ramp = |n: usize, k: usize| {
        (0..n)
            .map(|i| (((i * k) % 13) as f32 - 6.0) * 0.05)
            .collect::<Vec<_>>()
    };
    let layer = |k| LayerParams {
        ln1: None,
        w_q: ramp(h * m * d, k),
        w_k: ramp(h * m * d, k + 1),
        w_v: ramp(h * m * d, k + 2),
        b_q: vec![0.0; h * d],
        b_k: vec![0.0; h * d],
        b_v: vec![0.0; h * d],
        w_o: ramp(h * d * m, k + 3),
        b_o: vec![0.0; m],
    };
    let params = Params {
        config: cfg,
        vocab: None,
        w_e: ramp(v * m, 5),
        w_pos: None,
        layers: vec![layer(1), layer(7)],
        ln_final: None,
        w_u: ramp(m * v, 3),
        b_u: vec![0.0; v],
    };
    let ckpt = tmp("long/model.safetensors");
    std::fs::create_dir_all(ckpt.parent().unwrap()).unwrap();
    tinylens_cli::import::save_checkpoint(&params, &ckpt).unwrap();
    let ckpt = ckpt.to_str().unwrap();
    let blob = tmp("long.int.tlb");
    let blob = blob.to_str().unwrap();
    let text = ok(&["quantize", ckpt, "-o", blob, "--format", "int"]);
    assert!(
        text.contains("generated sequences are 512 tokens long, the model's n_ctx is 8192"),
        "{text}"
    );
    let text = ok(&["validate", ckpt, blob, "--random", "2"]);
    assert!(text.contains("2 sequences, 1024 positions"), "{text}");
}

#[test]
fn run_out_with_no_attribution_writes_the_same_hooks_and_no_dla() {
    let model = fixture("l2_ln").join("model.safetensors");
    let (full, hooks) = (tmp("full.safetensors"), tmp("hooks-only.safetensors"));
    for (out, extra) in [(&full, None), (&hooks, Some("--no-attribution"))] {
        let mut args = vec![
            "run",
            model.to_str().unwrap(),
            "--tokens",
            "1,2,3,4,5,6",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let text = ok(&args);
        assert!(
            text.contains("head 0.1"),
            "the last position's attribution still prints"
        );
    }
    let (full, hooks) = (read_safetensors(&full), read_safetensors(&hooks));
    assert!(
        hooks.keys().all(|k| !k.starts_with("dla.")),
        "{:?}",
        hooks.keys()
    );
    assert!(full.contains_key("dla.heads"));
    let mut compared = 0;
    for (name, t) in &hooks {
        assert_eq!(t.data, full[name].data, "{name}");
        compared += 1;
    }
    assert_eq!(compared, 1 + 4 * 2, "logits and four hooks per layer");
    fails_with(
        &[
            "run",
            model.to_str().unwrap(),
            "--tokens",
            "1",
            "--no-attribution",
        ],
        "--out",
    );
}

#[test]
fn gptq_rounding_lowers_the_kl_of_int8_weights_and_report_names_every_matrix() {
    use tinylens_cli::quantize::{quantize_with, Round};
    let ckpt = fixture("l2_induction").join("model.safetensors");
    let loaded = tinylens_cli::blobio::load_model(&ckpt, None).unwrap();
    let params = loaded.params().unwrap();
    let sequences = tinylens_cli::inputs::random_sequences(16, 32, params.config.d_vocab, 5);
    // A short calibration set keeps the test quick in a debug build.
    let calibration = tinylens_cli::inputs::random_sequences(8, 16, params.config.d_vocab, 9);
    let kl = |round| {
        let bytes = quantize_with(
            &params,
            tinylens::NumberFormat::I8,
            Some(&calibration),
            round,
        )
        .unwrap();
        let blob = tinylens::writer::AlignedBytes::new(&bytes);
        let model = tinylens::Model::from_blob(blob.as_bytes()).unwrap();
        tinylens_cli::validate::validate(&params, &model, &sequences)
            .unwrap()
            .mean_kl
    };
    let (nearest, gptq) = (kl(Round::Nearest), kl(Round::Gptq));
    assert!(gptq < 0.85 * nearest, "GPTQ {gptq} vs nearest {nearest}");

    let out = tmp("gptq.tlb");
    let ckpt = fixture("l2_nonorm").join("model.safetensors");
    let calibrate = tmp("gptq-calibration.txt");
    std::fs::write(&calibrate, "1,2,3,4,5,6,7,8\n9,8,7,6,5,4,3,2\n").unwrap();
    let text = ok(&[
        "quantize",
        ckpt.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--format",
        "int",
        "--rounding",
        "gptq",
        "--calibrate",
        calibrate.to_str().unwrap(),
        "--report",
    ]);
    assert!(text.contains("int, gptq rounding"), "{text}");
    for name in ["embed.W_E", "pos_embed.W_pos", "unembed.W_U"]
        .into_iter()
        .map(String::from)
        .chain(
            (0..2)
                .flat_map(|l| ["W_Q", "W_K", "W_V", "W_O"].map(|w| format!("blocks.{l}.attn.{w}"))),
        )
    {
        assert!(
            text.contains(&format!("  {name} ")),
            "no row for {name}:\n{text}"
        );
    }
    ok(&["validate", ckpt.to_str().unwrap(), out.to_str().unwrap()]);
    fails_with(
        &[
            "quantize",
            ckpt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--rounding",
            "up",
        ],
        "unknown --rounding \"up\": expected gptq or nearest",
    );
}
