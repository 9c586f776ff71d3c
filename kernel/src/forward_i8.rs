//! int8 weights with `f32` activations, for cores with an FPU (Cortex-M4F/M7): the matrices of
//! the blob are int8 with `f32` scales, everything else (biases, LayerNorm, activations, the
//! KV cache) stays `f32`, and the [`Decoder`](crate::Decoder) of `forward.rs` runs them through
//! the functions here. Two scalings, one blob format each:
//!
//! - [`Scaling::Column`] (format `i8`): one scale per output column of each `[d_in, d_out]`
//!   matrix. The inner loop accumulates `x_i * q_ij` and each column is scaled once at the end:
//!   `out_j = b_j + s_j * sum_i x_i q_ij`.
//! - [`Scaling::Block32`] (format `i8-block32`): one scale per 32 consecutive elements (GGML's
//!   Q8_0 grouping, here along the rows of TransformerLens' `[d_in, d_out]` orientation):
//!   `out_j = b_j + sum_i (x_i s_block(i, j)) q_ij`, one multiply per 32 MACs for `x_i s_block`.
//!
//! The embeddings use the same scales: `W_E` and `W_pos` per residual dimension (column), or per
//! block. [`matvec_i8_reference`] dequantizes element by element and is the plain version the
//! optimized ones are tested against.

use crate::blob::TensorKind;
pub use crate::weights::i8::{I8Matrix, I8Weights, Proj, Scaling, BLOCK};
use crate::PosEmbed;

/// Columns `j..j + T` of `x @ q` (raw int8 values, unscaled): `T` sums in registers.
#[inline(always)]
fn i8_tile<const T: usize>(x: &[f32], q: &[i8], cols: usize, j: usize, out: &mut [f32]) {
    let mut acc = [0.0f32; T];
    for (&xi, row) in x.iter().zip(q.chunks_exact(cols)) {
        for (a, &qij) in acc.iter_mut().zip(&row[j..j + T]) {
            *a += xi * qij as f32;
        }
    }
    out[j..j + T].copy_from_slice(&acc);
}

/// `out = x @ W + b` for an int8 `W`, dequantizing every element: the plain version the
/// optimized [`matvec_i8`] is tested against.
///
/// `x`: `[d_in]`, `w`: `[d_in, d_out]`, `b`, `out`: `[d_out]`
pub fn matvec_i8_reference(x: &[f32], w: &I8Matrix<'_>, b: Option<&[f32]>, out: &mut [f32]) {
    let cols = out.len();
    match b {
        Some(b) => out.copy_from_slice(b),
        None => out.fill(0.0),
    }
    for (i, &xi) in x.iter().enumerate() {
        for (j, o) in out.iter_mut().enumerate() {
            *o += xi * w.at(i, j, cols);
        }
    }
}

/// `out = x @ W + b` for an int8 `W`, with the scaling applied where it costs least: once
/// per column ([`Scaling::Column`]) or once per row segment of a block ([`Scaling::Block32`]).
///
/// `x`: `[d_in]`, `w`: `[d_in, d_out]`, `b`, `out`: `[d_out]`
pub fn matvec_i8(x: &[f32], w: &I8Matrix<'_>, b: Option<&[f32]>, out: &mut [f32]) {
    let cols = out.len();
    out.fill(0.0);
    match w.scaling {
        Scaling::Column => {
            // Raw int8 values summed a tile of columns at a time in registers (16 wide, then
            // 4, then 1; every weight loaded once), then one multiply per column.
            let wide = cols - cols % 16;
            let narrow = cols - cols % 4;
            for j in (0..wide).step_by(16) {
                i8_tile::<16>(x, w.q, cols, j, out);
            }
            for j in (wide..narrow).step_by(4) {
                i8_tile::<4>(x, w.q, cols, j, out);
            }
            for j in narrow..cols {
                i8_tile::<1>(x, w.q, cols, j, out);
            }
            for (o, &s) in out.iter_mut().zip(w.scales) {
                *o *= s;
            }
        }
        Scaling::Block32 => {
            for (i, (&xi, row)) in x.iter().zip(w.q.chunks_exact(cols)).enumerate() {
                // The row's elements, cut where blocks end: x_i * s_block once per piece.
                let mut j = 0;
                while j < cols {
                    let idx = w.first + i * cols + j;
                    let end = (cols - j).min(BLOCK - idx % BLOCK);
                    let xs = xi * w.scales.get(idx / BLOCK).copied().unwrap_or(0.0);
                    for (o, &q) in out[j..j + end].iter_mut().zip(&row[j..j + end]) {
                        *o += xs * q as f32;
                    }
                    j += end;
                }
            }
        }
    }
    if let Some(b) = b {
        for (o, &bj) in out.iter_mut().zip(b) {
            *o += bj;
        }
    }
}

/// The products of the forward pass with int8 weights: embeddings, projections, head
/// results and the unembedding, each one read of [`matvec_i8`].
impl I8Weights<'_> {
    /// `x = W_E[t]` (+ `W_pos[p]` when `with_pos`). `x`: `[d_model]`
    pub fn embed(&self, token: usize, pos: Option<usize>, x: &mut [f32]) {
        let m = self.config.d_model;
        let w_e = self.matrix(TensorKind::WE);
        for (i, xi) in x.iter_mut().enumerate() {
            *xi = w_e.at(token, i, m);
        }
        if let Some(p) = pos {
            self.add_pos(p, x);
        }
    }

    /// `x += W_pos[p]`. `x`: `[d_model]`
    pub fn add_pos(&self, p: usize, x: &mut [f32]) {
        if matches!(self.config.pos, PosEmbed::None) {
            return;
        }
        let m = self.config.d_model;
        let w_pos = self.matrix(TensorKind::WPos);
        for (i, xi) in x.iter_mut().enumerate() {
            *xi += w_pos.at(p, i, m);
        }
    }

    /// `out = x @ W[h] + b[h]` for one projection of head `h` of layer `l`.
    /// `x`: `[d_model]`, `out`: `[d_head]`
    pub fn project(&self, l: usize, proj: Proj, h: usize, x: &[f32], out: &mut [f32]) {
        let d = self.config.d_head;
        let (w, b) = match proj {
            Proj::Q => (TensorKind::WQ, TensorKind::BQ),
            Proj::K => (TensorKind::WK, TensorKind::BK),
            Proj::V => (TensorKind::WV, TensorKind::BV),
        };
        let bias = self.f32s(b, l).get(h * d..(h + 1) * d);
        matvec_i8(x, &self.head_matrix(w, l, h), bias, out);
    }

    /// `out = z @ W_O[h]` of layer `l`. `z`: `[d_head]`, `out`: `[d_model]`
    pub fn head_result(&self, l: usize, h: usize, z: &[f32], out: &mut [f32]) {
        matvec_i8(z, &self.head_matrix(TensorKind::WO, l, h), None, out);
    }

    /// `out = x @ W_U` (+ `b_U` when `with_bias`). `x`: `[d_model]`, `out`: `[d_vocab]`
    pub fn unembed(&self, x: &[f32], with_bias: bool, out: &mut [f32]) {
        let b = with_bias.then(|| self.b_u());
        matvec_i8(x, &self.matrix(TensorKind::WU), b, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        crate::testing::values(seed, n)
    }

    #[test]
    fn optimized_matvec_matches_the_reference() {
        for (rows, cols, first) in [(8, 4, 0), (5, 12, 7), (24, 8, 64), (3, 40, 31), (16, 33, 0)] {
            let q: Vec<i8> = values(rows * cols, 1)
                .iter()
                .map(|v| (v * 127.0) as i8)
                .collect();
            let x = values(rows, 2);
            let b = values(cols, 3);
            let col_scales: Vec<f32> = values(cols, 4).iter().map(|v| v.abs() + 0.01).collect();
            let block_scales: Vec<f32> = values((first + rows * cols).div_ceil(BLOCK), 5)
                .iter()
                .map(|v| v.abs() + 0.01)
                .collect();
            for (scaling, scales, first) in [
                (Scaling::Column, &col_scales, 0),
                (Scaling::Block32, &block_scales, first),
            ] {
                let w = I8Matrix {
                    q: &q,
                    scales,
                    first,
                    scaling,
                };
                let (mut fast, mut plain) = (std::vec![0.0; cols], std::vec![0.0; cols]);
                matvec_i8(&x, &w, Some(&b), &mut fast);
                matvec_i8_reference(&x, &w, Some(&b), &mut plain);
                for (j, (f, p)) in fast.iter().zip(&plain).enumerate() {
                    assert!(
                        (f - p).abs() < 1e-4,
                        "{scaling:?} {rows}x{cols} col {j}: {f} vs {p}"
                    );
                }
            }
        }
    }
}
