//! The statistics GPTQ needs for the token embedding `W_E`, which no matrix product sees: how
//! an error in the residual stream entering layer 0 moves the next-token distributions of
//! that position and every later one. For a small error `e` at one position the KL it costs is
//! `e H e^T / 2` with `H = sum over later positions of J^T F J`, `J` the Jacobian of that
//! position's logits with respect to the residual stream and `F = diag(p) - p p^T` the Fisher
//! information of its softmax. The f32 kernel measures `J` by finite differences, one residual
//! dimension at a time, each run starting at the nudged position (`Decoder::rewind`).

use anyhow::{anyhow, Result};
use tinylens::{Decoder, Hooks, Model};

use super::gptq::Gram;
use crate::blobio::blob_from_params;
use crate::params::Params;
use crate::report::probabilities;

/// At most this many calibration sequences measure `H`.
pub const MAX_SEQUENCES: usize = 8;

/// At most this many positions of each sequence are nudged, evenly spaced...
pub const MAX_NUDGED: usize = 16;

/// ... and each nudge is followed for at most this many positions: the cost is bounded by
/// `MAX_SEQUENCES * MAX_NUDGED * d_model * MAX_FOLLOWED` position steps, whatever `n_ctx`.
pub const MAX_FOLLOWED: usize = 32;

/// Adds `eps` to dimension `dim` of the residual stream entering layer 0 at position `at`.
struct Nudge {
    pos: usize,
    at: usize,
    dim: usize,
    eps: f32,
}

impl Hooks for Nudge {
    fn position(&mut self, pos: usize) {
        self.pos = pos;
    }

    fn resid_pre(&mut self, layer: usize, resid: &mut [f32]) {
        if layer == 0 && self.pos == self.at {
            resid[self.dim] += self.eps;
        }
    }
}

/// `H` `[d_model, d_model]` over (at most [`MAX_SEQUENCES`] of) `sequences`, measured with
/// nudges of size `eps` (about one rounding step of `W_E`).
pub fn resid_hessian(params: &Params, sequences: &[Vec<u32>], eps: f32) -> Result<Gram> {
    let cfg = params.config;
    let (m, v) = (cfg.d_model, cfg.d_vocab);
    let blob = tinylens::writer::AlignedBytes::new(&blob_from_params(params)?);
    let model = Model::from_blob(blob.as_bytes()).map_err(|e| anyhow!(e))?;
    let mut arena = vec![0.0f32; cfg.state_len()];
    let mut dec = Decoder::new(&model, &mut arena)?;
    let mut h = Gram::new(m);
    for tokens in sequences.iter().take(MAX_SEQUENCES) {
        let s = tokens.len();
        // The unnudged logits and distributions of every position.
        dec.reset();
        let mut base = Vec::with_capacity(s * v);
        for &t in tokens {
            base.extend_from_slice(dec.step(t)?);
        }
        let probs: Vec<Vec<f64>> = (0..s).map(|q| probabilities(&base[q * v..][..v])).collect();
        // From the last position down, so that the cache before `at` is always unnudged.
        let stride = s.div_ceil(MAX_NUDGED);
        for at in (0..s).rev().filter(|at| (s - 1 - at) % stride == 0) {
            let later = (s - at).min(MAX_FOLLOWED);
            // d[dim][q][v]: the change of position (at + q)'s logits per unit nudge.
            let mut d = vec![0.0f64; m * later * v];
            for dim in 0..m {
                dec.rewind(at)?;
                let mut hook = Nudge {
                    pos: 0,
                    at,
                    dim,
                    eps,
                };
                for (q, &t) in tokens[at..at + later].iter().enumerate() {
                    let logits = dec.step_with(t, &mut hook)?;
                    let row = &mut d[(dim * later + q) * v..][..v];
                    for ((o, &x), &b) in row.iter_mut().zip(logits).zip(&base[(at + q) * v..]) {
                        *o = (x as f64 - b as f64) / eps as f64;
                    }
                }
            }
            // H += sum over q of D_q diag(p_q) D_q^T - (D_q p_q)(D_q p_q)^T.
            for q in 0..later {
                let p = &probs[at + q];
                let row = |dim: usize| &d[(dim * later + q) * v..][..v];
                let dp: Vec<f64> = (0..m)
                    .map(|i| row(i).iter().zip(p).map(|(a, b)| a * b).sum())
                    .collect();
                for i in 0..m {
                    let ri = row(i);
                    for j in 0..=i {
                        let rj = row(j);
                        let mut s = 0.0;
                        for k in 0..v {
                            s += ri[k] * p[k] * rj[k];
                        }
                        let x = s - dp[i] * dp[j];
                        h.a[i * m + j] += x;
                        if i != j {
                            h.a[j * m + i] += x;
                        }
                    }
                }
            }
        }
        dec.reset();
        h.count += s;
    }
    Ok(h)
}
