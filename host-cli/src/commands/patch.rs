//! `tinylens patch`: activation and path patching of a clean prompt into a corrupted one
//! ([`crate::analysis::patching`]), printed as tables and written as TransformerLens names
//! them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use tinylens::Model;

use crate::analysis::patching::{
    input_name, patching_runs, patching_with, Metric, Patching, PATH_INPUTS,
};
use crate::analysis::{write_tensors, Named};
use crate::inputs::{token_arg, token_label, tokens_of, Input};
use crate::report::describe;

/// Activation patching: which head outputs and residual streams carry the clean behaviour.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub pair: PairArgs,
    /// How many of the largest effects to print per table.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// Write attn_head_out_all_pos, attn_head_out_by_pos, resid_pre, path_patch, clean_metric
    /// and corrupted_metric to this safetensors file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The model, the clean and corrupted prompts and the metric of a patching experiment
/// (`tinylens patch` and `tinylens plot patching`).
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("clean_input").required(true).args(["clean", "clean_tokens"])))]
#[command(group(clap::ArgGroup::new("corrupt_input").required(true).args(["corrupt", "corrupt_tokens"])))]
pub struct PairArgs {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// The clean prompt, as text.
    #[arg(long)]
    pub clean: Option<String>,
    /// The clean prompt, as token ids.
    #[arg(long)]
    pub clean_tokens: Option<String>,
    /// The corrupted prompt (as many tokens as the clean one), as text.
    #[arg(long)]
    pub corrupt: Option<String>,
    /// The corrupted prompt, as token ids.
    #[arg(long)]
    pub corrupt_tokens: Option<String>,
    /// The answer token at the last position (its text or its id).
    #[arg(long)]
    pub answer: String,
    /// The wrong answer: the metric becomes `logit[answer] - logit[wrong]`.
    #[arg(long)]
    pub wrong: Option<String>,
    /// logit-diff (`logit[answer]`, minus `logit[wrong]` with --wrong) or logprob
    /// (`log p(answer)`).
    #[arg(long, default_value = "logit-diff")]
    pub metric: String,
}

/// A patching experiment's prompts and metric, read through the model's vocabulary.
pub struct Pair {
    pub clean: Vec<u32>,
    pub corrupted: Vec<u32>,
    pub metric: Metric,
    /// The metric as people write it: `logit["so"] - logit["be"]`.
    pub name: String,
}

impl PairArgs {
    /// The prompts as tokens of `model`, and the metric.
    pub fn resolve(&self, model: &Model<'_>) -> Result<Pair> {
        let input = |text: &Option<String>, ids: &Option<String>| match (text, ids) {
            (Some(t), _) => Input::Prompt(t.clone()),
            (None, Some(i)) => Input::Tokens(i.clone()),
            (None, None) => unreachable!("clap requires one of the two"),
        };
        let clean = tokens_of(model, &input(&self.clean, &self.clean_tokens)).context("--clean")?;
        let corrupted =
            tokens_of(model, &input(&self.corrupt, &self.corrupt_tokens)).context("--corrupt")?;
        let answer = token_arg(model, &self.answer, "--answer")?;
        let wrong = self
            .wrong
            .as_deref()
            .map(|w| token_arg(model, w, "--wrong"))
            .transpose()?;
        let metric = match self.metric.as_str() {
            "logit-diff" => Metric::LogitDiff { answer, wrong },
            "logprob" if wrong.is_none() => Metric::LogProb { answer },
            "logprob" => bail!("--metric logprob takes no --wrong (it is log p(answer))"),
            other => bail!("unknown --metric {other:?}: expected logit-diff or logprob"),
        };
        let name = match metric {
            Metric::LogitDiff { wrong: Some(w), .. } => format!(
                "logit[{}] - logit[{}]",
                token_label(model, answer),
                token_label(model, w)
            ),
            Metric::LogitDiff { .. } => format!("logit[{}]", token_label(model, answer)),
            Metric::LogProb { .. } => format!("log p({})", token_label(model, answer)),
        };
        Ok(Pair {
            clean,
            corrupted,
            metric,
            name,
        })
    }
}

impl PairArgs {
    /// The prompts and metric read through `model`, and every patching result of them, with
    /// a progress bar on stderr.
    pub fn patch(&self, model: &Model<'_>) -> Result<(Pair, Patching)> {
        let pair = self.resolve(model)?;
        let bar = progress_bar(model.config(), pair.clean.len());
        let p = patching_with(model, &pair.clean, &pair.corrupted, &pair.metric, &bar)?;
        Ok((pair, p))
    }
}

/// A progress bar on stderr for the runs of one experiment (hidden when stderr is not a
/// terminal).
pub fn progress_bar(cfg: &tinylens::Config, seq: usize) -> ProgressBar {
    let bar = ProgressBar::new(patching_runs(cfg, seq));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "patching [{bar:32}] {pos}/{len} runs, {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// `tinylens patch`.
pub fn run(args: Args) -> Result<()> {
    args.pair.model.refuse_overwrite(args.out.as_deref(), &[])?;
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let loaded = args.pair.model.load()?;
    let model = loaded.model()?;
    let cfg = *model.config();
    println!("model: {} ({})", describe(&cfg), model.format().name());
    let (
        Pair {
            clean,
            corrupted,
            name,
            ..
        },
        p,
    ) = args.pair.patch(&model)?;
    println!(
        "metric {name} at the last position: clean {:.4}, corrupted {:.4}; each patch of a \
         clean activation into the corrupted run is shown as (patched - corrupted) / (clean - \
         corrupted): 1 restores the clean behaviour, 0 does nothing",
        p.clean, p.corrupted
    );
    let (l, h, s) = (cfg.n_layers, cfg.n_heads, clean.len());
    println!("\neach head's output at every position (attn_head_out_all_pos):");
    print!("  {:>8}", "");
    for head in 0..h {
        print!(" {:>8}", format!("head {head}"));
    }
    println!();
    for layer in 0..l {
        print!("  {:>8}", format!("layer {layer}"));
        for head in 0..h {
            print!(" {:>8.3}", p.head_all_pos[layer * h + head]);
        }
        println!();
    }
    let shown =
        |pos: usize| -> String { format!("{} ({})", pos, token_label(&model, corrupted[pos])) };
    let mut by_pos: Vec<(usize, f32)> = p.head_by_pos.iter().copied().enumerate().collect();
    by_pos.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    println!("\nthe largest effects of one head's output at one position (attn_head_out_by_pos):");
    for &(k, v) in by_pos.iter().take(args.top) {
        let (layer, pos, head) = (k / (s * h), k / h % s, k % h);
        println!(
            "  head {layer}.{head} at position {:<16} {v:>8.3}",
            shown(pos)
        );
    }
    let mut resid: Vec<(usize, f32)> = p.resid_pre.iter().copied().enumerate().collect();
    resid.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    println!("\nthe largest effects of the residual stream entering a layer (resid_pre):");
    for &(k, v) in resid.iter().take(args.top) {
        let (layer, pos) = (k / s, k % s);
        println!("  layer {layer} at position {:<16} {v:>8.3}", shown(pos));
    }
    if l > 1 {
        let mut paths: Vec<(usize, f32)> = p
            .path
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, v)| !v.is_nan())
            .collect();
        paths.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        println!(
            "\nthe largest effects of one head's output on one later head's query, key or value \
             input alone (path_patch):"
        );
        for &(k, v) in paths.iter().take(args.top) {
            let heads = l * h;
            let (input, sender, receiver) = (k / (heads * heads), k / heads % heads, k % heads);
            println!(
                "  head {}.{} -> head {}.{} {}  {v:>8.3}",
                sender / h,
                sender % h,
                receiver / h,
                receiver % h,
                input_name(PATH_INPUTS[input])
            );
        }
    }
    if let Some(path) = &args.out {
        let tensors = vec![
            Named::new("attn_head_out_all_pos", vec![l, h], p.head_all_pos.clone()),
            Named::new("attn_head_out_by_pos", vec![l, s, h], p.head_by_pos.clone()),
            Named::new("resid_pre", vec![l, s], p.resid_pre.clone()),
            Named::new("path_patch", vec![3, l, h, l, h], p.path.clone()),
            Named::new("clean_metric", vec![], vec![p.clean as f32]),
            Named::new("corrupted_metric", vec![], vec![p.corrupted as f32]),
        ];
        write_tensors(path, &tensors)?;
        println!("\nwrote the patching results to {}", path.display());
    }
    Ok(())
}
