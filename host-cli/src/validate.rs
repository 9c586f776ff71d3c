//! `tinylens validate`: the kernel running a blob against the independent f64 reference
//! running the checkpoint, on the same token sequences. Prints the largest difference per
//! tensor, top-1 agreement and mean KL divergence, and fails past the thresholds below.

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tinylens::Model;

use crate::params::Params;
use crate::reference::{Activations, Reference};
use crate::report::probabilities;
use crate::trace::{trace, Trace};

/// Tolerances, in one place. Logit-like quantities are compared relative to the logit scale:
/// `|kernel - reference| <= LOGIT_TOL * max(1, max |reference logit|)`.
pub mod tolerance {
    /// Logits, residual stream, head results and every attribution term (relative to scale).
    pub const LOGIT: f64 = 1e-4;
    /// Attention patterns (absolute: they are probabilities).
    pub const PATTERN: f64 = 1e-5;
    /// Fraction of positions whose top-1 token must agree.
    pub const TOP1: f64 = 0.999;
    /// Mean KL(reference || kernel) over positions, in nats.
    pub const MEAN_KL: f64 = 1e-6;
    /// Quantized formats: the largest |kernel - reference| logit, as a fraction of the
    /// reference's logit range (max - min over every position).
    pub const QUANT_LOGIT_RANGE: f64 = 0.02;
    /// `i8` and `i8-block32`: fraction of positions whose top-1 token must agree.
    pub const TOP1_I8: f64 = 0.995;
    /// `int`: fraction of positions whose top-1 token must agree.
    pub const TOP1_INT: f64 = 0.99;
}

/// The largest difference of one tensor over every sequence.
#[derive(Clone, Debug)]
pub struct Row {
    /// Tensor name (TransformerLens hook name, or `dla.*`).
    pub name: String,
    /// Largest |kernel - reference|.
    pub max_abs: f64,
    /// The tolerance it is held to.
    pub tolerance: f64,
}

/// Everything `validate` measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// The blob's number format.
    pub format: tinylens::NumberFormat,
    /// Max - min of the reference logits over every position.
    pub logit_range: f64,
    /// Largest |kernel - reference| logit.
    pub max_dlogit: f64,
    /// Largest |kernel - reference| per-head attribution term (`dla.heads`).
    pub max_dhead: f64,
    /// One row per tensor.
    pub rows: Vec<Row>,
    /// Sequences run.
    pub sequences: usize,
    /// Positions compared.
    pub positions: usize,
    /// Fraction of positions where kernel and reference agree on the top token.
    pub top1: f64,
    /// The same over positions whose reference top-2 gap is at least 2% of their logit range.
    pub top1_clear: f64,
    /// Positions counted by `top1_clear`.
    pub clear_positions: usize,
    /// Mean KL(reference || kernel) over positions.
    pub mean_kl: f64,
}

impl Report {
    /// The top-1 agreement the format must reach.
    pub fn top1_goal(&self) -> f64 {
        match self.format {
            tinylens::NumberFormat::F32 => tolerance::TOP1,
            tinylens::NumberFormat::Int => tolerance::TOP1_INT,
            _ => tolerance::TOP1_I8,
        }
    }

    /// Whether every tensor, the top-1 agreement and the KL are within tolerance (`f32`), or
    /// the top-1 agreement and the largest logit error are within the goals of the quantized
    /// formats (their per-tensor rows are measurements, not limits).
    pub fn passed(&self) -> bool {
        if self.format.is_quantized() {
            self.top1 >= self.top1_goal()
                && self.max_dlogit <= tolerance::QUANT_LOGIT_RANGE * self.logit_range
        } else {
            self.rows.iter().all(|r| r.max_abs <= r.tolerance)
                && self.top1 >= tolerance::TOP1
                && self.mean_kl <= tolerance::MEAN_KL
        }
    }

    /// Prints the table.
    pub fn print(&self) {
        println!(
            "{} sequences, {} positions: kernel ({}) vs reference (f64)",
            self.sequences,
            self.positions,
            self.format.name()
        );
        let quantized = self.format.is_quantized();
        println!(
            "  {:<34} {:>12} {:>12}  ok",
            "tensor", "max |diff|", "tolerance"
        );
        for r in &self.rows {
            if quantized {
                println!("  {:<34} {:>12.3e} {:>12}  -", r.name, r.max_abs, "-");
                continue;
            }
            let ok = if r.max_abs <= r.tolerance {
                "yes"
            } else {
                "NO"
            };
            println!(
                "  {:<34} {:>12.3e} {:>12.3e}  {ok}",
                r.name, r.max_abs, r.tolerance
            );
        }
        if quantized {
            let rel = self.max_dlogit / self.logit_range.max(1e-12);
            println!(
                "  {:<34} {:>12.4} {:>12}  {}",
                "max |d logit| / logit range",
                rel,
                format!("<= {}", tolerance::QUANT_LOGIT_RANGE),
                if rel <= tolerance::QUANT_LOGIT_RANGE {
                    "yes"
                } else {
                    "NO"
                }
            );
            println!(
                "  {:<34} {:>12.4} {:>12}  -",
                "max |d head attr.| / logit range",
                self.max_dhead / self.logit_range.max(1e-12),
                "-"
            );
        }
        let goal = self.top1_goal();
        println!(
            "  {:<34} {:>12.4} {:>12}  {}",
            "top-1 agreement",
            self.top1,
            format!(">= {goal}"),
            if self.top1 >= goal { "yes" } else { "NO" }
        );
        if quantized {
            println!(
                "  {:<34} {:>12.4} {:>12}  -",
                "top-1, top-2 gap >= 2% of range",
                self.top1_clear,
                format!("({}/{} pos.)", self.clear_positions, self.positions)
            );
            println!(
                "  {:<34} {:>12.3e} {:>12}  -",
                "mean KL(reference || kernel)", self.mean_kl, "-"
            );
        } else {
            println!(
                "  {:<34} {:>12.3e} {:>12.3e}  {}",
                "mean KL(reference || kernel)",
                self.mean_kl,
                tolerance::MEAN_KL,
                if self.mean_kl <= tolerance::MEAN_KL {
                    "yes"
                } else {
                    "NO"
                }
            );
        }
        println!("{}", if self.passed() { "PASS" } else { "FAIL" });
    }
}

/// The largest |kernel - reference|, or `None` when the kernel's format does not record
/// the tensor (the `int` format's `z`, results and residual stream).
fn max_abs(kernel: &[f32], reference: &[f64]) -> Option<f64> {
    (!kernel.is_empty()).then(|| {
        kernel
            .iter()
            .zip(reference)
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0.0, f64::max)
    })
}

/// Runs kernel and reference on every sequence and measures their differences.
pub fn validate(params: &Params, model: &Model<'_>, sequences: &[Vec<u32>]) -> Result<Report> {
    let cfg = *model.config();
    if cfg != params.config {
        bail!(
            "the blob's config does not match the checkpoint's:\n  blob:       {:?}\n  checkpoint: {:?}",
            cfg,
            params.config
        );
    }
    let reference = Reference::new(params)?;
    let bar = ProgressBar::new(sequences.len() as u64).with_style(
        ProgressStyle::with_template("validating {bar:30} {pos}/{len} sequences")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut record = |name: String, diff: Option<f64>, tol: f64| match (
        rows.iter_mut().find(|r| r.name == name),
        diff,
    ) {
        (_, None) => {}
        (Some(r), Some(diff)) => r.max_abs = r.max_abs.max(diff),
        (None, Some(diff)) => rows.push(Row {
            name,
            max_abs: diff,
            tolerance: tol,
        }),
    };
    let (mut agree, mut positions, mut kl_sum) = (0usize, 0usize, 0.0f64);
    let (mut clear, mut clear_agree) = (0usize, 0usize);
    let (mut lo, mut hi, mut max_dlogit, mut max_dhead) = (f64::MAX, f64::MIN, 0.0f64, 0.0f64);
    for tokens in sequences {
        let k: Trace = trace(model, tokens)?;
        let r: Activations = reference.forward(tokens)?;
        lo = r.logits.iter().copied().fold(lo, f64::min);
        hi = r.logits.iter().copied().fold(hi, f64::max);
        max_dlogit = max_dlogit.max(max_abs(&k.logits, &r.logits).unwrap_or(0.0));
        max_dhead = max_dhead.max(max_abs(&k.dla_heads, &r.dla_heads).unwrap_or(0.0));
        let scale = r.logits.iter().fold(1.0f64, |a, b| a.max(b.abs()));
        let logit_tol = tolerance::LOGIT * scale;
        record("logits".into(), max_abs(&k.logits, &r.logits), logit_tol);
        for (l, layer) in r.layers.iter().enumerate() {
            let resid_scale = layer.resid_post.iter().fold(1.0f64, |a, b| a.max(b.abs()));
            let tol = tolerance::LOGIT * resid_scale;
            record(
                format!("blocks.{l}.attn.hook_pattern"),
                max_abs(&k.pattern[l], &layer.pattern),
                tolerance::PATTERN,
            );
            record(
                format!("blocks.{l}.attn.hook_z"),
                max_abs(&k.z[l], &layer.z),
                tol,
            );
            record(
                format!("blocks.{l}.attn.hook_result"),
                max_abs(&k.result[l], &layer.result),
                tol,
            );
            record(
                format!("blocks.{l}.hook_resid_post"),
                max_abs(&k.resid_post[l], &layer.resid_post),
                tol,
            );
        }
        record(
            "dla.direct_embed".into(),
            max_abs(&k.dla_direct_embed, &r.dla_direct_embed),
            logit_tol,
        );
        record(
            "dla.direct_pos".into(),
            max_abs(&k.dla_direct_pos, &r.dla_direct_pos),
            logit_tol,
        );
        record(
            "dla.heads".into(),
            max_abs(&k.dla_heads, &r.dla_heads),
            logit_tol,
        );
        record(
            "dla.bias_b_O".into(),
            max_abs(&k.dla_bias_b_o, &r.dla_bias_b_o),
            logit_tol,
        );
        let v = cfg.d_vocab;
        record(
            "dla.bias_const".into(),
            max_abs(&k.dla_bias_const, &r.dla_bias_const[..v]),
            logit_tol,
        );
        if let (Some(kt), Some(rt)) = (&k.dla_heads_tl, &r.dla_heads_tl) {
            record("dla.heads_tl".into(), max_abs(kt, rt), logit_tol);
        }
        for p in 0..tokens.len() {
            let kl = &k.logits[p * v..(p + 1) * v];
            let rl = &r.logits[p * v..(p + 1) * v];
            let k_top = crate::report::top_k(kl, 1)[0] as usize;
            let r_top = (0..v)
                .max_by(|&a, &b| rl[a].total_cmp(&rl[b]).then(b.cmp(&a)))
                .unwrap_or(0);
            agree += usize::from(k_top == r_top);
            // Positions whose reference top-2 gap is at least 2% of its logit range: where
            // a quantized format has no near-tie to excuse a different choice.
            let (lo_p, hi_p) = rl
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            let second = (0..v)
                .filter(|&i| i != r_top)
                .map(|i| rl[i])
                .fold(f64::MIN, f64::max);
            if rl[r_top] - second >= tolerance::QUANT_LOGIT_RANGE * (hi_p - lo_p) {
                clear += 1;
                clear_agree += usize::from(k_top == r_top);
            }
            let pk = probabilities(kl);
            let pr = softmax64(rl);
            kl_sum += pr
                .iter()
                .zip(&pk)
                .map(|(&p, &q)| {
                    if p > 0.0 {
                        p * (p / q.max(1e-300)).ln()
                    } else {
                        0.0
                    }
                })
                .sum::<f64>();
            positions += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Report {
        format: model.format(),
        logit_range: (hi - lo).max(0.0),
        max_dlogit,
        max_dhead,
        rows,
        sequences: sequences.len(),
        positions,
        top1: agree as f64 / positions.max(1) as f64,
        top1_clear: clear_agree as f64 / clear.max(1) as f64,
        clear_positions: clear,
        mean_kl: (kl_sum / positions.max(1) as f64).max(0.0),
    })
}

fn softmax64(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}
