//! `tinylens lens`: the logit lens. The residual stream after the embedding and after each
//! layer (TransformerLens `accumulated_resid`), put through the final LayerNorm and the
//! unembedding as if the model stopped there: what it would predict at each depth.
//!
//! The LayerNorm scale is each residual's own by default (the logit lens proper,
//! `model.ln_final(resid) @ W_U + b_U`, TransformerLens' `apply_ln_to_stack(...,
//! recompute_ln=True)`); `--scale final` divides every stage by the scale of the final residual
//! at that position instead (the cached `ln_final.hook_scale` TransformerLens'
//! `apply_ln_to_stack` uses by default). The two agree at the last stage, which is the model's
//! own output.

use anyhow::{bail, Result};
use tinylens::{Norm, NumberFormat, PosEmbed};

use crate::inputs::{token_arg, tokens_of, vocab_of};
use crate::params::Params;
use crate::report::top_k;
use crate::tokenize::show;
use crate::trace::{trace_for, Attribution, Trace};

/// The largest relative difference between the last stage of the lens and the model's logits
/// that counts as agreement.
pub const LAST_STAGE_TOLERANCE: f64 = 1e-4;

/// The logit lens: what the residual stream predicts after the embedding and after each layer.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: super::ModelInput,
    /// How many tokens to list per stage.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// A token to follow through the stages (its text, or its id): rank and logit at each.
    #[arg(long)]
    pub answer: Option<String>,
    /// Every position, not only the last.
    #[arg(long)]
    pub all_positions: bool,
    /// Whose LayerNorm scale divides each stage: its own, or the final residual's.
    #[arg(long, value_enum, default_value_t = Scale::Own)]
    pub scale: Scale,
}

/// Which LayerNorm scale a stage of the lens is divided by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// Each residual's own `sqrt(var + eps)`: the final LayerNorm applied to it afresh.
    Own,
    /// The final residual's at the same position: TransformerLens' cached `ln_final.hook_scale`.
    Final,
}

/// The lens of one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Lens {
    /// Sequence length.
    pub seq: usize,
    /// Tokens.
    pub d_vocab: usize,
    /// Per stage (the embedding, then after each layer): `[seq, d_vocab]` logits.
    pub stages: Vec<Vec<f64>>,
}

impl Lens {
    /// The logits of `stage` at `pos`: `[d_vocab]`.
    pub fn logits(&self, stage: usize, pos: usize) -> &[f64] {
        &self.stages[stage][pos * self.d_vocab..(pos + 1) * self.d_vocab]
    }
}

/// The residual stream after the embedding and after each layer, TransformerLens
/// `accumulated_resid` without `incl_mid`: `n_layers + 1` stages of `[seq, d_model]`. The first is
/// `W_E[t] + W_pos[p]` (`W_E[t]` alone for shortformer and no positions), the others the
/// trace's `hook_resid_post`.
pub fn accumulated_resid(params: &Params, tokens: &[u32], trace: &Trace) -> Result<Vec<Vec<f32>>> {
    let cfg = &params.config;
    let d = cfg.d_model;
    if trace.resid_post.len() != cfg.n_layers
        || trace.resid_post.iter().any(|r| r.len() != tokens.len() * d)
    {
        bail!("the trace does not hold the residual stream of every layer");
    }
    let mut embed = Vec::with_capacity(tokens.len() * d);
    for (p, &t) in tokens.iter().enumerate() {
        let row = &params.w_e[t as usize * d..][..d];
        match (&params.w_pos, cfg.pos) {
            (Some(w_pos), PosEmbed::Standard) => {
                embed.extend(row.iter().zip(&w_pos[p * d..][..d]).map(|(e, q)| e + q))
            }
            _ => embed.extend_from_slice(row),
        }
    }
    let mut stages = vec![embed];
    stages.extend(trace.resid_post.iter().cloned());
    Ok(stages)
}

/// The final LayerNorm's scale of `x`: `sqrt(var(x) + eps)` with the biased variance, or 1
/// without LayerNorm.
pub fn ln_scale(norm: Norm, x: &[f32]) -> f64 {
    match norm {
        Norm::None => 1.0,
        Norm::LayerNorm { eps } => {
            let n = x.len() as f64;
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            (var + eps as f64).sqrt()
        }
    }
}

/// `ln_final(x) @ W_U + b_U` with the LayerNorm divided by `scale`: centered, scaled, times
/// `w` plus `b` (straight into `W_U` without LayerNorm). `[d_vocab]`
pub fn unembed(params: &Params, x: &[f32], scale: f64) -> Vec<f64> {
    let cfg = &params.config;
    let (d, v) = (cfg.d_model, cfg.d_vocab);
    let normed: Vec<f64> = match &params.ln_final {
        Some(ln) => {
            let mean = x.iter().map(|&a| a as f64).sum::<f64>() / d as f64;
            x.iter()
                .zip(ln.w.iter().zip(&ln.b))
                .map(|(&a, (&w, &b))| (a as f64 - mean) / scale * w as f64 + b as f64)
                .collect()
        }
        None => x.iter().map(|&a| a as f64).collect(),
    };
    let mut out: Vec<f64> = params.b_u.iter().map(|&b| b as f64).collect();
    for (i, &n) in normed.iter().enumerate() {
        for (o, &w) in out.iter_mut().zip(&params.w_u[i * v..(i + 1) * v]) {
            *o += n * w as f64;
        }
    }
    out
}

/// The logit lens of a traced sequence: every stage at every position.
pub fn logit_lens(params: &Params, tokens: &[u32], trace: &Trace, scale: Scale) -> Result<Lens> {
    let cfg = &params.config;
    let d = cfg.d_model;
    let stages = accumulated_resid(params, tokens, trace)?;
    let last = &stages[stages.len() - 1];
    let lensed = stages
        .iter()
        .map(|stage| {
            (0..tokens.len())
                .flat_map(|p| {
                    let x = &stage[p * d..(p + 1) * d];
                    let s = match scale {
                        Scale::Own => ln_scale(cfg.norm, x),
                        Scale::Final => ln_scale(cfg.norm, &last[p * d..(p + 1) * d]),
                    };
                    unembed(params, x, s)
                })
                .collect()
        })
        .collect();
    Ok(Lens {
        seq: tokens.len(),
        d_vocab: cfg.d_vocab,
        stages: lensed,
    })
}

/// The largest difference between the lens' last stage and the model's logits over all
/// positions, relative to the largest logit magnitude.
pub fn last_stage_difference(lens: &Lens, logits: &[f32]) -> f64 {
    let last = &lens.stages[lens.stages.len() - 1];
    let diff = last
        .iter()
        .zip(logits)
        .map(|(&a, &b)| (a - b as f64).abs())
        .fold(0.0, f64::max);
    let size = logits.iter().map(|&b| (b as f64).abs()).fold(0.0, f64::max);
    diff / size.max(f64::MIN_POSITIVE)
}

/// The rank of `token` among `logits` (1 for the largest, the lowest id first among equals,
/// as `report::top_k`).
pub fn rank_of(logits: &[f64], token: u32) -> usize {
    let x = logits[token as usize];
    let above = logits
        .iter()
        .enumerate()
        .filter(|&(i, &y)| y > x || (y == x && i < token as usize))
        .count();
    above + 1
}

/// The name of stage `k`: the embedding, then after each layer.
fn stage_name(k: usize) -> String {
    match k {
        0 => "embed".to_string(),
        k => format!("layer {}", k - 1),
    }
}

/// The parameters the lens reads: the checkpoint's, or an `f32` blob's.
fn lens_params(loaded: &crate::blobio::LoadedModel) -> Result<Params> {
    let format = loaded.model()?.format();
    if loaded.params.is_none() && format != NumberFormat::F32 {
        bail!(
            "the logit lens reads f32 weights and the f32 residual stream; this blob is {}: \
             give the f32 blob or the checkpoint it was quantized from",
            format.name()
        );
    }
    loaded.params()
}

/// Prints the lens at position `pos`: one line per stage with the top tokens, and the answer's
/// rank and logit.
fn print_position(
    lens: &Lens,
    pos: usize,
    token: u32,
    vocab: Option<&[String]>,
    top: usize,
    answer: Option<u32>,
) {
    println!(
        "\nposition {pos} (token {}): what each stage predicts next",
        show(vocab, token)
    );
    match answer {
        Some(_) => println!("  {:<9} {:>5} {:>9}   top {top}", "stage", "rank", "logit"),
        None => println!("  {:<9} top {top}", "stage"),
    }
    for k in 0..lens.stages.len() {
        let logits = lens.logits(k, pos);
        let as_f32: Vec<f32> = logits.iter().map(|&x| x as f32).collect();
        let best: Vec<String> = top_k(&as_f32, top)
            .into_iter()
            .map(|id| format!("{} {:.3}", show(vocab, id), logits[id as usize]))
            .collect();
        match answer {
            Some(a) => println!(
                "  {:<9} {:>5} {:>9.3}   {}",
                stage_name(k),
                rank_of(logits, a),
                logits[a as usize],
                best.join("  ")
            ),
            None => println!("  {:<9} {}", stage_name(k), best.join("  ")),
        }
    }
}

/// `tinylens lens`.
pub fn run(args: Args) -> Result<()> {
    let loaded = args.model.load()?;
    let params = lens_params(&loaded)?;
    let model = loaded.model()?;
    let cfg = *model.config();
    if args.top == 0 || args.top > cfg.d_vocab {
        bail!(
            "--top {}: expected 1 to d_vocab = {}",
            args.top,
            cfg.d_vocab
        );
    }
    let vocab = vocab_of(&model);
    let answer = args
        .answer
        .as_deref()
        .map(|a| token_arg(&model, a, "--answer"))
        .transpose()?;
    let tokens = tokens_of(&model, &args.model.input())?;
    let trace = trace_for(&model, &tokens, Attribution::Off)?;
    let lens = logit_lens(&params, &tokens, &trace, args.scale)?;
    println!(
        "logit lens: the residual stream after the embedding and after each of {} layers, through \
         {} and W_U + b_U{}",
        cfg.n_layers,
        match (cfg.norm, args.scale) {
            (Norm::None, _) => "no LayerNorm (the model has none)",
            (_, Scale::Own) => "the final LayerNorm (each residual's own scale)",
            (_, Scale::Final) => {
                "the final LayerNorm (the final residual's scale, TransformerLens' cached \
                 ln_final.hook_scale)"
            }
        },
        match answer {
            Some(a) => format!("; following {}", show(vocab.as_deref(), a)),
            None => String::new(),
        }
    );
    let first = if args.all_positions {
        0
    } else {
        tokens.len() - 1
    };
    for (pos, &token) in tokens.iter().enumerate().skip(first) {
        print_position(&lens, pos, token, vocab.as_deref(), args.top, answer);
    }
    let diff = last_stage_difference(&lens, &trace.logits);
    println!(
        "\nthe last stage against the model's logits: largest difference {diff:.1e} of the \
         largest logit ({})",
        if diff <= LAST_STAGE_TOLERANCE {
            "they agree"
        } else {
            "MORE than the 1e-4 expected: the lens does not reproduce this model's output"
        }
    );
    Ok(())
}
