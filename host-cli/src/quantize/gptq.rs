//! Error-compensating rounding (GPTQ, Frantar et al. 2022): a matrix `W` `[d_in, d_out]` that
//! multiplies activations `x` is rounded one input row at a time, and the rounding error of
//! row `i` is pushed onto the rows not yet rounded, weighted by how the inputs co-vary, so
//! that `x W` (not `W` itself) stays as close as it can to the float product. The statistics
//! are `H = X^T X` over calibration activations; the scales are fixed beforehand (absmax per
//! column or block, as round-to-nearest chooses them), so the blob layout does not change.
//!
//! The plain version is round-to-nearest, `q = round(w / s)` ([`super::quantize_matrix`]):
//! with `H = I` (uncorrelated inputs of equal size) this function computes exactly that.

/// A symmetric `n x n` matrix, row-major, in `f64`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gram {
    pub n: usize,
    pub a: Vec<f64>,
    /// How many activation rows were added.
    pub count: usize,
}

impl Gram {
    /// The zero matrix.
    pub fn new(n: usize) -> Gram {
        Gram {
            n,
            a: vec![0.0; n * n],
            count: 0,
        }
    }

    /// `H += x^T x` for one activation row `x` `[n]`.
    pub fn add(&mut self, x: &[f64]) {
        debug_assert_eq!(x.len(), self.n);
        for (i, &xi) in x.iter().enumerate() {
            if xi == 0.0 {
                continue;
            }
            let row = &mut self.a[i * self.n..][..self.n];
            for (r, &xj) in row.iter_mut().zip(x) {
                *r += xi * xj;
            }
        }
        self.count += 1;
    }
}

/// GPTQ's dampening: `H + DAMP * mean(diag H) * I`, so that an input that barely varies over
/// the calibration set does not get an unbounded share of the error.
pub const DAMP: f64 = 0.01;

/// The upper Cholesky factor `U` of `H^-1` (`H^-1 = U^T U`), after dampening. An input that
/// never varied (zero diagonal) gets a unit diagonal: its row is rounded to nearest.
fn inverse_cholesky(h: &Gram) -> Option<Vec<f64>> {
    let n = h.n;
    let mut a = h.a.clone();
    let mean = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n as f64;
    let damp = DAMP * if mean > 0.0 { mean } else { 1.0 };
    for i in 0..n {
        if a[i * n + i] <= 0.0 {
            a[i * n + i] = 1.0;
        }
        a[i * n + i] += damp;
    }
    // H = L L^T
    let l = cholesky(&a, n)?;
    // H^-1 = L^-T L^-1: invert L (lower triangular), then form the product.
    let mut li = vec![0.0; n * n];
    for j in 0..n {
        li[j * n + j] = 1.0 / l[j * n + j];
        for i in j + 1..n {
            let s: f64 = (j..i).map(|k| l[i * n + k] * li[k * n + j]).sum();
            li[i * n + j] = -s / l[i * n + i];
        }
    }
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (i..n).map(|k| li[k * n + i] * li[k * n + j]).sum();
            inv[i * n + j] = s;
            inv[j * n + i] = s;
        }
    }
    // H^-1 = U^T U with U upper: U^T is the lower Cholesky factor of H^-1.
    let lower = cholesky(&inv, n)?;
    let mut u = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            u[j * n + i] = lower[i * n + j];
        }
    }
    Some(u)
}

/// The lower Cholesky factor of a symmetric positive definite `a` `[n, n]`.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Rounds `w` `[d_in, d_out]` (row-major, `d_in = h.n`) to int8 with the scale of element
/// `(i, j)` at `scale(i * d_out + j)`, compensating each row's error on the rows rounded
/// after it through `h`. Falls back to round-to-nearest when `h` is not positive definite.
pub fn round(w: &[f32], d_out: usize, h: &Gram, scale: impl Fn(usize) -> f64) -> Vec<i8> {
    // GPTQ's "act order": the rows whose inputs are largest first, so that their errors have
    // the most rows left to land on.
    let n = h.n;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| h.a[b * n + b].total_cmp(&h.a[a * n + a]));
    let mut hp = Gram::new(n);
    for (i, &oi) in order.iter().enumerate() {
        for (j, &oj) in order.iter().enumerate() {
            hp.a[i * n + j] = h.a[oi * n + oj];
        }
    }
    let wp: Vec<f32> = order
        .iter()
        .flat_map(|&o| w[o * d_out..][..d_out].iter().copied())
        .collect();
    let qp = round_in_order(&wp, d_out, &hp, |k| {
        scale(order[k / d_out] * d_out + k % d_out)
    });
    let mut q = vec![0i8; w.len()];
    for (i, &o) in order.iter().enumerate() {
        q[o * d_out..][..d_out].copy_from_slice(&qp[i * d_out..][..d_out]);
    }
    q
}

/// [`round`] with the rows in their own order.
fn round_in_order(w: &[f32], d_out: usize, h: &Gram, scale: impl Fn(usize) -> f64) -> Vec<i8> {
    let n = h.n;
    debug_assert_eq!(w.len(), n * d_out);
    let nearest = |v: f64, s: f64| (v / s).round().clamp(-127.0, 127.0);
    let Some(u) = inverse_cholesky(h) else {
        return w
            .iter()
            .enumerate()
            .map(|(k, &v)| nearest(v as f64, scale(k)) as i8)
            .collect();
    };
    let mut w: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    let mut q = vec![0i8; w.len()];
    let mut err = vec![0.0; d_out];
    for i in 0..n {
        let d = u[i * n + i];
        for (j, e) in err.iter_mut().enumerate() {
            let k = i * d_out + j;
            let s = scale(k);
            let r = nearest(w[k], s);
            q[k] = r as i8;
            *e = (w[k] - r * s) / d;
        }
        for later in i + 1..n {
            let f = u[i * n + later];
            if f == 0.0 {
                continue;
            }
            let row = &mut w[later * d_out..][..d_out];
            for (x, e) in row.iter_mut().zip(&err) {
                *x -= f * e;
            }
        }
    }
    q
}

/// `sum over rows x of |x (W - Q S)|^2` through the statistics: `tr(E^T H E)` with
/// `E = W - Q S` `[d_in, d_out]`. What [`round`] minimizes, greedily.
pub fn output_error(
    w: &[f32],
    q: &[i8],
    d_out: usize,
    h: &Gram,
    scale: impl Fn(usize) -> f64,
) -> f64 {
    let n = h.n;
    let e: Vec<f64> = (0..w.len())
        .map(|k| w[k] as f64 - q[k] as f64 * scale(k))
        .collect();
    let mut total = 0.0;
    for j in 0..d_out {
        for a in 0..n {
            let ea = e[a * d_out + j];
            if ea == 0.0 {
                continue;
            }
            let s: f64 = (0..n).map(|b| h.a[a * n + b] * e[b * d_out + j]).sum();
            total += ea * s;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::SplitMix;

    fn random(n: usize, rng: &mut SplitMix) -> Vec<f64> {
        (0..n).map(|_| rng.unit() * 2.0 - 1.0).collect()
    }

    #[test]
    fn with_uncorrelated_inputs_it_is_round_to_nearest() {
        let mut rng = SplitMix(1);
        let (n, d_out) = (8, 5);
        let w: Vec<f32> = random(n * d_out, &mut rng)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let mut h = Gram::new(n);
        for i in 0..n {
            h.a[i * n + i] = 3.0;
        }
        let s = 1.0 / 127.0;
        let q = round(&w, d_out, &h, |_| s);
        let nearest: Vec<i8> = w.iter().map(|&v| (v as f64 / s).round() as i8).collect();
        assert_eq!(q, nearest);
    }

    #[test]
    fn on_correlated_inputs_the_output_error_is_smaller_than_round_to_nearest() {
        let mut rng = SplitMix(7);
        let (n, d_out) = (16, 12);
        // Inputs with shared factors, so their columns co-vary.
        let mut h = Gram::new(n);
        for _ in 0..400 {
            let f = random(3, &mut rng);
            let x: Vec<f64> = (0..n)
                .map(|i| f[i % 3] + 0.3 * (rng.unit() - 0.5) + 0.1 * f[(i + 1) % 3])
                .collect();
            h.add(&x);
        }
        let w: Vec<f32> = random(n * d_out, &mut rng)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let s = 0.02;
        let nearest: Vec<i8> = w.iter().map(|&v| (v as f64 / s).round() as i8).collect();
        let q = round(&w, d_out, &h, |_| s);
        let (e_rtn, e_gptq) = (
            output_error(&w, &nearest, d_out, &h, |_| s),
            output_error(&w, &q, d_out, &h, |_| s),
        );
        assert!(e_gptq < 0.7 * e_rtn, "GPTQ {e_gptq} vs nearest {e_rtn}");
    }

    #[test]
    fn the_inverse_factor_reproduces_the_inverse() {
        let mut rng = SplitMix(3);
        let n = 6;
        let mut h = Gram::new(n);
        for _ in 0..50 {
            h.add(&random(n, &mut rng));
        }
        let u = inverse_cholesky(&h).unwrap();
        // (U^T U) (H + damp I) = I
        let mean = (0..n).map(|i| h.a[i * n + i]).sum::<f64>() / n as f64;
        let mut hd = h.a.clone();
        (0..n).for_each(|i| hd[i * n + i] += DAMP * mean);
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n)
                    .map(|k| {
                        let inv_ik: f64 = (0..n).map(|m| u[m * n + i] * u[m * n + k]).sum();
                        inv_ik * hd[k * n + j]
                    })
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-9, "({i},{j}) = {v}");
            }
        }
    }
}
