//! Term importance by ablation: the loss of a sequence with one term of the path expansion
//! taken out, for every head and for the direct path.
//!
//! - Zero-ablating a head sets its `hook_result` (equivalently its `hook_z`) to zero at every
//!   position; mean-ablating replaces it with its mean over the positions of the sequence.
//!   Later layers see the change: this is the head's total effect, not only its direct one.
//! - The direct path is the embedding's own route to the unembedding (`W_U W_E`, plus `W_pos`
//!   for standard positions). Ablating it removes `x_0` from the final residual stream (or
//!   replaces it with its mean over positions) while every head still reads it.
//!
//! The forward pass here is a plain `f64` one with those interventions; with none it is the
//! model's forward pass, which the tests check against the kernel.

use anyhow::{bail, Result};
use tinylens::{Norm, PosEmbed};

use super::{head_block, HeadId, Named};
use crate::params::{LnParams, Params};

/// What to take out of the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ablation {
    /// Nothing: the clean forward pass.
    None,
    /// One head's result, zeroed.
    HeadZero(HeadId),
    /// One head's result, replaced with its mean over positions.
    HeadMean(HeadId),
    /// The direct path, removed from the final residual stream.
    DirectZero,
    /// The direct path, replaced with its mean over positions.
    DirectMean,
}

fn layer_norm(x: &[f64], ln: &LnParams, eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let scale = (var + eps).sqrt();
    x.iter()
        .zip(ln.w.iter().zip(&ln.b))
        .map(|(v, (&w, &b))| (v - mean) / scale * w as f64 + b as f64)
        .collect()
}

/// `x @ w (+ b)`: `x` `[k]`, `w` `[k, m]` -> `[m]`.
fn vec_mat(x: &[f64], w: &[f32], b: Option<&[f32]>, m: usize) -> Vec<f64> {
    let mut out: Vec<f64> = match b {
        Some(b) => b.iter().map(|&v| v as f64).collect(),
        None => vec![0.0; m],
    };
    for (xi, row) in x.iter().zip(w.chunks_exact(m)) {
        for (o, &wij) in out.iter_mut().zip(row) {
            *o += xi * wij as f64;
        }
    }
    out
}

/// Per-position logits of `tokens` with `ablation` applied: `[seq, d_vocab]`.
pub fn forward(p: &Params, tokens: &[u32], ablation: Ablation) -> Vec<Vec<f64>> {
    let c = &p.config;
    let (m, d, seq) = (c.d_model, c.d_head, tokens.len());
    let eps = match c.norm {
        Norm::LayerNorm { eps } => eps as f64,
        Norm::None => 0.0,
    };
    let pos_row = |i: usize| -> Vec<f64> {
        p.w_pos
            .as_ref()
            .map(|w| w[i * m..(i + 1) * m].iter().map(|&v| v as f64).collect())
            .unwrap_or_else(|| vec![0.0; m])
    };
    // x_0: [seq, d_model]
    let x0: Vec<Vec<f64>> = tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let e = &p.w_e[t as usize * m..(t as usize + 1) * m];
            let pos = pos_row(i);
            e.iter()
                .zip(&pos)
                .map(|(&a, &b)| a as f64 + if c.pos == PosEmbed::Standard { b } else { 0.0 })
                .collect()
        })
        .collect();
    let mut resid = x0.clone();
    for (li, layer) in p.layers.iter().enumerate() {
        let normed: Vec<Vec<f64>> = resid
            .iter()
            .map(|x| match &layer.ln1 {
                Some(ln) => layer_norm(x, ln, eps),
                None => x.clone(),
            })
            .collect();
        let qk_in: Vec<Vec<f64>> = normed
            .iter()
            .enumerate()
            .map(|(i, x)| match c.pos {
                PosEmbed::Shortformer => x.iter().zip(pos_row(i)).map(|(a, b)| a + b).collect(),
                _ => x.clone(),
            })
            .collect();
        let mut delta = vec![vec![0.0f64; m]; seq];
        for h in 0..c.n_heads {
            let block = |w: &[f32]| head_block(w, h, m, d).to_vec();
            let (wq, wk, wv) = (block(&layer.w_q), block(&layer.w_k), block(&layer.w_v));
            let bias = |b: &[f32]| b[h * d..(h + 1) * d].to_vec();
            let q: Vec<Vec<f64>> = qk_in
                .iter()
                .map(|x| vec_mat(x, &wq, Some(&bias(&layer.b_q)), d))
                .collect();
            let k: Vec<Vec<f64>> = qk_in
                .iter()
                .map(|x| vec_mat(x, &wk, Some(&bias(&layer.b_k)), d))
                .collect();
            let v: Vec<Vec<f64>> = normed
                .iter()
                .map(|x| vec_mat(x, &wv, Some(&bias(&layer.b_v)), d))
                .collect();
            let w_o = head_block(&layer.w_o, h, d, m);
            let mut result: Vec<Vec<f64>> = (0..seq)
                .map(|i| {
                    let scores: Vec<f64> = (0..=i)
                        .map(|j| {
                            q[i].iter().zip(&k[j]).map(|(a, b)| a * b).sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let exp: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = exp.iter().sum();
                    let mut z = vec![0.0; d];
                    for (j, e) in exp.iter().enumerate() {
                        for (zi, vj) in z.iter_mut().zip(&v[j]) {
                            *zi += e / total * vj;
                        }
                    }
                    vec_mat(&z, w_o, None, m)
                })
                .collect();
            let id = HeadId { layer: li, head: h };
            match ablation {
                Ablation::HeadZero(a) if a == id => result.iter_mut().for_each(|r| r.fill(0.0)),
                Ablation::HeadMean(a) if a == id => {
                    let mean: Vec<f64> = (0..m)
                        .map(|j| result.iter().map(|r| r[j]).sum::<f64>() / seq as f64)
                        .collect();
                    result.iter_mut().for_each(|r| r.copy_from_slice(&mean));
                }
                _ => {}
            }
            for (dl, r) in delta.iter_mut().zip(&result) {
                dl.iter_mut().zip(r).for_each(|(a, b)| *a += b);
            }
        }
        for (x, dl) in resid.iter_mut().zip(&delta) {
            for ((xi, di), &b) in x.iter_mut().zip(dl).zip(&layer.b_o) {
                *xi += di + b as f64;
            }
        }
    }
    if matches!(ablation, Ablation::DirectZero | Ablation::DirectMean) {
        let mean: Vec<f64> = (0..m)
            .map(|j| x0.iter().map(|r| r[j]).sum::<f64>() / seq as f64)
            .collect();
        for (x, e) in resid.iter_mut().zip(&x0) {
            for j in 0..m {
                x[j] -= e[j];
                if ablation == Ablation::DirectMean {
                    x[j] += mean[j];
                }
            }
        }
    }
    resid
        .iter()
        .map(|x| {
            let f = match &p.ln_final {
                Some(ln) => layer_norm(x, ln, eps),
                None => x.clone(),
            };
            vec_mat(&f, &p.w_u, Some(&p.b_u), c.d_vocab)
        })
        .collect()
}

/// Mean next-token cross-entropy (TransformerLens' `return_type="loss"`): position `i`
/// predicts token `i + 1`. `logits`: `[seq, d_vocab]`.
pub fn loss(logits: &[Vec<f64>], tokens: &[u32]) -> f64 {
    let n = tokens.len() - 1;
    (0..n)
        .map(|i| {
            let row = &logits[i];
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - row[tokens[i + 1] as usize]
        })
        .sum::<f64>()
        / n as f64
}

/// Losses of `tinylens ablate`.
pub struct AblationReport {
    /// The clean loss.
    pub clean: f64,
    /// Per head (`layer * n_heads + head`), zero-ablated.
    pub zero: Vec<f64>,
    /// Per head, mean-ablated.
    pub mean: Vec<f64>,
    /// The direct path zero-ablated.
    pub direct_zero: f64,
    /// The direct path mean-ablated.
    pub direct_mean: f64,
}

/// Ablates every head and the direct path on `tokens` (at least two tokens).
pub fn ablate(p: &Params, tokens: &[u32]) -> Result<AblationReport> {
    if tokens.len() < 2 {
        bail!("ablation needs at least 2 tokens: the loss is over next-token predictions");
    }
    let l = |a| loss(&forward(p, tokens, a), tokens);
    let heads = HeadId::all(&p.config);
    Ok(AblationReport {
        clean: l(Ablation::None),
        zero: heads.iter().map(|&h| l(Ablation::HeadZero(h))).collect(),
        mean: heads.iter().map(|&h| l(Ablation::HeadMean(h))).collect(),
        direct_zero: l(Ablation::DirectZero),
        direct_mean: l(Ablation::DirectMean),
    })
}

/// Prints the table, most important term first (largest zero-ablation loss increase).
pub fn print_ablation(p: &Params, r: &AblationReport) {
    println!("clean loss {:.4} (mean next-token cross-entropy)", r.clean);
    println!(
        "  {:<12} | {:>10} {:>9} | {:>10} {:>9}",
        "term", "zero loss", "change", "mean loss", "change"
    );
    let mut rows: Vec<(String, f64, f64)> = HeadId::all(&p.config)
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("head {id}"), r.zero[i], r.mean[i]))
        .collect();
    rows.push(("direct path".into(), r.direct_zero, r.direct_mean));
    rows.sort_by(|a, b| (b.1 - r.clean).total_cmp(&(a.1 - r.clean)));
    for (name, z, m) in rows {
        println!(
            "  {name:<12} | {z:>10.4} {:>+9.4} | {m:>10.4} {:>+9.4}",
            z - r.clean,
            m - r.clean
        );
    }
}

/// The tensors of `ablate --out` (named as the TransformerLens fixture names them).
pub fn ablation_tensors(p: &Params, r: &AblationReport, tokens: &[u32]) -> Vec<Named> {
    let (l, h) = (p.config.n_layers, p.config.n_heads);
    let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    vec![
        Named::new(
            "ablate.tokens",
            vec![tokens.len()],
            tokens.iter().map(|&t| t as f32).collect(),
        ),
        Named::new("ablate.loss_clean", vec![1], vec![r.clean as f32]),
        Named::new("ablate.zero", vec![l, h], f(&r.zero)),
        Named::new("ablate.mean", vec![l, h], f(&r.mean)),
        Named::new("ablate.direct_zero", vec![1], vec![r.direct_zero as f32]),
        Named::new("ablate.direct_mean", vec![1], vec![r.direct_mean as f32]),
    ]
}
