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
