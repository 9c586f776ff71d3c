//! Where the `f32`-activation [`Decoder`](crate::Decoder) reads its weights: `f32` tensors
//! borrowed as they are, or int8 matrices with scales (`forward_i8.rs`). Each method is one
//! read of the forward pass or of attribution, written once per format.

use crate::forward::{embed, matvec};
#[cfg(feature = "i8")]
use crate::forward_i8::{I8Weights, Proj};
use crate::model::{F32Weights, LnWeights};
use crate::PosEmbed;

/// The three projections of a head (as `forward_i8::Proj`, also without the `i8` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    Q,
    K,
    V,
}

/// The weights of a model whose activations are `f32`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FloatWeights<'m> {
    F32(F32Weights<'m>),
    #[cfg(feature = "i8")]
    I8(I8Weights<'m>),
}

impl<'m> FloatWeights<'m> {
    /// `x = W_E[t]` (+ `W_pos[p]` when positions enter the residual stream).
    pub(crate) fn embed(&self, pos: PosEmbed, token: usize, p: usize, x: &mut [f32]) {
        let standard = matches!(pos, PosEmbed::Standard);
        match self {
            FloatWeights::F32(w) => {
                let w_pos = if standard { w.w_pos() } else { None };
                embed(w.w_e(), w_pos, token, p, x);
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.embed(token, standard.then_some(p), x),
        }
    }

    /// `x += W_pos[p]` (shortformer queries and keys).
    pub(crate) fn add_pos(&self, p: usize, x: &mut [f32]) {
        match self {
            FloatWeights::F32(w) => {
                if let Some(w_pos) = w.w_pos() {
                    crate::forward::add(x, &w_pos[p * x.len()..][..x.len()]);
                }
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.add_pos(p, x),
        }
    }

    pub(crate) fn ln1(&self, l: usize) -> Option<LnWeights<'m>> {
        match self {
            FloatWeights::F32(w) => w.layer(l).ln1,
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.ln1(l),
        }
    }

    pub(crate) fn ln_final(&self) -> Option<LnWeights<'m>> {
        match self {
            FloatWeights::F32(w) => w.ln_final(),
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.ln_final(),
        }
    }

    /// `out = x @ W[h] + b[h]` for the query, key or value of head `h` in layer `l`.
    pub(crate) fn project(&self, l: usize, which: Which, h: usize, x: &[f32], out: &mut [f32]) {
        match self {
            FloatWeights::F32(w) => {
                let lw = w.layer(l);
                let (m, d) = (x.len(), out.len());
                let (w, b) = match which {
                    Which::Q => (lw.w_q, lw.b_q),
                    Which::K => (lw.w_k, lw.b_k),
                    Which::V => (lw.w_v, lw.b_v),
                };
                matvec(x, &w[h * m * d..][..m * d], Some(&b[h * d..][..d]), out);
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => {
                let proj = match which {
                    Which::Q => Proj::Q,
                    Which::K => Proj::K,
                    Which::V => Proj::V,
                };
                w.project(l, proj, h, x, out)
            }
        }
    }

    /// `out = z @ W_O[h]` in layer `l`.
    pub(crate) fn head_result(&self, l: usize, h: usize, z: &[f32], out: &mut [f32]) {
        match self {
            FloatWeights::F32(w) => {
                let (d, m) = (z.len(), out.len());
                crate::forward::head_result(z, &w.layer(l).w_o[h * d * m..][..d * m], out);
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.head_result(l, h, z, out),
        }
    }

    pub(crate) fn b_o(&self, l: usize) -> &'m [f32] {
        match self {
            FloatWeights::F32(w) => w.layer(l).b_o,
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.b_o(l),
        }
    }

    /// `out = x @ W_U` (+ `b_U` when `with_bias`).
    pub(crate) fn unembed(&self, x: &[f32], with_bias: bool, out: &mut [f32]) {
        match self {
            FloatWeights::F32(w) => {
                if with_bias {
                    crate::forward::unembed(x, w.w_u(), w.b_u(), out);
                } else {
                    matvec(x, w.w_u(), None, out);
                }
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.unembed(x, with_bias, out),
        }
    }

    pub(crate) fn b_u(&self) -> &'m [f32] {
        match self {
            FloatWeights::F32(w) => w.b_u(),
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.b_u(),
        }
    }

    /// `W_E[t, i]`
    pub(crate) fn w_e_at(&self, t: usize, i: usize, d_model: usize) -> f32 {
        match self {
            FloatWeights::F32(w) => w.w_e()[t * d_model + i],
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.w_e_at(t, i),
        }
    }

    /// `W_pos[p, i]` (0 without positions).
    pub(crate) fn w_pos_at(&self, p: usize, i: usize, d_model: usize) -> f32 {
        match self {
            FloatWeights::F32(w) => w.w_pos().map_or(0.0, |w_pos| w_pos[p * d_model + i]),
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.w_pos_at(p, i),
        }
    }

    /// `W_O[l][h][k, i]`
    pub(crate) fn w_o_at(
        &self,
        l: usize,
        h: usize,
        k: usize,
        i: usize,
        d_head: usize,
        d_model: usize,
    ) -> f32 {
        match self {
            FloatWeights::F32(w) => w.layer(l).w_o[(h * d_head + k) * d_model + i],
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.w_o_at(l, h, k, i),
        }
    }

    /// `W_U[i, v]`
    pub(crate) fn w_u_at(&self, i: usize, v: usize, d_vocab: usize) -> f32 {
        match self {
            FloatWeights::F32(w) => w.w_u()[i * d_vocab + v],
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.w_u_at(i, v),
        }
    }
}
