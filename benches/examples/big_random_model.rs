//! Writes a random attention-only checkpoint of the shape of TransformerLens' `attn-only-2l`
//! (vocab 48262, d_model 512, 8 heads of 64, 2 layers, n_ctx 2048, LayerNorm) for the scale
//! benchmark of `tinylens circuits`:
//!
//! ```sh
//! cargo run --release -p tinylens-benches --example big_random_model -- /tmp/attn-only-2l
//! /usr/bin/time -v tinylens circuits /tmp/attn-only-2l/model.safetensors --head 0.0 --no-direct
//! ```

use tinylens::{Config, Norm, PosEmbed};
use tinylens_cli::analysis::SplitMix;
use tinylens_cli::import::save_checkpoint;
use tinylens_cli::params::{LayerParams, LnParams, Params};

/// The shape of `attn-only-2l`.
pub const ATTN_ONLY_2L: Config = Config {
    n_layers: 2,
    n_heads: 8,
    d_model: 512,
    d_head: 64,
    d_vocab: 48262,
    n_ctx: 2048,
    norm: Norm::LayerNorm { eps: 1e-5 },
    pos: PosEmbed::Standard,
};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "attn-only-2l".into());
    let c = ATTN_ONLY_2L;
    let (v, m, h, d) = (c.d_vocab, c.d_model, c.n_heads, c.d_head);
    let mut rng = SplitMix(2021);
    let mut random = |n: usize, scale: f64| -> Vec<f32> {
        (0..n).map(|_| (rng.normal() * scale) as f32).collect()
    };
    let ln = || LnParams {
        w: vec![1.0; m],
        b: vec![0.0; m],
    };
    let layers = (0..c.n_layers)
        .map(|_| LayerParams {
            ln1: Some(ln()),
            w_q: random(h * m * d, 0.02),
            w_k: random(h * m * d, 0.02),
            w_v: random(h * m * d, 0.02),
            b_q: vec![0.0; h * d],
            b_k: vec![0.0; h * d],
            b_v: vec![0.0; h * d],
            w_o: random(h * d * m, 0.02),
            b_o: vec![0.0; m],
        })
        .collect();
    let p = Params {
        config: c,
        vocab: None,
        w_e: random(v * m, 0.02),
        w_pos: Some(random(c.n_ctx * m, 0.02)),
        layers,
        ln_final: Some(ln()),
        w_u: random(m * v, 0.02),
        b_u: vec![0.0; v],
    };
    std::fs::create_dir_all(&dir).expect("create the output directory");
    let path = std::path::Path::new(&dir).join("model.safetensors");
    save_checkpoint(&p, &path).expect("write the checkpoint");
    println!("wrote {}", path.display());
}
