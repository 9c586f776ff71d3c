//! Direct logit attribution: the framework's path expansion made concrete at the current
//! position.
//!
//! Without LayerNorm the final residual stream is a sum, so the logits are too:
//!
//! ```text
//! logits = x @ W_U + b_U,   x = W_E[t] + W_pos[p] + sum_l ( sum_h result_{l,h} + b_O[l] )
//!        = W_E[t] W_U  +  W_pos[p] W_U  +  sum_{l,h} result_{l,h} W_U  +  sum_l b_O[l] W_U  +  b_U
//!          direct (embed) direct (pos)     one term per head             per layer         const
//! ```
//!
//! With a final LayerNorm the stream is centred and divided by a scale before `W_U`. Freezing
//! the scale of this position makes the map linear again, and there are two conventions:
//! - [`LnConvention::Exact`]: `f(c) = (c - mean(c)) / scale * ln_final.w`, and the constant
//!   term is `ln_final.b @ W_U + b_U`. The terms sum exactly to the logits.
//! - [`LnConvention::TransformerLens`]: `f(c) = (c - mean(c)) / scale`, as TransformerLens'
//!   `apply_ln_to_stack` does (it expects `ln_final.w` folded into `W_U`).

use crate::forward::Decoder;
use crate::{Config, Error, Norm, PosEmbed};

/// One term of the path expansion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    /// The direct path through the token embedding: `W_E[t] W_U`.
    Embed,
    /// The direct path through the positional embedding: `W_pos[p] W_U` (zero unless the
    /// positional embedding is in the residual stream).
    Pos,
    /// What a head writes: `result_{layer,head} W_U`.
    Head {
        /// Layer.
        layer: usize,
        /// Head.
        head: usize,
    },
    /// A layer's output bias: `b_O[layer] W_U`.
    BiasO {
        /// Layer.
        layer: usize,
    },
    /// `b_U`, plus `ln_final.b W_U` under [`LnConvention::Exact`].
    Const,
}

impl Term {
    /// Number of terms of `cfg`: embed, pos, `n_layers * n_heads` heads, `n_layers` biases,
    /// and the constant.
    pub const fn count(cfg: &Config) -> usize {
        2 + cfg.n_layers * cfg.n_heads + cfg.n_layers + 1
    }

    /// The `i`-th term in the order of [`Term::count`]: embed, pos, heads (`layer * n_heads +
    /// head`), biases by layer, constant.
    pub fn nth(cfg: &Config, i: usize) -> Option<Term> {
        let heads = cfg.n_layers * cfg.n_heads;
        Some(match i {
            0 => Term::Embed,
            1 => Term::Pos,
            i if i < 2 + heads => {
                let k = i - 2;
                Term::Head {
                    layer: k / cfg.n_heads,
                    head: k % cfg.n_heads,
                }
            }
            i if i < 2 + heads + cfg.n_layers => Term::BiasO {
                layer: i - 2 - heads,
            },
            i if i == 2 + heads + cfg.n_layers => Term::Const,
            _ => return None,
        })
    }
}

/// How the frozen final LayerNorm enters attribution (no effect on models without LN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LnConvention {
    /// Centre, divide by the frozen scale and multiply by `ln_final.w`; the terms sum to the
    /// logits.
    Exact,
    /// Centre and divide by the frozen scale only, as TransformerLens' `apply_ln_to_stack`.
    TransformerLens,
}

/// What to attribute: one token's logit, or the difference of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `logit[t]`
    Token(u32),
    /// `logit[a] - logit[b]`
    Diff(u32, u32),
}

impl Decoder<'_, '_> {
    /// Element `i` of the residual-stream vector a term adds at the current position.
    /// Heads are recomputed from `z` on the fly (`result_h[i] = sum_k z_h[k] W_O[h][k, i]`),
    /// so no `[heads, d_model]` buffer is kept.
    fn component(&self, term: Term, i: usize) -> f32 {
        let Config {
            d_model,
            n_heads,
            d_head,
            ..
        } = self.cfg;
        let p = self.pos - 1;
        match term {
            Term::Embed => self.w.w_e_at(self.token as usize, i, d_model),
            Term::Pos => match self.cfg.pos {
                PosEmbed::Standard => self.w.w_pos_at(p, i, d_model),
                _ => 0.0,
            },
            Term::Head { layer, head } => {
                let z = &self.z[(layer * n_heads + head) * d_head..][..d_head];
                z.iter()
                    .enumerate()
                    .map(|(k, zk)| zk * self.w.w_o_at(layer, head, k, i, d_head, d_model))
                    .sum()
            }
            Term::BiasO { layer } => self.w.b_o(layer)[i],
            Term::Const => 0.0,
        }
    }

    /// The weight of residual dimension `i` through the final LayerNorm under `conv`:
    /// `ln_final.w[i]` in the exact split, 1 otherwise.
    fn ln_factors(&self, conv: LnConvention, i: usize) -> f32 {
        match (self.w.ln_final(), conv) {
            (Some(ln), LnConvention::Exact) => ln.w[i],
            _ => 1.0,
        }
    }

    fn check_attributable(&self) -> Result<(), Error> {
        if self.pos == 0 || !self.has_logits {
            Err(Error::NoPosition)
        } else {
            Ok(())
        }
    }

    /// Attributes one logit (or a logit difference) of the current position to every term:
    /// `out[k]` is term [`Term::nth`]`(k)`'s contribution, `out`: [Term::count]. Needs no
    /// `[terms, d_vocab]` memory: it reads one column of `W_U` per target token.
    pub fn attribute(
        &self,
        target: Target,
        conv: LnConvention,
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.check_attributable()?;
        let count = Term::count(&self.cfg);
        Error::check_length(count, out.len())?;
        let (a, b) = match target {
            Target::Token(t) => (self.cfg.check_token(t)?, None),
            Target::Diff(a, b) => (self.cfg.check_token(a)?, Some(self.cfg.check_token(b)?)),
        };
        let Config {
            d_model, d_vocab, ..
        } = self.cfg;
        let w_u = |i: usize, v: usize| self.w.w_u_at(i, v, d_vocab);
        // u = W_U[:, a] - W_U[:, b], the direction in the residual stream that reads the target.
        let u = |i: usize| w_u(i, a) - b.map_or(0.0, |b| w_u(i, b));
        let has_ln = matches!(self.cfg.norm, Norm::LayerNorm { .. });
        let wu_sum: f32 = (0..d_model).map(|i| self.ln_factors(conv, i) * u(i)).sum();
        for (k, o) in out.iter_mut().enumerate() {
            let term = Term::nth(&self.cfg, k).unwrap_or(Term::Const);
            if term == Term::Const {
                let b_u = self.w.b_u();
                let mut c = b_u[a] - b.map_or(0.0, |b| b_u[b]);
                if let Some(ln) = self.w.ln_final() {
                    c += (0..d_model).map(|i| ln.b[i] * u(i)).sum::<f32>();
                }
                *o = c;
                continue;
            }
            let (mut dot, mut sum) = (0.0f32, 0.0f32);
            for i in 0..d_model {
                let c = self.component(term, i);
                dot += c * self.ln_factors(conv, i) * u(i);
                sum += c;
            }
            *o = if has_ln {
                // (c - mean(c)) . (w * u) / scale
                (dot - sum / d_model as f32 * wu_sum) / self.final_scale
            } else {
                dot
            };
        }
        Ok(())
    }

    /// The whole attribution table of the current position: row `k` of `out` is term
    /// [`Term::nth`]`(k)`'s contribution to every logit. `out`: [Term::count, d_vocab]. Uses the
    /// decoder's scratch row, hence `&mut self`; the decoding state is untouched.
    pub fn attribution_table(&mut self, conv: LnConvention, out: &mut [f32]) -> Result<(), Error> {
        self.check_attributable()?;
        let Config {
            d_model, d_vocab, ..
        } = self.cfg;
        let count = Term::count(&self.cfg);
        Error::check_length(count * d_vocab, out.len())?;
        let has_ln = matches!(self.cfg.norm, Norm::LayerNorm { .. });
        for (k, row) in out.chunks_exact_mut(d_vocab).enumerate() {
            let term = Term::nth(&self.cfg, k).unwrap_or(Term::Const);
            if term == Term::Const {
                let b_u = self.w.b_u();
                match self.w.ln_final() {
                    Some(ln) => self.w.unembed(ln.b, true, row),
                    None => row.copy_from_slice(b_u),
                }
                continue;
            }
            // f(c): the term's vector through the frozen final LayerNorm.
            for i in 0..d_model {
                self.normed[i] = self.component(term, i);
            }
            if has_ln {
                let mean = self.normed.iter().sum::<f32>() / d_model as f32;
                for i in 0..d_model {
                    self.normed[i] =
                        (self.normed[i] - mean) / self.final_scale * self.ln_factors(conv, i);
                }
            }
            self.w.unembed(self.normed, false, row);
        }
        Ok(())
    }
}
