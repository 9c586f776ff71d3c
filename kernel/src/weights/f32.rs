//! `f32` weights (format `f32`): every tensor borrowed as it lies in the blob, in
//! TransformerLens' shapes.

use crate::blob::Layout;
use crate::Config;

/// LayerNorm parameters: `w` and `b`, both `[d_model]`.
#[derive(Clone, Copy, Debug)]
pub struct LnWeights<'a> {
    /// Scale, `[d_model]`.
    pub w: &'a [f32],
    /// Shift, `[d_model]`.
    pub b: &'a [f32],
}

/// The weights of one attention layer, `blocks.{l}`, in TransformerLens' shapes.
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights<'a> {
    /// `ln1`, when the model has LayerNorm.
    pub ln1: Option<LnWeights<'a>>,
    /// `W_Q`: `[n_heads, d_model, d_head]`
    pub w_q: &'a [f32],
    /// `W_K`: `[n_heads, d_model, d_head]`
    pub w_k: &'a [f32],
    /// `W_V`: `[n_heads, d_model, d_head]`
    pub w_v: &'a [f32],
    /// `b_Q`: `[n_heads, d_head]`
    pub b_q: &'a [f32],
    /// `b_K`: `[n_heads, d_head]`
    pub b_k: &'a [f32],
    /// `b_V`: `[n_heads, d_head]`
    pub b_v: &'a [f32],
    /// `W_O`: `[n_heads, d_head, d_model]`
    pub w_o: &'a [f32],
    /// `b_O`: `[d_model]`
    pub b_o: &'a [f32],
}

/// `f32` weights borrowed from a blob.
#[derive(Clone, Copy, Debug)]
pub struct F32Weights<'a> {
    data: &'a [f32],
    layout: Layout,
    config: Config,
}

impl<'a> F32Weights<'a> {
    /// Views of a checked blob's `f32` data section.
    pub(crate) fn new(data: &'a [f32], config: Config) -> Self {
        F32Weights {
            data,
            layout: Layout::new(&config, 4),
            config,
        }
    }

    /// `len` elements at `offset`. Offsets come from the checked layout, so the range is
    /// always inside `data`; an empty slice would only ever signal a bug, never a panic.
    fn slice(&self, offset: usize, len: usize) -> &'a [f32] {
        self.data.get(offset..offset + len).unwrap_or(&[])
    }

    /// `embed.W_E`: `[d_vocab, d_model]`
    pub fn w_e(&self) -> &'a [f32] {
        self.slice(self.layout.w_e, self.config.d_vocab * self.config.d_model)
    }

    /// `pos_embed.W_pos`: `[n_ctx, d_model]`, when the model has a positional embedding.
    pub fn w_pos(&self) -> Option<&'a [f32]> {
        match self.config.pos {
            crate::PosEmbed::None => None,
            _ => Some(self.slice(self.layout.w_pos, self.config.n_ctx * self.config.d_model)),
        }
    }

    /// The weights of block `l` (`l < n_layers`; callers index layers they iterate).
    pub fn layer(&self, l: usize) -> LayerWeights<'a> {
        let c = &self.config;
        let (h, m, d) = (c.n_heads, c.d_model, c.d_head);
        let base = l * self.layout.layer_stride;
        let o = &self.layout.layer0;
        let at = |offset: usize, len: usize| self.slice(base + offset, len);
        LayerWeights {
            ln1: match c.norm {
                crate::Norm::None => None,
                crate::Norm::LayerNorm { .. } => Some(LnWeights {
                    w: at(o.ln1_w, m),
                    b: at(o.ln1_b, m),
                }),
            },
            w_q: at(o.w_q, h * m * d),
            w_k: at(o.w_k, h * m * d),
            w_v: at(o.w_v, h * m * d),
            b_q: at(o.b_q, h * d),
            b_k: at(o.b_k, h * d),
            b_v: at(o.b_v, h * d),
            w_o: at(o.w_o, h * d * m),
            b_o: at(o.b_o, m),
        }
    }

    /// `ln_final`, when the model has LayerNorm.
    pub fn ln_final(&self) -> Option<LnWeights<'a>> {
        let m = self.config.d_model;
        match self.config.norm {
            crate::Norm::None => None,
            crate::Norm::LayerNorm { .. } => Some(LnWeights {
                w: self.slice(self.layout.ln_final_w, m),
                b: self.slice(self.layout.ln_final_b, m),
            }),
        }
    }

    /// `unembed.W_U`: `[d_model, d_vocab]`
    pub fn w_u(&self) -> &'a [f32] {
        self.slice(self.layout.w_u, self.config.d_model * self.config.d_vocab)
    }

    /// `unembed.b_U`: `[d_vocab]`
    pub fn b_u(&self) -> &'a [f32] {
        self.slice(self.layout.b_u, self.config.d_vocab)
    }
}
