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

use crate::blob::{ByteLayout, NumberFormat, TensorKind};
use crate::model::LnWeights;
use crate::{Config, Norm, PosEmbed};

/// Elements per scale in [`Scaling::Block32`].
pub const BLOCK: usize = 32;

/// How the int8 values of a matrix are scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scaling {
    /// One scale per output column.
    Column,
    /// One scale per [`BLOCK`] consecutive elements of the tensor.
    Block32,
}

/// A `[d_in, d_out]` int8 matrix (or one head's slice of a bigger tensor) and its scales.
#[derive(Clone, Copy, Debug)]
pub struct I8Matrix<'a> {
    /// The values, row-major `[d_in, d_out]`.
    pub q: &'a [i8],
    /// [`Scaling::Column`]: `[d_out]`, one per column of this matrix. [`Scaling::Block32`]:
    /// the scales of the whole tensor, one per [`BLOCK`] elements.
    pub scales: &'a [f32],
    /// Element index of `q[0]` in its tensor (where the blocks start counting).
    pub first: usize,
    /// Which of the two.
    pub scaling: Scaling,
}

impl I8Matrix<'_> {
    /// The scale of element `idx` (row-major, in this matrix) of a matrix with `cols` columns.
    #[inline]
    pub fn scale(&self, idx: usize, cols: usize) -> f32 {
        let s = match self.scaling {
            Scaling::Column => self.scales.get(idx % cols),
            Scaling::Block32 => self.scales.get((self.first + idx) / BLOCK),
        };
        s.copied().unwrap_or(0.0)
    }

    /// Element `(i, j)` dequantized, for a matrix with `cols` columns.
    #[inline]
    pub fn at(&self, i: usize, j: usize, cols: usize) -> f32 {
        let idx = i * cols + j;
        self.q.get(idx).map_or(0.0, |&q| q as f32) * self.scale(idx, cols)
    }
}

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

/// The three projections of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proj {
    /// `W_Q`, `b_Q`
    Q,
    /// `W_K`, `b_K`
    K,
    /// `W_V`, `b_V`
    V,
}

/// int8 weights borrowed from an `i8` or `i8-block32` blob.
#[derive(Clone, Copy, Debug)]
pub struct I8Weights<'a> {
    data: &'a [u8],
    layout: ByteLayout,
    config: Config,
    format: NumberFormat,
    scaling: Scaling,
}

impl<'a> I8Weights<'a> {
    /// Views of a checked blob's data section in format `format` (`I8` or `I8Block32`).
    pub(crate) fn new(data: &'a [u8], config: Config, format: NumberFormat) -> Self {
        I8Weights {
            data,
            layout: ByteLayout::new(&config, format),
            config,
            format,
            scaling: if format == NumberFormat::I8Block32 {
                Scaling::Block32
            } else {
                Scaling::Column
            },
        }
    }

    fn bytes(&self, kind: TensorKind, layer: usize) -> &'a [u8] {
        let range = self.layout.range(&self.config, self.format, kind, layer);
        self.data.get(range).unwrap_or(&[])
    }

    fn i8s(&self, kind: TensorKind, layer: usize) -> &'a [i8] {
        bytemuck::cast_slice(self.bytes(kind, layer))
    }

    fn f32s(&self, kind: TensorKind, layer: usize) -> &'a [f32] {
        bytemuck::try_cast_slice(self.bytes(kind, layer)).unwrap_or(&[])
    }

    /// The scales of the matrices, in record order (FORMAT.md): `(global, kind, layer)` ->
    /// that matrix's scales.
    fn scales(&self, kind: TensorKind, layer: usize) -> &'a [f32] {
        let c = &self.config;
        let (h, m, d, v) = (c.n_heads, c.d_model, c.d_head, c.d_vocab);
        let has_pos = !matches!(c.pos, PosEmbed::None);
        let n = |kind: TensorKind| match self.scaling {
            Scaling::Column => match kind {
                TensorKind::WE | TensorKind::WPos | TensorKind::WO => m,
                TensorKind::WU => v,
                _ => h * d,
            },
            Scaling::Block32 => kind.len(c).div_ceil(BLOCK),
        };
        let (record, order): (_, &[TensorKind]) = match kind {
            TensorKind::WE | TensorKind::WPos | TensorKind::WU => (
                self.f32s(TensorKind::Quant, 0),
                if has_pos {
                    &[TensorKind::WE, TensorKind::WPos, TensorKind::WU]
                } else {
                    &[TensorKind::WE, TensorKind::WU]
                },
            ),
            _ => (
                self.f32s(TensorKind::LayerQuant, layer),
                &[
                    TensorKind::WQ,
                    TensorKind::WK,
                    TensorKind::WV,
                    TensorKind::WO,
                ],
            ),
        };
        let mut at = 0;
        for &k in order {
            if k == kind {
                return record.get(at..at + n(k)).unwrap_or(&[]);
            }
            at += n(k);
        }
        &[]
    }

    /// A whole tensor as a matrix (`W_E`, `W_pos`, `W_U`).
    fn matrix(&self, kind: TensorKind) -> I8Matrix<'a> {
        I8Matrix {
            q: self.i8s(kind, 0),
            scales: self.scales(kind, 0),
            first: 0,
            scaling: self.scaling,
        }
    }

    /// Head `h`'s `[rows, cols]` slice of a per-layer tensor `[n_heads, rows, cols]`.
    fn head_matrix(&self, kind: TensorKind, l: usize, h: usize) -> I8Matrix<'a> {
        let c = &self.config;
        let n = c.d_model * c.d_head;
        let scales = self.scales(kind, l);
        I8Matrix {
            q: self.i8s(kind, l).get(h * n..(h + 1) * n).unwrap_or(&[]),
            scales: match self.scaling {
                // W_Q, W_K, W_V: one scale per (head, column); W_O: per residual dimension.
                Scaling::Column if kind != TensorKind::WO => {
                    scales.get(h * c.d_head..(h + 1) * c.d_head).unwrap_or(&[])
                }
                _ => scales,
            },
            first: h * n,
            scaling: self.scaling,
        }
    }

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

    /// Element `(t, i)` of `W_E`.
    pub fn w_e_at(&self, t: usize, i: usize) -> f32 {
        self.matrix(TensorKind::WE).at(t, i, self.config.d_model)
    }

    /// Element `(p, i)` of `W_pos` (0 without a positional embedding).
    pub fn w_pos_at(&self, p: usize, i: usize) -> f32 {
        match self.config.pos {
            PosEmbed::None => 0.0,
            _ => self.matrix(TensorKind::WPos).at(p, i, self.config.d_model),
        }
    }

    fn ln(&self, w: TensorKind, b: TensorKind, layer: usize) -> Option<LnWeights<'a>> {
        match self.config.norm {
            Norm::None => None,
            Norm::LayerNorm { .. } => Some(LnWeights {
                w: self.f32s(w, layer),
                b: self.f32s(b, layer),
            }),
        }
    }

    /// `blocks.{l}.ln1`, with LayerNorm.
    pub fn ln1(&self, l: usize) -> Option<LnWeights<'a>> {
        self.ln(TensorKind::Ln1W, TensorKind::Ln1B, l)
    }

    /// `ln_final`, with LayerNorm.
    pub fn ln_final(&self) -> Option<LnWeights<'a>> {
        self.ln(TensorKind::LnFinalW, TensorKind::LnFinalB, 0)
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

    /// Element `(k, i)` of `W_O[h]` of layer `l`.
    pub fn w_o_at(&self, l: usize, h: usize, k: usize, i: usize) -> f32 {
        let m = self.config.d_model;
        self.head_matrix(TensorKind::WO, l, h).at(k, i, m)
    }

    /// `b_O` of layer `l`: `[d_model]`
    pub fn b_o(&self, l: usize) -> &'a [f32] {
        self.f32s(TensorKind::BO, l)
    }

    /// `out = x @ W_U` (+ `b_U` when `with_bias`). `x`: `[d_model]`, `out`: `[d_vocab]`
    pub fn unembed(&self, x: &[f32], with_bias: bool, out: &mut [f32]) {
        let b = with_bias.then(|| self.b_u());
        matvec_i8(x, &self.matrix(TensorKind::WU), b, out);
    }

    /// Element `(i, v)` of `W_U`.
    pub fn w_u_at(&self, i: usize, v: usize) -> f32 {
        self.matrix(TensorKind::WU).at(i, v, self.config.d_vocab)
    }

    /// `b_U`: `[d_vocab]`
    pub fn b_u(&self) -> &'a [f32] {
        self.f32s(TensorKind::BU, 0)
    }

    /// Every `f32` tensor of the blob (biases, LayerNorm, scales), for the finiteness check.
    pub(crate) fn f32_tensors(&self) -> impl Iterator<Item = (TensorKind, usize, &'a [f32])> + '_ {
        crate::blob::tensors_in(&self.config, self.format)
            .filter(|(_, _, dtype)| *dtype == crate::blob::DType::F32)
            .map(move |(id, _, _)| {
                (
                    id.kind,
                    id.layer as usize,
                    self.f32s(id.kind, id.layer as usize),
                )
            })
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
