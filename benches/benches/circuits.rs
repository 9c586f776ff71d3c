//! The top-k tables of one head (`tinylens circuits --head`), streamed through factored
//! circuits: OV rows, then QK rows and columns in one pass. Throughput is in circuit entries
//! (`2 * d_vocab^2` per head, `d_vocab^2` for the OV rows alone) or multiply-adds (factors).
//! The full `attn-only-2l` size (vocab 48262) is timed as a command in the README; here a
//! 4096-token vocabulary keeps a criterion run short.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tinylens::{Config, Norm, PosEmbed};
use tinylens_cli::analysis::circuits::{full_ov, full_qk, head_tables};
use tinylens_cli::analysis::{HeadId, SplitMix};
use tinylens_cli::params::{LayerParams, LnParams, Params};

/// `attn-only-2l`'s widths with a 4096-token vocabulary.
const SHAPE: Config = Config {
    n_layers: 2,
    n_heads: 8,
    d_model: 512,
    d_head: 64,
    d_vocab: 4096,
    n_ctx: 64,
    norm: Norm::LayerNorm { eps: 1e-5 },
    pos: PosEmbed::Standard,
};

fn random_params(c: Config) -> Params {
    let (v, m, h, d) = (c.d_vocab, c.d_model, c.n_heads, c.d_head);
    let mut rng = SplitMix(7);
    let mut r = |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.normal() * 0.02) as f32).collect() };
    let ln = || LnParams {
        w: vec![1.0; m],
        b: vec![0.0; m],
    };
    Params {
        config: c,
        vocab: None,
        w_e: r(v * m),
        w_pos: Some(r(c.n_ctx * m)),
        layers: (0..c.n_layers)
            .map(|_| LayerParams {
                ln1: Some(ln()),
                w_q: r(h * m * d),
                w_k: r(h * m * d),
                w_v: r(h * m * d),
                b_q: vec![0.0; h * d],
                b_k: vec![0.0; h * d],
                b_v: vec![0.0; h * d],
                w_o: r(h * d * m),
                b_o: vec![0.0; m],
            })
            .collect(),
        ln_final: Some(ln()),
        w_u: r(m * v),
        b_u: vec![0.0; v],
    }
}

fn bench(c: &mut Criterion) {
    let p = random_params(SHAPE);
    let head = HeadId { layer: 1, head: 0 };
    let v = SHAPE.d_vocab as u64;
    let mut group = c.benchmark_group("circuits");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2 * v * v));
    group.bench_function("head_tables_vocab4096_top10", |b| {
        b.iter(|| head_tables(&p, head, 10, false).unwrap())
    });
    group.throughput(Throughput::Elements(v * v));
    group.bench_function("ov_rows_only_vocab4096_top10", |b| {
        let ov = full_ov(&p, head).unwrap();
        b.iter(|| ov.row_top_k(10, None).unwrap())
    });
    // The four factors W_E W_V, W_O W_U, W_E W_Q, W_E W_K: d_vocab x d_model x d_head each.
    group.throughput(Throughput::Elements(4 * v * 512 * 64));
    group.bench_function("factors_vocab4096", |b| {
        b.iter(|| (full_ov(&p, head).unwrap(), full_qk(&p, head).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
