//! Small deterministic models for doctests and tests (not part of the API).

use std::vec::Vec;

use crate::blob::TensorKind;
use crate::{Config, Norm, PosEmbed};

/// A tiny config: 2 layers, 2 heads, d_model 8, d_head 4, vocab 11, n_ctx 6.
pub fn tiny_config(norm: Norm, pos: PosEmbed) -> Config {
    Config {
        n_layers: 2,
        n_heads: 2,
        d_model: 8,
        d_head: 4,
        d_vocab: 11,
        n_ctx: 6,
        norm,
        pos,
    }
}

/// Deterministic pseudo-random values in [-1, 1) (a 32-bit LCG), seeded per tensor.
pub fn values(seed: u32, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// A blob of `cfg` with deterministic weights (LayerNorm weights near 1), as aligned bytes.
pub fn blob_for(cfg: &Config) -> crate::writer::AlignedBytes {
    let tensors: Vec<(crate::blob::TensorId, Vec<f32>)> = crate::blob::tensors(cfg)
        .enumerate()
        .map(|(i, (id, len))| {
            let mut v = values(i as u32 + 1, len);
            if matches!(id.kind, TensorKind::Ln1W | TensorKind::LnFinalW) {
                v.iter_mut().for_each(|x| *x = 1.0 + 0.25 * *x);
            }
            (id, v)
        })
        .collect();
    let bytes = crate::writer::write_f32::<&str>(cfg, None, |id| {
        tensors
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    })
    .expect("tiny config is valid");
    crate::writer::AlignedBytes::new(&bytes)
}

/// A tiny LayerNorm model with a standard positional embedding (for doctests).
pub fn tiny_blob() -> crate::writer::AlignedBytes {
    blob_for(&tiny_config(
        Norm::LayerNorm { eps: 1e-5 },
        PosEmbed::Standard,
    ))
}
