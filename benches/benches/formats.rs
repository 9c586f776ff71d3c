//! Per-token decode latency of every number format, in one run: the same random weights
//! ([`Workload`]) as `f32`, `i8`, `i8-block32` and `int` blobs, each decoding the token at
//! position `n_ctx / 2 - 1` over a KV cache holding the positions before it (the same step
//! `decode.rs` times as `kernel_f32_step`). Group `formats/<size>`, one benchmark per format.
//!
//! `cargo bench -p tinylens-benches --bench formats`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tinylens::writer::AlignedBytes;
use tinylens::{Config, Decoder, IntDecoder, Model, NumberFormat};
use tinylens_benches::{Workload, SIZES};
use tinylens_cli::quantize::{default_calibration, quantize_params};

/// The formats, as the CLI names them.
const FORMATS: [NumberFormat; 4] = [
    NumberFormat::F32,
    NumberFormat::I8,
    NumberFormat::I8Block32,
    NumberFormat::Int,
];

fn bench_size(c: &mut Criterion, name: &str, cfg: &Config) {
    let work = Workload::new(cfg);
    // A short calibration set keeps the large size's set-up quick.
    let calibration: Vec<Vec<u32>> = default_calibration(cfg).into_iter().step_by(8).collect();
    let token = work.next_token();
    let mut group = c.benchmark_group(format!("formats/{name}"));
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(1));
    for format in FORMATS {
        let bytes = quantize_params(&work.params, format, Some(&calibration))
            .expect("the workload quantizes");
        let blob = AlignedBytes::new(&bytes);
        let model = Model::from_blob(blob.as_bytes()).expect("the blob was just written");
        let id = format!("{}_step", format.name().replace('-', "_"));
        if format == NumberFormat::Int {
            let mut arena = vec![0i32; cfg.int_state_len()];
            let mut dec = IntDecoder::new(&model, &mut arena).expect("arena");
            group.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        dec.reset();
                        dec.prefill(work.context()).expect("fits");
                        let start = Instant::now();
                        black_box(dec.step(black_box(token)).expect("fits"));
                        timed += start.elapsed();
                    }
                    timed
                })
            });
        } else {
            let mut arena = vec![0.0f32; cfg.state_len()];
            let mut dec = Decoder::new(&model, &mut arena).expect("arena");
            group.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        work.prepare(&mut dec);
                        let start = Instant::now();
                        black_box(dec.step(black_box(token)).expect("fits"));
                        timed += start.elapsed();
                    }
                    timed
                })
            });
        }
    }
    group.finish();
}

fn formats(c: &mut Criterion) {
    for (name, cfg) in SIZES {
        bench_size(c, name, &cfg);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = formats
}
criterion_main!(benches);
