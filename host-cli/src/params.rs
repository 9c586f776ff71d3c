//! A checkpoint in memory: every TransformerLens parameter of an attention-only model as a plain
//! `Vec<f32>`, row-major, in TransformerLens' shapes and orientation (row vectors right-multiplied).
//!
//! This is the host's common currency: the importer produces it, the blob writer, the float
//! reference and the analyses consume it.

use tinylens::Config;

/// LayerNorm weight and bias (`ln1` of a block, or `ln_final`).
#[derive(Clone, Debug, PartialEq)]
pub struct LnParams {
    /// `w`: `[d_model]`
    pub w: Vec<f32>,
    /// `b`: `[d_model]`
    pub b: Vec<f32>,
}

/// One attention layer, `blocks.{l}`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    /// `blocks.{l}.ln1.w` / `.b`, present exactly when the config has LayerNorm.
    pub ln1: Option<LnParams>,
    /// `attn.W_Q`: `[n_heads, d_model, d_head]`
    pub w_q: Vec<f32>,
    /// `attn.W_K`: `[n_heads, d_model, d_head]`
    pub w_k: Vec<f32>,
    /// `attn.W_V`: `[n_heads, d_model, d_head]`
    pub w_v: Vec<f32>,
    /// `attn.b_Q`: `[n_heads, d_head]`
    pub b_q: Vec<f32>,
    /// `attn.b_K`: `[n_heads, d_head]`
    pub b_k: Vec<f32>,
    /// `attn.b_V`: `[n_heads, d_head]`
    pub b_v: Vec<f32>,
    /// `attn.W_O`: `[n_heads, d_head, d_model]`
    pub w_o: Vec<f32>,
    /// `attn.b_O`: `[d_model]`
    pub b_o: Vec<f32>,
}

/// A whole attention-only model.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Shapes, normalization and positional embedding type.
    pub config: Config,
    /// The text of each token id, when the checkpoint comes with a vocabulary.
    pub vocab: Option<Vec<String>>,
    /// `embed.W_E`: `[d_vocab, d_model]`
    pub w_e: Vec<f32>,
    /// `pos_embed.W_pos`: `[n_ctx, d_model]`, absent when the config has no positional embedding.
    pub w_pos: Option<Vec<f32>>,
    /// `blocks.{l}`, one per layer.
    pub layers: Vec<LayerParams>,
    /// `ln_final.w` / `.b`, present exactly when the config has LayerNorm.
    pub ln_final: Option<LnParams>,
    /// `unembed.W_U`: `[d_model, d_vocab]`
    pub w_u: Vec<f32>,
    /// `unembed.b_U`: `[d_vocab]`
    pub b_u: Vec<f32>,
}
