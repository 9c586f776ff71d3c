//! Activation and path patching, with TransformerLens' `patching` semantics. The clean and
//! corrupted prompts are run once each with every head's result and every layer's
//! `resid_pre` recorded through the kernel's hooks; then the corrupted prompt is run again
//! and again, each time with one activation taken from the clean run, and the metric of each
//! patched run is normalized so that 0 is the corrupted run and 1 the clean one:
//! `(patched - corrupted) / (clean - corrupted)`. Path patching changes one later head's
//! query, key or value input alone ([`Patch::Path`]).

use anyhow::{bail, Result};
use indicatif::ProgressBar;
use tinylens::{Decoder, Hooks, Model, NumberFormat, Proj};

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
    fn position(&mut self, pos: usize) {
        self.pos = pos;
    }

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
            result.copy_from_slice(c.result_of(p, layer, head));
        }
    }
}

/// What every head of one receiver layer reads when one sender's output alone is clean: the
/// first run of a path patch, shared by every receiver head of that layer and every input.
struct ReceiverInputs {
    layer: usize,
    n_heads: usize,
    d_head: usize,
    /// `[seq, n_heads, 3, d_head]`, the inputs in [`PATH_INPUTS`] order.
    data: Vec<f32>,
}

impl ReceiverInputs {
    fn at(&self, pos: usize, head: usize, input: Proj) -> std::ops::Range<usize> {
        let which = PATH_INPUTS.iter().position(|&p| p == input).unwrap_or(0);
        let at = ((pos * self.n_heads + head) * 3 + which) * self.d_head;
        at..at + self.d_head
    }
}

/// The first run of a path patch: the corrupted prompt with the sender's result taken from
/// the clean run and every head between the sender's layer and the receivers' frozen at its
/// corrupted result, so that the receivers' inputs differ from the corrupted run's by the
/// sender's direct path alone. It records those inputs.
struct PathSender<'r> {
    pos: usize,
    sender: (usize, usize),
    clean: &'r Recorded,
    corrupted: &'r Recorded,
    inputs: &'r mut ReceiverInputs,
}

impl Hooks for PathSender<'_> {
    fn position(&mut self, pos: usize) {
        self.pos = pos;
    }

    fn patch_result(&mut self, layer: usize, head: usize, result: &mut [f32]) {
        let p = self.pos;
        if (layer, head) == self.sender {
            result.copy_from_slice(self.clean.result_of(p, layer, head));
        } else if layer > self.sender.0 && layer < self.inputs.layer {
            result.copy_from_slice(self.corrupted.result_of(p, layer, head));
        }
    }

    fn patch_qkv(&mut self, layer: usize, head: usize, which: Proj, x: &mut [f32]) {
        if layer == self.inputs.layer {
            let at = self.inputs.at(self.pos, head, which);
            self.inputs.data[at].copy_from_slice(x);
        }
    }
}

/// The second run of a path patch: the corrupted prompt with one receiver's input replaced
/// by the one the first run recorded; everything downstream of the receiver runs freely.
struct PathReceiver<'r> {
    pos: usize,
    head: usize,
    input: Proj,
    inputs: &'r ReceiverInputs,
}

impl Hooks for PathReceiver<'_> {
    fn position(&mut self, pos: usize) {
        self.pos = pos;
    }

    fn patch_qkv(&mut self, layer: usize, head: usize, which: Proj, x: &mut [f32]) {
        if (layer, head, which) == (self.inputs.layer, self.head, self.input) {
            x.copy_from_slice(&self.inputs.data[self.inputs.at(self.pos, head, which)]);
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

/// Runs `tokens` from position `start` through `hooks` (the cache already holds the first
/// `start` of them) and returns the metric of the last logits.
fn run_from(
    decoder: &mut Decoder<'_, '_>,
    tokens: &[u32],
    start: usize,
    metric: &Metric,
    hooks: &mut impl Hooks,
) -> Result<f64> {
    decoder.rewind(start)?;
    let logits = decoder.prefill_with(&tokens[start..], hooks)?;
    crate::trace::check_finite(logits, tokens.len() - 1)?;
    Ok(metric.of(logits))
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

/// One clean / corrupted pair with both runs recorded: patched runs of the corrupted prompt,
/// normalized. A patch that starts at position `p` leaves the positions before it as the
/// corrupted run had them, so its run starts at `p` when the cache still holds them.
struct Experiment<'r, 'm, 's> {
    decoder: Decoder<'m, 's>,
    corrupted: &'r [u32],
    metric: &'r Metric,
    recorded: Recorded,
    /// The corrupted run's activations, for the heads a path patch freezes.
    recorded_corrupted: Recorded,
    /// How many leading positions of the decoder's cache are the corrupted run's.
    corrupted_prefix: usize,
    clean: f64,
    corrupted_metric: f64,
    /// Moves by one for each patched run (hidden unless a caller shows it).
    bar: ProgressBar,
}

impl<'r, 'm, 's> Experiment<'r, 'm, 's> {
    /// Checks the pair, records both runs and measures their metrics.
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
        let mut record = |tokens: &[u32]| -> Result<(f64, Recorded)> {
            let mut recorded = Recorded::new(model.config(), tokens.len());
            let mut hooks = Patcher {
                pos: 0,
                patch: Patch::None,
                clean: None,
                record: Some(&mut recorded),
            };
            let value = run_from(&mut decoder, tokens, 0, metric, &mut hooks)?;
            Ok((value, recorded))
        };
        let (c, recorded) = record(clean)?;
        let (k, recorded_corrupted) = record(corrupted)?;
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
            corrupted_prefix: corrupted.len(),
            clean: c,
            corrupted_metric: k,
            bar: ProgressBar::hidden(),
        })
    }

    /// `(patched - corrupted) / (clean - corrupted)` of a metric.
    fn normalize(&self, v: f64) -> f64 {
        (v - self.corrupted_metric) / (self.clean - self.corrupted_metric)
    }

    /// The normalized metric of one patch.
    fn normalized(&mut self, patch: Patch) -> Result<f64> {
        if let Patch::Path {
            sender,
            receiver,
            input,
        } = patch
        {
            let inputs = self.path_inputs(sender, receiver.0)?;
            return self.path_patched(&inputs, receiver.1, input);
        }
        self.bar.inc(1);
        // The first position the patch changes.
        let first = match patch {
            Patch::HeadAt { pos, .. } | Patch::ResidPre { pos, .. } => pos,
            _ => 0,
        };
        let start = first.min(self.corrupted_prefix);
        let mut hooks = Patcher {
            pos: 0,
            patch,
            clean: Some(&self.recorded),
            record: None,
        };
        let v = run_from(
            &mut self.decoder,
            self.corrupted,
            start,
            self.metric,
            &mut hooks,
        )?;
        self.corrupted_prefix = first;
        Ok(self.normalize(v))
    }

    /// The first run of a path patch from `sender` to the heads of `layer`.
    fn path_inputs(&mut self, sender: (usize, usize), layer: usize) -> Result<ReceiverInputs> {
        self.bar.inc(1);
        let (layers, heads) = (self.recorded.n_layers, self.recorded.n_heads);
        for (name, (l, h)) in [("sender", sender), ("receiver", (layer, 0))] {
            if l >= layers || h >= heads {
                bail!("path patching: the {name} head {l}.{h} is not in a model of {layers} layers of {heads} heads");
            }
        }
        if sender.0 >= layer {
            bail!(
                "path patching: the sender {}.{} must sit in a layer before the receiver's ({layer})",
                sender.0,
                sender.1,
            );
        }
        let d_head = self.decoder.config().d_head;
        let mut inputs = ReceiverInputs {
            layer,
            n_heads: heads,
            d_head,
            data: vec![0.0; self.corrupted.len() * heads * 3 * d_head],
        };
        let mut first = PathSender {
            pos: 0,
            sender,
            clean: &self.recorded,
            corrupted: &self.recorded_corrupted,
            inputs: &mut inputs,
        };
        run_from(
            &mut self.decoder,
            self.corrupted,
            0,
            self.metric,
            &mut first,
        )?;
        self.corrupted_prefix = 0;
        Ok(inputs)
    }

    /// The normalized metric of the corrupted run in which only `head`'s `input` (of the
    /// layer `inputs` was recorded for) sees the sender's clean output.
    fn path_patched(&mut self, inputs: &ReceiverInputs, head: usize, input: Proj) -> Result<f64> {
        self.bar.inc(1);
        if head >= inputs.n_heads {
            bail!(
                "path patching: the receiver head {}.{head} is not in a model of {} heads",
                inputs.layer,
                inputs.n_heads
            );
        }
        let mut second = PathReceiver {
            pos: 0,
            head,
            input,
            inputs,
        };
        let v = run_from(
            &mut self.decoder,
            self.corrupted,
            0,
            self.metric,
            &mut second,
        )?;
        self.corrupted_prefix = 0;
        Ok(self.normalize(v))
    }
}

/// Runs every patch of `clean` into `corrupted` (token lists of one length) on `model`.
pub fn patching<'m>(
    model: &'m Model<'m>,
    clean: &[u32],
    corrupted: &[u32],
    metric: &Metric,
) -> Result<Patching> {
    patching_with(model, clean, corrupted, metric, &ProgressBar::hidden())
}

/// How many runs [`patching`] makes after the two recorded ones.
pub fn patching_runs(cfg: &tinylens::Config, seq: usize) -> u64 {
    let (l, h) = (cfg.n_layers as u64, cfg.n_heads as u64);
    // Sender runs: every head with the later layers; receiver runs: q, k, v of each pair.
    let sender_runs: u64 = (0..l).map(|sl| h * (l - 1 - sl)).sum();
    let pairs: u64 = (0..l).map(|sl| h * h * (l - 1 - sl)).sum();
    seq as u64 * l * (h + 1) + l * h + sender_runs + 3 * pairs
}

/// [`patching`], advancing `bar` by one for each run ([`patching_runs`] in all).
pub fn patching_with<'m>(
    model: &'m Model<'m>,
    clean: &[u32],
    corrupted: &[u32],
    metric: &Metric,
    bar: &ProgressBar,
) -> Result<Patching> {
    let cfg = *model.config();
    let (l, h, s) = (cfg.n_layers, cfg.n_heads, clean.len());
    let mut arena = vec![0.0f32; cfg.state_len()];
    let mut e = Experiment::new(model, &mut arena, clean, corrupted, metric)?;
    e.bar = bar.clone();
    let mut head_by_pos = vec![0.0; l * s * h];
    let mut resid_pre = vec![0.0; l * s];
    // From the last position down: each patch at position p finds the corrupted run's cache
    // of the positions before p still in place, and runs only from p.
    for pos in (0..s).rev() {
        for layer in 0..l {
            for head in 0..h {
                let v = e.normalized(Patch::HeadAt { layer, head, pos })?;
                head_by_pos[(layer * s + pos) * h + head] = v as f32;
            }
            resid_pre[layer * s + pos] = e.normalized(Patch::ResidPre { layer, pos })? as f32;
        }
    }
    let mut head_all_pos = Vec::with_capacity(l * h);
    for layer in 0..l {
        for head in 0..h {
            head_all_pos.push(e.normalized(Patch::Head { layer, head })? as f32);
        }
    }
    let heads = l * h;
    let mut path = vec![f32::NAN; 3 * heads * heads];
    for sender in 0..heads {
        for layer in sender / h + 1..l {
            let inputs = e.path_inputs((sender / h, sender % h), layer)?;
            for (i, input) in PATH_INPUTS.into_iter().enumerate() {
                for head in 0..h {
                    let receiver = layer * h + head;
                    let v = e.path_patched(&inputs, head, input)?;
                    path[(i * heads + sender) * heads + receiver] = v as f32;
                }
            }
        }
    }
    bar.finish_and_clear();
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
