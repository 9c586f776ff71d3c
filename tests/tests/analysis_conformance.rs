//! Circuit analysis against TransformerLens: for every fixture with an `analysis.safetensors`
//! (written by `scripts/make_fixtures.py` with TransformerLens' own functions), the circuits,
//! copying scores, composition scores, head-detector scores (on the same token sequences) and
//! ablation losses must match within 1e-4.

use std::path::Path;

use tinylens::circuits::{ov_row_top_k, qk_row_top_k, row_scratch_len, TopK};
use tinylens::Model;
use tinylens_cli::analysis::ablate::ablate;
use tinylens_cli::analysis::circuits::{direct_path, full_ov, full_qk, top_k_dense};
use tinylens_cli::analysis::composition::{all_composition_scores, Mode};
use tinylens_cli::analysis::heads::{
    attention_scores, copying_score, detector_score, duplicate_token_pattern, induction_pattern,
    previous_token_pattern,
};
use tinylens_cli::analysis::HeadId;
use tinylens_cli::blobio::blob_from_params;
use tinylens_cli::import::load_checkpoint;
use tinylens_cli::params::Params;
use tinylens_cli::trace::trace;
use tinylens_tests::{fixture_models, read_safetensors, Array};

/// Tolerance of every analysis quantity, absolute, relative past magnitude 1.
const TOL: f32 = 1e-4;

fn assert_close_rel(name: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{name}: length");
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let d = (a - e).abs() / e.abs().max(1.0);
        if d > worst {
            (worst, at) = (d, i);
        }
    }
    eprintln!("{name}: max relative difference {worst:.1e}");
    assert!(
        worst <= TOL,
        "{name}: element {at}: actual {} expected {} (relative difference {worst:e} > {TOL:e})",
        actual[at],
        expected[at]
    );
}

fn fixtures() -> Vec<(String, Params, std::collections::HashMap<String, Array>)> {
    fixture_models()
        .into_iter()
        .filter(|d| d.join("analysis.safetensors").exists())
        .map(|d| {
            let name = d.file_name().unwrap().to_string_lossy().to_string();
            let params = load_checkpoint(&d.join("model.safetensors"), None).unwrap();
            let reference = read_safetensors(&d.join("analysis.safetensors"));
            (name, params, reference)
        })
        .collect()
}

fn with_model<R>(p: &Params, f: impl FnOnce(&Model<'_>) -> R) -> R {
    let blob = tinylens::writer::AlignedBytes::new(&blob_from_params(p).unwrap());
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    f(&model)
}

#[test]
fn every_fixture_has_analysis_references() {
    let all = fixtures();
    assert!(
        all.len() >= 7,
        "expected the 7 fixtures, found {}",
        all.len()
    );
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/tl/l2_induction/analysis.safetensors")
        .exists());
}

#[test]
fn circuits_match_transformer_lens() {
    for (name, p, r) in fixtures() {
        let c = p.config;
        let v = c.d_vocab;
        assert_close_rel(
            &format!("{name} direct_path"),
            &direct_path(&p).dense(),
            &r["direct_path"].data,
        );
        for id in HeadId::all(&c) {
            let i = id.layer * c.n_heads + id.head;
            let at = |key: &str| &r[key].data[i * v * v..(i + 1) * v * v];
            let ov = full_ov(&p, id).unwrap();
            let qk = full_qk(&p, id).unwrap();
            assert_close_rel(&format!("{name} full_OV {id}"), &ov.dense(), at("full_OV"));
            assert_close_rel(&format!("{name} full_QK {id}"), &qk.dense(), at("full_QK"));
            // The streamed top-k equals the top-k of TransformerLens' dense matrix.
            let streamed = ov.row_top_k(5, None).unwrap();
            let dense = top_k_dense(at("full_OV"), v, v, 5);
            assert_close_rel(
                &format!("{name} OV top-5 {id}"),
                &streamed.values,
                &dense.values,
            );
            let streamed = qk.transpose().row_top_k(5, None).unwrap();
            let qk_t = tinylens_cli::analysis::transpose(at("full_QK"), v, v);
            let dense = top_k_dense(&qk_t, v, v, 5);
            assert_close_rel(
                &format!("{name} QK^T top-5 {id}"),
                &streamed.values,
                &dense.values,
            );
        }
    }
}

#[test]
fn kernel_circuit_rows_match_transformer_lens() {
    for (name, p, r) in fixtures() {
        let c = p.config;
        let v = c.d_vocab;
        with_model(&p, |model| {
            let mut scratch = vec![0.0f32; row_scratch_len(&c)];
            let mut top = TopK::<4>::new();
            for id in HeadId::all(&c) {
                let i = id.layer * c.n_heads + id.head;
                for token in [0u32, (v / 2) as u32, (v - 1) as u32] {
                    let row = |key: &str| {
                        let at = (i * v + token as usize) * v;
                        r[key].data[at..at + v].to_vec()
                    };
                    for (what, reference) in [("OV", row("full_OV")), ("QK", row("full_QK"))] {
                        if what == "OV" {
                            ov_row_top_k(model, id.layer, id.head, token, &mut scratch, &mut top)
                                .unwrap();
                        } else {
                            qk_row_top_k(model, id.layer, id.head, token, &mut scratch, &mut top)
                                .unwrap();
                        }
                        let expected = top_k_dense(&reference, 1, v, 4);
                        let got: Vec<f32> = top.as_slice().iter().map(|e| e.1).collect();
                        assert_close_rel(
                            &format!("{name} kernel {what} row {token} of {id}"),
                            &got,
                            &expected.values,
                        );
                    }
                }
            }
        });
    }
}

#[test]
fn copying_and_composition_scores_match_transformer_lens() {
    for (name, p, r) in fixtures() {
        let c = p.config;
        let copying: Vec<f32> = HeadId::all(&c)
            .into_iter()
            .map(|id| copying_score(&p, id).unwrap())
            .collect();
        assert_close_rel(
            &format!("{name} copying_score"),
            &copying,
            &r["copying_score"].data,
        );
        for mode in Mode::ALL {
            let key = format!("composition_scores.{}", mode.name());
            assert_close_rel(
                &format!("{name} {key}"),
                &all_composition_scores(&p, mode),
                &r[&key].data,
            );
        }
    }
}

#[test]
fn head_detector_scores_match_transformer_lens_on_the_same_sequences() {
    for (name, p, r) in fixtures() {
        let tokens = &r["head_tokens"];
        let seqs: Vec<Vec<u32>> = (0..tokens.shape[0])
            .map(|b| tokens.row(b).iter().map(|&t| t as u32).collect())
            .collect();
        let scores = with_model(&p, |m| attention_scores(m, &seqs).unwrap());
        assert_close_rel(
            &format!("{name} prev_token_score"),
            &scores.prev,
            &r["prev_token_score"].data,
        );
        assert_close_rel(
            &format!("{name} duplicate_token_score"),
            &scores.duplicate,
            &r["duplicate_token_score"].data,
        );
        assert_close_rel(
            &format!("{name} induction_score"),
            &scores.induction,
            &r["induction_score"].data,
        );
        // The kernel's running statistics against the dense detection patterns.
        let c = p.config;
        let mut dense = vec![0.0f32; 3 * c.n_layers * c.n_heads];
        for s in &seqs {
            let t = with_model(&p, |m| trace(m, s).unwrap());
            let n = s.len();
            let patterns = [
                previous_token_pattern(n),
                duplicate_token_pattern(s),
                induction_pattern(s),
            ];
            for id in HeadId::all(&c) {
                let i = id.layer * c.n_heads + id.head;
                let a = &t.pattern[id.layer][id.head * n * n..(id.head + 1) * n * n];
                for (k, d) in patterns.iter().enumerate() {
                    dense[k * c.n_layers * c.n_heads + i] +=
                        detector_score(a, d) / seqs.len() as f32;
                }
            }
        }
        let ours: Vec<f32> = [scores.prev, scores.duplicate, scores.induction].concat();
        assert_close_rel(
            &format!("{name} HeadStats vs dense detection patterns"),
            &ours,
            &dense,
        );
    }
}

#[test]
fn ablation_losses_match_transformer_lens() {
    for (name, p, r) in fixtures() {
        let tokens: Vec<u32> = r["ablate.tokens"].data.iter().map(|&t| t as u32).collect();
        let a = ablate(&p, &tokens).unwrap();
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        assert_close_rel(
            &format!("{name} loss"),
            &[a.clean as f32],
            &r["ablate.loss_clean"].data,
        );
        assert_close_rel(
            &format!("{name} ablate.zero"),
            &f(&a.zero),
            &r["ablate.zero"].data,
        );
        assert_close_rel(
            &format!("{name} ablate.mean"),
            &f(&a.mean),
            &r["ablate.mean"].data,
        );
        assert_close_rel(
            &format!("{name} ablate.direct_zero"),
            &[a.direct_zero as f32],
            &r["ablate.direct_zero"].data,
        );
        assert_close_rel(
            &format!("{name} ablate.direct_mean"),
            &[a.direct_mean as f32],
            &r["ablate.direct_mean"].data,
        );
    }
}

#[test]
fn the_trained_model_has_induction_and_previous_token_heads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tl/l2_induction");
    let p = load_checkpoint(&dir.join("model.safetensors"), None).unwrap();
    let seqs = tinylens_cli::analysis::heads::repeated_sequences(8, 15, p.config.d_vocab, 0);
    let s = with_model(&p, |m| attention_scores(m, &seqs).unwrap());
    let best = |v: &[f32]| {
        v.iter()
            .cloned()
            .enumerate()
            .fold((0, f32::MIN), |b, (i, x)| if x > b.1 { (i, x) } else { b })
    };
    let (ind, ind_score) = best(&s.induction_diag);
    let (prev, prev_score) = best(&s.prev_diag);
    assert!(
        ind / p.config.n_heads == 1 && ind_score > 0.6,
        "induction head in layer 1: {ind} {ind_score}"
    );
    assert!(
        prev / p.config.n_heads == 0 && prev_score > 0.4,
        "previous-token head in layer 0: {prev} {prev_score}"
    );
}
