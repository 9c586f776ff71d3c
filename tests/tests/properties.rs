//! Invariants of the kernel as properties over random small models and token sequences
//! (proptest): attribution terms sum to the logits, every softmax row sums to 1, decoding
//! through the KV cache equals a full recompute, the integer path stays within its stated bound
//! of the f32 path, and quantize -> load -> run gives the same bits every time.

use proptest::prelude::*;
use tinylens::writer::AlignedBytes;
use tinylens::{
    Config, Decoder, IntDecoder, LnConvention, Model, Norm, NumberFormat, PosEmbed, Target, Term,
};
use tinylens_benches::random_params;
use tinylens_cli::params::Params;
use tinylens_cli::quantize::quantize_params;
use tinylens_cli::reference::Reference;
use tinylens_cli::validate::tolerance;

/// Small configs of every variant: 1-3 layers, 1-3 heads, LayerNorm or none, every kind of
/// positional embedding. `d_model` is at least 2: LayerNorm over one dimension is constant,
/// and `quantize --format int` refuses it (its calibrated range is empty).
fn configs() -> impl Strategy<Value = Config> {
    (
        1usize..=3,
        1usize..=3,
        2usize..=12,
        1usize..=6,
        2usize..=24,
        1usize..=10,
        any::<bool>(),
        0usize..3,
    )
        .prop_map(|(l, h, m, d, v, c, ln, pos)| Config {
            n_layers: l,
            n_heads: h,
            d_model: m,
            d_head: d,
            d_vocab: v,
            n_ctx: c,
            norm: if ln {
                Norm::LayerNorm { eps: 1e-5 }
            } else {
                Norm::None
            },
            pos: [PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None][pos],
        })
}

/// A model and a sequence of 1..=n_ctx of its tokens.
fn model_and_tokens() -> impl Strategy<Value = (Params, Vec<u32>)> {
    (configs(), any::<u64>()).prop_flat_map(|(cfg, seed)| {
        let tokens = prop::collection::vec(0..cfg.d_vocab as u32, 1..=cfg.n_ctx);
        (Just(random_params(&cfg, seed)), tokens)
    })
}

fn load(params: &Params, format: NumberFormat) -> AlignedBytes {
    AlignedBytes::new(&quantize_params(params, format, None).unwrap())
}

/// `|a - b| <= tol * max(1, |b|)`
fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

/// `cases` cases from a fixed seed, so that every run (and CI) checks the same models; set
/// `PROPTEST_RNG_SEED` to explore others.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default(); // reads PROPTEST_RNG_SEED
    let rng_seed = match std::env::var_os("PROPTEST_RNG_SEED") {
        Some(_) => default.rng_seed,
        None => proptest::test_runner::RngSeed::Fixed(0x7469_6e79_6c65_6e73),
    };
    ProptestConfig {
        cases,
        rng_seed,
        ..default
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Every softmax row is a distribution: non-negative, summing to 1 (also for scores far
    /// from 0, which the shift by the maximum keeps in range).
    #[test]
    fn softmax_rows_sum_to_one(mut scores in prop::collection::vec(-1e4f32..1e4, 1..64)) {
        tinylens::forward::softmax(&mut scores);
        let sum: f32 = scores.iter().sum();
        prop_assert!(scores.iter().all(|&p| (0.0..=1.0).contains(&p)));
        prop_assert!((sum - 1.0).abs() < 1e-5, "sum {sum}");
    }

    /// Each head's pattern row of every position sums to 1 over the causal prefix (f32 and
    /// int8 weights), and to 1 in Q15 up to one unit per entry (integer path).
    #[test]
    fn attention_patterns_sum_to_one((params, tokens) in model_and_tokens()) {
        let cfg = params.config;
        for format in [NumberFormat::F32, NumberFormat::I8] {
            let blob = load(&params, format);
            let model = Model::from_blob(blob.as_bytes()).unwrap();
            let mut arena = vec![0.0; cfg.state_len()];
            let mut dec = Decoder::new(&model, &mut arena).unwrap();
            for (i, &t) in tokens.iter().enumerate() {
                dec.step(t).unwrap();
                for (l, h) in (0..cfg.n_layers).flat_map(|l| (0..cfg.n_heads).map(move |h| (l, h))) {
                    let row = dec.pattern(l, h).unwrap();
                    prop_assert_eq!(row.len(), i + 1);
                    let sum: f32 = row.iter().sum();
                    prop_assert!((sum - 1.0).abs() < 1e-5, "{:?} {l}.{h}: {sum}", format);
                }
            }
        }
        let blob = load(&params, NumberFormat::Int);
        let model = Model::from_blob(blob.as_bytes()).unwrap();
        let mut arena = vec![0; cfg.int_state_len()];
        let mut dec = IntDecoder::new(&model, &mut arena).unwrap();
        for &t in &tokens {
            dec.step(t).unwrap();
            for (l, h) in (0..cfg.n_layers).flat_map(|l| (0..cfg.n_heads).map(move |h| (l, h))) {
                let row = dec.pattern(l, h).unwrap();
                let sum: u32 = row.iter().map(|&p| p as u32).sum();
                prop_assert!(sum.abs_diff(1 << 15) <= row.len() as u32, "int {l}.{h}: {sum}");
            }
        }
    }

    /// The attribution terms of every position add up to the logit (and to a logit
    /// difference), in both LayerNorm conventions' exact one and in every float format.
    #[test]
    fn attribution_terms_sum_to_the_logits((params, tokens) in model_and_tokens()) {
        let cfg = params.config;
        for format in [NumberFormat::F32, NumberFormat::I8, NumberFormat::I8Block32] {
            let blob = load(&params, format);
            let model = Model::from_blob(blob.as_bytes()).unwrap();
            let mut arena = vec![0.0; cfg.state_len()];
            let mut dec = Decoder::new(&model, &mut arena).unwrap();
            let mut terms = vec![0.0; Term::count(&cfg)];
            for &t in &tokens {
                let logits = dec.step(t).unwrap().to_vec();
                let a = tinylens::argmax(&logits);
                let b = (a + 1) % cfg.d_vocab as u32;
                dec.attribute(Target::Token(a), LnConvention::Exact, &mut terms).unwrap();
                let sum: f32 = terms.iter().sum();
                prop_assert!(close(sum, logits[a as usize], 1e-4), "{:?}: {sum} vs {}", format, logits[a as usize]);
                dec.attribute(Target::Diff(a, b), LnConvention::Exact, &mut terms).unwrap();
                let sum: f32 = terms.iter().sum();
                let diff = logits[a as usize] - logits[b as usize];
                prop_assert!(close(sum, diff, 1e-4), "{:?}: {sum} vs {diff}", format);
            }
        }
    }

    /// Decoding one token at a time through the KV cache gives, at every position, the logits
    /// of a full recompute: the kernel's prefill of the prefix (bit for bit) and the independent
    /// f64 reference over the whole sequence (within conformance's tolerance).
    #[test]
    fn incremental_decoding_equals_a_full_recompute((params, tokens) in model_and_tokens()) {
        let cfg = params.config;
        let blob = load(&params, NumberFormat::F32);
        let model = Model::from_blob(blob.as_bytes()).unwrap();
        let reference = Reference::new(&params).unwrap().forward(&tokens).unwrap();
        let mut arena = vec![0.0; cfg.state_len()];
        let mut again = vec![0.0; cfg.state_len()];
        let mut dec = Decoder::new(&model, &mut arena).unwrap();
        let mut full = Decoder::new(&model, &mut again).unwrap();
        for (i, &t) in tokens.iter().enumerate() {
            let stepped = dec.step(t).unwrap().to_vec();
            full.reset();
            let recomputed = full.prefill(&tokens[..=i]).unwrap();
            prop_assert_eq!(&stepped[..], recomputed);
            let row = &reference.logits[i * cfg.d_vocab..][..cfg.d_vocab];
            for (k, (&a, &b)) in stepped.iter().zip(row).enumerate() {
                prop_assert!(close(a, b as f32, tolerance::LOGIT as f32), "position {i} logit {k}: {a} vs {b}");
            }
        }
    }

    /// quantize -> load -> run, twice from scratch, gives identical blobs and identical bits.
    #[test]
    fn quantize_load_run_is_bit_identical((params, tokens) in model_and_tokens()) {
        let cfg = params.config;
        for format in NumberFormat::ALL {
            let run = || {
                let blob = load(&params, format);
                let model = Model::from_blob(blob.as_bytes()).unwrap();
                let mut out: Vec<u32> = Vec::new();
                if format == NumberFormat::Int {
                    let mut arena = vec![0; cfg.int_state_len()];
                    let mut dec = IntDecoder::new(&model, &mut arena).unwrap();
                    for &t in &tokens {
                        out.extend(dec.step(t).unwrap().iter().map(|&v| v as u32));
                    }
                } else {
                    let mut arena = vec![0.0; cfg.state_len()];
                    let mut dec = Decoder::new(&model, &mut arena).unwrap();
                    for &t in &tokens {
                        out.extend(dec.step(t).unwrap().iter().map(|v| v.to_bits()));
                    }
                }
                (blob.as_bytes().to_vec(), out)
            };
            let (blob_a, bits_a) = run();
            let (blob_b, bits_b) = run();
            prop_assert!(blob_a == blob_b, "{}: the blobs differ", format.name());
            prop_assert!(bits_a == bits_b, "{}: the outputs differ", format.name());
        }
    }
}

/// Models for the integer path's error bound: `d_model` at least 4 (LayerNorm over two or
/// three dimensions normalizes to a handful of values, and a one-step difference in the
/// integer path can flip one of them), and, like every property here, a fixed seed: the bound is an
/// empirical one, not a theorem.
fn model_and_tokens_for_int() -> impl Strategy<Value = (Params, Vec<u32>)> {
    model_and_tokens().prop_filter("d_model >= 4", |(p, _)| p.config.d_model >= 4)
}

proptest! {
    #![proptest_config(config(48))]

    /// The integer path's logits stay within 8% of the f32 logits' range over the sequence of
    /// the f32 path's (calibrated on that sequence): the fixtures measure 1.3-5.2%, and models
    /// this small and random reach about 3.5%.
    #[test]
    fn the_integer_path_stays_within_its_bound_of_f32((params, tokens) in model_and_tokens_for_int()) {
        let cfg = params.config;
        let f32_blob = load(&params, NumberFormat::F32);
        let f32_model = Model::from_blob(f32_blob.as_bytes()).unwrap();
        let int_blob = AlignedBytes::new(
            &quantize_params(&params, NumberFormat::Int, Some(std::slice::from_ref(&tokens))).unwrap(),
        );
        let int_model = Model::from_blob(int_blob.as_bytes()).unwrap();
        let mut fa = vec![0.0; cfg.state_len()];
        let mut ia = vec![0; cfg.int_state_len()];
        let mut fd = Decoder::new(&f32_model, &mut fa).unwrap();
        let mut id = IntDecoder::new(&int_model, &mut ia).unwrap();
        let (mut f32_logits, mut int_logits) = (Vec::new(), Vec::new());
        for &t in &tokens {
            f32_logits.extend_from_slice(fd.step(t).unwrap());
            int_logits.extend(id.step(t).unwrap().iter().map(|&q| q as f32 / 65536.0));
        }
        let max = f32_logits.iter().copied().fold(f32::MIN, f32::max);
        let min = f32_logits.iter().copied().fold(f32::MAX, f32::min);
        let range = (max - min).max(1e-3);
        let bound = 0.08 * range;
        let worst = f32_logits.iter().zip(&int_logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        prop_assert!(worst <= bound, "max |int - f32| = {worst}, bound {bound} (range {range})");
    }

}
