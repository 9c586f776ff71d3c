//! Activation patching: its fixed points (nothing patched is 0, the whole residual stream is
//! 1), an independent linear check of the last layer's heads, and the command's output file.

mod common;

use common::*;
use tinylens::Model;
use tinylens_cli::analysis::patching::{patched_metric, patching, Metric, Patch};
use tinylens_cli::blobio::load_model;
use tinylens_cli::trace::trace;
use tinylens_tests::read_safetensors;

const CLEAN: [u32; 8] = [3, 9, 4, 17, 3, 9, 4, 17];
const CORRUPT: [u32; 8] = [3, 9, 4, 17, 3, 9, 5, 17];

fn with_model<T>(name: &str, f: impl FnOnce(&Model<'_>) -> T) -> T {
    let loaded = load_model(&fixture(name).join("model.safetensors"), None).unwrap();
    let model = loaded.model().unwrap();
    f(&model)
}

#[test]
fn nothing_patched_is_zero_and_the_whole_residual_stream_is_one() {
    for name in ["l2_nonorm", "l2_ln", "l2_shortformer_ln"] {
        with_model(name, |model| {
            let metric = Metric::LogitDiff {
                answer: 3,
                wrong: Some(11),
            };
            let none = patched_metric(model, &CLEAN, &CORRUPT, &metric, Patch::None).unwrap();
            assert_eq!(none, 0.0, "{name}");
            for layer in 0..model.config().n_layers {
                let all = Patch::ResidPreAll { layer };
                let v = patched_metric(model, &CLEAN, &CORRUPT, &metric, all).unwrap();
                assert!((v - 1.0).abs() < 1e-6, "{name} layer {layer}: {v}");
            }
        });
    }
}

#[test]
fn a_last_layer_head_at_the_last_position_moves_the_metric_by_its_result_times_w_u() {
    // Without LayerNorm the logits are linear in the last layer's head results at the last
    // position: patching head h changes logit[a] - logit[w] by
    // (clean_result - corrupted_result) . (W_U[:, a] - W_U[:, w]).
    let loaded = load_model(&fixture("l2_nonorm").join("model.safetensors"), None).unwrap();
    let model = loaded.model().unwrap();
    let p = loaded.params().unwrap();
    let c = p.config;
    let (a, w) = (3usize, 11usize);
    let metric = Metric::LogitDiff {
        answer: a as u32,
        wrong: Some(w as u32),
    };
    let result = patching(&model, &CLEAN, &CORRUPT, &metric).unwrap();
    let (clean, corrupt) = (
        trace(&model, &CLEAN).unwrap(),
        trace(&model, &CORRUPT).unwrap(),
    );
    let (l, s, m, v) = (c.n_layers - 1, CLEAN.len(), c.d_model, c.d_vocab);
    for h in 0..c.n_heads {
        let at = ((s - 1) * c.n_heads + h) * m;
        let delta: f64 = (0..m)
            .map(|i| {
                let d = (clean.result[l][at + i] - corrupt.result[l][at + i]) as f64;
                d * (p.w_u[i * v + a] - p.w_u[i * v + w]) as f64
            })
            .sum();
        let expected = delta / (result.clean - result.corrupted);
        let got = result.head_by_pos[(l * s + s - 1) * c.n_heads + h] as f64;
        assert!(
            (got - expected).abs() < 1e-4,
            "head {l}.{h}: patching gives {got}, the linear map {expected}"
        );
    }
}

#[test]
fn patch_finds_the_induction_head_of_the_demo_model_and_writes_transformer_lens_shapes() {
    let out = tmp("patch.safetensors");
    let text = ok(&[
        "patch",
        concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.tlb"),
        "--clean",
        "Mr and Mrs Durasoli, of number 4, Pivet Drive, were proud to say that they were perfectly normal. Mr Dura",
        "--corrupt",
        "Mr and Mrs Durabeno, of number 4, Pivet Drive, were proud to say that they were perfectly normal. Mr Dura",
        "--answer",
        "so",
        "--wrong",
        "be",
        "--out",
        out.to_str().unwrap(),
    ]);
    // The layer-1 head that copies the name carries all of it at the last position.
    assert!(text.contains("head 1.2 at position 29"), "{text}");
    let t = read_safetensors(&out);
    assert_eq!(t["attn_head_out_all_pos"].shape, vec![2, 4]);
    assert_eq!(t["attn_head_out_by_pos"].shape, vec![2, 30, 4]);
    assert_eq!(t["resid_pre"].shape, vec![2, 30]);
    assert_eq!(t["path_patch"].shape, vec![3, 2, 4, 2, 4]);
    let best = t["attn_head_out_all_pos"].data[4 + 2];
    assert!(best > 0.9, "head 1.2 restores {best}");
    assert!(t["clean_metric"].data[0] > t["corrupted_metric"].data[0]);
}

#[test]
fn patch_refuses_what_it_cannot_compare() {
    let ckpt = fixture("l2_ln").join("model.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    fails_with(
        &[
            "patch",
            ckpt,
            "--clean-tokens",
            "1,2,3",
            "--corrupt-tokens",
            "1,2",
            "--answer",
            "3",
        ],
        "they need the same length",
    );
    fails_with(
        &[
            "patch",
            ckpt,
            "--clean-tokens",
            "1,2,3",
            "--corrupt-tokens",
            "1,2,3",
            "--answer",
            "3",
        ],
        "the clean and corrupted runs give the same metric",
    );
    fails_with(
        &[
            "patch",
            ckpt,
            "--clean-tokens",
            "1,2",
            "--corrupt-tokens",
            "1,3",
            "--answer",
            "999",
        ],
        "--answer 999 is out of range: the model has d_vocab = 40",
    );
    let blob = tmp("patch.int.tlb");
    let blob = blob.to_str().unwrap();
    ok(&["quantize", ckpt, "-o", blob, "--format", "int"]);
    fails_with(
        &[
            "patch",
            blob,
            "--clean-tokens",
            "1,2",
            "--corrupt-tokens",
            "1,3",
            "--answer",
            "3",
        ],
        "give an f32 or i8 blob, or the checkpoint (this blob is int)",
    );
}

/// The fixture models whose patching results TransformerLens computed
/// (`scripts/make_patching_fixtures.py`).
const PATCHED_FIXTURES: [&str; 6] = [
    "l2_induction",
    "l2_ln",
    "l2_ln_bf16",
    "l2_nonorm",
    "l2_shortformer_ln",
    "l3_ln_f16",
];

#[test]
fn patch_equals_transformer_lens_patching_and_path_patching_on_the_fixture_models() {
    for name in PATCHED_FIXTURES {
        let dir = fixture(name);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("patching.json")).unwrap())
                .unwrap();
        let ids = |key: &str| -> String {
            let list = meta[key].as_array().unwrap();
            let ids: Vec<String> = list.iter().map(|v| v.to_string()).collect();
            ids.join(",")
        };
        let out = tmp(&format!("patch-{name}.safetensors"));
        ok(&[
            "patch",
            dir.join("model.safetensors").to_str().unwrap(),
            "--clean-tokens",
            &ids("clean_tokens"),
            "--corrupt-tokens",
            &ids("corrupted_tokens"),
            "--answer",
            &meta["answer"].to_string(),
            "--wrong",
            &meta["wrong"].to_string(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let ours = read_safetensors(&out);
        let theirs = read_safetensors(&dir.join("patching.safetensors"));
        let mut compared = 0;
        for (tensor, want) in &theirs {
            let got = &ours[tensor];
            assert_eq!(got.shape, want.shape, "{name} {tensor}");
            for (i, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
                if w.is_nan() {
                    assert!(
                        g.is_nan(),
                        "{name} {tensor}[{i}]: {g}, TransformerLens has no path"
                    );
                    continue;
                }
                // The metrics are logit differences; the normalized results are fractions.
                let scale = if tensor.ends_with("_metric") {
                    w.abs().max(1.0)
                } else {
                    1.0
                };
                assert!(
                    (g - w).abs() <= 1e-4 * scale,
                    "{name} {tensor}[{i}]: tinylens {g}, TransformerLens {w}"
                );
                compared += 1;
            }
        }
        assert_eq!(theirs.len(), 6, "{name}: every tensor of the fixture");
        assert!(compared >= 50, "{name}: {compared} values compared");
    }
}

#[test]
fn path_patching_needs_the_sender_before_the_receiver() {
    with_model("l2_ln", |model| {
        let metric = Metric::LogitDiff {
            answer: 3,
            wrong: Some(11),
        };
        let path = |sender, receiver| Patch::Path {
            sender,
            receiver,
            input: tinylens::Proj::K,
        };
        let same_layer = patched_metric(model, &CLEAN, &CORRUPT, &metric, path((1, 0), (1, 2)));
        let err = format!("{:#}", same_layer.unwrap_err());
        assert!(
            err.contains("must sit in a layer before the receiver's (1)"),
            "{err}"
        );
        let missing = patched_metric(model, &CLEAN, &CORRUPT, &metric, path((0, 9), (1, 2)));
        let err = format!("{:#}", missing.unwrap_err());
        assert!(
            err.contains("the sender head 0.9 is not in a model"),
            "{err}"
        );
        let fine = patched_metric(model, &CLEAN, &CORRUPT, &metric, path((0, 1), (1, 2)));
        assert!(fine.unwrap().is_finite());
    });
}

#[test]
fn plot_patching_draws_every_table_and_the_attention_page_with_them() {
    let (svg, html) = (tmp("patching.svg"), tmp("patching.html"));
    let text = ok(&[
        "plot",
        "patching",
        concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.tlb"),
        "--clean",
        "Mr and Mrs Durasoli, of number 4, Pivet Drive, were proud to say that they were perfectly normal. Mr Dura",
        "--corrupt",
        "Mr and Mrs Durisoli, of number 4, Pivet Drive, were proud to say that they were perfectly normal. Mr Dura",
        "--answer",
        "so",
        "-o",
        svg.to_str().unwrap(),
        "--page",
        html.to_str().unwrap(),
    ]);
    assert!(text.contains("0 = corrupted"), "{text}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    for title in [
        "attn_head_out_all_pos",
        "layer 0: one head's output at one position",
        "layer 1: one head's output at one position",
        "(resid_pre)",
        "path patching to the q input",
        "path patching to the k input",
        "path patching to the v input",
    ] {
        assert!(svg.contains(title), "missing {title}");
    }
    // The position where the prompts differ is labelled with both tokens.
    assert!(
        svg.contains("4 &quot;ra&quot; / &quot;ri&quot;"),
        "no differing position"
    );
    // The induction head's key input, through the previous-token head, carries it all.
    let cell = "sender 0.1 (1) / receiver 1.2 (2): ";
    let k_map = svg.find("path patching to the k input").unwrap();
    let k_cell = svg[k_map..].find(cell).unwrap() + k_map + cell.len();
    let k: f32 = svg[k_cell..].split('<').next().unwrap().parse().unwrap();
    assert!(k > 0.9, "0.1 -> 1.2 k restores {k}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(r#"id="data""#) && page.contains("path patching to the k input"));
}

#[test]
fn the_progress_bar_counts_every_run_of_the_sweep() {
    use tinylens_cli::analysis::patching::{patching_runs, patching_with};
    for name in ["l1_nonorm", "l3_ln_f16"] {
        with_model(name, |model| {
            let metric = Metric::LogitDiff {
                answer: 3,
                wrong: Some(11),
            };
            let bar = indicatif::ProgressBar::hidden();
            bar.set_length(patching_runs(model.config(), CLEAN.len()));
            patching_with(model, &CLEAN, &CORRUPT, &metric, &bar).unwrap();
            assert_eq!(
                bar.position(),
                patching_runs(model.config(), CLEAN.len()),
                "{name}"
            );
        });
    }
}
