//! `tinylens patch`: activation patching, with TransformerLens' `patching` semantics. The
//! clean prompt is run once and every head's result and every layer's `resid_pre` recorded;
//! then the corrupted prompt is run again and again, each time with one activation taken from
//! the clean run, and the metric of each patched run is normalized so that 0 is the corrupted
//! run and 1 the clean one: `(patched - corrupted) / (clean - corrupted)`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tinylens::{Decoder, Hooks, Model, NumberFormat};

use crate::analysis::{write_tensors, Named};
use crate::inputs::{token_arg, token_label, tokens_of, Input};
use crate::report::describe;

/// Activation patching: which head outputs and residual streams carry the clean behaviour.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("clean_input").required(true).args(["clean", "clean_tokens"])))]
#[command(group(clap::ArgGroup::new("corrupt_input").required(true).args(["corrupt", "corrupt_tokens"])))]
pub struct Args {
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
    /// How many of the largest effects to print per table.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// Write attn_head_out_all_pos, attn_head_out_by_pos, resid_pre, clean_metric and
    /// corrupted_metric to this safetensors file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What one patched run takes from the clean run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patch {
    /// Nothing: the corrupted run.
    None,
    /// Head `head` of `layer`'s result at every position.
    Head { layer: usize, head: usize },
    /// Head `head` of `layer`'s result at position `pos`.
    HeadAt {
        layer: usize,
        head: usize,
        pos: usize,
    },
    /// The residual stream entering `layer` at position `pos`.
    ResidPre { layer: usize, pos: usize },
    /// The residual stream entering `layer` at every position.
    ResidPreAll { layer: usize },
}

/// The clean run's activations: per position, per layer, `resid_pre` and every head's result.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    d_model: usize,
    n_heads: usize,
    n_layers: usize,
    /// `[seq, n_layers, d_model]`
    resid_pre: Vec<f32>,
    /// `[seq, n_layers, n_heads, d_model]`
    result: Vec<f32>,
}

impl Recorded {
    fn new(cfg: &tinylens::Config, seq: usize) -> Recorded {
        let (l, h, m) = (cfg.n_layers, cfg.n_heads, cfg.d_model);
        Recorded {
            d_model: m,
            n_heads: h,
            n_layers: l,
            resid_pre: vec![0.0; seq * l * m],
            result: vec![0.0; seq * l * h * m],
        }
    }

    fn resid_pre_at(&mut self, pos: usize, layer: usize) -> &mut [f32] {
        let m = self.d_model;
        &mut self.resid_pre[(pos * self.n_layers + layer) * m..][..m]
    }

    fn result_at(&mut self, pos: usize, layer: usize, head: usize) -> &mut [f32] {
        let m = self.d_model;
        &mut self.result[((pos * self.n_layers + layer) * self.n_heads + head) * m..][..m]
    }
}

/// The hook of one run: records into `record`, or writes the clean activations `patch` names
/// into the run.
struct Patcher<'r> {
    pos: usize,
    patch: Patch,
    clean: Option<&'r Recorded>,
    record: Option<&'r mut Recorded>,
}

impl Hooks for Patcher<'_> {
    fn resid_pre(&mut self, layer: usize, resid: &mut [f32]) {
        let p = self.pos;
        if let Some(r) = self.record.as_deref_mut() {
            r.resid_pre_at(p, layer).copy_from_slice(resid);
        }
        let here = match self.patch {
            Patch::ResidPre { layer: l, pos } => l == layer && pos == p,
            Patch::ResidPreAll { layer: l } => l == layer,
            _ => false,
        };
        if let (true, Some(c)) = (here, self.clean) {
            let m = c.d_model;
            resid.copy_from_slice(&c.resid_pre[(p * c.n_layers + layer) * m..][..m]);
        }
    }

    fn patch_result(&mut self, layer: usize, head: usize, result: &mut [f32]) {
        let p = self.pos;
        if let Some(r) = self.record.as_deref_mut() {
            r.result_at(p, layer, head).copy_from_slice(result);
        }
        let here = match self.patch {
            Patch::Head { layer: l, head: h } => l == layer && h == head,
            Patch::HeadAt {
                layer: l,
                head: h,
                pos,
            } => l == layer && h == head && pos == p,
            _ => false,
        };
        if let (true, Some(c)) = (here, self.clean) {
            let m = c.d_model;
            let at = ((p * c.n_layers + layer) * c.n_heads + head) * m;
            result.copy_from_slice(&c.result[at..][..m]);
        }
    }
}

/// The metric of a run's last logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// `logit[answer]`, or `logit[answer] - logit[wrong]`.
    LogitDiff { answer: u32, wrong: Option<u32> },
    /// `log softmax(logits)[answer]`.
    LogProb { answer: u32 },
}

impl Metric {
    /// The metric of `logits`.
    pub fn of(&self, logits: &[f32]) -> f64 {
        match *self {
            Metric::LogitDiff { answer, wrong } => {
                logits[answer as usize] as f64 - wrong.map_or(0.0, |w| logits[w as usize] as f64)
            }
            Metric::LogProb { answer } => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
                logits[answer as usize] as f64 - max - sum.ln()
            }
        }
    }
}

/// One run of `tokens` with `patch` from `clean` (or recording into `record`): the metric of
/// its last logits.
fn run_patched(
    decoder: &mut Decoder<'_, '_>,
    tokens: &[u32],
    metric: &Metric,
    patch: Patch,
    clean: Option<&Recorded>,
    record: Option<&mut Recorded>,
) -> Result<f64> {
    decoder.reset();
    let mut hooks = Patcher {
        pos: 0,
        patch,
        clean,
        record,
    };
    let mut value = 0.0;
    for (p, &t) in tokens.iter().enumerate() {
        hooks.pos = p;
        let logits = decoder.step_with(t, &mut hooks)?;
        if p + 1 == tokens.len() {
            crate::trace::check_finite(logits, p)?;
            value = metric.of(logits);
        }
    }
    Ok(value)
}

/// Every patching result of one clean / corrupted pair, TransformerLens' shapes.
#[derive(Clone, Debug)]
pub struct Patching {
    /// The clean run's metric.
    pub clean: f64,
    /// The corrupted run's metric.
    pub corrupted: f64,
    /// `[n_layers, n_heads]`: each head's result patched at every position.
    pub head_all_pos: Vec<f32>,
    /// `[n_layers, seq, n_heads]`: each head's result patched at one position.
    pub head_by_pos: Vec<f32>,
    /// `[n_layers, seq]`: the residual stream entering each layer patched at one position.
    pub resid_pre: Vec<f32>,
}

/// One clean / corrupted pair with the clean run recorded: patched runs of the corrupted
/// prompt, normalized.
struct Experiment<'r, 'm, 's> {
    decoder: Decoder<'m, 's>,
    corrupted: &'r [u32],
    metric: &'r Metric,
    recorded: Recorded,
    clean: f64,
    corrupted_metric: f64,
}

impl<'r, 'm, 's> Experiment<'r, 'm, 's> {
    /// Checks the pair, records the clean run and measures both runs' metrics.
    fn new(
        model: &'m Model<'m>,
        arena: &'s mut [f32],
        clean: &[u32],
        corrupted: &'r [u32],
        metric: &'r Metric,
    ) -> Result<Self> {
        if model.format() == NumberFormat::Int {
            bail!("patching writes f32 activations into the run: give an f32 or i8 blob, or the checkpoint (this blob is int)");
        }
        if clean.len() != corrupted.len() {
            bail!(
                "the clean prompt has {} tokens and the corrupted one {}: patching compares them position by position, so they need the same length",
                clean.len(),
                corrupted.len()
            );
        }
        let mut decoder = Decoder::new(model, arena)?;
        let mut recorded = Recorded::new(model.config(), clean.len());
        let c = run_patched(
            &mut decoder,
            clean,
            metric,
            Patch::None,
            None,
            Some(&mut recorded),
        )?;
        let k = run_patched(&mut decoder, corrupted, metric, Patch::None, None, None)?;
        if (c - k).abs() < 1e-9 {
            bail!(
                "the clean and corrupted runs give the same metric ({c:.6}): nothing to \
                 normalize by; choose prompts (or an answer) that the model tells apart"
            );
        }
        Ok(Experiment {
            decoder,
            corrupted,
            metric,
            recorded,
            clean: c,
            corrupted_metric: k,
        })
    }

    /// `(patched - corrupted) / (clean - corrupted)` of one patch.
    fn normalized(&mut self, patch: Patch) -> Result<f64> {
        let v = run_patched(
            &mut self.decoder,
            self.corrupted,
            self.metric,
            patch,
            Some(&self.recorded),
            None,
        )?;
        Ok((v - self.corrupted_metric) / (self.clean - self.corrupted_metric))
    }
}

/// Runs every patch of `clean` into `corrupted` (token lists of one length) on `model`.
pub fn patching<'m>(
    model: &'m Model<'m>,
    clean: &[u32],
    corrupted: &[u32],
    metric: &Metric,
) -> Result<Patching> {
    let cfg = *model.config();
    let (l, h, s) = (cfg.n_layers, cfg.n_heads, clean.len());
    let mut arena = vec![0.0f32; cfg.state_len()];
    let mut e = Experiment::new(model, &mut arena, clean, corrupted, metric)?;
    let mut normalized = |patch: Patch| e.normalized(patch).map(|v| v as f32);
    let mut head_all_pos = Vec::with_capacity(l * h);
    let mut head_by_pos = Vec::with_capacity(l * s * h);
    let mut resid_pre = Vec::with_capacity(l * s);
    for layer in 0..l {
        for head in 0..h {
            head_all_pos.push(normalized(Patch::Head { layer, head })?);
        }
        for pos in 0..s {
            for head in 0..h {
                head_by_pos.push(normalized(Patch::HeadAt { layer, head, pos })?);
            }
        }
        for pos in 0..s {
            resid_pre.push(normalized(Patch::ResidPre { layer, pos })?);
        }
    }
    Ok(Patching {
        clean: e.clean,
        corrupted: e.corrupted_metric,
        head_all_pos,
        head_by_pos,
        resid_pre,
    })
}

/// The normalized metric of one patch (for checks: e.g. `ResidPreAll { layer: 0 }` is 1).
pub fn patched_metric<'m>(
    model: &'m Model<'m>,
    clean: &[u32],
    corrupted: &[u32],
    metric: &Metric,
    patch: Patch,
) -> Result<f64> {
    let mut arena = vec![0.0f32; model.config().state_len()];
    Experiment::new(model, &mut arena, clean, corrupted, metric)?.normalized(patch)
}

/// `tinylens patch`.
pub fn run(args: Args) -> Result<()> {
    args.model.refuse_overwrite(args.out.as_deref(), &[])?;
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let loaded = args.model.load()?;
    let model = loaded.model()?;
    let input = |text: &Option<String>, ids: &Option<String>| match (text, ids) {
        (Some(t), _) => Input::Prompt(t.clone()),
        (None, Some(i)) => Input::Tokens(i.clone()),
        (None, None) => unreachable!("clap requires one of the two"),
    };
    let clean = tokens_of(&model, &input(&args.clean, &args.clean_tokens)).context("--clean")?;
    let corrupted =
        tokens_of(&model, &input(&args.corrupt, &args.corrupt_tokens)).context("--corrupt")?;
    let answer = token_arg(&model, &args.answer, "--answer")?;
    let wrong = args
        .wrong
        .as_deref()
        .map(|w| token_arg(&model, w, "--wrong"))
        .transpose()?;
    let metric = match args.metric.as_str() {
        "logit-diff" => Metric::LogitDiff { answer, wrong },
        "logprob" if wrong.is_none() => Metric::LogProb { answer },
        "logprob" => bail!("--metric logprob takes no --wrong (it is log p(answer))"),
        other => bail!("unknown --metric {other:?}: expected logit-diff or logprob"),
    };
    let cfg = *model.config();
    println!("model: {} ({})", describe(&cfg), model.format().name());
    let name = match metric {
        Metric::LogitDiff { wrong: Some(w), .. } => format!(
            "logit[{}] - logit[{}]",
            token_label(&model, answer),
            token_label(&model, w)
        ),
        Metric::LogitDiff { .. } => format!("logit[{}]", token_label(&model, answer)),
        Metric::LogProb { .. } => format!("log p({})", token_label(&model, answer)),
    };
    let p = patching(&model, &clean, &corrupted, &metric)?;
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
    if let Some(path) = &args.out {
        let tensors = vec![
            Named::new("attn_head_out_all_pos", vec![l, h], p.head_all_pos.clone()),
            Named::new("attn_head_out_by_pos", vec![l, s, h], p.head_by_pos.clone()),
            Named::new("resid_pre", vec![l, s], p.resid_pre.clone()),
            Named::new("clean_metric", vec![], vec![p.clean as f32]),
            Named::new("corrupted_metric", vec![], vec![p.corrupted as f32]),
        ];
        write_tensors(path, &tensors)?;
        println!("\nwrote the patching results to {}", path.display());
    }
    Ok(())
}
