//! The traced run and activation patching on `demo-2l`: what `tinylens run --out` and
//! `tinylens patch` cost, beside the plain prefill of the same tokens.
//!
//! - `trace_64`: every hook and the attribution of every position over 64 tokens (the
//!   `run --out` trace).
//! - `trace_64_hooks`: every hook over the same 64 tokens, no attribution (what
//!   TransformerLens' `run_with_cache` records).
//! - `prefill_64`: `Decoder::prefill` of the same 64 tokens, logits of the last only.
//! - `patch_sweep`: everything `tinylens patch` computes for the demo story (30 tokens):
//!   every head at every position (8 runs), every head and `resid_pre` at each position (300
//!   runs, each starting at its position), and path patching from every layer-0 head to each
//!   layer-1 head's q, k and v input (4 sender runs, 48 receiver runs).

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use tinylens::Decoder;
use tinylens_cli::analysis::patching::{patching, Metric};
use tinylens_cli::blobio::load_model;
use tinylens_cli::inputs::{random_sequences, tokens_of, Input};
use tinylens_cli::trace::{trace, trace_for, Attribution};

const CLEAN: &str = "Mr and Mrs Durasoli, of number 4, Pivet Drive, were proud to say that they \
                     were perfectly normal. Mr Dura";
const CORRUPT: &str = "Mr and Mrs Durabeno, of number 4, Pivet Drive, were proud to say that \
                       they were perfectly normal. Mr Dura";

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/demo-2l/demo-2l.tlb");
    let loaded = load_model(&path, None).expect("the demo model loads");
    let model = loaded.model().expect("the demo model is valid");
    let cfg = *model.config();
    let tokens = random_sequences(1, 64, cfg.d_vocab, 1).remove(0);
    let mut group = c.benchmark_group("demo-2l");
    group.sample_size(20);
    group.bench_function("trace_64", |b| b.iter(|| trace(&model, &tokens).unwrap()));
    group.bench_function("trace_64_hooks", |b| {
        b.iter(|| trace_for(&model, &tokens, Attribution::Off).unwrap())
    });
    let mut arena = vec![0.0f32; cfg.state_len()];
    let mut dec = Decoder::new(&model, &mut arena).unwrap();
    group.bench_function("prefill_64", |b| {
        b.iter(|| {
            dec.reset();
            dec.prefill(&tokens).unwrap()[0]
        })
    });
    let clean = tokens_of(&model, &Input::Prompt(CLEAN.into())).unwrap();
    let corrupt = tokens_of(&model, &Input::Prompt(CORRUPT.into())).unwrap();
    let vocab = model.vocab().unwrap();
    let id = |t: &str| vocab.iter().position(|x| x == t).unwrap() as u32;
    let metric = Metric::LogitDiff {
        answer: id("so"),
        wrong: Some(id("be")),
    };
    group.bench_function("patch_sweep", |b| {
        b.iter(|| patching(&model, &clean, &corrupt, &metric).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
