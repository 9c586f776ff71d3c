//! `validate` as a gate: every correct blob of every format passes its format's tolerances, and
//! wrong blobs fail: a corrupted weight in a blob whose checksum is valid, and a blob made from
//! another checkpoint of the same shape.

use tinylens::writer::AlignedBytes;
use tinylens::{Model, NumberFormat};
use tinylens_cli::import::load_checkpoint;
use tinylens_cli::inputs::random_sequences;
use tinylens_cli::params::Params;
use tinylens_cli::quantize::quantize_params;
use tinylens_cli::validate::{tolerance, validate, validate_with, Report, Tolerances};

fn params(name: &str) -> Params {
    let dir = tinylens_tests::fixtures_dir().join(name);
    load_checkpoint(&dir.join("model.safetensors"), None).unwrap()
}

/// `blob_params`, written in `format`, validated against the checkpoint `params`.
fn check(params: &Params, blob_params: &Params, format: NumberFormat) -> Report {
    let bytes = AlignedBytes::new(&quantize_params(blob_params, format, None).unwrap());
    let model = Model::from_blob(bytes.as_bytes()).unwrap();
    let c = params.config;
    let sequences = random_sequences(8, c.n_ctx, c.d_vocab, 7);
    validate(params, &model, &sequences).unwrap()
}

fn summary(r: &Report) -> String {
    format!(
        "{}: clear top-1 {:.4}, KL {:.2e}, logit error {:.4}, attribution error {:.4}, rows {:?}",
        r.format.name(),
        r.top1_clear,
        r.mean_kl,
        r.logit_error(),
        r.attr_error(),
        r.rows
            .iter()
            .filter(|row| row.max_abs > row.tolerance)
            .map(|row| &row.name)
            .collect::<Vec<_>>()
    )
}

const FIXTURES: [&str; 4] = ["l2_ln", "l2_induction", "l2_shortformer_ln", "l1_nonorm"];

#[test]
fn correct_blobs_of_every_format_pass() {
    for name in FIXTURES {
        let p = params(name);
        for format in NumberFormat::ALL {
            let r = check(&p, &p, format);
            assert!(r.passed(), "{name} {}", summary(&r));
        }
    }
}

/// The position of the largest |w| in `w`.
fn largest(w: &[f32]) -> usize {
    (0..w.len())
        .max_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()))
        .unwrap()
}

#[test]
fn a_corrupted_weight_fails() {
    // One weight with its sign flipped: the largest of W_U, what a bit flip in the sign of a
    // stored value does. The blob is written whole, so its checksum is valid.
    for name in FIXTURES {
        let p = params(name);
        let mut bad = p.clone();
        let i = largest(&bad.w_u);
        bad.w_u[i] = -bad.w_u[i];
        for format in NumberFormat::ALL {
            let r = check(&p, &bad, format);
            assert!(
                !r.passed(),
                "{name}: a flipped W_U weight passes: {}",
                summary(&r)
            );
        }
    }
}

/// Deterministic noise in [-1, 1).
fn noise(seed: &mut u64) -> f32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Another checkpoint of the same shape: every weight moved by up to a third of its tensor's
/// largest magnitude (as another training run of the same model would).
fn another_checkpoint(p: &Params) -> Params {
    let mut q = p.clone();
    let mut seed = 0x5EED_u64;
    let mut perturb = |w: &mut Vec<f32>| {
        let max = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        for x in w.iter_mut() {
            *x += max / 3.0 * noise(&mut seed);
        }
    };
    perturb(&mut q.w_e);
    perturb(&mut q.w_u);
    for l in &mut q.layers {
        for w in [&mut l.w_q, &mut l.w_k, &mut l.w_v, &mut l.w_o] {
            perturb(w);
        }
    }
    q
}

#[test]
fn a_blob_of_another_checkpoint_fails() {
    for name in FIXTURES {
        let p = params(name);
        let other = another_checkpoint(&p);
        for format in NumberFormat::ALL {
            let r = check(&p, &other, format);
            assert!(
                !r.passed(),
                "{name}: another checkpoint passes: {}",
                summary(&r)
            );
        }
    }
}

#[test]
fn sharp_attention_in_f32_passes_with_a_tolerance_scaled_to_its_scores() {
    // Queries 30 times larger: scores in the hundreds, patterns close to one-hot, where f32
    // scores are off by more than the fixed 1e-5 floor allows.
    let mut p = params("l2_nonorm");
    for l in &mut p.layers {
        for x in l.w_q.iter_mut().chain(l.b_q.iter_mut()) {
            *x *= 30.0;
        }
    }
    let r = check(&p, &p, NumberFormat::F32);
    assert!(r.passed(), "{}", summary(&r));
    assert!(r.max_score > 50.0, "scores are not sharp: {}", r.max_score);
    assert!(r.pattern_tolerance > tolerance::PATTERN);
    assert_eq!(
        r.pattern_tolerance,
        tolerance::PATTERN_EPS_FACTOR * f32::EPSILON as f64 * r.max_score
    );
}

#[test]
fn tolerances_can_be_overridden_by_name() {
    let p = params("l2_ln");
    let t = Tolerances::for_format(NumberFormat::I8)
        .with_overrides(&["kl=0".into()])
        .unwrap();
    assert_eq!(t.mean_kl, 0.0);
    let bytes = AlignedBytes::new(&quantize_params(&p, NumberFormat::I8, None).unwrap());
    let model = Model::from_blob(bytes.as_bytes()).unwrap();
    let seqs = random_sequences(2, p.config.n_ctx, p.config.d_vocab, 1);
    assert!(!validate_with(&p, &model, &seqs, t).unwrap().passed());

    for (bad, says) in [
        ("speed=1", "is not a tolerance"),
        ("kl", "expected NAME=VALUE"),
        ("kl=-1", "non-negative number"),
        ("kl=NaN", "non-negative number"),
    ] {
        let err = Tolerances::for_format(NumberFormat::F32)
            .with_overrides(&[bad.into()])
            .unwrap_err();
        assert!(format!("{err}").contains(says), "{bad}: {err}");
    }
}
