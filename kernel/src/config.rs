//! The shape of a model: what TransformerLens calls `HookedTransformerConfig`, reduced to the
//! fields an attention-only transformer needs, and the exact memory a config asks for.

use serde::{Deserialize, Serialize};

/// Normalization before each attention layer and before the unembedding.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Norm {
    /// No normalization: the residual stream goes straight into each head and into `W_U`.
    None,
    /// TransformerLens "LN": `(x - mean(x)) / sqrt(var(x) + eps) * w + b`, biased variance,
    /// as `ln1` before each attention layer and `ln_final` before the unembedding.
    LayerNorm {
        /// The epsilon added to the variance (`cfg.eps` in TransformerLens).
        eps: f32,
    },
}

/// How positions enter the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PosEmbed {
    /// Learned `W_pos` added to the residual stream after the token embedding (GPT-2 style,
    /// TransformerLens "standard").
    Standard,
    /// Learned `W_pos` added only to the query and key inputs of every attention layer, never
    /// to the residual stream or the values (TransformerLens "shortformer").
    Shortformer,
    /// No positional information at all.
    None,
}

/// The hyperparameters of an attention-only transformer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Number of attention layers (at least 1).
    pub n_layers: usize,
    /// Attention heads per layer.
    pub n_heads: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Width of one head's query, key and value vectors.
    pub d_head: usize,
    /// Number of tokens.
    pub d_vocab: usize,
    /// Longest context the model was built for (rows of `W_pos`, size of the KV cache).
    pub n_ctx: usize,
    /// Normalization type.
    pub norm: Norm,
    /// Positional embedding type.
    pub pos: PosEmbed,
}

impl Config {
    /// `token` as an index, when it is below `d_vocab`.
    pub(crate) fn check_token(&self, token: u32) -> Result<usize, crate::Error> {
        if (token as usize) < self.d_vocab {
            Ok(token as usize)
        } else {
            Err(crate::Error::TokenOutOfRange {
                token,
                d_vocab: self.d_vocab,
            })
        }
    }

    /// Checks a prompt before anything runs, so that a bad one changes nothing: not empty,
    /// every token in the vocabulary, and at most `room` of them (of a `capacity`).
    pub(crate) fn check_prompt(
        &self,
        tokens: &[u32],
        room: usize,
        capacity: usize,
    ) -> Result<(), crate::Error> {
        if tokens.is_empty() {
            return Err(crate::Error::EmptyPrompt);
        }
        for &t in tokens {
            self.check_token(t)?;
        }
        if tokens.len() > room {
            return Err(crate::Error::ContextFull { capacity });
        }
        Ok(())
    }

    /// Elements of the KV cache for `ctx` positions: keys and values of every head of every
    /// layer, `2 * [n_layers, n_heads, ctx, d_head]`.
    pub const fn kv_cache_len(&self, ctx: usize) -> usize {
        2 * self.n_layers * self.n_heads * ctx * self.d_head
    }

    /// `f32` elements of decoding state for a context of `ctx` positions: the KV cache, one
    /// residual row, one normalized row, one query, the attention pattern and `z` of the current
    /// position in every head, and the logits. See [`Decoder`](crate::Decoder) for the layout.
    pub const fn state_len_for(&self, ctx: usize) -> usize {
        self.kv_cache_len(ctx)
            + 2 * self.d_model // residual stream, normalized input
            + self.d_head // query of one head
            + self.n_layers * self.n_heads * ctx // attention pattern of the current position
            + self.n_layers * self.n_heads * self.d_head // z of the current position
            + self.d_vocab // logits
    }

    /// `f32` elements of decoding state for the model's full context `n_ctx`.
    /// Size a static buffer with it: `static ARENA: Arena<{ CFG.state_len() }>`.
    pub const fn state_len(&self) -> usize {
        self.state_len_for(self.n_ctx)
    }

    /// Bytes of decoding state for the full context: exactly what the decoder uses.
    pub const fn state_bytes(&self) -> usize {
        self.state_len() * core::mem::size_of::<f32>()
    }

    /// `i32` words of decoding state of the full-integer decoder
    /// (`IntDecoder`, format `int`) for a context of `ctx` positions:
    /// the int8 KV cache, the int16 residual and normalized rows, one int16 query, the `i32`
    /// scores of one head, the Q15 pattern and int16 `z` of the current position in every
    /// head, and the `i32` logits. Each buffer is rounded up to whole words.
    pub const fn int_state_len_for(&self, ctx: usize) -> usize {
        let (l, h, d) = (self.n_layers, self.n_heads, self.d_head);
        const fn bytes(n: usize, size: usize) -> usize {
            (n * size).div_ceil(4)
        }
        2 * bytes(l * h * ctx * d, 1) // keys and values, i8
            + 2 * bytes(self.d_model, 2) // residual stream, normalized input, i16
            + bytes(d, 2) // query of one head, i16
            + max3(ctx, self.d_model, d) // scores of one head, or accumulators, i32
            + bytes(l * h * ctx, 2) // attention pattern of the current position, Q15
            + bytes(l * h * d, 2) // z of the current position, i16
            + self.d_vocab // logits, Q16.16
    }

    /// `i32` words of full-integer decoding state for the model's full context:
    /// `static mut STATE: IntArena<{ CFG.int_state_len() }> = IntArena::new();`
    pub const fn int_state_len(&self) -> usize {
        self.int_state_len_for(self.n_ctx)
    }

    /// Bytes of full-integer decoding state for the full context.
    pub const fn int_state_bytes(&self) -> usize {
        self.int_state_len() * 4
    }

    /// Parameters of the model, counted in elements.
    pub const fn n_params(&self) -> usize {
        let ln = match self.norm {
            Norm::None => 0,
            Norm::LayerNorm { .. } => 2 * self.d_model,
        };
        let pos = match self.pos {
            PosEmbed::None => 0,
            PosEmbed::Standard | PosEmbed::Shortformer => self.n_ctx * self.d_model,
        };
        let attn = 4 * self.n_heads * self.d_model * self.d_head
            + 3 * self.n_heads * self.d_head
            + self.d_model;
        self.d_vocab * self.d_model
            + pos
            + self.n_layers * (ln + attn)
            + ln
            + self.d_model * self.d_vocab
            + self.d_vocab
    }

    /// Checks that every dimension is nonzero and that the model's sizes fit in 32 bits, so
    /// that every size computed from this config is exact. Returns the first offending field.
    pub fn check(&self) -> Result<(), crate::Error> {
        use crate::Error::BadConfig;
        let fields = [
            (self.n_layers, "n_layers must be at least 1"),
            (self.n_heads, "n_heads must be at least 1"),
            (self.d_model, "d_model must be at least 1"),
            (self.d_head, "d_head must be at least 1"),
            (self.d_vocab, "d_vocab must be at least 1"),
            (self.n_ctx, "n_ctx must be at least 1"),
        ];
        for (value, message) in fields {
            if value == 0 {
                return Err(BadConfig(message));
            }
        }
        const LIMIT: u64 = 1 << 29;
        if let Norm::LayerNorm { eps } = self.norm {
            if !(eps.is_finite() && eps >= 0.0) {
                return Err(BadConfig("LayerNorm eps must be finite and non-negative"));
            }
        }
        // Every size the kernel computes is at most the parameter count or the state length.
        // Compute both in checked u64 arithmetic and bound them so that no size overflows
        // 32 bits (blobs address tensors with u32), nor usize on any target.
        match self.checked_sizes() {
            Some((params, state)) if params <= LIMIT && state <= LIMIT => Ok(()),
            _ => Err(BadConfig(
                "model too large (sizes must fit in 2^29 elements)",
            )),
        }
    }

    /// `(n_params, state_len)` in overflow-checked u64 arithmetic.
    fn checked_sizes(&self) -> Option<(u64, u64)> {
        let (l, h, m, d, v, c) = (
            self.n_layers as u64,
            self.n_heads as u64,
            self.d_model as u64,
            self.d_head as u64,
            self.d_vocab as u64,
            self.n_ctx as u64,
        );
        let mul = |a: u64, b: u64| a.checked_mul(b);
        let hmd = mul(mul(h, m)?, d)?;
        let hd = mul(h, d)?;
        let attn = mul(hmd, 4)?.checked_add(mul(hd, 3)?)?.checked_add(m)?;
        let ln = mul(m, 2)?;
        let per_layer = attn.checked_add(ln)?;
        let vm = mul(v, m)?;
        let params = mul(vm, 2)?
            .checked_add(mul(c, m)?)?
            .checked_add(mul(l, per_layer)?)?
            .checked_add(ln)?
            .checked_add(v)?;
        let lh = mul(l, h)?;
        let state = mul(mul(mul(lh, c)?, d)?, 2)?
            .checked_add(mul(m, 2)?)?
            .checked_add(d)?
            .checked_add(mul(lh, c)?)?
            .checked_add(mul(lh, d)?)?
            .checked_add(v)?;
        Some((params, state))
    }
}

/// The largest of three sizes.
const fn max3(a: usize, b: usize, c: usize) -> usize {
    let ab = if a > b { a } else { b };
    if ab > c {
        ab
    } else {
        c
    }
}
