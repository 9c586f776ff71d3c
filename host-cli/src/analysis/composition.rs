//! Q-, K- and V-composition: how much a later head reads what an earlier head writes,
//! `||A B||_F / (||A||_F ||B||_F)` with `A` the earlier head's OV matrix `W_V W_O` and `B` the
//! later head's `W_Q W_K^T` (Q), `W_K W_Q^T` (K) or `W_V W_O` (V), all `[d_model, d_model]`, as
//! TransformerLens' `all_composition_scores` computes them (raw weights, row-vector
//! orientation).
//!
//! Every matrix here has rank `d_head`, so the norms are computed in the `d_head` space:
//! for `A = A1 A2`, `B = B1 B2` (`A1`, `B1`: `[d_model, d_head]`),
//! `||A B||_F^2 = tr(M^T (A1^T A1) M (B2 B2^T))` with `M = A2 B1` (`[d_head, d_head]`), and
//! `||A||_F^2 = tr((A1^T A1)(A2 A2^T))`. [`composition_score_dense`] is the plain reference.

use super::{head_block, transpose, HeadId, SplitMix};
use crate::params::Params;

/// A `[d_model, d_model]` matrix of rank `d_head`, `left @ right`, with its Gram matrices.
#[derive(Clone, Debug)]
pub struct LowRank {
    /// `[d_model, d_head]`
    pub left: Vec<f64>,
    /// `[d_head, d_model]`
    pub right: Vec<f64>,
    /// `d_model`
    pub m: usize,
    /// `d_head`
    pub d: usize,
    /// `left^T left`: `[d_head, d_head]`
    gram_left: Vec<f64>,
    /// `right right^T`: `[d_head, d_head]`
    gram_right: Vec<f64>,
}

/// `x^T y` for `x`, `y`: `[n, d]` -> `[d, d]`.
fn gram(x: &[f64], y: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut g = vec![0.0; d * d];
    for r in 0..n {
        let (xr, yr) = (&x[r * d..(r + 1) * d], &y[r * d..(r + 1) * d]);
        for i in 0..d {
            for j in 0..d {
                g[i * d + j] += xr[i] * yr[j];
            }
        }
    }
    g
}

/// `a @ b` in f64: `[n, k] @ [k, m]`.
fn mm(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for p in 0..k {
            let aip = a[i * k + p];
            for j in 0..m {
                out[i * m + j] += aip * b[p * m + j];
            }
        }
    }
    out
}

/// `tr(x y)` for square `[d, d]` matrices.
fn trace_of_product(x: &[f64], y: &[f64], d: usize) -> f64 {
    (0..d)
        .map(|i| (0..d).map(|j| x[i * d + j] * y[j * d + i]).sum::<f64>())
        .sum()
}

impl LowRank {
    /// `left @ right` from `f32` weights: `left` `[m, d]`, `right` `[d, m]`.
    pub fn new(left: &[f32], right: &[f32], m: usize, d: usize) -> LowRank {
        let left: Vec<f64> = left.iter().map(|&x| x as f64).collect();
        let right: Vec<f64> = right.iter().map(|&x| x as f64).collect();
        let right_t = transpose_f64(&right, d, m);
        LowRank {
            gram_left: gram(&left, &left, m, d),
            gram_right: gram(&right_t, &right_t, m, d),
            left,
            right,
            m,
            d,
        }
    }

    /// `||left @ right||_F`
    pub fn norm(&self) -> f64 {
        trace_of_product(&self.gram_left, &self.gram_right, self.d)
            .max(0.0)
            .sqrt()
    }

    /// The dense `[m, m]` matrix (reference only).
    pub fn dense(&self) -> Vec<f64> {
        mm(&self.left, &self.right, self.m, self.d, self.m)
    }
}

fn transpose_f64(a: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            out[j * n + i] = a[i * m + j];
        }
    }
    out
}

/// The composition score `||A B||_F / (||A||_F ||B||_F)`, factored (see the module docs).
pub fn composition_score(a: &LowRank, b: &LowRank) -> f64 {
    let d = a.d;
    let mid = mm(&a.right, &b.left, d, a.m, b.d); // M = A2 B1: [d, d]
    let inner = mm(
        &transpose_f64(&mid, d, d),
        &mm(&a.gram_left, &mid, d, d, d),
        d,
        d,
        d,
    );
    let ab = trace_of_product(&inner, &b.gram_right, d).max(0.0).sqrt();
    ab / (a.norm() * b.norm())
}

/// The plain reference: dense `[m, m]` products and Frobenius norms.
pub fn composition_score_dense(a: &[f64], b: &[f64], m: usize) -> f64 {
    let fro = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
    fro(&mm(a, b, m, m, m)) / (fro(a) * fro(b))
}

/// Which matrix of the later head the earlier head's output is read by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Queries: `B = W_Q W_K^T`.
    Q,
    /// Keys: `B = W_K W_Q^T`.
    K,
    /// Values: `B = W_V W_O`.
    V,
}

impl Mode {
    /// All three, in TransformerLens' order.
    pub const ALL: [Mode; 3] = [Mode::Q, Mode::K, Mode::V];

    /// "Q", "K" or "V".
    pub fn name(self) -> &'static str {
        match self {
            Mode::Q => "Q",
            Mode::K => "K",
            Mode::V => "V",
        }
    }
}

/// `W_V W_O` of a head (TransformerLens' `model.OV`).
pub fn ov(p: &Params, id: HeadId) -> LowRank {
    let (m, d) = (p.config.d_model, p.config.d_head);
    let l = &p.layers[id.layer];
    LowRank::new(
        head_block(&l.w_v, id.head, m, d),
        head_block(&l.w_o, id.head, d, m),
        m,
        d,
    )
}

/// `W_Q W_K^T` of a head (`model.QK`), or its transpose for K-composition.
pub fn qk(p: &Params, id: HeadId, transposed: bool) -> LowRank {
    let (m, d) = (p.config.d_model, p.config.d_head);
    let l = &p.layers[id.layer];
    let (wq, wk) = (
        head_block(&l.w_q, id.head, m, d),
        head_block(&l.w_k, id.head, m, d),
    );
    if transposed {
        LowRank::new(wk, &transpose(wq, m, d), m, d)
    } else {
        LowRank::new(wq, &transpose(wk, m, d), m, d)
    }
}

/// `model.all_composition_scores(mode)`: `[n_layers, n_heads, n_layers, n_heads]`, entry
/// `[l1, h1, l2, h2]` the score of earlier head `l1.h1` into later head `l2.h2`, zero unless
/// `l1 < l2`.
pub fn all_composition_scores(p: &Params, mode: Mode) -> Vec<f32> {
    let c = &p.config;
    let (l, h) = (c.n_layers, c.n_heads);
    let heads = HeadId::all(c);
    let ovs: Vec<LowRank> = heads.iter().map(|&id| ov(p, id)).collect();
    let readers: Vec<LowRank> = heads
        .iter()
        .map(|&id| match mode {
            Mode::Q => qk(p, id, false),
            Mode::K => qk(p, id, true),
            Mode::V => ov(p, id),
        })
        .collect();
    let mut out = vec![0.0f32; l * h * l * h];
    for (i, a) in heads.iter().enumerate() {
        for (j, b) in heads.iter().enumerate() {
            if a.layer < b.layer {
                out[i * l * h + j] = composition_score(&ovs[i], &readers[j]) as f32;
            }
        }
    }
    out
}

/// The score of two random heads of this shape (entries i.i.d. normal), averaged over
/// `samples` pairs: what composition looks like by chance, about `1/sqrt(d_model)`.
pub fn random_baseline(d_model: usize, d_head: usize, samples: usize, seed: u64) -> f64 {
    let mut rng = SplitMix(seed);
    let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
    let mut total = 0.0;
    for _ in 0..samples {
        let a = LowRank::new(
            &random(d_model * d_head),
            &random(d_head * d_model),
            d_model,
            d_head,
        );
        let b = LowRank::new(
            &random(d_model * d_head),
            &random(d_head * d_model),
            d_model,
            d_head,
        );
        total += composition_score(&a, &b);
    }
    total / samples.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factored_score_equals_the_dense_reference() {
        let mut rng = SplitMix(5);
        let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        for (m, d) in [(8, 2), (16, 4), (12, 12)] {
            let a = LowRank::new(&random(m * d), &random(d * m), m, d);
            let b = LowRank::new(&random(m * d), &random(d * m), m, d);
            let dense = composition_score_dense(&a.dense(), &b.dense(), m);
            let factored = composition_score(&a, &b);
            assert!(
                (dense - factored).abs() < 1e-9,
                "{m}x{d}: {dense} vs {factored}"
            );
            let fro = a.dense().iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((a.norm() - fro).abs() < 1e-9 * fro);
        }
    }

    #[test]
    fn the_random_baseline_is_about_one_over_sqrt_d_model() {
        let b = random_baseline(64, 8, 32, 1);
        assert!((b - 1.0 / 8.0).abs() < 0.03, "{b}");
    }
}
