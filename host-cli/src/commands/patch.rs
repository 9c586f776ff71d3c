//! `tinylens patch`: activation patching, with TransformerLens' `patching` semantics. The
//! clean prompt is run once and every head's result and every layer's `resid_pre` recorded;
//! then the corrupted prompt is run again and again, each time with one activation taken from
//! the clean run, and the metric of each patched run is normalized so that 0 is the corrupted
//! run and 1 the clean one: `(patched - corrupted) / (clean - corrupted)`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tinylens::{Decoder, Hooks, Model, NumberFormat, Proj};

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
    /// Path patching: only the receiver head's query, key or value input (`input`) sees the
    /// sender head's clean output, at every position; every other path from the sender stays
    /// corrupted. The sender's layer must come before the receiver's.
    Path {
        sender: (usize, usize),
        receiver: (usize, usize),
        input: Proj,
    },
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

    fn result_of(&self, pos: usize, layer: usize, head: usize) -> &[f32] {
        let m = self.d_model;
        &self.result[((pos * self.n_layers + layer) * self.n_heads + head) * m..][..m]
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

/// The first run of a path patch: the corrupted prompt with the sender's result taken from
/// the clean run and every head between the sender's layer and the receiver's frozen at its
/// corrupted result, so that the receiver's input differs from the corrupted run's by the
/// sender's direct path alone. It records the receiver's `input` at every position.
struct PathSender<'r> {
    pos: usize,
    sender: (usize, usize),
    receiver: (usize, usize),
    input: Proj,
    clean: &'r Recorded,
    corrupted: &'r Recorded,
    /// `[seq, d_head]`
    receiver_input: &'r mut Vec<f32>,
}

impl Hooks for PathSender<'_> {
    fn patch_result(&mut self, layer: usize, head: usize, result: &mut [f32]) {
        let p = self.pos;
        if (layer, head) == self.sender {
            result.copy_from_slice(self.clean.result_of(p, layer, head));
        } else if layer > self.sender.0 && layer < self.receiver.0 {
            result.copy_from_slice(self.corrupted.result_of(p, layer, head));
        }
    }

    fn patch_qkv(&mut self, layer: usize, head: usize, which: Proj, x: &mut [f32]) {
        if (layer, head) == self.receiver && which == self.input {
            self.receiver_input.extend_from_slice(x);
        }
    }
}

/// The second run of a path patch: the corrupted prompt with the receiver's input replaced
/// by the one the first run recorded; everything downstream of the receiver runs freely.
struct PathReceiver<'r> {
    pos: usize,
    receiver: (usize, usize),
    input: Proj,
    /// `[seq, d_head]`
    receiver_input: &'r [f32],
}

impl Hooks for PathReceiver<'_> {
    fn patch_qkv(&mut self, layer: usize, head: usize, which: Proj, x: &mut [f32]) {
        if (layer, head) == self.receiver && which == self.input {
            let d = x.len();
            x.copy_from_slice(&self.receiver_input[self.pos * d..][..d]);
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

/// A hook that is told which position the decoder is at before each step.
trait AtPosition: Hooks {
    fn at(&mut self, pos: usize);
}

impl AtPosition for Patcher<'_> {
    fn at(&mut self, pos: usize) {
        self.pos = pos;
    }
}

impl AtPosition for PathSender<'_> {
    fn at(&mut self, pos: usize) {
        self.pos = pos;
    }
}

impl AtPosition for PathReceiver<'_> {
    fn at(&mut self, pos: usize) {
        self.pos = pos;
    }
}

/// One run of `tokens` through `hooks`: the metric of its last logits.
fn run_hooked(
    decoder: &mut Decoder<'_, '_>,
    tokens: &[u32],
    metric: &Metric,
    hooks: &mut impl AtPosition,
) -> Result<f64> {
    decoder.reset();
    let mut value = 0.0;
    for (p, &t) in tokens.iter().enumerate() {
        hooks.at(p);
        let logits = decoder.step_with(t, hooks)?;
        if p + 1 == tokens.len() {
            crate::trace::check_finite(logits, p)?;
            value = metric.of(logits);
        }
    }
    Ok(value)
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
    let mut hooks = Patcher {
        pos: 0,
        patch,
        clean,
        record,
    };
    run_hooked(decoder, tokens, metric, &mut hooks)
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
    /// `[3, n_layers, n_heads, n_layers, n_heads]`: path patching from a sender head (axes 1
    /// and 2) to a receiver head's (axes 3 and 4) query, key or value input (axis 0, in that
    /// order); NaN where the sender's layer is not before the receiver's.
    pub path: Vec<f32>,
}

/// The inputs of a head that path patching reaches, in the order of [`Patching::path`].
pub const PATH_INPUTS: [Proj; 3] = [Proj::Q, Proj::K, Proj::V];

/// The letter TransformerLens names a head input by: `q`, `k` or `v`.
pub fn input_name(input: Proj) -> &'static str {
    match input {
        Proj::Q => "q",
        Proj::K => "k",
        Proj::V => "v",
    }
}

/// One clean / corrupted pair with the clean run recorded: patched runs of the corrupted
/// prompt, normalized.
struct Experiment<'r, 'm, 's> {
    decoder: Decoder<'m, 's>,
    corrupted: &'r [u32],
    metric: &'r Metric,
    recorded: Recorded,
    /// The corrupted run's activations, for the heads a path patch freezes.
    recorded_corrupted: Recorded,
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
        let mut recorded_corrupted = Recorded::new(model.config(), corrupted.len());
        let k = run_patched(
            &mut decoder,
            corrupted,
            metric,
            Patch::None,
            None,
            Some(&mut recorded_corrupted),
        )?;
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
            recorded_corrupted,
            clean: c,
            corrupted_metric: k,
        })
    }

    /// `(patched - corrupted) / (clean - corrupted)` of one patch.
    fn normalized(&mut self, patch: Patch) -> Result<f64> {
        let v = match patch {
            Patch::Path {
                sender,
                receiver,
                input,
            } => self.path_patched(sender, receiver, input)?,
            _ => run_patched(
                &mut self.decoder,
                self.corrupted,
                self.metric,
                patch,
                Some(&self.recorded),
                None,
            )?,
        };
        Ok((v - self.corrupted_metric) / (self.clean - self.corrupted_metric))
    }

    /// The metric of the corrupted run in which only the receiver's `input` sees the
    /// sender's clean output: two runs, the first to find that input, the second to use it.
    fn path_patched(
        &mut self,
        sender: (usize, usize),
        receiver: (usize, usize),
        input: Proj,
    ) -> Result<f64> {
        let (layers, heads) = (self.recorded.n_layers, self.recorded.n_heads);
        for (name, (l, h)) in [("sender", sender), ("receiver", receiver)] {
            if l >= layers || h >= heads {
                bail!("path patching: the {name} head {l}.{h} is not in a model of {layers} layers of {heads} heads");
            }
        }
        if sender.0 >= receiver.0 {
            bail!(
                "path patching: the sender {}.{} must sit in a layer before the receiver {}.{}",
                sender.0,
                sender.1,
                receiver.0,
                receiver.1
            );
        }
        let mut receiver_input = Vec::new();
        let mut first = PathSender {
            pos: 0,
            sender,
            receiver,
            input,
            clean: &self.recorded,
            corrupted: &self.recorded_corrupted,
            receiver_input: &mut receiver_input,
        };
        run_hooked(&mut self.decoder, self.corrupted, self.metric, &mut first)?;
        let mut second = PathReceiver {
            pos: 0,
            receiver,
            input,
            receiver_input: &receiver_input,
        };
        run_hooked(&mut self.decoder, self.corrupted, self.metric, &mut second)
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
    let mut path = Vec::with_capacity(3 * l * h * l * h);
    for input in PATH_INPUTS {
        for sender in (0..l).flat_map(|sl| (0..h).map(move |sh| (sl, sh))) {
            for receiver in (0..l).flat_map(|rl| (0..h).map(move |rh| (rl, rh))) {
                path.push(if sender.0 < receiver.0 {
                    normalized(Patch::Path {
                        sender,
                        receiver,
                        input,
                    })?
                } else {
                    f32::NAN
                });
            }
        }
    }
    Ok(Patching {
        clean: e.clean,
        corrupted: e.corrupted_metric,
        head_all_pos,
        head_by_pos,
        resid_pre,
        path,
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
    args.pair.model.refuse_overwrite(args.out.as_deref(), &[])?;
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let loaded = args.pair.model.load()?;
    let model = loaded.model()?;
    let Pair {
        clean,
        corrupted,
        metric,
        name,
    } = args.pair.resolve(&model)?;
    let cfg = *model.config();
    println!("model: {} ({})", describe(&cfg), model.format().name());
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
