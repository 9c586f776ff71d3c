//! The trainable model: every TransformerLens parameter as a candle [`Var`], and the batched
//! forward pass, the same equations as [`crate::reference`] (TransformerLens' attention-only
//! `HookedTransformer`) on `[batch, seq]` tokens:
//!
//! ```text
//! resid  = W_E[tok] + W_pos[pos]                (standard; W_E[tok] otherwise)
//! x      = ln1(resid)                           (or resid without LayerNorm)
//! q, k   = (x + W_pos[pos]) W_Q + b_Q, ...      (shortformer; x otherwise), v = x W_V + b_V
//! resid += sum_h softmax(causal(q k^T / sqrt(d_head))) v W_O + b_O
//! logits = ln_final(resid) W_U + b_U
//! ```

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var, D};
use tinylens::{Config, Norm, PosEmbed};

use crate::analysis::SplitMix;
use crate::params::{LayerParams, LnParams, Params};

/// A LayerNorm's weight and bias.
pub struct LnVars {
    /// `w`: `[d_model]`
    pub w: Var,
    /// `b`: `[d_model]`
    pub b: Var,
}

/// One attention layer, `blocks.{l}`.
pub struct LayerVars {
    /// `ln1`, when the model has LayerNorm.
    pub ln1: Option<LnVars>,
    /// `W_Q`: `[n_heads, d_model, d_head]`
    pub w_q: Var,
    /// `W_K`: `[n_heads, d_model, d_head]`
    pub w_k: Var,
    /// `W_V`: `[n_heads, d_model, d_head]`
    pub w_v: Var,
    /// `b_Q`: `[n_heads, 1, d_head]` (a middle axis to broadcast over positions)
    pub b_q: Var,
    /// `b_K`: `[n_heads, 1, d_head]`
    pub b_k: Var,
    /// `b_V`: `[n_heads, 1, d_head]`
    pub b_v: Var,
    /// `W_O`: `[n_heads, d_head, d_model]`
    pub w_o: Var,
    /// `b_O`: `[d_model]`
    pub b_o: Var,
}

/// The whole model as trainable variables.
pub struct ModelVars {
    /// Shapes.
    pub config: Config,
    /// `W_E`: `[d_vocab, d_model]`
    pub w_e: Var,
    /// `W_pos`: `[n_ctx, d_model]`, absent without positional embedding.
    pub w_pos: Option<Var>,
    /// The attention layers.
    pub layers: Vec<LayerVars>,
    /// `ln_final`, when the model has LayerNorm.
    pub ln_final: Option<LnVars>,
    /// `W_U`: `[d_model, d_vocab]`
    pub w_u: Var,
    /// `b_U`: `[d_vocab]`
    pub b_u: Var,
}

/// A variable of `shape` filled by `f`.
fn var(shape: &[usize], mut f: impl FnMut() -> f32) -> Result<Var> {
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| f()).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(
        data,
        shape,
        &Device::Cpu,
    )?)?)
}

impl ModelVars {
    /// A freshly initialized model, TransformerLens' `init_mode="gpt2"`: every weight matrix
    /// normal with standard deviation `0.8 / sqrt(d_model)`, biases zero, LayerNorm weights one.
    /// The same `seed` gives the same weights.
    pub fn init(config: &Config, seed: u64) -> Result<ModelVars> {
        let c = config;
        let (h, m, d, v) = (c.n_heads, c.d_model, c.d_head, c.d_vocab);
        let std = 0.8 / (m as f64).sqrt();
        let mut rng = SplitMix(seed ^ 0x7469_6e79_6c65_6e73);
        let mut normal = move || (rng.normal() * std) as f32;
        let zeros = |shape: &[usize]| var(shape, || 0.0);
        let ln = |c: &Config| -> Result<Option<LnVars>> {
            Ok(match c.norm {
                Norm::LayerNorm { .. } => Some(LnVars {
                    w: var(&[m], || 1.0)?,
                    b: var(&[m], || 0.0)?,
                }),
                Norm::None => None,
            })
        };
        let w_e = var(&[v, m], &mut normal)?;
        let w_pos = match c.pos {
            PosEmbed::None => None,
            _ => Some(var(&[c.n_ctx, m], &mut normal)?),
        };
        let mut layers = Vec::new();
        for _ in 0..c.n_layers {
            layers.push(LayerVars {
                ln1: ln(c)?,
                w_q: var(&[h, m, d], &mut normal)?,
                w_k: var(&[h, m, d], &mut normal)?,
                w_v: var(&[h, m, d], &mut normal)?,
                b_q: zeros(&[h, 1, d])?,
                b_k: zeros(&[h, 1, d])?,
                b_v: zeros(&[h, 1, d])?,
                w_o: var(&[h, d, m], &mut normal)?,
                b_o: zeros(&[m])?,
            });
        }
        Ok(ModelVars {
            config: *c,
            w_e,
            w_pos,
            layers,
            ln_final: ln(c)?,
            w_u: var(&[m, v], &mut normal)?,
            b_u: zeros(&[v])?,
        })
    }

    /// Every variable, with a flag: `true` for the weight matrices and embeddings (which take
    /// weight decay), `false` for biases and LayerNorm parameters (which do not).
    pub fn all(&self) -> Vec<(&Var, bool)> {
        let mut out = vec![(&self.w_e, true)];
        if let Some(p) = &self.w_pos {
            out.push((p, true));
        }
        for l in &self.layers {
            if let Some(ln) = &l.ln1 {
                out.push((&ln.w, false));
                out.push((&ln.b, false));
            }
            out.extend([
                (&l.w_q, true),
                (&l.w_k, true),
                (&l.w_v, true),
                (&l.b_q, false),
                (&l.b_k, false),
                (&l.b_v, false),
                (&l.w_o, true),
                (&l.b_o, false),
            ]);
        }
        if let Some(ln) = &self.ln_final {
            out.push((&ln.w, false));
            out.push((&ln.b, false));
        }
        out.push((&self.w_u, true));
        out.push((&self.b_u, false));
        out
    }

    /// The logits of every position: `tokens` `[batch, seq]` (u32) -> `[batch, seq, d_vocab]`.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (b, t) = tokens.dims2()?;
        let (m, dh) = (c.d_model, c.d_head);
        let embed = self
            .w_e
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, m))?;
        let pos = match &self.w_pos {
            Some(p) => Some(p.narrow(0, 0, t)?.unsqueeze(0)?),
            None => None,
        };
        let mut resid = match (c.pos, &pos) {
            (PosEmbed::Standard, Some(p)) => embed.broadcast_add(p)?,
            _ => embed,
        };
        let mask = causal_mask(t)?;
        let scale = 1.0 / (dh as f64).sqrt();
        for layer in &self.layers {
            let x = match (&layer.ln1, c.norm) {
                (Some(ln), Norm::LayerNorm { eps }) => layer_norm(&resid, ln, eps)?,
                _ => resid.clone(),
            };
            let qk_in = match (c.pos, &pos) {
                (PosEmbed::Shortformer, Some(p)) => x.broadcast_add(p)?,
                _ => x.clone(),
            };
            // [batch * seq, d_model] x [d_model, n_heads * d_head] -> [batch, n_heads, seq, d_head]
            let h = c.n_heads;
            let project = |input: &Tensor, w: &Var, bias: &Var| -> Result<Tensor> {
                let w = w.permute((1, 0, 2))?.reshape((m, h * dh))?;
                let bias = bias.reshape(h * dh)?;
                Ok(input
                    .reshape((b * t, m))?
                    .matmul(&w)?
                    .broadcast_add(&bias)?
                    .reshape((b, t, h, dh))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = project(&qk_in, &layer.w_q, &layer.b_q)?;
            let k = project(&qk_in, &layer.w_k, &layer.b_k)?;
            let v = project(&x, &layer.w_v, &layer.b_v)?;
            let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
            let pattern = softmax_last(&scores)?;
            let z = pattern.matmul(&v)?;
            // [batch * seq, n_heads * d_head] x [n_heads * d_head, d_model]: the sum over heads
            let out = z
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * t, h * dh))?
                .matmul(&layer.w_o.reshape((h * dh, m))?)?
                .reshape((b, t, m))?;
            resid = (resid + out)?.broadcast_add(&layer.b_o)?;
        }
        let x = match (&self.ln_final, c.norm) {
            (Some(ln), Norm::LayerNorm { eps }) => layer_norm(&resid, ln, eps)?,
            _ => resid,
        };
        Ok(x.reshape((b * t, m))?
            .matmul(&self.w_u)?
            .broadcast_add(&self.b_u)?
            .reshape((b, t, c.d_vocab))?)
    }

    /// Mean cross-entropy of predicting `targets` `[batch, seq]` from `tokens` `[batch, seq]`.
    pub fn loss(&self, tokens: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let logits = self.forward(tokens)?;
        let v = self.config.d_vocab;
        let logits = logits.reshape(((), v))?;
        let max = logits.max_keepdim(D::Minus1)?.detach();
        let shifted = logits.broadcast_sub(&max)?;
        let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
        let log_probs = shifted.broadcast_sub(&lse)?;
        let picked = log_probs.gather(&targets.flatten_all()?.unsqueeze(1)?, 1)?;
        Ok(picked.mean_all()?.neg()?)
    }

    /// The trained weights as [`Params`], in TransformerLens' shapes.
    pub fn to_params(&self, vocab: Option<Vec<String>>) -> Result<Params> {
        let flat = |v: &Var| -> Result<Vec<f32>> { Ok(v.flatten_all()?.to_vec1::<f32>()?) };
        let ln = |l: &Option<LnVars>| -> Result<Option<LnParams>> {
            l.as_ref()
                .map(|l| {
                    Ok(LnParams {
                        w: flat(&l.w)?,
                        b: flat(&l.b)?,
                    })
                })
                .transpose()
        };
        let mut layers = Vec::new();
        for l in &self.layers {
            layers.push(LayerParams {
                ln1: ln(&l.ln1)?,
                w_q: flat(&l.w_q)?,
                w_k: flat(&l.w_k)?,
                w_v: flat(&l.w_v)?,
                b_q: flat(&l.b_q)?,
                b_k: flat(&l.b_k)?,
                b_v: flat(&l.b_v)?,
                w_o: flat(&l.w_o)?,
                b_o: flat(&l.b_o)?,
            });
        }
        Ok(Params {
            config: self.config,
            vocab,
            w_e: flat(&self.w_e)?,
            w_pos: self.w_pos.as_ref().map(flat).transpose()?,
            layers,
            ln_final: ln(&self.ln_final)?,
            w_u: flat(&self.w_u)?,
            b_u: flat(&self.b_u)?,
        })
    }
}

/// `[seq, seq]`: 0 on and below the diagonal, a large negative number above it (the future).
fn causal_mask(t: usize) -> Result<Tensor> {
    let data: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { -1e9 } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(data, (t, t), &Device::Cpu)?)
}

/// Softmax over the last axis (shifted by the detached maximum, which changes nothing but
/// the range of `exp`).
fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// TransformerLens' LayerNorm over the last axis: biased variance, `eps` inside the root.
fn layer_norm(x: &Tensor, ln: &LnVars, eps: f32) -> Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let scale = (var + f64::from(eps))?.sqrt()?;
    Ok(centred
        .broadcast_div(&scale)?
        .broadcast_mul(&ln.w)?
        .broadcast_add(&ln.b)?)
}

/// `tokens` (row-major `[batch, seq]`) as a u32 tensor.
pub fn token_tensor(tokens: &[u32], batch: usize, seq: usize) -> Result<Tensor> {
    Ok(Tensor::from_slice(tokens, (batch, seq), &Device::Cpu)?.to_dtype(DType::U32)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;

    /// The training forward pass is TransformerLens' (as the independent reference computes
    /// it), for every normalization and positional embedding, on a batch of two sequences.
    #[test]
    fn forward_matches_the_reference() {
        for (norm, pos) in [
            (Norm::None, PosEmbed::Standard),
            (Norm::LayerNorm { eps: 1e-5 }, PosEmbed::Standard),
            (Norm::LayerNorm { eps: 1e-5 }, PosEmbed::Shortformer),
        ] {
            let config = Config {
                n_layers: 2,
                n_heads: 3,
                d_model: 12,
                d_head: 4,
                d_vocab: 11,
                n_ctx: 9,
                norm,
                pos,
            };
            let model = ModelVars::init(&config, 3).unwrap();
            let params = model.to_params(None).unwrap();
            let reference = Reference::new(&params).unwrap();
            let rows: [[u32; 7]; 2] = [[1, 5, 2, 9, 1, 5, 2], [0, 10, 3, 3, 7, 4, 6]];
            let flat: Vec<u32> = rows.concat();
            let logits = model
                .forward(&token_tensor(&flat, 2, 7).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (b, row) in rows.iter().enumerate() {
                let want = reference.forward(row).unwrap().logits;
                let got = &logits[b * 7 * 11..(b + 1) * 7 * 11];
                for (g, w) in got.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-4, "{norm:?} {pos:?}: {g} vs {w}");
                }
            }
        }
    }
}
