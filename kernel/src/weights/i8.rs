//! int8 weights with `f32` scales (formats `i8` and `i8-block32`): the int8 matrices and
//! their scales as the blob holds them. The products with them are in `forward_i8.rs`.

use crate::blob::{ByteLayout, NumberFormat, TensorKind};
use crate::weights::f32::LnWeights;
pub use crate::weights::Proj;
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

/// int8 weights borrowed from an `i8` or `i8-block32` blob.
#[derive(Clone, Copy, Debug)]
pub struct I8Weights<'a> {
    data: &'a [u8],
    layout: ByteLayout,
    pub(crate) config: Config,
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

    pub(crate) fn bytes(&self, kind: TensorKind, layer: usize) -> &'a [u8] {
        let range = self.layout.range(&self.config, self.format, kind, layer);
        self.data.get(range).unwrap_or(&[])
    }

    pub(crate) fn i8s(&self, kind: TensorKind, layer: usize) -> &'a [i8] {
        bytemuck::cast_slice(self.bytes(kind, layer))
    }

    pub(crate) fn f32s(&self, kind: TensorKind, layer: usize) -> &'a [f32] {
        bytemuck::try_cast_slice(self.bytes(kind, layer)).unwrap_or(&[])
    }

    /// The scales of the matrices, in record order (FORMAT.md): `(global, kind, layer)` ->
    /// that matrix's scales.
    pub(crate) fn scales(&self, kind: TensorKind, layer: usize) -> &'a [f32] {
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
    pub(crate) fn matrix(&self, kind: TensorKind) -> I8Matrix<'a> {
        I8Matrix {
            q: self.i8s(kind, 0),
            scales: self.scales(kind, 0),
            first: 0,
            scaling: self.scaling,
        }
    }

    /// Head `h`'s `[rows, cols]` slice of a per-layer tensor `[n_heads, rows, cols]`.
    pub(crate) fn head_matrix(&self, kind: TensorKind, l: usize, h: usize) -> I8Matrix<'a> {
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

    /// Element `(k, i)` of `W_O[h]` of layer `l`.
    pub fn w_o_at(&self, l: usize, h: usize, k: usize, i: usize) -> f32 {
        let m = self.config.d_model;
        self.head_matrix(TensorKind::WO, l, h).at(k, i, m)
    }

    /// `b_O` of layer `l`: `[d_model]`
    pub fn b_o(&self, l: usize) -> &'a [f32] {
        self.f32s(TensorKind::BO, l)
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
