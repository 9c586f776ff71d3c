//! Per-token decode latency: the kernel's KV-cached decoder against the candle reference in
//! `f32`, on the same weights and the same prompt, at the two sizes of
//! [`SIZES`](tinylens_benches::SIZES).
//!
//! Every size gets one group, `demo/...` and `large/...`, of three benchmarks:
//!
//! - `kernel_f32_step`: one `Decoder::step` at position `n_ctx / 2 - 1`, over a KV cache
//!   already holding the `n_ctx / 2 - 1` positions before it. What a token costs the kernel
//!   while generating.
//! - `candle_f32_forward`: the candle reference's forward pass over the whole `n_ctx / 2`-token
//!   prompt, then the logits row of its last position. The reference has no KV cache, so this
//!   is what the same token costs it: a full forward of the prefix.
//! - `kernel_f32_prefill`: `Decoder::prefill` of the whole prompt from an empty cache, so that
//!   the per-prefix cost sits beside the per-token one. Its throughput counts prompt tokens.
//!
//! The two per-token benchmarks produce the same logits: the tests of `tinylens-benches` check
//! that they agree within 1e-3. The kernel runs on one thread; candle uses its default thread
//! count (`RAYON_NUM_THREADS`, else every core), see `benches/README.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tinylens::{Config, Decoder};
use tinylens_benches::{candle_last_logits, Workload, SIZES};

/// Wall-clock time each benchmark spends measuring.
const MEASUREMENT_TIME: Duration = Duration::from_secs(3);

/// Wall-clock time each benchmark spends warming up.
const WARM_UP_TIME: Duration = Duration::from_secs(1);

/// Samples per benchmark.
const SAMPLE_SIZE: usize = 20;

/// The three benchmarks of one size, in the group named `name`.
fn bench_size(c: &mut Criterion, name: &str, cfg: &Config) {
    let work = Workload::new(cfg);
    let model = work.model();
    let reference = work.reference();
    let mut arena = vec![0.0; cfg.state_len()];
    let mut decoder = Decoder::new(&model, &mut arena).expect("the arena is large enough");
    let token = work.next_token();

    let mut group = c.benchmark_group(name);
    // Every sample runs the same number of iterations: the large size's forward passes take
    // milliseconds, too long for linear sampling's growing samples to fit the time budget.
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(1));

    // A step cannot be undone, so every timed step needs the cache brought back to
    // `n_ctx / 2 - 1` positions first: a reset and a prefill of the context, outside the
    // timing (`iter_custom` starts the clock after the prefill and stops it right after the
    // step, so only the step is reported). Criterion plans iteration counts from the
    // wall-clock time of a whole `iter_custom` call, prefills included, so the time budgets
    // still bound this benchmark's wall-clock time. Most of that time goes to the untimed
    // prefills, so this benchmark collects fewer steps than the others collect iterations
    // (hundreds at the large size), each timed alone from the real state.
    group.bench_function("kernel_f32_step", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                work.prepare(&mut decoder);
                let start = Instant::now();
                let logits = decoder.step(black_box(token)).expect("the token fits");
                black_box(logits);
                timed += start.elapsed();
            }
            timed
        })
    });

    // No KV cache: the token at position n_ctx / 2 - 1 costs a forward pass of the prefix.
    group.bench_function("candle_f32_forward", |b| {
        b.iter(|| candle_last_logits(&reference, black_box(&work.prompt)))
    });

    group.throughput(Throughput::Elements(work.prompt.len() as u64));
    group.bench_function("kernel_f32_prefill", |b| {
        b.iter(|| {
            decoder.reset();
            let logits = decoder
                .prefill(black_box(&work.prompt))
                .expect("the prompt fits");
            black_box(logits);
        })
    });
    group.finish();
}

/// Every size, smallest first.
fn decode(c: &mut Criterion) {
    for (name, cfg) in SIZES {
        bench_size(c, name, &cfg);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(WARM_UP_TIME)
        .measurement_time(MEASUREMENT_TIME);
    targets = decode
}
criterion_main!(benches);
