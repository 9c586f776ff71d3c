//! Quantization on the host: `f32` parameters to an `i8`, `i8-block32` or `int` blob. All the
//! float arithmetic of the quantized formats happens here, once: scales, (multiplier, shift)
//! pairs, integer biases and LayerNorm words, calibrated activation ranges. The kernel only
//! reads the results.
//!
//! Weight scales are symmetric (`q = round(w / s)`, `s = max |w| / 127`), per output column
//! (`i8`, `int`) or per 32 consecutive elements (`i8-block32`). Activation scales of the `int`
//! format come from running the `f32` kernel over calibration sequences and taking the largest
//! magnitude of each quantity, times [`HEADROOM`] (int16) or [`HEADROOM_I8`] (int8).

use anyhow::{anyhow, bail, Result};
use tinylens::blob::{quant_len, tensors_in, NumberFormat, TensorId, TensorKind};
use tinylens::fixed::quantize_multiplier;
use tinylens::forward_int::{LN_FRAC_BITS, LOGIT_FRAC_BITS};
use tinylens::writer::{write_blob, TensorData};
use tinylens::{Config, Model, Norm, PosEmbed};

use crate::blobio::{blob_from_params, tensor};
use crate::params::Params;
use crate::trace::{trace_for, Attribution};

pub mod embedding;
pub mod gptq;
pub mod sensitivity;

/// Calibrated ranges are widened by this factor before they become int16 scales, so that
/// inputs outside the calibration set do not saturate (int16 has bits to spare).
pub const HEADROOM: f64 = 2.0;

/// The same for int8 scales (keys and values), where every bit counts.
pub const HEADROOM_I8: f64 = 1.5;

/// Largest int16 / int8 magnitudes used by the symmetric scales.
const Q15: f64 = 32767.0;
const Q7: f64 = 127.0;

fn id(kind: TensorKind, layer: usize) -> TensorId {
    TensorId {
        kind,
        layer: layer as u32,
    }
}

/// Which scale each element of a matrix tensor uses, for per-column scaling.
fn column_of(kind: TensorKind, cfg: &Config, idx: usize) -> usize {
    let (m, d) = (cfg.d_model, cfg.d_head);
    match kind {
        TensorKind::WE | TensorKind::WPos | TensorKind::WO => idx % m,
        TensorKind::WU => idx % cfg.d_vocab,
        // [n_heads, d_model, d_head]: one scale per (head, column).
        _ => idx / (m * d) * d + idx % d,
    }
}

/// Number of per-column scales of a matrix tensor.
fn n_columns(kind: TensorKind, cfg: &Config) -> usize {
    match kind {
        TensorKind::WE | TensorKind::WPos | TensorKind::WO => cfg.d_model,
        TensorKind::WU => cfg.d_vocab,
        _ => cfg.n_heads * cfg.d_head,
    }
}

/// A quantized matrix: int8 values and one scale per column or block.
#[derive(Clone, Debug, Default)]
pub struct QMatrix {
    /// The int8 values, in the tensor's layout.
    pub q: Vec<i8>,
    /// The scales (`w ~= q * scale`).
    pub scales: Vec<f64>,
}

/// Symmetric int8 quantization of `w`, with the scale of element `idx` at `group(idx)`.
/// A group of zeros gets scale `1 / 127`, so that biases stay representable.
pub fn quantize_matrix(w: &[f32], n_groups: usize, group: impl Fn(usize) -> usize) -> QMatrix {
    let mut max = vec![0.0f64; n_groups];
    for (i, &v) in w.iter().enumerate() {
        let g = group(i);
        max[g] = max[g].max((v as f64).abs());
    }
    let scales: Vec<f64> = max
        .iter()
        .map(|&m| if m > 0.0 { m / Q7 } else { 1.0 / Q7 })
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &v)| (v as f64 / scales[group(i)]).round().clamp(-Q7, Q7) as i8)
        .collect();
    QMatrix { q, scales }
}

/// How weights are rounded to int8 (the scales are the same either way).
#[derive(Clone, Debug)]
pub enum Rounding {
    /// `q = round(w / s)`, each weight on its own.
    Nearest,
    /// GPTQ ([`gptq`]): the projections, `W_O` and `W_U` minimize the error of their
    /// products over calibration activations; the embeddings are rounded to nearest.
    Gptq(Box<Hessians>),
}

/// Which scale of the matrix `kind` element `i` uses in `format`: its column, or its block
/// of 32 in `i8-block32`.
fn group_of(kind: TensorKind, cfg: &Config, format: NumberFormat, i: usize) -> usize {
    match format {
        NumberFormat::I8Block32 => i / 32,
        _ => column_of(kind, cfg, i),
    }
}

/// The scale of element `k` of the matrix `kind` quantized for `format` as `m`.
fn scale_of<'m>(
    kind: TensorKind,
    cfg: &'m Config,
    format: NumberFormat,
    m: &'m QMatrix,
) -> impl Fn(usize) -> f64 + 'm {
    move |k| m.scales[group_of(kind, cfg, format, k)]
}

/// The matrix `kind` of layer `layer` of `params`, quantized for `format`.
fn quantize_kind(
    params: &Params,
    kind: TensorKind,
    layer: usize,
    format: NumberFormat,
    rounding: &Rounding,
) -> QMatrix {
    let cfg = &params.config;
    let w = tensor(params, id(kind, layer));
    let group = |i: usize| group_of(kind, cfg, format, i);
    let n_groups = match format {
        NumberFormat::I8Block32 => w.len().div_ceil(32),
        _ => n_columns(kind, cfg),
    };
    let mut m = quantize_matrix(w, n_groups, group);
    let Rounding::Gptq(hs) = rounding else {
        return m;
    };
    let (d_model, d_head) = (cfg.d_model, cfg.d_head);
    // The statistics of what the matrix multiplies, and how many row blocks share them.
    let (gram, d_in, d_out): (Vec<&gptq::Gram>, usize, usize) = match kind {
        TensorKind::WQ | TensorKind::WK => (vec![&hs.qk[layer]; cfg.n_heads], d_model, d_head),
        TensorKind::WV => (vec![&hs.v[layer]; cfg.n_heads], d_model, d_head),
        TensorKind::WO => (hs.o[layer].iter().collect(), d_head, d_model),
        TensorKind::WU => (vec![&hs.u], d_model, cfg.d_vocab),
        TensorKind::WE => {
            // Rows are looked up: round W_E^T `[d_model, d_vocab]`, each token's row by its
            // effect on the next-token distributions.
            let h = &hs.resid;
            let rows = w.len() / d_model;
            let wt: Vec<f32> = (0..d_model * rows)
                .map(|k| w[(k % rows) * d_model + k / rows])
                .collect();
            let qt = gptq::round(&wt, rows, h, |k| {
                m.scales[group((k % rows) * d_model + k / rows)]
            });
            m.q = (0..w.len())
                .map(|k| qt[(k % d_model) * rows + k / d_model])
                .collect();
            return m;
        }
        _ => return m,
    };
    let scales = &m.scales;
    let mut q = Vec::with_capacity(w.len());
    for (b, h) in gram.into_iter().enumerate() {
        let at = b * d_in * d_out;
        let block = &w[at..at + d_in * d_out];
        q.extend(gptq::round(block, d_out, h, |k| scales[group(at + k)]));
    }
    m.q = q;
    m
}

const MATRICES: [TensorKind; 7] = [
    TensorKind::WE,
    TensorKind::WPos,
    TensorKind::WQ,
    TensorKind::WK,
    TensorKind::WV,
    TensorKind::WO,
    TensorKind::WU,
];

/// How `quantize` rounds weights: the choice a user makes, before any statistics exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Round {
    /// Round to nearest.
    #[default]
    Nearest,
    /// GPTQ on the calibration sequences.
    Gptq,
}

impl Round {
    /// The name `quantize --rounding` takes.
    pub fn name(self) -> &'static str {
        match self {
            Round::Nearest => "nearest",
            Round::Gptq => "gptq",
        }
    }

    /// The rounding named `name`.
    pub fn from_name(name: &str) -> Option<Round> {
        [Round::Nearest, Round::Gptq]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// The rounding `round` names, with its statistics from `sequences`.
pub fn rounding(params: &Params, sequences: &[Vec<u32>], round: Round) -> Result<Rounding> {
    Ok(match round {
        Round::Nearest => Rounding::Nearest,
        Round::Gptq => Rounding::Gptq(Box::new(hessians(params, sequences)?)),
    })
}

/// Writes `params` as a blob of `format` with the default rounding ([`quantize_with`]).
pub fn quantize_params(
    params: &Params,
    format: NumberFormat,
    calibration: Option<&[Vec<u32>]>,
) -> Result<Vec<u8>> {
    quantize_with(params, format, calibration, Round::default())
}

/// Writes `params` as a blob of `format`, rounding weights as `round` says. `calibration`
/// (token sequences) sets the activation ranges of `int` and the statistics of GPTQ; `None`
/// takes [`default_calibration`].
pub fn quantize_with(
    params: &Params,
    format: NumberFormat,
    calibration: Option<&[Vec<u32>]>,
    round: Round,
) -> Result<Vec<u8>> {
    let default;
    let sequences = match calibration {
        Some(s) => s,
        None => {
            default = default_calibration(&params.config);
            &default
        }
    };
    if format == NumberFormat::F32 {
        return blob_from_params(params);
    }
    quantize_rounded(
        params,
        format,
        sequences,
        &rounding(params, sequences, round)?,
    )
}

/// Writes `params` as a blob of a quantized `format` with weights rounded as `rounding` says
/// (made once, e.g. by [`rounding`], and shared with [`sensitivity`]); `sequences` calibrate
/// the activation ranges of `int`.
pub fn quantize_rounded(
    params: &Params,
    format: NumberFormat,
    sequences: &[Vec<u32>],
    rounding: &Rounding,
) -> Result<Vec<u8>> {
    match format {
        NumberFormat::F32 => blob_from_params(params),
        NumberFormat::I8 | NumberFormat::I8Block32 => write_i8(params, format, rounding),
        NumberFormat::Int => {
            let ranges = calibrate(params, sequences)?;
            write_int(params, &ranges, rounding)
        }
        other => bail!("cannot write format {}", other.name()),
    }
}

/// The `i8` / `i8-block32` blob: int8 matrices, `f32` scales, biases and LayerNorm.
fn write_i8(params: &Params, format: NumberFormat, rounding: &Rounding) -> Result<Vec<u8>> {
    let cfg = params.config;
    let mut q: Vec<(TensorId, Vec<i8>)> = Vec::new();
    let mut global = Vec::new();
    let mut layer_records: Vec<Vec<f32>> = vec![Vec::new(); cfg.n_layers];
    for (tid, _, _) in tensors_in(&cfg, format) {
        if !MATRICES.contains(&tid.kind) {
            continue;
        }
        let m = quantize_kind(params, tid.kind, tid.layer as usize, format, rounding);
        let scales = m.scales.iter().map(|&s| s as f32);
        if tid.kind.per_layer() {
            layer_records[tid.layer as usize].extend(scales);
        } else {
            global.extend(scales);
        }
        q.push((tid, m.q));
    }
    debug_assert_eq!(global.len(), quant_len(format, &cfg, TensorKind::Quant));
    write_blob(&cfg, format, params.vocab.as_deref(), |tid| {
        match tid.kind {
            TensorKind::Quant => TensorData::F32(&global),
            TensorKind::LayerQuant => TensorData::F32(&layer_records[tid.layer as usize]),
            kind if MATRICES.contains(&kind) => TensorData::I8(
                q.iter()
                    .find(|(t, _)| *t == tid)
                    .map_or(&[][..], |(_, v)| v.as_slice()),
            ),
            _ => TensorData::F32(tensor(params, tid)),
        }
    })
    .map_err(|e| anyhow!("cannot write blob: {e}"))
}

// ------------------------------------------------------------------------------------------
// Calibration
// ------------------------------------------------------------------------------------------

/// The largest magnitude of every activation the `int` format quantizes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ranges {
    /// Residual stream: embeddings, every partial sum of head results, every `resid_post`.
    pub resid: f64,
    /// Per layer: the heads' input (`ln1(x)`, plus `W_pos` for shortformer queries/keys).
    pub ln1: Vec<f64>,
    /// Per layer, per head and dimension (`h * d_head + j`): `q`, `k`, `v`.
    pub q: Vec<Vec<f64>>,
    /// See `q`.
    pub k: Vec<Vec<f64>>,
    /// See `q`.
    pub v: Vec<Vec<f64>>,
    /// Per layer: `z` of every head.
    pub z: Vec<f64>,
    /// `ln_final(x)`.
    pub ln_final: f64,
}

/// The built-in calibration set: 16 random sequences of length `n_ctx` (at most
/// [`MAX_GENERATED_LEN`](crate::inputs::MAX_GENERATED_LEN)), and 16 random half-length
/// sequences repeated twice (the repeated-token patterns induction heads see).
pub fn default_calibration(cfg: &Config) -> Vec<Vec<u32>> {
    let (len, _) = crate::inputs::generated_len(cfg.n_ctx);
    let mut seqs = crate::inputs::random_sequences(16, len, cfg.d_vocab, 0xCA1B);
    let half = len.div_ceil(2);
    for s in crate::inputs::random_sequences(16, half, cfg.d_vocab, 0x5EED) {
        let mut twice = s.clone();
        twice.extend(&s);
        twice.truncate(len);
        seqs.push(twice);
    }
    seqs
}

fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0, |a, b| a.max(b.abs()))
}

/// TransformerLens' LayerNorm in f64.
fn layer_norm64(x: &[f64], w: &[f32], b: &[f32], eps: f32) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let scale = (var + eps as f64).sqrt();
    x.iter()
        .zip(w.iter().zip(b))
        .map(|(v, (&w, &b))| (v - mean) / scale * w as f64 + b as f64)
        .collect()
}

/// `x @ w[h] + b[h]`, `w`: `[n_heads, d_in, d_out]`.
fn head_proj(x: &[f64], w: &[f32], b: &[f32], h: usize, d_out: usize) -> Vec<f64> {
    let d_in = x.len();
    (0..d_out)
        .map(|j| {
            b[h * d_out + j] as f64
                + (0..d_in)
                    .map(|i| x[i] * w[(h * d_in + i) * d_out + j] as f64)
                    .sum::<f64>()
        })
        .collect()
}

/// What the quantized matrices see at one position of a calibration sequence, in the order
/// the decoder computes it (see [`visit`]).
enum Seen<'a> {
    /// A value of the residual stream: the embedding, each partial sum of head results, each
    /// `resid_post`.
    Resid(&'a [f64]),
    /// Layer `layer`'s inputs: `normed` (`ln1(x)`, what `W_V` multiplies), `qk_in` (what
    /// `W_Q` and `W_K` multiply: `normed`, plus `W_pos` in the shortformer scheme) and every
    /// head's `z` `[n_heads, d_head]` (what `W_O` multiplies).
    Layer {
        layer: usize,
        normed: &'a [f64],
        qk_in: &'a [f64],
        z: &'a [f32],
    },
    /// What `W_U` multiplies: `ln_final(x)`, or `x` itself without LayerNorm (`normed` false).
    Final { x: &'a [f64], normed: bool },
}

/// Runs the `f32` kernel over `sequences` and shows `see` every activation a quantized matrix
/// multiplies. Tokens must be below `d_vocab` and sequences at most `n_ctx` long.
fn visit(params: &Params, sequences: &[Vec<u32>], mut see: impl FnMut(Seen<'_>)) -> Result<()> {
    let cfg = params.config;
    let (l_n, h_n, m, d) = (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head);
    if sequences.is_empty() {
        bail!("the calibration set has no sequences");
    }
    crate::inputs::check_sequences(&cfg, sequences, "calibration sequence")?;
    let blob = tinylens::writer::AlignedBytes::new(&blob_from_params(params)?);
    let model = Model::from_blob(blob.as_bytes()).map_err(|e| anyhow!(e))?;
    for tokens in sequences {
        let t = trace_for(&model, tokens, Attribution::Off)?;
        for (p, &tok) in tokens.iter().enumerate() {
            // The residual stream entering layer 0.
            let mut resid: Vec<f64> = (0..m)
                .map(|i| params.w_e[tok as usize * m + i] as f64)
                .collect();
            if let (PosEmbed::Standard, Some(w_pos)) = (cfg.pos, &params.w_pos) {
                resid
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, x)| *x += w_pos[p * m + i] as f64);
            }
            see(Seen::Resid(&resid));
            for l in 0..l_n {
                let lp = &params.layers[l];
                let normed = match (&lp.ln1, cfg.norm) {
                    (Some(ln), Norm::LayerNorm { eps }) => layer_norm64(&resid, &ln.w, &ln.b, eps),
                    _ => resid.clone(),
                };
                let mut qk_in = normed.clone();
                if let (PosEmbed::Shortformer, Some(w_pos)) = (cfg.pos, &params.w_pos) {
                    qk_in
                        .iter_mut()
                        .enumerate()
                        .for_each(|(i, x)| *x += w_pos[p * m + i] as f64);
                }
                see(Seen::Layer {
                    layer: l,
                    normed: &normed,
                    qk_in: &qk_in,
                    z: &t.z[l][p * h_n * d..(p + 1) * h_n * d],
                });
                // Partial sums as the decoder adds heads one at a time.
                for h in 0..h_n {
                    let res = &t.result[l][(p * h_n + h) * m..][..m];
                    resid.iter_mut().zip(res).for_each(|(x, &y)| *x += y as f64);
                    see(Seen::Resid(&resid));
                }
                resid = t.resid_post[l][p * m..(p + 1) * m]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                see(Seen::Resid(&resid));
            }
            match (&params.ln_final, cfg.norm) {
                (Some(ln), Norm::LayerNorm { eps }) => see(Seen::Final {
                    x: &layer_norm64(&resid, &ln.w, &ln.b, eps),
                    normed: true,
                }),
                _ => see(Seen::Final {
                    x: &resid,
                    normed: false,
                }),
            }
        }
    }
    Ok(())
}

/// Runs the `f32` kernel over `sequences` and records the range of every quantity the `int`
/// format quantizes. Tokens must be below `d_vocab` and sequences at most `n_ctx` long.
pub fn calibrate(params: &Params, sequences: &[Vec<u32>]) -> Result<Ranges> {
    let cfg = params.config;
    let (l_n, h_n, d) = (cfg.n_layers, cfg.n_heads, cfg.d_head);
    let mut r = Ranges {
        ln1: vec![0.0; l_n],
        q: vec![vec![0.0; h_n * d]; l_n],
        k: vec![vec![0.0; h_n * d]; l_n],
        v: vec![vec![0.0; h_n * d]; l_n],
        z: vec![0.0; l_n],
        ..Ranges::default()
    };
    visit(params, sequences, |seen| match seen {
        Seen::Resid(x) => r.resid = r.resid.max(max_abs(x.iter().copied())),
        Seen::Layer {
            layer: l,
            normed,
            qk_in,
            z,
        } => {
            let lp = &params.layers[l];
            r.ln1[l] = r.ln1[l].max(max_abs(normed.iter().chain(qk_in).copied()));
            for h in 0..h_n {
                let q = head_proj(qk_in, &lp.w_q, &lp.b_q, h, d);
                let k = head_proj(qk_in, &lp.w_k, &lp.b_k, h, d);
                let v = head_proj(normed, &lp.w_v, &lp.b_v, h, d);
                for j in 0..d {
                    let c = h * d + j;
                    r.q[l][c] = r.q[l][c].max(q[j].abs());
                    r.k[l][c] = r.k[l][c].max(k[j].abs());
                    r.v[l][c] = r.v[l][c].max(v[j].abs());
                }
            }
            r.z[l] = r.z[l].max(max_abs(z.iter().map(|&v| v as f64)));
        }
        Seen::Final { x, normed: true } => {
            r.ln_final = r.ln_final.max(max_abs(x.iter().copied()));
        }
        Seen::Final { normed: false, .. } => {}
    })?;
    Ok(r)
}

/// The input statistics `X^T X` of every matrix [`gptq`] rounds, over calibration sequences.
#[derive(Clone, Debug)]
pub struct Hessians {
    /// Per layer: what `W_Q` and `W_K` multiply.
    pub qk: Vec<gptq::Gram>,
    /// Per layer: what `W_V` multiplies.
    pub v: Vec<gptq::Gram>,
    /// Per layer and head: `z`, what that head's `W_O` multiplies.
    pub o: Vec<Vec<gptq::Gram>>,
    /// What `W_U` multiplies.
    pub u: gptq::Gram,
    /// How an error in the residual stream entering layer 0 costs KL ([`embedding`]): the
    /// statistics of `W_E`'s rows.
    pub resid: gptq::Gram,
}

/// Collects [`Hessians`] by running the `f32` kernel over `sequences`.
pub fn hessians(params: &Params, sequences: &[Vec<u32>]) -> Result<Hessians> {
    let cfg = params.config;
    let (l_n, h_n, m, d) = (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head);
    let mut hs = Hessians {
        qk: vec![gptq::Gram::new(m); l_n],
        v: vec![gptq::Gram::new(m); l_n],
        o: vec![vec![gptq::Gram::new(d); h_n]; l_n],
        u: gptq::Gram::new(m),
        resid: gptq::Gram::new(m),
    };
    visit(params, sequences, |seen| match seen {
        Seen::Resid(_) => {}
        Seen::Layer {
            layer,
            normed,
            qk_in,
            z,
        } => {
            hs.qk[layer].add(qk_in);
            hs.v[layer].add(normed);
            for (h, zh) in z.chunks_exact(d).enumerate() {
                let zh: Vec<f64> = zh.iter().map(|&v| v as f64).collect();
                hs.o[layer][h].add(&zh);
            }
        }
        Seen::Final { x, .. } => hs.u.add(x),
    })?;
    // Nudges of about one rounding step of W_E.
    let w_e = quantize_matrix(&params.w_e, m, |i| column_of(TensorKind::WE, &cfg, i));
    let eps = (w_e.scales.iter().sum::<f64>() / m as f64) as f32;
    hs.resid = embedding::resid_hessian(params, sequences, eps)?;
    Ok(hs)
}

// ------------------------------------------------------------------------------------------
// The int blob
// ------------------------------------------------------------------------------------------

/// A scale from a calibrated magnitude: `max * headroom / qmax` (never zero), with
/// [`HEADROOM`] for int16 and [`HEADROOM_I8`] for int8 quantities.
fn act_scale(max: f64, qmax: f64) -> f64 {
    let headroom = if qmax > Q7 { HEADROOM } else { HEADROOM_I8 };
    (max.max(1e-6) * headroom) / qmax
}

/// Appends the (multiplier, shift) pair of `real` to `out`, or names the tensor it overflows.
fn push_rq(out: &mut Vec<i32>, real: f64, what: &dyn Fn() -> String) -> Result<()> {
    let (m, s) = quantize_multiplier(real).ok_or_else(|| {
        anyhow!(
            "{}: scale {real:e} overflows the fixed-point range (multiplier * 2^shift with shift <= 30)",
            what()
        )
    })?;
    out.extend([m, s]);
    Ok(())
}

/// `round(v)` as `i32`, or an error naming the tensor.
fn to_i32(v: f64, what: &dyn Fn() -> String) -> Result<i32> {
    let r = v.round();
    if r.is_finite() && r.abs() < (1u64 << 31) as f64 {
        Ok(r as i32)
    } else {
        bail!(
            "{}: value {v:e} overflows i32 in the fixed-point format",
            what()
        )
    }
}

/// `d_in * 127 * 32767 (+ |bias|)` must fit the `i32` accumulator.
fn check_accumulator(d_in: usize, bias_max: i64, what: &str) -> Result<()> {
    let bound = d_in as i64 * 127 * 32767 + bias_max;
    if bound > i32::MAX as i64 {
        bail!(
            "{what}: d_in {d_in} * 127 * 32767 + max |bias| {bias_max} = {bound} does not fit the i32 accumulator"
        );
    }
    Ok(())
}

/// The integer LayerNorm epsilon `n^2 eps / s_in^2`, as two words (low, high).
fn ln_eps(n: usize, eps: f32, s_in: f64) -> [i32; 2] {
    let e = ((n * n) as f64 * eps as f64 / (s_in * s_in))
        .round()
        .clamp(0.0, (1u64 << 52) as f64) as u64;
    [e as u32 as i32, (e >> 32) as u32 as i32]
}

/// LayerNorm words `W_i = w_i / s_out`, `B_i = b_i / s_out` in Q16.
fn ln_words(
    w: &[f32],
    b: &[f32],
    s_out: f64,
    layer: Option<usize>,
) -> Result<(Vec<i32>, Vec<i32>)> {
    let name = |k: &str| match layer {
        Some(l) => format!("blocks.{l}.ln1.{k}"),
        None => format!("ln_final.{k}"),
    };
    let f = (1u64 << LN_FRAC_BITS) as f64;
    let ws = w
        .iter()
        .map(|&v| to_i32(v as f64 / s_out * f, &|| name("w")))
        .collect::<Result<_>>()?;
    let bs = b
        .iter()
        .map(|&v| to_i32(v as f64 / s_out * f, &|| name("b")))
        .collect::<Result<_>>()?;
    Ok((ws, bs))
}

/// The `int` blob of `params` under calibrated `ranges`.
pub fn write_int(params: &Params, ranges: &Ranges, rounding: &Rounding) -> Result<Vec<u8>> {
    let cfg = params.config;
    let fmt = NumberFormat::Int;
    let (l_n, h_n, m, d, v) = (
        cfg.n_layers,
        cfg.n_heads,
        cfg.d_model,
        cfg.d_head,
        cfg.d_vocab,
    );
    let has_ln = matches!(cfg.norm, Norm::LayerNorm { .. });
    let eps = match cfg.norm {
        Norm::LayerNorm { eps } => eps,
        Norm::None => 0.0,
    };
    if has_ln && m > tinylens::forward_int::MAX_D_MODEL {
        bail!(
            "the int format needs d_model <= {}",
            tinylens::forward_int::MAX_D_MODEL
        );
    }
    let s_r = act_scale(ranges.resid, Q15);
    let mut i8s: Vec<(TensorId, Vec<i8>)> = Vec::new();
    let mut i32s: Vec<(TensorId, Vec<i32>)> = Vec::new();
    let mut global: Vec<i32> = Vec::new();

    // Embeddings: columns to the residual scale.
    let w_e = quantize_kind(params, TensorKind::WE, 0, fmt, rounding);
    for (i, s) in w_e.scales.iter().enumerate() {
        push_rq(&mut global, s / s_r, &|| format!("embed.W_E column {i}"))?;
    }
    i8s.push((id(TensorKind::WE, 0), w_e.q));
    let w_pos = (cfg.pos != PosEmbed::None)
        .then(|| quantize_kind(params, TensorKind::WPos, 0, fmt, rounding));
    if let Some(wp) = &w_pos {
        if cfg.pos == PosEmbed::Standard {
            for (i, s) in wp.scales.iter().enumerate() {
                push_rq(&mut global, s / s_r, &|| {
                    format!("pos_embed.W_pos column {i}")
                })?;
            }
        }
        i8s.push((id(TensorKind::WPos, 0), wp.q.clone()));
    }

    for l in 0..l_n {
        let lp = &params.layers[l];
        let mut rec: Vec<i32> = Vec::new();
        let s_in = if has_ln {
            act_scale(ranges.ln1[l], Q15)
        } else {
            s_r
        };
        if let Some(ln) = &lp.ln1 {
            let (w, b) = ln_words(&ln.w, &ln.b, s_in, Some(l))?;
            i32s.push((id(TensorKind::Ln1W, l), w));
            i32s.push((id(TensorKind::Ln1B, l), b));
        }
        // Keys and values: int8, one scale per dimension. Queries: int16 with the key scales
        // folded in (q'_j = q_j s_k[j] / S_q), one S_q per head, so that q' . k = q . k / S_q.
        let s_k: Vec<f64> = ranges.k[l].iter().map(|&k| act_scale(k, Q7)).collect();
        let s_v: Vec<f64> = ranges.v[l].iter().map(|&v| act_scale(v, Q7)).collect();
        let s_qh: Vec<f64> = (0..h_n)
            .map(|h| {
                let m = (0..d)
                    .map(|j| ranges.q[l][h * d + j] * s_k[h * d + j])
                    .fold(0.0, f64::max);
                act_scale(m, Q15)
            })
            .collect();
        let out_scales: [Vec<f64>; 3] = [
            (0..h_n * d).map(|c| s_qh[c / d] / s_k[c]).collect(),
            s_k.clone(),
            s_v.clone(),
        ];
        for (p, (kind, bkind, bias)) in [
            (TensorKind::WQ, TensorKind::BQ, &lp.b_q),
            (TensorKind::WK, TensorKind::BK, &lp.b_k),
            (TensorKind::WV, TensorKind::BV, &lp.b_v),
        ]
        .into_iter()
        .enumerate()
        {
            let w = quantize_kind(params, kind, l, fmt, rounding);
            let name = id(kind, l).to_string();
            let bname = id(bkind, l).to_string();
            let mut b_acc = Vec::with_capacity(h_n * d);
            for (c, &s_w) in w.scales.iter().enumerate() {
                let s_out = out_scales[p][c];
                push_rq(&mut rec, s_in * s_w / s_out, &|| {
                    format!("{name} column {c}")
                })?;
                b_acc.push(to_i32(bias[c] as f64 / (s_in * s_w), &|| bname.clone())?);
            }
            let bias_max = b_acc.iter().map(|b| (*b as i64).abs()).max().unwrap_or(0);
            check_accumulator(m, bias_max, &name)?;
            i8s.push((id(kind, l), w.q));
            i32s.push((id(bkind, l), b_acc));
        }
        let log2e = std::f64::consts::LOG2_E;
        for (h, s_q) in s_qh.iter().enumerate() {
            let real = s_q / (d as f64).sqrt() * log2e * 256.0;
            push_rq(&mut rec, real, &|| {
                format!("blocks.{l}.attn softmax scale of head {h}")
            })?;
        }
        let s_z = act_scale(ranges.z[l], Q15);
        for (c, s_v) in s_v.iter().enumerate() {
            push_rq(&mut rec, s_v / 32768.0 / s_z, &|| {
                format!(
                    "blocks.{l}.attn.hook_z of head {} dimension {}",
                    c / d,
                    c % d
                )
            })?;
        }
        let w_o = quantize_kind(params, TensorKind::WO, l, fmt, rounding);
        let name = id(TensorKind::WO, l).to_string();
        for (i, &s_w) in w_o.scales.iter().enumerate() {
            push_rq(&mut rec, s_z * s_w / s_r, &|| format!("{name} column {i}"))?;
        }
        check_accumulator(d, 0, &name)?;
        i8s.push((id(TensorKind::WO, l), w_o.q));
        if let (PosEmbed::Shortformer, Some(wp)) = (cfg.pos, &w_pos) {
            for (i, s) in wp.scales.iter().enumerate() {
                push_rq(&mut rec, s / s_in, &|| {
                    format!("pos_embed.W_pos column {i} (layer {l})")
                })?;
            }
        }
        if has_ln {
            rec.extend(ln_eps(m, eps, s_r));
        }
        let b_o = lp
            .b_o
            .iter()
            .map(|&b| to_i32(b as f64 / s_r, &|| id(TensorKind::BO, l).to_string()))
            .collect::<Result<Vec<_>>>()?;
        i32s.push((id(TensorKind::BO, l), b_o));
        debug_assert_eq!(rec.len(), quant_len(fmt, &cfg, TensorKind::LayerQuant));
        i32s.push((id(TensorKind::LayerQuant, l), rec));
    }

    // The final LayerNorm and the unembedding, into Q16.16 logits.
    let s_in = if has_ln {
        act_scale(ranges.ln_final, Q15)
    } else {
        s_r
    };
    if let Some(ln) = &params.ln_final {
        let (w, b) = ln_words(&ln.w, &ln.b, s_in, None)?;
        i32s.push((id(TensorKind::LnFinalW, 0), w));
        i32s.push((id(TensorKind::LnFinalB, 0), b));
    }
    let w_u = quantize_kind(params, TensorKind::WU, 0, fmt, rounding);
    let logit_unit = (1u64 << LOGIT_FRAC_BITS) as f64;
    let mut b_acc = Vec::with_capacity(v);
    for (j, &s_w) in w_u.scales.iter().enumerate() {
        push_rq(&mut global, s_in * s_w * logit_unit, &|| {
            format!("unembed.W_U column {j}")
        })?;
        b_acc.push(to_i32(params.b_u[j] as f64 / (s_in * s_w), &|| {
            "unembed.b_U".into()
        })?);
    }
    let bias_max = b_acc.iter().map(|b| (*b as i64).abs()).max().unwrap_or(0);
    check_accumulator(m, bias_max, "unembed.W_U")?;
    i8s.push((id(TensorKind::WU, 0), w_u.q));
    i32s.push((id(TensorKind::BU, 0), b_acc));
    if has_ln {
        global.extend(ln_eps(m, eps, s_r));
    }
    debug_assert_eq!(global.len(), quant_len(fmt, &cfg, TensorKind::Quant));
    i32s.push((id(TensorKind::Quant, 0), global));

    write_blob(&cfg, fmt, params.vocab.as_deref(), |tid| {
        if let Some((_, q)) = i8s.iter().find(|(t, _)| *t == tid) {
            TensorData::I8(q)
        } else {
            TensorData::I32(
                i32s.iter()
                    .find(|(t, _)| *t == tid)
                    .map_or(&[][..], |(_, v)| v.as_slice()),
            )
        }
    })
    .map_err(|e| anyhow!("cannot write blob: {e}"))
}
