//! `tinylens validate`: the kernel running a blob against the independent f64 reference
//! running the checkpoint, on the same token sequences. Prints the largest difference per
//! tensor, top-1 agreement and mean KL divergence, and fails past the thresholds below.

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tinylens::{Model, NumberFormat};

use crate::params::Params;
use crate::reference::{Activations, Reference};
use crate::report::probabilities;
use crate::trace::{trace, Trace};

/// The default tolerances, in one place. Logit-like quantities of the `f32` format are
/// compared relative to the logit scale: `|kernel - reference| <= LOGIT * max(1, max
/// |reference logit|)`.
pub mod tolerance {
    /// `f32`: logits, residual stream, head results and every attribution term (relative to
    /// scale).
    pub const LOGIT: f64 = 1e-4;
    /// `f32`: attention patterns, the floor (absolute: they are probabilities). The tolerance
    /// grows with the largest attention score, see [`PATTERN_EPS_FACTOR`].
    pub const PATTERN: f64 = 1e-5;
    /// `f32`: the pattern tolerance is at least `PATTERN_EPS_FACTOR * f32::EPSILON * S`, `S`
    /// the largest |attention score| of the reference: a score computed in `f32` is off by
    /// some units of `EPSILON * S`, and the softmax passes at most twice that to the pattern.
    pub const PATTERN_EPS_FACTOR: f64 = 32.0;
    /// `f32`: fraction of positions whose top-1 token must agree.
    pub const TOP1: f64 = 0.999;
    /// `f32`: mean KL(reference || kernel) over positions, in nats.
    pub const MEAN_KL: f64 = 1e-6;
    /// A position is clear when the reference's top-2 gap is at least this fraction of the
    /// position's logit range: there a quantized format has no near-tie to excuse a
    /// different choice.
    pub const CLEAR_GAP: f64 = 0.02;
}

/// What `validate` holds a blob to: the `f32` format to what `f32` arithmetic gives, the
/// quantized ones to what a correct blob of their format gives (measured on the project's
/// models, with room), far from what a wrong blob gives. Printed beside each figure;
/// `--tolerance NAME=VALUE` overrides one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    /// `f32`: every tensor's largest difference, relative to its scale (`logit`).
    pub logit: f64,
    /// `f32`: attention patterns, the floor (`pattern`).
    pub pattern: f64,
    /// `f32`: top-1 agreement over every position (`top1`).
    pub top1: f64,
    /// Every format: mean KL(reference || kernel) (`kl`).
    pub mean_kl: f64,
    /// Quantized: top-1 agreement at clear positions (`clear-top1`).
    pub clear_top1: f64,
    /// Quantized: largest |logit difference| / logit range (`logit-range`).
    pub logit_range: f64,
    /// Quantized: largest |per-head attribution difference| / logit range (`attr-range`).
    pub attr_range: f64,
}

impl Tolerances {
    /// The names `--tolerance` accepts.
    pub const NAMES: [&'static str; 7] = [
        "logit",
        "pattern",
        "top1",
        "kl",
        "clear-top1",
        "logit-range",
        "attr-range",
    ];

    /// The defaults of a number format.
    pub fn for_format(format: NumberFormat) -> Tolerances {
        let f32 = Tolerances {
            logit: tolerance::LOGIT,
            pattern: tolerance::PATTERN,
            top1: tolerance::TOP1,
            mean_kl: tolerance::MEAN_KL,
            clear_top1: 1.0,
            logit_range: 0.0,
            attr_range: 0.0,
        };
        match format {
            NumberFormat::F32 => f32,
            // The project's models and fixtures, quantized, measure at worst: clear top-1
            // 0.992, mean KL 2.9e-3, logit error 5.2% and attribution error 6.0% of the range
            // (`int`); the `i8` formats do better. Twice the measured errors and more, and a
            // wrong weight is past them.
            NumberFormat::Int => Tolerances {
                clear_top1: 0.97,
                mean_kl: 2e-2,
                logit_range: 0.15,
                attr_range: 0.15,
                ..f32
            },
            _ => Tolerances {
                clear_top1: 0.98,
                mean_kl: 1e-2,
                logit_range: 0.10,
                attr_range: 0.10,
                ..f32
            },
        }
    }

    /// Applies `NAME=VALUE` overrides.
    pub fn with_overrides(mut self, overrides: &[String]) -> Result<Tolerances> {
        for o in overrides {
            let Some((name, value)) = o.split_once('=') else {
                bail!(
                    "--tolerance {o:?}: expected NAME=VALUE, NAME one of {}",
                    Self::NAMES.join(", ")
                );
            };
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    anyhow::anyhow!("--tolerance {o:?}: the value must be a non-negative number")
                })?;
            let slot = match name.trim() {
                "logit" => &mut self.logit,
                "pattern" => &mut self.pattern,
                "top1" => &mut self.top1,
                "kl" => &mut self.mean_kl,
                "clear-top1" => &mut self.clear_top1,
                "logit-range" => &mut self.logit_range,
                "attr-range" => &mut self.attr_range,
                other => bail!(
                    "--tolerance {other:?} is not a tolerance: expected one of {}",
                    Self::NAMES.join(", ")
                ),
            };
            *slot = value;
        }
        Ok(self)
    }
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
    /// What the blob is held to.
    pub tolerances: Tolerances,
    /// Max - min of the reference logits over every position.
    pub logit_range: f64,
    /// Largest |kernel - reference| logit.
    pub max_dlogit: f64,
    /// Largest |kernel - reference| per-head attribution term (`dla.heads`).
    pub max_dhead: f64,
    /// Largest |attention score| (`q k / sqrt(d_head)`) of the reference.
    pub max_score: f64,
    /// The pattern tolerance of the `f32` format on this model.
    pub pattern_tolerance: f64,
    /// One row per tensor.
    pub rows: Vec<Row>,
    /// Sequences run.
    pub sequences: usize,
    /// Positions compared.
    pub positions: usize,
    /// Fraction of positions where kernel and reference agree on the top token.
    pub top1: f64,
    /// The same over positions whose reference top-2 gap is at least
    /// [`tolerance::CLEAR_GAP`] of their logit range (1 when there is none).
    pub top1_clear: f64,
    /// Positions counted by `top1_clear`.
    pub clear_positions: usize,
    /// Mean KL(reference || kernel) over positions.
    pub mean_kl: f64,
}

/// One line of the table: a measure, its figure, its limit, and whether it holds.
struct Check {
    name: &'static str,
    value: f64,
    limit: f64,
    at_least: bool,
}

impl Check {
    fn ok(&self) -> bool {
        if self.at_least {
            self.value >= self.limit
        } else {
            self.value <= self.limit
        }
    }
}

impl Report {
    /// Max |d logit| as a fraction of the logit range.
    pub fn logit_error(&self) -> f64 {
        self.max_dlogit / self.logit_range.max(1e-12)
    }

    /// Max |d head attribution| as a fraction of the logit range.
    pub fn attr_error(&self) -> f64 {
        self.max_dhead / self.logit_range.max(1e-12)
    }

    /// The measures the format is judged on, beside the per-tensor rows of `f32`.
    fn checks(&self) -> Vec<Check> {
        let t = &self.tolerances;
        let check = |name, value, limit, at_least| Check {
            name,
            value,
            limit,
            at_least,
        };
        if self.format.is_quantized() {
            vec![
                check(
                    "top-1 at clear positions",
                    self.top1_clear,
                    t.clear_top1,
                    true,
                ),
                check(
                    "mean KL(reference || kernel)",
                    self.mean_kl,
                    t.mean_kl,
                    false,
                ),
                check(
                    "max |d logit| / logit range",
                    self.logit_error(),
                    t.logit_range,
                    false,
                ),
                check(
                    "max |d head attr.| / logit range",
                    self.attr_error(),
                    t.attr_range,
                    false,
                ),
            ]
        } else {
            vec![
                check("top-1 agreement", self.top1, t.top1, true),
                check(
                    "mean KL(reference || kernel)",
                    self.mean_kl,
                    t.mean_kl,
                    false,
                ),
            ]
        }
    }

    /// Whether every measure of the format is within its tolerance (for `f32` also every
    /// tensor; for the quantized formats the per-tensor rows are measurements, not limits).
    pub fn passed(&self) -> bool {
        let rows_ok =
            self.format.is_quantized() || self.rows.iter().all(|r| r.max_abs <= r.tolerance);
        rows_ok && self.checks().iter().all(Check::ok)
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
        let yes = |ok: bool| if ok { "yes" } else { "NO" };
        for r in &self.rows {
            if quantized {
                println!("  {:<34} {:>12.3e} {:>12}  -", r.name, r.max_abs, "-");
            } else {
                println!(
                    "  {:<34} {:>12.3e} {:>12.3e}  {}",
                    r.name,
                    r.max_abs,
                    r.tolerance,
                    yes(r.max_abs <= r.tolerance)
                );
            }
        }
        for c in self.checks() {
            let limit = format!(
                "{} {}",
                if c.at_least { ">=" } else { "<=" },
                figure(c.limit)
            );
            println!(
                "  {:<34} {:>12} {:>12}  {}",
                c.name,
                figure(c.value),
                limit,
                yes(c.ok())
            );
        }
        if quantized {
            println!(
                "  {:<34} {:>12.4} {:>12}  -",
                "top-1 agreement, every position",
                self.top1,
                format!("({} pos.)", self.positions)
            );
            println!(
                "  (clear positions: {} of {}, top-2 gap >= {} of the position's logit range)",
                self.clear_positions,
                self.positions,
                tolerance::CLEAR_GAP
            );
        } else {
            println!(
                "  (pattern tolerance {:.3e} = max({:e}, {} x f32 eps x largest |attention score| {:.2}); \
                 others relative to each tensor's scale)",
                self.pattern_tolerance,
                self.tolerances.pattern,
                tolerance::PATTERN_EPS_FACTOR,
                self.max_score
            );
        }
        println!("{}", if self.passed() { "PASS" } else { "FAIL" });
    }
}

/// A figure for the table: four decimals in the everyday range, else scientific.
fn figure(v: f64) -> String {
    if v == 0.0 || (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

/// The largest |q . k| / sqrt(d_head) over every head and causal pair of a layer.
fn max_attention_score(q: &[f64], k: &[f64], seq: usize, n_heads: usize, d_head: usize) -> f64 {
    let scale = 1.0 / (d_head as f64).sqrt();
    let mut max = 0.0f64;
    for h in 0..n_heads {
        for i in 0..seq {
            let qi = &q[(i * n_heads + h) * d_head..][..d_head];
            for j in 0..=i {
                let kj = &k[(j * n_heads + h) * d_head..][..d_head];
                let s: f64 = qi.iter().zip(kj).map(|(a, b)| a * b).sum();
                max = max.max((s * scale).abs());
            }
        }
    }
    max
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

/// Runs kernel and reference on every sequence and measures their differences, held to the
/// format's default tolerances.
pub fn validate(params: &Params, model: &Model<'_>, sequences: &[Vec<u32>]) -> Result<Report> {
    validate_with(
        params,
        model,
        sequences,
        Tolerances::for_format(model.format()),
    )
}

/// [`validate`] held to `tolerances`.
pub fn validate_with(
    params: &Params,
    model: &Model<'_>,
    sequences: &[Vec<u32>],
    tolerances: Tolerances,
) -> Result<Report> {
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
    let mut max_score = 0.0f64;
    for tokens in sequences {
        let k: Trace = trace(model, tokens)?;
        let r: Activations = reference.forward(tokens)?;
        lo = r.logits.iter().copied().fold(lo, f64::min);
        hi = r.logits.iter().copied().fold(hi, f64::max);
        max_dlogit = max_dlogit.max(max_abs(&k.logits, &r.logits).unwrap_or(0.0));
        max_dhead = max_dhead.max(max_abs(&k.dla_heads, &r.dla_heads).unwrap_or(0.0));
        let scale = r.logits.iter().fold(1.0f64, |a, b| a.max(b.abs()));
        let logit_tol = tolerances.logit * scale;
        record("logits".into(), max_abs(&k.logits, &r.logits), logit_tol);
        for (l, layer) in r.layers.iter().enumerate() {
            let resid_scale = layer.resid_post.iter().fold(1.0f64, |a, b| a.max(b.abs()));
            let tol = tolerances.logit * resid_scale;
            max_score = max_score.max(max_attention_score(
                &layer.q,
                &layer.k,
                tokens.len(),
                cfg.n_heads,
                cfg.d_head,
            ));
            record(
                format!("blocks.{l}.attn.hook_pattern"),
                max_abs(&k.pattern[l], &layer.pattern),
                // Set below, from the largest score of every sequence.
                0.0,
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
            if rl[r_top] - second >= tolerance::CLEAR_GAP * (hi_p - lo_p) {
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
    let pattern_tolerance = tolerances
        .pattern
        .max(tolerance::PATTERN_EPS_FACTOR * f32::EPSILON as f64 * max_score);
    for r in rows.iter_mut().filter(|r| r.name.ends_with("hook_pattern")) {
        r.tolerance = pattern_tolerance;
    }
    Ok(Report {
        format: model.format(),
        tolerances,
        max_score,
        pattern_tolerance,
        logit_range: (hi - lo).max(0.0),
        max_dlogit,
        max_dhead,
        rows,
        sequences: sequences.len(),
        positions,
        top1: agree as f64 / positions.max(1) as f64,
        // No clear position: nothing to disagree on.
        top1_clear: if clear == 0 {
            1.0
        } else {
            clear_agree as f64 / clear as f64
        },
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
