//! An independent f64 float reference of the attention-only forward pass, written with candle.
//!
//! This is what the kernel is validated against, so it shares no code with it: it is the
//! TransformerLens forward pass transcribed onto candle tensors, one full sequence at a time
//! (no KV cache), with every hook TransformerLens would record. Row vectors are
//! right-multiplied, as in TransformerLens:
//!
//! ```text
//! resid_0   = W_E[tok] + W_pos[pos]                       (standard; W_E[tok] otherwise)
//! x         = ln1(resid)                                  (or resid without LayerNorm)
//! q_in=k_in = x + W_pos[pos]  (shortformer; x otherwise),  v_in = x
//! q, k, v   = q_in W_Q[h] + b_Q[h],  k_in W_K[h] + b_K[h],  v_in W_V[h] + b_V[h]
//! pattern   = softmax(causal_mask(q k^T / sqrt(d_head)))
//! z         = pattern v,   result_h = z_h W_O[h]
//! resid    += sum_h result_h + b_O
//! logits    = ln_final(resid) W_U + b_U
//! ```
//!
//! with `LN(x) = (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * w + b`.
//!
//! Direct logit attribution splits the logits of every position into one term per component
//! of the final residual stream (embed, pos, every head, every `b_O`, a constant). With a final
//! LayerNorm each component `c` goes through the frozen LayerNorm of its position:
//! `f(c) = (c - mean(c)) / scale * ln_final.w`, and the terms sum exactly to the logits.
//!
//! The computation runs in f64 by default ([`Reference::new`]); [`Reference::new_f32`] runs the
//! same code in f32, for benchmarks.

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use tinylens::{Config, Norm, PosEmbed};

use crate::params::{LnParams, Params};

/// A LayerNorm's parameters as tensors.
struct LayerNorm {
    /// `w`: `[d_model]`
    w: Tensor,
    /// `b`: `[d_model]`
    b: Tensor,
    /// The epsilon added to the variance.
    eps: f64,
}

/// One attention layer's parameters as tensors.
struct AttnLayer {
    /// `ln1`, when the model has LayerNorm.
    ln1: Option<LayerNorm>,
    /// `W_Q`: `[n_heads, d_model, d_head]`
    w_q: Tensor,
    /// `W_K`: `[n_heads, d_model, d_head]`
    w_k: Tensor,
    /// `W_V`: `[n_heads, d_model, d_head]`
    w_v: Tensor,
    /// `b_Q`: `[n_heads, 1, d_head]` (a middle axis to broadcast over positions)
    b_q: Tensor,
    /// `b_K`: `[n_heads, 1, d_head]`
    b_k: Tensor,
    /// `b_V`: `[n_heads, 1, d_head]`
    b_v: Tensor,
    /// `W_O`: `[n_heads, d_head, d_model]`
    w_o: Tensor,
    /// `b_O`: `[d_model]`
    b_o: Tensor,
}

/// The float reference model: every parameter as a candle tensor on the CPU.
pub struct Reference {
    /// The model's shape.
    config: Config,
    /// The dtype everything is computed in.
    dtype: DType,
    /// `W_E`: `[d_vocab, d_model]`
    w_e: Tensor,
    /// `W_pos`: `[n_ctx, d_model]`, absent without positional embedding.
    w_pos: Option<Tensor>,
    /// The attention layers.
    layers: Vec<AttnLayer>,
    /// `ln_final`, when the model has LayerNorm.
    ln_final: Option<LayerNorm>,
    /// `W_U`: `[d_model, d_vocab]`
    w_u: Tensor,
    /// `b_U`: `[d_vocab]`
    b_u: Tensor,
}

/// The hooks of one layer, for one sequence. All row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerActivations {
    /// `attn.hook_q`: `[seq, n_heads, d_head]`
    pub q: Vec<f64>,
    /// `attn.hook_k`: `[seq, n_heads, d_head]`
    pub k: Vec<f64>,
    /// `attn.hook_v`: `[seq, n_heads, d_head]`
    pub v: Vec<f64>,
    /// `attn.hook_pattern`: `[n_heads, seq, seq]` (query position, key position)
    pub pattern: Vec<f64>,
    /// `attn.hook_z`: `[seq, n_heads, d_head]`
    pub z: Vec<f64>,
    /// `attn.hook_result`: `[seq, n_heads, d_model]`
    pub result: Vec<f64>,
    /// `hook_resid_post`: `[seq, d_model]`
    pub resid_post: Vec<f64>,
}

/// Everything the reference records for one sequence of `seq` tokens. All row-major.
///
/// The direct logit attribution terms satisfy, for every position and token,
/// `dla_direct_embed + dla_direct_pos + sum(dla_heads) + sum(dla_bias_b_o) + dla_bias_const
/// = logits`.
#[derive(Clone, Debug, PartialEq)]
pub struct Activations {
    /// Number of tokens.
    pub seq: usize,
    /// `hook_embed`: `[seq, d_model]`, the rows of `W_E`.
    pub embed: Vec<f64>,
    /// `hook_pos_embed`: `[seq, d_model]`, the rows of `W_pos` (zeros without positional
    /// embedding).
    pub pos_embed: Vec<f64>,
    /// One entry per layer.
    pub layers: Vec<LayerActivations>,
    /// `ln_final.hook_scale`: `[seq]`, `sqrt(var + eps)` of the final residual stream (ones
    /// without LayerNorm).
    pub ln_final_scale: Vec<f64>,
    /// The output: `[seq, d_vocab]`
    pub logits: Vec<f64>,
    /// Direct path through the token embedding, `f(W_E[tok]) W_U`: `[seq, d_vocab]`
    pub dla_direct_embed: Vec<f64>,
    /// Direct path through the positional embedding, `f(W_pos[pos]) W_U` (zeros for
    /// shortformer and no positional embedding): `[seq, d_vocab]`
    pub dla_direct_pos: Vec<f64>,
    /// The whole direct path, `dla_direct_embed + dla_direct_pos`: `[seq, d_vocab]`
    pub dla_direct: Vec<f64>,
    /// What every head writes, `f(result_{l,h}) W_U`: `[n_layers * n_heads, seq, d_vocab]`, index
    /// `l * n_heads + h`.
    pub dla_heads: Vec<f64>,
    /// Every layer's output bias, `f(b_O[l]) W_U`: `[n_layers, seq, d_vocab]`
    pub dla_bias_b_o: Vec<f64>,
    /// The constant, `b_U` without LayerNorm, `ln_final.b W_U + b_U` with it: `[seq, d_vocab]`
    pub dla_bias_const: Vec<f64>,
    /// LayerNorm models only: every head under TransformerLens' `apply_ln_to_stack`
    /// convention, `((c - mean(c)) / scale) W_U` without `ln_final.w`:
    /// `[n_layers * n_heads, seq, d_vocab]`
    pub dla_heads_tl: Option<Vec<f64>>,
}

/// The forward pass of one sequence as tensors, before attribution.
struct Trace {
    /// `hook_embed`: `[seq, d_model]`
    embed: Tensor,
    /// `hook_pos_embed`: `[seq, d_model]`, absent without positional embedding.
    pos_embed: Option<Tensor>,
    /// One entry per layer.
    layers: Vec<LayerTrace>,
    /// The final LayerNorm's `scale`: `[seq, 1]`, absent without LayerNorm.
    ln_final_scale: Option<Tensor>,
    /// `[seq, d_vocab]`
    logits: Tensor,
}

/// One layer of a [`Trace`].
struct LayerTrace {
    /// `[n_heads, seq, d_head]`
    q: Tensor,
    /// `[n_heads, seq, d_head]`
    k: Tensor,
    /// `[n_heads, seq, d_head]`
    v: Tensor,
    /// `[n_heads, seq, seq]`
    pattern: Tensor,
    /// `[n_heads, seq, d_head]`
    z: Tensor,
    /// `[n_heads, seq, d_model]`
    result: Tensor,
    /// `[seq, d_model]`
    resid_post: Tensor,
}

// ------------------------------------------------------------------------------------------------
// Loading
// ------------------------------------------------------------------------------------------------

/// A parameter as a tensor of `shape` in `dtype`, checking its length.
fn param(values: &[f32], shape: &[usize], dtype: DType, name: &str) -> Result<Tensor> {
    let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    ensure!(
        n == Some(values.len()),
        "{name} has {} values, but its shape is {shape:?}",
        values.len()
    );
    let t = Tensor::from_slice(values, shape, &Device::Cpu)?;
    Ok(t.to_dtype(dtype)?)
}

/// A LayerNorm's parameters as tensors.
fn layer_norm_params(ln: &LnParams, eps: f32, d_model: usize, dtype: DType) -> Result<LayerNorm> {
    Ok(LayerNorm {
        w: param(&ln.w, &[d_model], dtype, "ln.w")?,
        b: param(&ln.b, &[d_model], dtype, "ln.b")?,
        eps: f64::from(eps),
    })
}

impl Reference {
    /// The reference in f64, the precision the kernel is validated against.
    pub fn new(params: &Params) -> Result<Self> {
        Self::with_dtype(params, DType::F64)
    }

    /// The same model computed in f32 (for benchmarks against the kernel).
    pub fn new_f32(params: &Params) -> Result<Self> {
        Self::with_dtype(params, DType::F32)
    }

    /// The model computed in `dtype` (a float dtype: F64, F32, F16 or BF16).
    pub fn with_dtype(params: &Params, dtype: DType) -> Result<Self> {
        ensure!(
            dtype.is_float(),
            "the reference needs a float dtype, not {dtype:?}"
        );
        let c = params.config;
        let (h, d_model, d_head) = (c.n_heads, c.d_model, c.d_head);
        let eps = match c.norm {
            Norm::None => None,
            Norm::LayerNorm { eps } => Some(eps),
        };
        let ln = |ln: &Option<LnParams>, name: &str| -> Result<Option<LayerNorm>> {
            match (ln, eps) {
                (Some(ln), Some(eps)) => Ok(Some(layer_norm_params(ln, eps, d_model, dtype)?)),
                (None, None) => Ok(None),
                _ => bail!("{name}: LayerNorm parameters do not match the config's norm"),
            }
        };
        ensure!(
            params.layers.len() == c.n_layers,
            "{} layers of parameters, but n_layers = {}",
            params.layers.len(),
            c.n_layers
        );
        let w_pos = match (&params.w_pos, c.pos) {
            (None, PosEmbed::None) => None,
            (Some(w_pos), PosEmbed::Standard | PosEmbed::Shortformer) => {
                Some(param(w_pos, &[c.n_ctx, d_model], dtype, "W_pos")?)
            }
            _ => bail!("W_pos does not match the config's positional embedding"),
        };
        let mut layers = Vec::with_capacity(c.n_layers);
        for (l, p) in params.layers.iter().enumerate() {
            let name = |s: &str| format!("blocks.{l}.attn.{s}");
            layers.push(AttnLayer {
                ln1: ln(&p.ln1, &format!("blocks.{l}.ln1"))?,
                w_q: param(&p.w_q, &[h, d_model, d_head], dtype, &name("W_Q"))?,
                w_k: param(&p.w_k, &[h, d_model, d_head], dtype, &name("W_K"))?,
                w_v: param(&p.w_v, &[h, d_model, d_head], dtype, &name("W_V"))?,
                b_q: param(&p.b_q, &[h, 1, d_head], dtype, &name("b_Q"))?,
                b_k: param(&p.b_k, &[h, 1, d_head], dtype, &name("b_K"))?,
                b_v: param(&p.b_v, &[h, 1, d_head], dtype, &name("b_V"))?,
                w_o: param(&p.w_o, &[h, d_head, d_model], dtype, &name("W_O"))?,
                b_o: param(&p.b_o, &[d_model], dtype, &name("b_O"))?,
            });
        }
        Ok(Self {
            config: c,
            dtype,
            w_e: param(&params.w_e, &[c.d_vocab, d_model], dtype, "W_E")?,
            w_pos,
            layers,
            ln_final: ln(&params.ln_final, "ln_final")?,
            w_u: param(&params.w_u, &[d_model, c.d_vocab], dtype, "W_U")?,
            b_u: param(&params.b_u, &[c.d_vocab], dtype, "b_U")?,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The dtype the model computes in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

// ------------------------------------------------------------------------------------------------
// The forward pass, one function per equation
// ------------------------------------------------------------------------------------------------

/// `x - mean(x)` over the last axis.
/// x: [..., d_model] -> [..., d_model]
fn center(x: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?)
}

/// `x - mean(x)` over the last axis, and `scale = sqrt(mean((x - mean(x))^2) + eps)`.
/// x: [..., d_model] -> (centred [..., d_model], scale [..., 1])
fn center_and_scale(x: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    let centred = center(x)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?; // biased, as TransformerLens
    let scale = variance.affine(1.0, eps)?.sqrt()?;
    Ok((centred, scale))
}

/// `LN(x) = (x - mean(x)) / scale * w + b`, and the scale.
/// x: `[seq, d_model]` -> (`[seq, d_model]`, scale `[seq, 1]`)
fn layer_norm(x: &Tensor, ln: &LayerNorm) -> Result<(Tensor, Tensor)> {
    let (centred, scale) = center_and_scale(x, ln.eps)?;
    let y = centred
        .broadcast_div(&scale)?
        .broadcast_mul(&ln.w)?
        .broadcast_add(&ln.b)?;
    Ok((y, scale))
}

/// `x W[h] + b[h]` for every head at once.
/// x: `[seq, d_model]`, w: [H, d_model, d_head], b: [H, 1, d_head] -> [H, seq, d_head]
fn project_heads(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(x.unsqueeze(0)?.broadcast_matmul(w)?.broadcast_add(b)?)
}

/// The causal mask: 0 where key position <= query position, -inf above the diagonal.
/// -> `[seq, seq]`
fn causal_mask(seq: usize, dtype: DType) -> Result<Tensor> {
    let mask: Vec<f64> = (0..seq)
        .flat_map(|q| (0..seq).map(move |k| if k > q { f64::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(mask, (seq, seq), &Device::Cpu)?.to_dtype(dtype)?)
}

/// Softmax over the last axis, shifted by the row maximum.
/// x: [..., n] -> [..., n]
fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?;
    let e = shifted.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// `pattern = softmax(mask(q k^T / sqrt(d_head)))`.
/// q, k: [H, seq, d_head] -> [H, seq (query), seq (key)]
fn attention_pattern(q: &Tensor, k: &Tensor, d_head: usize) -> Result<Tensor> {
    let seq = q.dim(1)?;
    let scores = q.matmul(&k.transpose(1, 2)?.contiguous()?)?;
    let scores = scores.affine(1.0 / (d_head as f64).sqrt(), 0.0)?;
    let masked = scores.broadcast_add(&causal_mask(seq, q.dtype())?)?;
    softmax_last(&masked)
}

impl Reference {
    /// Checks a token sequence: non-empty, at most `n_ctx` long, every token below `d_vocab`.
    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        ensure!(!tokens.is_empty(), "empty token sequence");
        ensure!(
            tokens.len() <= self.config.n_ctx,
            "sequence of {} tokens is longer than n_ctx = {}",
            tokens.len(),
            self.config.n_ctx
        );
        if let Some((pos, tok)) = tokens
            .iter()
            .enumerate()
            .find(|(_, &t)| t as usize >= self.config.d_vocab)
        {
            bail!(
                "token {tok} at position {pos} is out of range (d_vocab = {})",
                self.config.d_vocab
            );
        }
        Ok(())
    }

    /// One attention layer, reading `resid` `[seq, d_model]` (and, for shortformer, the
    /// positional embedding `shortformer_pos` `[seq, d_model]`). `resid_post` is left as `resid`
    /// for the caller to update.
    fn attention(
        &self,
        layer: &AttnLayer,
        resid: &Tensor,
        shortformer_pos: Option<&Tensor>,
    ) -> Result<LayerTrace> {
        let x = match &layer.ln1 {
            Some(ln) => layer_norm(resid, ln)?.0,
            None => resid.clone(),
        };
        // Shortformer adds W_pos after ln1, to the query and key inputs only.
        let qk_in = match shortformer_pos {
            Some(pos) => (&x + pos)?,
            None => x.clone(),
        };
        let q = project_heads(&qk_in, &layer.w_q, &layer.b_q)?; // [H, seq, d_head]
        let k = project_heads(&qk_in, &layer.w_k, &layer.b_k)?; // [H, seq, d_head]
        let v = project_heads(&x, &layer.w_v, &layer.b_v)?; // [H, seq, d_head]
        let pattern = attention_pattern(&q, &k, self.config.d_head)?; // [H, seq, seq]
        let z = pattern.matmul(&v)?; // [H, seq, d_head]
        let result = z.matmul(&layer.w_o)?; // [H, seq, d_model]
        Ok(LayerTrace {
            q,
            k,
            v,
            pattern,
            z,
            result,
            resid_post: resid.clone(),
        })
    }

    /// The forward pass of one sequence, keeping every hook as a tensor.
    fn trace(&self, tokens: &[u32]) -> Result<Trace> {
        self.check_tokens(tokens)?;
        let seq = tokens.len();
        let ids = Tensor::from_slice(tokens, seq, &Device::Cpu)?;
        let embed = self.w_e.index_select(&ids, 0)?; // [seq, d_model]
        let pos_embed = match &self.w_pos {
            Some(w_pos) => Some(w_pos.narrow(0, 0, seq)?), // [seq, d_model]
            None => None,
        };
        let mut resid = match (self.config.pos, &pos_embed) {
            (PosEmbed::Standard, Some(pos)) => (&embed + pos)?,
            _ => embed.clone(),
        }; // [seq, d_model]
        let shortformer_pos = match self.config.pos {
            PosEmbed::Shortformer => pos_embed.as_ref(),
            _ => None,
        };

        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let mut lt = self.attention(layer, &resid, shortformer_pos)?;
            resid = resid.add(&lt.result.sum(0)?)?.broadcast_add(&layer.b_o)?; // [seq, d_model]
            lt.resid_post = resid.clone();
            layers.push(lt);
        }

        let (x, ln_final_scale) = match &self.ln_final {
            Some(ln) => {
                let (x, scale) = layer_norm(&resid, ln)?;
                (x, Some(scale))
            }
            None => (resid, None),
        };
        let logits = x.matmul(&self.w_u)?.broadcast_add(&self.b_u)?; // [seq, d_vocab]
        Ok(Trace {
            embed,
            pos_embed,
            layers,
            ln_final_scale,
            logits,
        })
    }

    /// The logits of one sequence in the model's own dtype: `[seq, d_vocab]`. This is the plain
    /// forward pass, without attribution, for benchmarks.
    pub fn logits(&self, tokens: &[u32]) -> Result<Tensor> {
        Ok(self.trace(tokens)?.logits)
    }

    // --------------------------------------------------------------------------------------------
    // Direct logit attribution
    // --------------------------------------------------------------------------------------------

    /// `f(c) W_U`, one component's direct contribution to the logits: `f(c) = c` without
    /// LayerNorm, `(c - mean(c)) / scale * w` through the frozen final LayerNorm (`with_w`
    /// false drops `* w`, TransformerLens' `apply_ln_to_stack` convention).
    /// c: [..., seq, d_model], scale: `[seq, 1]` -> [..., seq, d_vocab]
    fn direct_logits(&self, c: &Tensor, scale: Option<&Tensor>, with_w: bool) -> Result<Tensor> {
        let f = match (&self.ln_final, scale) {
            (Some(ln), Some(scale)) => {
                let f = center(c)?.broadcast_div(scale)?;
                if with_w {
                    f.broadcast_mul(&ln.w)?
                } else {
                    f
                }
            }
            _ => c.clone(),
        };
        Ok(f.broadcast_matmul(&self.w_u)?)
    }

    /// The constant term: `b_U`, plus `ln_final.b W_U` with LayerNorm. -> `[seq, d_vocab]`
    fn const_logits(&self, seq: usize) -> Result<Tensor> {
        let c = match &self.ln_final {
            Some(ln) => {
                ln.b.unsqueeze(0)?
                    .matmul(&self.w_u)?
                    .squeeze(0)?
                    .add(&self.b_u)?
            }
            None => self.b_u.clone(),
        };
        Ok(c.unsqueeze(0)?.broadcast_as((seq, self.config.d_vocab))?)
    }

    /// The forward pass of one sequence (`tokens.len() <= n_ctx`, every token `< d_vocab`) with
    /// every TransformerLens hook and the direct logit attribution of every position, as f64
    /// whatever the model's dtype.
    pub fn forward(&self, tokens: &[u32]) -> Result<Activations> {
        let trace = self.trace(tokens)?;
        let seq = tokens.len();
        let c = &self.config;
        let scale = trace.ln_final_scale.as_ref();

        let zeros = Tensor::zeros((seq, c.d_model), self.dtype, &Device::Cpu)?;
        let pos_in_resid = match (c.pos, &trace.pos_embed) {
            (PosEmbed::Standard, Some(pos)) => pos.clone(),
            _ => zeros.clone(),
        }; // [seq, d_model]
        let dla_embed = self.direct_logits(&trace.embed, scale, true)?;
        let dla_pos = self.direct_logits(&pos_in_resid, scale, true)?;
        let dla_direct = (&dla_embed + &dla_pos)?;

        let mut dla_heads = Vec::with_capacity(c.n_layers);
        let mut dla_heads_tl = Vec::with_capacity(c.n_layers);
        let mut dla_bias = Vec::with_capacity(c.n_layers);
        let mut layers = Vec::with_capacity(c.n_layers);
        for (layer, lt) in self.layers.iter().zip(&trace.layers) {
            dla_heads.push(self.direct_logits(&lt.result, scale, true)?); // [H, seq, V]
            if self.ln_final.is_some() {
                dla_heads_tl.push(self.direct_logits(&lt.result, scale, false)?);
                // [H, seq, V]
            }
            let b_o = zeros.broadcast_add(&layer.b_o)?; // [seq, d_model]
            dla_bias.push(self.direct_logits(&b_o, scale, true)?); // [seq, V]
            layers.push(LayerActivations {
                q: to_f64(&lt.q.transpose(0, 1)?)?,
                k: to_f64(&lt.k.transpose(0, 1)?)?,
                v: to_f64(&lt.v.transpose(0, 1)?)?,
                pattern: to_f64(&lt.pattern)?,
                z: to_f64(&lt.z.transpose(0, 1)?)?,
                result: to_f64(&lt.result.transpose(0, 1)?)?,
                resid_post: to_f64(&lt.resid_post)?,
            });
        }

        let ln_final_scale = match scale {
            Some(s) => to_f64(s)?,
            None => vec![1.0; seq],
        };
        Ok(Activations {
            seq,
            embed: to_f64(&trace.embed)?,
            pos_embed: match &trace.pos_embed {
                Some(pos) => to_f64(pos)?,
                None => vec![0.0; seq * c.d_model],
            },
            layers,
            ln_final_scale,
            logits: to_f64(&trace.logits)?,
            dla_direct_embed: to_f64(&dla_embed)?,
            dla_direct_pos: to_f64(&dla_pos)?,
            dla_direct: to_f64(&dla_direct)?,
            dla_heads: to_f64(&Tensor::cat(&dla_heads, 0)?)?,
            dla_bias_b_o: to_f64(&Tensor::stack(&dla_bias, 0)?)?,
            dla_bias_const: to_f64(&self.const_logits(seq)?)?,
            dla_heads_tl: match self.ln_final {
                Some(_) => Some(to_f64(&Tensor::cat(&dla_heads_tl, 0)?)?),
                None => None,
            },
        })
    }
}

/// A tensor's values, row-major, as f64.
fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?
        .contiguous()?
        .flatten_all()?
        .to_vec1::<f64>()
        .context("reading a tensor back")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::test_params::{random_params, small_config};
    use std::path::{Path, PathBuf};

    const LN: Norm = Norm::LayerNorm { eps: 1e-5 };
    const TOKENS: [u32; 6] = [3, 0, 10, 7, 7, 1];

    /// `acc[i] += x[i]`.
    fn add_into(acc: &mut [f64], x: &[f64]) {
        for (a, v) in acc.iter_mut().zip(x) {
            *a += v;
        }
    }

    /// The largest `|a - b|`.
    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn pattern_is_causal_and_normalised() {
        for (norm, pos) in [
            (LN, PosEmbed::Standard),
            (Norm::None, PosEmbed::Shortformer),
        ] {
            let params = random_params(small_config(norm, pos), 11);
            let reference = Reference::new(&params).expect("reference");
            let acts = reference.forward(&TOKENS[..5]).expect("forward");
            let seq = 5;
            for layer in &acts.layers {
                assert_eq!(layer.pattern.len(), 2 * seq * seq);
                for row in layer.pattern.chunks(seq).enumerate() {
                    let (r, values) = row;
                    let q = r % seq;
                    let sum: f64 = values.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-12, "row sum {sum}");
                    assert!(values[q + 1..].iter().all(|&v| v == 0.0), "{values:?}");
                    assert!(values[..=q].iter().all(|&v| v > 0.0), "{values:?}");
                }
            }
        }
    }

    /// Checks that all attribution terms add up to the logits at every position.
    fn check_attribution_sums(norm: Norm, pos: PosEmbed) {
        let params = random_params(small_config(norm, pos), 5);
        let reference = Reference::new(&params).expect("reference");
        let acts = reference.forward(&TOKENS).expect("forward");
        let (seq, v) = (TOKENS.len(), params.config.d_vocab);
        let block = seq * v;
        let mut sum = acts.dla_direct_embed.clone();
        add_into(&mut sum, &acts.dla_direct_pos);
        add_into(&mut sum, &acts.dla_bias_const);
        for head in acts.dla_heads.chunks(block) {
            add_into(&mut sum, head);
        }
        for bias in acts.dla_bias_b_o.chunks(block) {
            add_into(&mut sum, bias);
        }
        assert_eq!(acts.dla_heads.len(), 4 * block);
        assert_eq!(acts.dla_bias_b_o.len(), 2 * block);
        let err = max_abs_diff(&sum, &acts.logits);
        assert!(err < 1e-9, "{norm:?} {pos:?}: attribution off by {err}");

        let mut direct = acts.dla_direct_embed.clone();
        add_into(&mut direct, &acts.dla_direct_pos);
        assert!(max_abs_diff(&direct, &acts.dla_direct) < 1e-12);
        if pos != PosEmbed::Standard {
            assert!(acts.dla_direct_pos.iter().all(|&x| x == 0.0));
        }
        match norm {
            Norm::None => {
                assert!(acts.dla_heads_tl.is_none());
                assert!(acts.ln_final_scale.iter().all(|&s| s == 1.0));
            }
            Norm::LayerNorm { .. } => {
                let tl = acts.dla_heads_tl.as_ref().expect("LN models have heads_tl");
                assert_eq!(tl.len(), acts.dla_heads.len());
            }
        }
    }

    #[test]
    fn attribution_sums_to_logits_without_ln() {
        check_attribution_sums(Norm::None, PosEmbed::Standard);
        check_attribution_sums(Norm::None, PosEmbed::None);
    }

    #[test]
    fn attribution_sums_to_logits_with_ln() {
        check_attribution_sums(LN, PosEmbed::Standard);
        check_attribution_sums(LN, PosEmbed::Shortformer);
    }

    #[test]
    fn matches_a_hand_computed_one_layer_model() {
        // A 1-layer, 1-head, d_model 2, d_head 1 model without LN, checked by hand for two
        // tokens.
        let mut params = random_params(
            Config {
                n_layers: 1,
                n_heads: 1,
                d_model: 2,
                d_head: 1,
                d_vocab: 2,
                n_ctx: 2,
                norm: Norm::None,
                pos: PosEmbed::None,
            },
            1,
        );
        params.w_e = vec![1.0, 0.0, 0.0, 2.0]; // tokens: [1, 0], [0, 2]
        let l = &mut params.layers[0];
        l.w_q = vec![1.0, 1.0];
        l.w_k = vec![1.0, 1.0];
        l.w_v = vec![1.0, -1.0];
        l.b_q = vec![0.0];
        l.b_k = vec![0.0];
        l.b_v = vec![0.0];
        l.w_o = vec![1.0, 1.0];
        l.b_o = vec![0.0, 0.0];
        params.w_u = vec![1.0, 0.0, 0.0, 1.0];
        params.b_u = vec![0.0, 0.0];
        let acts = Reference::new(&params)
            .expect("reference")
            .forward(&[0, 1])
            .expect("forward");
        // q = k = [1, 2], v = [1, -2]; position 1: scores [2, 4] / 1, softmax.
        let p1 = 1.0 / (1.0 + 2f64.exp());
        let expected_pattern = [1.0, 0.0, p1, 1.0 - p1];
        assert!(max_abs_diff(&acts.layers[0].pattern, &expected_pattern) < 1e-15);
        let z1 = p1 * 1.0 + (1.0 - p1) * -2.0;
        let expected_logits = [2.0, 1.0, z1, 2.0 + z1];
        assert!(max_abs_diff(&acts.logits, &expected_logits) < 1e-15);
    }

    #[test]
    fn shortformer_adds_positions_to_queries_and_keys_only() {
        let params = random_params(small_config(LN, PosEmbed::Shortformer), 2);
        let acts = Reference::new(&params)
            .expect("reference")
            .forward(&TOKENS)
            .expect("forward");
        // The residual stream starts as the embedding alone.
        let ones = vec![1.0; TOKENS.len()];
        assert_eq!(acts.pos_embed.len(), acts.embed.len());
        assert_ne!(acts.ln_final_scale, ones);
        assert!(acts.logits.iter().all(|x| x.is_finite()));
        // Without W_pos the same weights give different patterns.
        let mut standard_none = params.clone();
        standard_none.config.pos = PosEmbed::None;
        standard_none.w_pos = None;
        let other = Reference::new(&standard_none)
            .expect("reference")
            .forward(&TOKENS)
            .expect("forward");
        assert!(max_abs_diff(&acts.layers[0].pattern, &other.layers[0].pattern) > 1e-6);
        // ... but the values, hence layer 0's z for the first position, are the same.
        let d = params.config.n_heads * params.config.d_head;
        assert!(max_abs_diff(&acts.layers[0].z[..d], &other.layers[0].z[..d]) < 1e-12);
    }

    #[test]
    fn f32_agrees_with_f64() {
        let params = random_params(small_config(LN, PosEmbed::Standard), 9);
        let a = Reference::new(&params)
            .expect("f64")
            .forward(&TOKENS)
            .expect("fwd");
        let b = Reference::new_f32(&params)
            .expect("f32")
            .forward(&TOKENS)
            .expect("fwd");
        assert!(max_abs_diff(&a.logits, &b.logits) < 1e-4);
        let logits = Reference::new_f32(&params)
            .expect("f32")
            .logits(&TOKENS)
            .expect("logits");
        assert_eq!(logits.dims(), &[TOKENS.len(), params.config.d_vocab]);
        assert_eq!(logits.dtype(), DType::F32);
    }

    #[test]
    fn rejects_long_sequences_and_bad_tokens() {
        let params = random_params(small_config(Norm::None, PosEmbed::Standard), 4);
        let reference = Reference::new(&params).expect("reference");
        let err = reference.forward(&[0; 7]).expect_err("n_ctx is 6");
        assert!(err.to_string().contains("n_ctx = 6"), "{err}");
        let err = reference.forward(&[0, 11]).expect_err("d_vocab is 11");
        assert!(err.to_string().contains("token 11 at position 1"), "{err}");
        assert!(reference.forward(&[]).is_err());
        assert!(reference.forward(&[0; 6]).is_ok());
    }

    // --------------------------------------------------------------------------------------------
    // Comparison against TransformerLens
    // --------------------------------------------------------------------------------------------

    /// `fixtures/tl`, where the TransformerLens fixtures live.
    fn fixtures_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tl")
    }

    /// A tensor of a reference file: its shape and values as f64.
    struct Expected {
        shape: Vec<usize>,
        values: Vec<f64>,
    }

    /// Reads every tensor of a safetensors file as f64 (float and integer dtypes).
    fn read_all(path: &Path) -> std::collections::HashMap<String, Expected> {
        use safetensors::tensor::Dtype;
        let bytes = std::fs::read(path).expect("read reference.safetensors");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        st.tensors()
            .into_iter()
            .map(|(name, view)| {
                let d = view.data();
                let values: Vec<f64> = match view.dtype() {
                    Dtype::F64 => d
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect(),
                    Dtype::F32 => d
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")).into())
                        .collect(),
                    Dtype::F16 => d
                        .chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
                        .collect(),
                    Dtype::BF16 => d
                        .chunks_exact(2)
                        .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
                        .collect(),
                    Dtype::I64 => d
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                        .collect(),
                    Dtype::I32 => d
                        .chunks_exact(4)
                        .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")).into())
                        .collect(),
                    other => panic!("{name}: unexpected dtype {other}"),
                };
                let shape = view.shape().to_vec();
                (name, Expected { shape, values })
            })
            .collect()
    }

    /// Batch element `b` of a batch-first tensor.
    fn batch_item(t: &Expected, b: usize) -> &[f64] {
        let n = t.values.len() / t.shape[0];
        &t.values[b * n..(b + 1) * n]
    }

    /// Batch element `b` of a tensor whose batch axis is second ([K, B, ...]), flattened to
    /// [K, ...].
    fn batch_item_second_axis(t: &Expected, b: usize) -> Vec<f64> {
        let (k, batch) = (t.shape[0], t.shape[1]);
        let n = t.values.len() / (k * batch);
        (0..k)
            .flat_map(|i| {
                t.values[(i * batch + b) * n..(i * batch + b + 1) * n]
                    .iter()
                    .copied()
            })
            .collect()
    }

    /// Asserts `|ours - theirs| <= tol` elementwise, naming the fixture and hook.
    fn assert_close(what: &str, ours: &[f64], theirs: &[f64], tol: f64) {
        assert_eq!(ours.len(), theirs.len(), "{what}: length");
        let err = max_abs_diff(ours, theirs);
        assert!(err <= tol, "{what}: max |difference| {err:e} > {tol:e}");
    }

    #[test]
    fn matches_transformer_lens_fixtures() {
        let Ok(entries) = std::fs::read_dir(fixtures_root()) else {
            return; // The fixtures have not been generated.
        };
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        for dir in dirs {
            let reference_path = dir.join("reference.safetensors");
            if !reference_path.is_file() {
                continue;
            }
            let name = dir.display().to_string();
            let params = crate::import::load_checkpoint(&dir.join("model.safetensors"), None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let model = Reference::new(&params).expect("reference");
            let expected = read_all(&reference_path);
            let get = |key: &str| {
                expected
                    .get(key)
                    .unwrap_or_else(|| panic!("{name}: no {key} in reference.safetensors"))
            };
            let tokens = get("tokens");
            let batch = tokens.shape[0];
            for b in 0..batch {
                let toks: Vec<u32> = batch_item(tokens, b).iter().map(|&t| t as u32).collect();
                let acts = model.forward(&toks).expect("forward");
                let at = |hook: &str| format!("{name} [{b}] {hook}");
                assert_close(
                    &at("logits"),
                    &acts.logits,
                    batch_item(get("logits"), b),
                    1e-4,
                );
                for (l, layer) in acts.layers.iter().enumerate() {
                    let key = |hook: &str| format!("blocks.{l}.{hook}");
                    let pattern = key("attn.hook_pattern");
                    let theirs = batch_item(get(&pattern), b);
                    assert_close(&at(&pattern), &layer.pattern, theirs, 1e-5);
                    let z = key("attn.hook_z");
                    assert_close(&at(&z), &layer.z, batch_item(get(&z), b), 1e-4);
                    let result = key("attn.hook_result");
                    assert_close(
                        &at(&result),
                        &layer.result,
                        batch_item(get(&result), b),
                        1e-4,
                    );
                    for (hook, ours) in [("q", &layer.q), ("k", &layer.k), ("v", &layer.v)] {
                        let hook = key(&format!("attn.hook_{hook}"));
                        assert_close(&at(&hook), ours, batch_item(get(&hook), b), 1e-4);
                    }
                    let resid = key("hook_resid_post");
                    assert_close(
                        &at(&resid),
                        &layer.resid_post,
                        batch_item(get(&resid), b),
                        1e-4,
                    );
                }
                if let Some(scale) = expected.get("ln_final.hook_scale") {
                    let theirs = batch_item(scale, b);
                    assert_close(
                        &at("ln_final.hook_scale"),
                        &acts.ln_final_scale,
                        theirs,
                        1e-5,
                    );
                }
                let mut compared = 0;
                for (key, t) in expected.iter().filter(|(k, _)| k.starts_with("dla.")) {
                    let (ours, theirs): (&[f64], Vec<f64>) = match key.as_str() {
                        "dla.direct_embed" => (&acts.dla_direct_embed, batch_item(t, b).to_vec()),
                        "dla.direct_pos" => (&acts.dla_direct_pos, batch_item(t, b).to_vec()),
                        "dla.direct" => (&acts.dla_direct, batch_item(t, b).to_vec()),
                        "dla.bias_const" => (&acts.dla_bias_const, batch_item(t, b).to_vec()),
                        "dla.heads" => (&acts.dla_heads, batch_item_second_axis(t, b)),
                        "dla.bias_b_O" => (&acts.dla_bias_b_o, batch_item_second_axis(t, b)),
                        "dla.heads_tl" => (
                            acts.dla_heads_tl.as_deref().expect("LN model"),
                            batch_item_second_axis(t, b),
                        ),
                        other => panic!("{name}: unknown attribution tensor {other}"),
                    };
                    assert_close(&at(key), ours, &theirs, 1e-4);
                    compared += 1;
                }
                assert!(compared > 0, "{name}: no dla.* tensors");
            }
        }
    }
}
