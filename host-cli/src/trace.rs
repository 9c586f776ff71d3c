//! Runs the kernel over a sequence and records every activation TransformerLens would cache,
//! plus the direct logit attribution at every position, at the last one, or none
//! ([`Attribution`]): what is asked for, and no more. This is what `run --out` writes and what
//! `validate` compares against the float reference.

use anyhow::{anyhow, Result};
use tinylens::{Config, Decoder, Hooks, LnConvention, Model, Norm, Target, Term};

/// The largest trace tinylens records, in bytes: past it a run is refused with its size
/// rather than left to exhaust the memory.
pub const MAX_TRACE_BYTES: u64 = 2 << 30;

/// What attribution a trace records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// Every term of every logit at every position: the `dla.*` tensors (`run --out`,
    /// `validate`).
    Every,
    /// Every term of one logit at the last position: this token's, or with `None` the top
    /// prediction's (what `run` prints). Needs no `[terms, d_vocab]` table.
    Last(Option<u32>),
    /// None (attention pages, calibration).
    Off,
}

/// Activations of one sequence, named and shaped as TransformerLens' hooks. The `dla.*`
/// tensors are recorded with [`Attribution::Every`] and empty otherwise.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Sequence length.
    pub seq: usize,
    /// With [`Attribution::Last`]: the token whose logit at the last position is split.
    pub last_token: Option<u32>,
    /// With [`Attribution::Last`]: its terms, `[Term::count]`, in [`Term::nth`] order.
    pub last_terms: Vec<f32>,
    /// `logits`: `[seq, d_vocab]`
    pub logits: Vec<f32>,
    /// Per layer `blocks.{l}.attn.hook_pattern`: `[n_heads, seq, seq]`
    pub pattern: Vec<Vec<f32>>,
    /// Per layer `blocks.{l}.attn.hook_z`: `[seq, n_heads, d_head]`
    pub z: Vec<Vec<f32>>,
    /// Per layer `blocks.{l}.attn.hook_result`: `[seq, n_heads, d_model]`
    pub result: Vec<Vec<f32>>,
    /// Per layer `blocks.{l}.hook_resid_post`: `[seq, d_model]`
    pub resid_post: Vec<Vec<f32>>,
    /// `dla.direct_embed`: `[seq, d_vocab]`
    pub dla_direct_embed: Vec<f32>,
    /// `dla.direct_pos`: `[seq, d_vocab]`
    pub dla_direct_pos: Vec<f32>,
    /// `dla.heads`: `[n_layers * n_heads, seq, d_vocab]`
    pub dla_heads: Vec<f32>,
    /// `dla.bias_b_O`: `[n_layers, seq, d_vocab]`
    pub dla_bias_b_o: Vec<f32>,
    /// `dla.bias_const`: `[d_vocab]`
    pub dla_bias_const: Vec<f32>,
    /// `dla.heads_tl` (LayerNorm models only): `[n_layers * n_heads, seq, d_vocab]`
    pub dla_heads_tl: Option<Vec<f32>>,
}

impl Trace {
    /// A zeroed trace of `seq` tokens with `rows` positions of attribution tables;
    /// `float_hooks`: with `hook_z`, `hook_result` and `hook_resid_post` (not the `int`
    /// format's).
    fn zeros(cfg: &Config, seq: usize, rows: usize, float_hooks: bool) -> Trace {
        let (l, h, m, d, v) = (
            cfg.n_layers,
            cfg.n_heads,
            cfg.d_model,
            cfg.d_head,
            cfg.d_vocab,
        );
        let hook = |n: usize| {
            vec![
                if float_hooks {
                    vec![0.0; n]
                } else {
                    Vec::new()
                };
                l
            ]
        };
        let has_ln = matches!(cfg.norm, Norm::LayerNorm { .. });
        let r = rows;
        Trace {
            seq,
            last_token: None,
            last_terms: Vec::new(),
            logits: vec![0.0; seq * v],
            pattern: vec![vec![0.0; h * seq * seq]; l],
            z: hook(seq * h * d),
            result: hook(seq * h * m),
            resid_post: hook(seq * m),
            dla_direct_embed: vec![0.0; r * v],
            dla_direct_pos: vec![0.0; r * v],
            dla_heads: vec![0.0; l * h * r * v],
            dla_bias_b_o: vec![0.0; l * r * v],
            dla_bias_const: vec![0.0; if r > 0 { v } else { 0 }],
            dla_heads_tl: (float_hooks && has_ln && r > 0).then(|| vec![0.0; l * h * r * v]),
        }
    }

    /// `dla.direct` = embed + pos: `[seq, d_vocab]`
    pub fn dla_direct(&self) -> Vec<f32> {
        self.dla_direct_embed
            .iter()
            .zip(&self.dla_direct_pos)
            .map(|(a, b)| a + b)
            .collect()
    }
}

/// Collects `hook_result` and `hook_resid_post` for one position.
struct Recorder<'t> {
    cfg: Config,
    pos: usize,
    result: &'t mut [Vec<f32>],
    resid_post: &'t mut [Vec<f32>],
}

impl Hooks for Recorder<'_> {
    fn result(&mut self, layer: usize, head: usize, result: &[f32]) {
        let m = self.cfg.d_model;
        let at = (self.pos * self.cfg.n_heads + head) * m;
        self.result[layer][at..at + m].copy_from_slice(result);
    }
    fn resid_post(&mut self, layer: usize, resid: &[f32]) {
        let m = self.cfg.d_model;
        self.resid_post[layer][self.pos * m..(self.pos + 1) * m].copy_from_slice(resid);
    }
}

/// Runs `model` over `tokens` with the kernel, one step per token, recording the attribution
/// of every position.
pub fn trace(model: &Model<'_>, tokens: &[u32]) -> Result<Trace> {
    trace_for(model, tokens, Attribution::Every)
}

/// The bytes a trace of `seq` tokens takes under `cfg`, with the attribution of `rows`
/// positions.
pub fn trace_bytes(cfg: &Config, seq: usize, rows: usize) -> u64 {
    let (l, h, m, d, v) = (
        cfg.n_layers as u64,
        cfg.n_heads as u64,
        cfg.d_model as u64,
        cfg.d_head as u64,
        cfg.d_vocab as u64,
    );
    let (s, r) = (seq as u64, rows as u64);
    let hooks = s * v + l * (h * s * s + s * h * d + s * h * m + s * m);
    // The tables of `r` positions, `b_U`'s row, and the `[Term::count, d_vocab]` table the
    // decoder fills at each position.
    let dla = if r > 0 {
        r * v * (2 + 2 * l * h + l) + v + (3 + l * h + l) * v
    } else {
        0
    };
    4 * (hooks + dla)
}

/// The longest sequence whose trace fits [`MAX_TRACE_BYTES`] (at most `n_ctx`), with the
/// attribution tables of every position or without.
pub fn longest_trace(cfg: &Config, every: bool) -> usize {
    let fits = |s: usize| trace_bytes(cfg, s, if every { s } else { 0 }) <= MAX_TRACE_BYTES;
    // The size grows with the length: bisect for the last length that fits.
    let (mut lo, mut hi) = (0, cfg.n_ctx);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// [`trace`], recording the attribution of the positions `dla` names. Refuses a trace larger
/// than [`MAX_TRACE_BYTES`], naming its size.
pub fn trace_for(model: &Model<'_>, tokens: &[u32], dla: Attribution) -> Result<Trace> {
    let cfg = *model.config();
    let (l, h, d, v) = (cfg.n_layers, cfg.n_heads, cfg.d_head, cfg.d_vocab);
    let seq = tokens.len();
    if seq == 0 {
        return Err(anyhow!("the prompt has no tokens"));
    }
    if seq > cfg.n_ctx {
        return Err(anyhow!(
            "the prompt has {seq} tokens, longer than the model's n_ctx {}",
            cfg.n_ctx
        ));
    }
    if let Attribution::Last(Some(t)) = dla {
        if t as usize >= v {
            return Err(anyhow!(
                "token {t} is out of range: the model has d_vocab = {v}"
            ));
        }
    }
    let r = if dla == Attribution::Every { seq } else { 0 };
    let bytes = trace_bytes(&cfg, seq, r);
    if bytes > MAX_TRACE_BYTES {
        let longest = longest_trace(&cfg, r > 0);
        return Err(anyhow!(
            "recording {seq} tokens of this model ({} heads, vocab {v}){} takes {} MiB, more \
             than the {} MiB tinylens allows: sequences of at most {longest} tokens fit",
            l * h,
            if r > 0 {
                " with the attribution of every position"
            } else {
                ""
            },
            bytes >> 20,
            MAX_TRACE_BYTES >> 20,
        ));
    }
    if model.format() == tinylens::NumberFormat::Int {
        return trace_int(model, tokens, dla);
    }
    let mut arena = vec![0.0f32; cfg.state_len()];
    let mut dec = Decoder::new(model, &mut arena)?;
    let n_terms = Term::count(&cfg);
    let mut t = Trace::zeros(&cfg, seq, r, true);
    let mut table = vec![0.0f32; if r > 0 { n_terms * v } else { 0 }];
    for (p, &token) in tokens.iter().enumerate() {
        let mut rec = Recorder {
            cfg,
            pos: p,
            result: &mut t.result,
            resid_post: &mut t.resid_post,
        };
        let logits = dec.step_with(token, &mut rec)?;
        t.logits[p * v..(p + 1) * v].copy_from_slice(logits);
        let logits = &t.logits[p * v..(p + 1) * v];
        check_finite(logits, p)?;
        for layer in 0..l {
            for head in 0..h {
                let row = dec.pattern(layer, head)?;
                let at = (head * seq + p) * seq;
                t.pattern[layer][at..at + row.len()].copy_from_slice(row);
                let at = (p * h + head) * d;
                t.z[layer][at..at + d].copy_from_slice(dec.z(layer, head)?);
            }
        }
        if p + 1 == seq {
            if let Attribution::Last(token) = dla {
                let token = token.unwrap_or_else(|| top_1(logits));
                t.last_terms = vec![0.0; n_terms];
                dec.attribute(Target::Token(token), LnConvention::Exact, &mut t.last_terms)?;
                t.last_token = Some(token);
            }
        }
        if r == 0 {
            continue;
        }
        let q = p;
        dec.attribution_table(LnConvention::Exact, &mut table)?;
        let row = |k: usize| &table[k * v..(k + 1) * v];
        t.dla_direct_embed[q * v..(q + 1) * v].copy_from_slice(row(0));
        t.dla_direct_pos[q * v..(q + 1) * v].copy_from_slice(row(1));
        for k in 0..l * h {
            t.dla_heads[(k * r + q) * v..][..v].copy_from_slice(row(2 + k));
        }
        for layer in 0..l {
            t.dla_bias_b_o[(layer * r + q) * v..][..v].copy_from_slice(row(2 + l * h + layer));
        }
        t.dla_bias_const.copy_from_slice(row(n_terms - 1));
        if let Some(tl) = t.dla_heads_tl.as_mut() {
            dec.attribution_table(LnConvention::TransformerLens, &mut table)?;
            for k in 0..l * h {
                tl[(k * r + q) * v..][..v].copy_from_slice(&table[(2 + k) * v..][..v]);
            }
        }
    }
    Ok(t)
}

/// Refuses logits that are NaN or infinite: finite weights can still overflow `f32` on the way
/// (a huge embedding squared in an attention score), and a silent NaN is worse than an error.
pub fn check_finite(logits: &[f32], position: usize) -> Result<()> {
    match logits.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(anyhow!(
            "logit {i} at position {position} is {}: the model's weights are too large for f32 \
             arithmetic (an intermediate overflowed); rescale the checkpoint",
            logits[i]
        )),
    }
}

/// The top prediction: the largest logit, the lowest id among equals (as `report::top_k`).
fn top_1(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x.total_cmp(&logits[best]).is_gt() {
            best = i;
        }
    }
    best as u32
}

/// [`trace`] of an `int` blob: the integer decoder's logits (Q16.16), patterns (Q15) and
/// attribution (Q16.16, exact LayerNorm split), converted to `f32` for comparison and display.
/// `z`, `hook_result` and `hook_resid_post` stay integers at scales the blob does not record,
/// so they are left empty, and there is no `dla.heads_tl`.
fn trace_int(model: &Model<'_>, tokens: &[u32], dla: Attribution) -> Result<Trace> {
    let cfg = *model.config();
    let (l, h, v) = (cfg.n_layers, cfg.n_heads, cfg.d_vocab);
    let seq = tokens.len();
    let r = if dla == Attribution::Every { seq } else { 0 };
    let unit = (1u64 << tinylens::forward_int::LOGIT_FRAC_BITS) as f32;
    let mut arena = vec![0i32; cfg.int_state_len()];
    let mut dec = tinylens::IntDecoder::new(model, &mut arena)?;
    let n_terms = Term::count(&cfg);
    let mut t = Trace::zeros(&cfg, seq, r, false);
    let mut table = vec![0i32; if r > 0 { n_terms * v } else { 0 }];
    for (p, &token) in tokens.iter().enumerate() {
        let logits = dec.step(token)?;
        for (o, &x) in t.logits[p * v..(p + 1) * v].iter_mut().zip(logits) {
            *o = x as f32 / unit;
        }
        for layer in 0..l {
            for head in 0..h {
                let row = dec.pattern(layer, head)?;
                let at = (head * seq + p) * seq;
                for (o, &x) in t.pattern[layer][at..at + row.len()].iter_mut().zip(row) {
                    *o = x as f32 / 32768.0;
                }
            }
        }
        if p + 1 == seq {
            if let Attribution::Last(token) = dla {
                let token = token.unwrap_or_else(|| top_1(&t.logits[p * v..(p + 1) * v]));
                let mut terms = vec![0i32; n_terms];
                dec.attribute(Target::Token(token), LnConvention::Exact, &mut terms)?;
                t.last_terms = terms.iter().map(|&x| x as f32 / unit).collect();
                t.last_token = Some(token);
            }
        }
        if r == 0 {
            continue;
        }
        let q = p;
        dec.attribution_table(LnConvention::Exact, &mut table)?;
        let row = |k: usize| table[k * v..(k + 1) * v].iter().map(|&x| x as f32 / unit);
        let put = |dst: &mut [f32], k: usize| dst.iter_mut().zip(row(k)).for_each(|(o, x)| *o = x);
        put(&mut t.dla_direct_embed[q * v..(q + 1) * v], 0);
        put(&mut t.dla_direct_pos[q * v..(q + 1) * v], 1);
        for k in 0..l * h {
            put(&mut t.dla_heads[(k * r + q) * v..][..v], 2 + k);
        }
        for layer in 0..l {
            put(
                &mut t.dla_bias_b_o[(layer * r + q) * v..][..v],
                2 + l * h + layer,
            );
        }
        put(&mut t.dla_bias_const, n_terms - 1);
    }
    Ok(t)
}

/// Writes a trace as safetensors, tensor names as TransformerLens hooks (see `run --out`),
/// with the `dla.*` tensors when the trace recorded them ([`Attribution::Every`]).
/// Returns the names of the hooks left out because the model's format does not keep them.
pub fn write_safetensors(
    trace: &Trace,
    cfg: &Config,
    path: &std::path::Path,
) -> Result<Vec<String>> {
    let (l, h, m, d, v, s) = (
        cfg.n_layers,
        cfg.n_heads,
        cfg.d_model,
        cfg.d_head,
        cfg.d_vocab,
        trace.seq,
    );
    let direct = trace.dla_direct();
    let mut named: Vec<(String, Vec<usize>, &[f32])> =
        vec![("logits".into(), vec![s, v], &trace.logits)];
    // The attribution of every position, when the trace recorded it (Attribution::Every).
    if !trace.dla_bias_const.is_empty() {
        named.extend([
            ("dla.direct".into(), vec![s, v], direct.as_slice()),
            (
                "dla.direct_embed".into(),
                vec![s, v],
                &trace.dla_direct_embed,
            ),
            ("dla.direct_pos".into(), vec![s, v], &trace.dla_direct_pos),
            ("dla.heads".into(), vec![l * h, s, v], &trace.dla_heads),
            ("dla.bias_b_O".into(), vec![l, s, v], &trace.dla_bias_b_o),
            ("dla.bias_const".into(), vec![v], &trace.dla_bias_const),
        ]);
        if let Some(tl) = &trace.dla_heads_tl {
            named.push(("dla.heads_tl".into(), vec![l * h, s, v], tl));
        }
    }
    for layer in 0..l {
        named.push((
            format!("blocks.{layer}.attn.hook_pattern"),
            vec![h, s, s],
            &trace.pattern[layer],
        ));
        named.push((
            format!("blocks.{layer}.attn.hook_z"),
            vec![s, h, d],
            &trace.z[layer],
        ));
        named.push((
            format!("blocks.{layer}.attn.hook_result"),
            vec![s, h, m],
            &trace.result[layer],
        ));
        named.push((
            format!("blocks.{layer}.hook_resid_post"),
            vec![s, m],
            &trace.resid_post[layer],
        ));
    }
    // Hooks a format does not record (the int format's z, results, residual) are left out.
    let left_out: Vec<String> = named
        .iter()
        .filter(|(_, _, data)| data.is_empty())
        .map(|(n, _, _)| n.clone())
        .collect();
    named.retain(|(_, _, data)| !data.is_empty());
    let views: Vec<(&str, &[usize], &[f32])> = named
        .iter()
        .map(|(n, shape, data)| (n.as_str(), shape.as_slice(), *data))
        .collect();
    crate::files::write_f32_safetensors(path, &views)?;
    Ok(left_out)
}
