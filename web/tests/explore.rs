//! The page's calls on the host, against the kernel's own decoder: a clean run gives the
//! decoder's logits and patterns, the terms add up to the logit, ablation zeroes or averages
//! a head, the continuation is the greedy one, and bad requests are named errors.

use tinylens::testing::tiny_blob;
use tinylens::{argmax, Decoder, Error, LnConvention, Model, Target, Term};
use tinylens_web::explore::{
    arena_len, circuit_row_count, circuit_rows, generate, run, Layout, KEEP, MEAN, ZERO,
};

const TOKENS: [u32; 5] = [3, 7, 1, 3, 7];

fn run_with(model: &Model<'_>, codes: &[u8], target: Option<u32>) -> Vec<f32> {
    let cfg = model.config();
    let mut arena = vec![0.0; arena_len(cfg)];
    let mut out = vec![0.0; Layout::new(cfg, TOKENS.len()).len];
    run(model, &mut arena, &TOKENS, codes, target, &mut out).unwrap();
    out
}

#[test]
fn a_clean_run_is_the_decoders_and_its_terms_add_up_to_the_logit() {
    let blob = tiny_blob();
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let cfg = *model.config();
    let at = Layout::new(&cfg, TOKENS.len());
    let out = run_with(&model, &[KEEP; 4], None);
    let mut arena = vec![0.0; cfg.state_len()];
    let mut d = Decoder::new(&model, &mut arena).unwrap();
    let n = TOKENS.len();
    for (q, &t) in TOKENS.iter().enumerate() {
        d.step(t).unwrap();
        let row = d.pattern(1, 0).unwrap();
        let start = at.patterns + ((cfg.n_heads) * n + q) * n;
        assert_eq!(
            &out[start..start + q + 1],
            row,
            "pattern row of head 1.0 at {q}"
        );
    }
    let logits = d.logits().unwrap();
    assert_eq!(&out[..cfg.d_vocab], logits);
    let top = argmax(logits);
    assert_eq!(out[at.target], top as f32);
    let mut terms = vec![0.0; Term::count(&cfg)];
    d.attribute(Target::Token(top), LnConvention::Exact, &mut terms)
        .unwrap();
    assert_eq!(&out[at.terms..at.terms + terms.len()], terms.as_slice());
    let sum: f32 = terms.iter().sum();
    assert!(
        (sum - logits[top as usize]).abs() < 1e-4,
        "{sum} vs {}",
        logits[top as usize]
    );
    let loss = out[at.loss];
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
}

#[test]
fn a_zero_ablated_head_adds_nothing_and_a_mean_ablated_one_its_mean() {
    let blob = tiny_blob();
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let cfg = *model.config();
    let at = Layout::new(&cfg, TOKENS.len());
    let clean = run_with(&model, &[KEEP; 4], Some(2));
    let zero = run_with(&model, &[KEEP, ZERO, KEEP, KEEP], Some(2));
    // Term 2 + 1: head 0.1.
    assert_eq!(zero[at.terms + 3], 0.0);
    assert_ne!(clean[at.terms + 3], 0.0);
    assert_ne!(clean[..cfg.d_vocab], zero[..cfg.d_vocab]);
    let sum: f32 = zero[at.terms..at.terms + Term::count(&cfg)].iter().sum();
    assert!((sum - zero[2]).abs() < 1e-4);
    // Mean-ablating head 1.0 changes its term, and no attention pattern: every head reads
    // only what earlier layers write.
    let mean = run_with(&model, &[KEEP, KEEP, MEAN, KEEP], Some(2));
    assert_ne!(mean[at.terms + 4], clean[at.terms + 4]);
    assert_ne!(mean[..cfg.d_vocab], clean[..cfg.d_vocab]);
    assert_eq!(
        mean[at.patterns..at.next_logprob],
        clean[at.patterns..at.next_logprob]
    );
}

#[test]
fn the_continuation_is_greedy_and_stops_at_the_context() {
    let blob = tiny_blob();
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let cfg = *model.config();
    let mut arena = vec![0.0; arena_len(&cfg)];
    let (mut ids, mut probs) = (vec![0; 8], vec![0.0; 8]);
    let n = generate(
        &model,
        &mut arena,
        &TOKENS[..3],
        &[KEEP; 4],
        &mut ids,
        &mut probs,
    )
    .unwrap();
    // n_ctx 6: three prompt tokens, then three steps; the last prediction needs no step.
    assert_eq!(n, 4);
    let mut state = vec![0.0; cfg.state_len()];
    let mut d = Decoder::new(&model, &mut state).unwrap();
    let mut next = argmax(d.prefill(&TOKENS[..3]).unwrap());
    for (i, &id) in ids[..n].iter().enumerate() {
        assert_eq!(id, next, "token {i}");
        assert!(probs[i] > 0.0 && probs[i] <= 1.0);
        if i + 1 < n {
            next = argmax(d.step(next).unwrap());
        }
    }
}

#[test]
fn circuit_rows_are_sorted_and_padded_past_the_vocabulary() {
    let blob = tiny_blob();
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let cfg = *model.config();
    let k = 12; // d_vocab is 11
    let rows = circuit_row_count(&cfg);
    let (mut ids, mut values) = (vec![0; rows * k], vec![0.0; rows * k]);
    let mut scratch = vec![0.0; cfg.d_model + cfg.d_head];
    circuit_rows(&model, 4, k, &mut scratch, &mut ids, &mut values).unwrap();
    for r in 0..rows {
        let row = &values[r * k..(r + 1) * k];
        assert!(row[..11].windows(2).all(|w| w[0] >= w[1]), "row {r} sorted");
        assert_eq!(ids[r * k + 11], u32::MAX);
        assert!(row[11].is_nan());
    }
}

#[test]
fn bad_requests_are_named_errors() {
    let blob = tiny_blob();
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let cfg = *model.config();
    let mut arena = vec![0.0; arena_len(&cfg)];
    let mut out = vec![0.0; Layout::new(&cfg, 2).len];
    let mut go = |tokens: &[u32], codes: &[u8], arena: &mut [f32]| {
        run(&model, arena, tokens, codes, None, &mut out).unwrap_err()
    };
    assert_eq!(
        go(&[1, 99], &[KEEP; 4], &mut arena),
        Error::TokenOutOfRange {
            token: 99,
            d_vocab: 11
        }
    );
    assert_eq!(go(&[], &[KEEP; 4], &mut arena), Error::EmptyPrompt);
    assert!(matches!(
        go(&[1, 2], &[KEEP, 7, KEEP, KEEP], &mut arena),
        Error::OutOfRange { index: 7, .. }
    ));
    assert!(matches!(
        go(&[1, 2], &[KEEP; 3], &mut arena),
        Error::OutputLength {
            expected: 4,
            found: 3
        }
    ));
    assert!(matches!(
        go(&[1, 2], &[KEEP; 4], &mut arena[..10]),
        Error::CapacityTooSmall { .. }
    ));
    assert!(matches!(
        go(&[1, 2, 3], &[KEEP; 4], &mut arena),
        Error::OutputLength { .. }
    ));
}
