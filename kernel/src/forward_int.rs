//! The full-integer forward pass (format `int`), for cores without an FPU (Cortex-M0/M3,
//! RISC-V without F): int8 weights, int16 residual stream, LayerNorm outputs and queries, int8
//! keys and values (an int8 KV cache: a quarter of the `f32` one), `i32` accumulators, and no
//! float anywhere. Every scale is a (multiplier, shift) pair computed on the host and stored in
//! the blob; the one rounding step is [`requantize`]. The same blob and tokens give the same
//! bits on every target.
//!
//! Number formats of the activations (`s_*` are real scales, chosen by calibration on the host):
//!
//! | quantity | type | real value |
//! |---|---|---|
//! | residual stream `x`, head results, `b_O` | `i16` | `s_resid * x` |
//! | LayerNorm output (input of the heads / of `W_U`) | `i16` | `s_ln * y` |
//! | `k`, `v` of head `h` (the KV cache) | `i8` | `s_k[h][j] * k_j`, `s_v[h][j] * v_j`: one scale per dimension |
//! | `q` of head `h` (one vector, not cached) | `i16` | `S_q[h] / s_k[h][j] * q_j`: the key scales folded in, so `q . k` needs no rescaling |
//! | attention pattern | `u16` | `p / 2^15` (Q15) |
//! | `z` of a layer | `i16` | `s_z * z` |
//! | logits and attribution terms | `i32` | `logit / 2^16` (Q16.16, [`LOGIT_FRAC_BITS`]) |
//!
//! First one function per equation, then [`IntDecoder`].

use crate::blob::TensorKind;
pub use crate::fixed::Requant;
use crate::fixed::{
    isqrt_u64, requantize, round_shift_i64, saturate_i16, saturate_i16_wide, saturate_i8,
    softmax_q15,
};
pub use crate::weights::int::IntWeights;
use crate::{Config, Error, LnConvention, Model, Norm, PosEmbed, Target, Term};

/// Fractional bits of logits and attribution terms: `logit = value / 2^16`.
pub const LOGIT_FRAC_BITS: u32 = 16;
/// Fractional bits of the LayerNorm weight and bias words (`w / s_ln`, `b / s_ln` in Q12).
pub const LN_FRAC_BITS: u32 = 12;
/// Fractional bits of the normalized value `(x - mean) / std` inside [`layer_norm_int`].
pub const NORM_FRAC_BITS: u32 = 16;
pub use crate::weights::int::MAX_D_MODEL;

// ------------------------------------------------------------------------------------------
// The equations, in integers
// ------------------------------------------------------------------------------------------

/// Token and position embedding into the int16 residual stream:
/// `x_i = sat16(rq_e[i](W_E[t, i]) + rq_p[i](W_pos[p, i]))`.
///
/// `w_e_row`, `w_pos_row`: `[d_model]`, `x`: `[d_model]`
pub fn embed_int(w_e_row: &[i8], rq_e: &[i32], pos: Option<(&[i8], &[i32])>, x: &mut [i16]) {
    for (i, (xi, &q)) in x.iter_mut().zip(w_e_row).enumerate() {
        let mut v = Requant::from_pair(rq_e, i).apply(q as i32);
        if let Some((w_pos_row, rq_p)) = pos {
            v = v.saturating_add(Requant::from_pair(rq_p, i).apply(w_pos_row[i] as i32));
        }
        *xi = saturate_i16(v);
    }
}

/// `x += rq(W_pos[p])`, saturating: shortformer positions added to the heads' input.
///
/// `w_pos_row`: `[d_model]`, `x`: `[d_model]`
pub fn add_pos_int(w_pos_row: &[i8], rq: &[i32], x: &mut [i16]) {
    for (i, (xi, &q)) in x.iter_mut().zip(w_pos_row).enumerate() {
        *xi = saturate_i16((*xi as i32).saturating_add(Requant::from_pair(rq, i).apply(q as i32)));
    }
}

/// The frozen scale of one LayerNorm: what [`layer_norm_int`] divided by, kept so that
/// attribution can push any residual vector through the same linear map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LnScale {
    /// `2^46 / isqrt(16^2 * (n^2 var + n^2 eps))`: one over `16 n std`, in Q46.
    pub inv: u64,
}

/// `(n c_i - sum c) * inv`, rounded to [`NORM_FRAC_BITS`]: the normalized value of element
/// `i` (`(c_i - mean) / std` in Q16) under a frozen scale.
#[inline]
fn normalized(centered: i64, inv: u64) -> i64 {
    // 16 n std * inv = 2^46, so centered * inv / 2^(46 - 4 - 16) = centered / (n std) in Q16.
    round_shift_i64(centered.saturating_mul(inv as i64), 46 - 4 - NORM_FRAC_BITS)
}

/// LayerNorm in integers, TransformerLens' definition with biased variance:
///
/// ```text
/// c_i   = n x_i - sum_k x_k                        (exact: n times the centred value)
/// std'  = isqrt(16^2 (sum_k c_k^2 / n + eps))      (16 n std, from the integer square root)
/// y_i   = round(c_i * 16 / std' * W_i + B_i)        (W_i = w_i / s_ln, B_i = b_i / s_ln, Q12)
/// ```
///
/// `eps` is `n^2 eps / s_x^2` (the host's integer). Returns the frozen [`LnScale`].
///
/// `x`: `[d_model]` i16, `w`, `b`: `[d_model]` Q12, `out`: `[d_model]` i16
pub fn layer_norm_int(x: &[i16], w: &[i32], b: &[i32], eps: u64, out: &mut [i16]) -> LnScale {
    let n = x.len() as i64;
    let sum: i64 = x.iter().map(|&v| v as i64).sum();
    let var_n3: u64 = x
        .iter()
        .map(|&v| {
            let c = n * v as i64 - sum;
            (c * c) as u64
        })
        .fold(0u64, u64::saturating_add);
    let d = (var_n3 / n.max(1) as u64).saturating_add(eps);
    let std16 = isqrt_u64(d.min(u64::MAX >> 8) << 8);
    let inv = (1u64 << 46).checked_div(std16).unwrap_or(0);
    let scale = LnScale { inv };
    for (((o, &v), &wi), &bi) in out.iter_mut().zip(x).zip(w).zip(b) {
        let z = normalized(n * v as i64 - sum, inv);
        let y = z
            .saturating_mul(wi as i64)
            .saturating_add((bi as i64) << NORM_FRAC_BITS);
        *o = saturate_i16_wide(round_shift_i64(y, NORM_FRAC_BITS + LN_FRAC_BITS));
    }
    scale
}

/// The final LayerNorm with its scale frozen, as a linear map (in place), for attribution:
/// `y_i = (c_i - mean c) / std * W_i`, no bias (the bias is the constant term).
///
/// `c`: `[d_model]` i16 at the residual scale, becomes the LayerNorm-output scale
pub fn frozen_layer_norm_int(c: &mut [i16], w: &[i32], scale: LnScale) {
    let n = c.len() as i64;
    let sum: i64 = c.iter().map(|&v| v as i64).sum();
    for (v, &wi) in c.iter_mut().zip(w) {
        let z = normalized(n * *v as i64 - sum, scale.inv);
        *v = saturate_i16_wide(round_shift_i64(
            z.saturating_mul(wi as i64),
            NORM_FRAC_BITS + LN_FRAC_BITS,
        ));
    }
}

/// `acc_j = b_j + sum_i x_i w_ij` in `i32` (wrapping: the host proves at quantize time that
/// `d_in * 127 * 32767` and the bias fit), then `out_j = rq_j(acc_j)`.
///
/// `x`: `[d_in]` i16, `w`: `[d_in, d_out]` i8, `b`: `[d_out]`, `rq`: `[d_out]` pairs, `out`: `[d_out]`
pub fn matvec_int(x: &[i16], w: &[i8], b: Option<&[i32]>, rq: &[i32], out: &mut [i32]) {
    let cols = out.len();
    match b {
        Some(b) => out.copy_from_slice(&b[..cols]),
        None => out.fill(0),
    }
    let wide = cols - cols % TILE;
    let narrow = cols - cols % TILE2;
    for j in (0..wide).step_by(TILE) {
        matvec_int_tile::<TILE>(x, w, cols, j, &mut out[j..j + TILE]);
    }
    for j in (wide..narrow).step_by(TILE2) {
        matvec_int_tile::<TILE2>(x, w, cols, j, &mut out[j..j + TILE2]);
    }
    for j in narrow..cols {
        matvec_int_tile::<1>(x, w, cols, j, &mut out[j..j + 1]);
    }
    for (o, pair) in out.iter_mut().zip(rq.chunks_exact(2)) {
        *o = requantize(*o, pair[0], pair[1]);
    }
}

/// Output columns [`matvec_int`] keeps in registers at a time, then [`TILE2`], then one:
/// measured by instruction counts under QEMU on demo-2l (`cargo xtask qemu`), sixteen suit the
/// Cortex-M0 (ARMv6-M, the ARM profile without 32-bit atomics) and eight the Thumb-2 cores.
const TILE: usize = if cfg!(all(target_arch = "arm", not(target_has_atomic = "32"))) {
    16
} else {
    8
};
/// The second, narrower tile of [`matvec_int`].
const TILE2: usize = 4;

/// Columns `j..j + T` of [`matvec_int`] (`acc` holds their biases): `T` sums in registers
/// while the rows go by, so every weight is loaded once and no partial sum returns to memory
/// inside the loop.
#[inline(always)]
fn matvec_int_tile<const T: usize>(x: &[i16], w: &[i8], cols: usize, j: usize, acc: &mut [i32]) {
    let mut sums = [0i32; T];
    sums.copy_from_slice(acc);
    for (&xi, row) in x.iter().zip(w.chunks_exact(cols)) {
        let xi = xi as i32;
        let r = &row[j..j + T];
        for t in 0..T {
            sums[t] = sums[t].wrapping_add(xi.wrapping_mul(r[t] as i32));
        }
    }
    acc.copy_from_slice(&sums);
}

/// [`matvec_int`] written element by element, the plain version it is tested against.
pub fn matvec_int_reference(x: &[i16], w: &[i8], b: Option<&[i32]>, rq: &[i32], out: &mut [i32]) {
    let cols = out.len();
    for (j, o) in out.iter_mut().enumerate() {
        let mut acc = b.map_or(0i32, |b| b[j]);
        for (i, &xi) in x.iter().enumerate() {
            acc = acc.wrapping_add((xi as i32).wrapping_mul(w[i * cols + j] as i32));
        }
        *o = Requant::from_pair(rq, j).apply(acc);
    }
}

/// A projection into int8 (`q`, `k` or `v` of one head): [`matvec_int`], saturated to `i8`.
///
/// `x`: `[d_model]`, `w`: `[d_model, d_head]`, `b`: `[d_head]`, `out`: `[d_head]`
pub fn project_int(x: &[i16], w: &[i8], b: &[i32], rq: &[i32], out: &mut [i8], acc: &mut [i32]) {
    matvec_int(x, w, Some(b), rq, acc);
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = saturate_i8(a);
    }
}

/// The query of one head in int16: [`matvec_int`], saturated to `i16`. The query is one
/// vector (not cached), so it keeps 16 bits where keys and values take 8.
///
/// `x`: `[d_model]`, `w`: `[d_model, d_head]`, `b`: `[d_head]`, `out`: `[d_head]`
pub fn query_int(x: &[i16], w: &[i8], b: &[i32], rq: &[i32], out: &mut [i16], acc: &mut [i32]) {
    matvec_int(x, w, Some(b), rq, acc);
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = saturate_i16(a);
    }
}

/// Raw attention scores of one query against the keys of positions `0..n`:
/// `s_j = q . k_j` in `i32` (`d_head * 32767 * 127` fits). The scale
/// (`s_q s_k / sqrt(d_head)`) is folded into the softmax multiplier.
///
/// `q`: `[d_head]` i16, `keys`: `[>= n, d_head]` i8, `scores`: `[n]`
pub fn attention_scores_int(q: &[i16], keys: &[i8], scores: &mut [i32]) {
    for (s, k) in scores.iter_mut().zip(keys.chunks_exact(q.len())) {
        *s = q
            .iter()
            .zip(k)
            .fold(0i32, |acc, (&a, &b)| acc.wrapping_add(a as i32 * b as i32));
    }
}

/// `z_k = rq_k(sum_j p_j v_jk)` with `p` in Q15 (`sum p <= 2^15 + n/2`, so the `i32` sum
/// cannot overflow), saturated to `i16`. Each value dimension `k` has its own scale, folded
/// into `rq_k`.
///
/// `pattern`: `[n]`, `values`: `[>= n, d_head]`, `rq`: `[d_head]` pairs, `z`: `[d_head]`
pub fn mix_values_int(pattern: &[u16], values: &[i8], rq: &[i32], z: &mut [i16]) {
    let d = z.len();
    for (k, (zk, rq)) in z.iter_mut().zip(rq.chunks_exact(2)).enumerate() {
        let acc: i32 = pattern
            .iter()
            .zip(values.chunks_exact(d))
            .map(|(&p, v)| p as i32 * v[k] as i32)
            .sum();
        *zk = saturate_i16(requantize(acc, rq[0], rq[1]));
    }
}

/// What one head writes into the residual stream, at the residual scale:
/// `result_i = sat16(rq_o[i](sum_k z_k W_O[k, i]))`.
///
/// `z`: `[d_head]`, `w_o`: `[d_head, d_model]`, `out`: `[d_model]`, `acc`: scratch `[d_model]`
pub fn head_result_int(z: &[i16], w_o: &[i8], rq_o: &[i32], out: &mut [i16], acc: &mut [i32]) {
    matvec_int(z, w_o, None, rq_o, acc);
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = saturate_i16(a);
    }
}

/// `x = sat16(x + y)`
pub fn add_int(x: &mut [i16], y: &[i16]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a = saturate_i16(*a as i32 + b as i32);
    }
}

// ------------------------------------------------------------------------------------------
// The decoder
// ------------------------------------------------------------------------------------------

/// Storage for an [`IntDecoder`], sized at compile time so that it can live in a `static`:
/// `static mut STATE: IntArena<{ CONFIG.int_state_len() }> = IntArena::new();`
#[repr(C, align(16))]
pub struct IntArena<const N: usize>([i32; N]);

impl<const N: usize> IntArena<N> {
    /// A zeroed arena.
    pub const fn new() -> Self {
        IntArena([0; N])
    }

    /// The whole arena, to hand to [`IntDecoder::new`].
    pub fn as_mut_slice(&mut self) -> &mut [i32] {
        &mut self.0
    }
}

impl<const N: usize> Default for IntArena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Takes `n` elements of type `T` off the front of `buf`, rounded up to whole words.
fn take<'s, T: bytemuck::Pod>(buf: &mut &'s mut [i32], n: usize) -> &'s mut [T] {
    let words = (n * core::mem::size_of::<T>()).div_ceil(4);
    let (head, tail) = core::mem::take(buf).split_at_mut(words);
    *buf = tail;
    let typed: &mut [T] = bytemuck::cast_slice_mut(head);
    &mut typed[..n]
}

/// Called by [`IntDecoder::step_with`] at TransformerLens' hook points, with integer values.
pub trait IntHooks {
    /// `hook_result` of `head` in `layer`, at the residual scale: `[d_model]`
    fn result(&mut self, layer: usize, head: usize, result: &[i16]) {
        let _ = (layer, head, result);
    }
    /// `hook_resid_post` of `layer`, at the residual scale: `[d_model]`
    fn resid_post(&mut self, layer: usize, resid: &[i16]) {
        let _ = (layer, resid);
    }
}

impl IntHooks for () {}

/// Runs an `int` blob one token at a time, in integers only. The API mirrors
/// [`Decoder`](crate::Decoder); logits and attribution terms are Q16.16 `i32`
/// (divide by `2^16` for logit units).
pub struct IntDecoder<'m, 's> {
    cfg: Config,
    w: IntWeights<'m>,
    ctx: usize,
    pos: usize,
    token: u32,
    has_logits: bool,
    /// The final LayerNorm's frozen scale at the current position.
    final_scale: LnScale,
    /// Keys: `[n_layers, n_heads, ctx, d_head]` i8
    k_cache: &'s mut [i8],
    /// Values: `[n_layers, n_heads, ctx, d_head]` i8
    v_cache: &'s mut [i8],
    /// The residual stream at the current position: `[d_model]` i16
    resid: &'s mut [i16],
    /// The heads' input, then scratch for one head's result: `[d_model]` i16
    normed: &'s mut [i16],
    /// The query of one head: `[d_head]` i16
    q: &'s mut [i16],
    /// Raw scores of one head, or the accumulators of one projection or head result:
    /// `[max(ctx, d_model, d_head)]` i32
    scratch: &'s mut [i32],
    /// Attention of the current position: `[n_layers, n_heads, ctx]` Q15
    pattern: &'s mut [u16],
    /// `z` of the current position: `[n_layers, n_heads, d_head]` i16
    z: &'s mut [i16],
    /// Logits of the current position: `[d_vocab]` Q16.16
    logits: &'s mut [i32],
}

impl<'m, 's> IntDecoder<'m, 's> {
    /// A decoder over the full context. `arena` must hold [`Config::int_state_len`] words.
    pub fn new(model: &Model<'m>, arena: &'s mut [i32]) -> Result<Self, Error> {
        Self::with_context(model, arena, model.config().n_ctx)
    }

    /// A decoder whose KV cache holds `ctx <= n_ctx` positions; `arena` must hold
    /// [`Config::int_state_len_for`]`(ctx)` words.
    pub fn with_context(
        model: &Model<'m>,
        arena: &'s mut [i32],
        ctx: usize,
    ) -> Result<Self, Error> {
        let cfg = *model.config();
        let w = match model.weights() {
            crate::weights::Weights::Int(w) => *w,
            #[allow(unreachable_patterns)]
            _ => return Err(Error::UnsupportedFormat(model.format().code())),
        };
        if ctx == 0 {
            return Err(Error::BadConfig(
                "a decoder needs a context of at least 1 position",
            ));
        }
        if ctx > cfg.n_ctx {
            return Err(Error::ContextTooLong {
                requested: ctx,
                n_ctx: cfg.n_ctx,
            });
        }
        let needed = cfg.int_state_len_for(ctx);
        if arena.len() < needed {
            return Err(Error::CapacityTooSmall {
                needed_bytes: needed * 4,
                available_bytes: arena.len() * 4,
            });
        }
        let (l, h, d, m) = (cfg.n_layers, cfg.n_heads, cfg.d_head, cfg.d_model);
        let mut buf = arena;
        Ok(IntDecoder {
            cfg,
            w,
            ctx,
            pos: 0,
            token: 0,
            has_logits: false,
            final_scale: LnScale::default(),
            k_cache: take(&mut buf, l * h * ctx * d),
            v_cache: take(&mut buf, l * h * ctx * d),
            resid: take(&mut buf, m),
            normed: take(&mut buf, m),
            q: take(&mut buf, d),
            scratch: take(&mut buf, ctx.max(m).max(d)),
            pattern: take(&mut buf, l * h * ctx),
            z: take(&mut buf, l * h * d),
            logits: take(&mut buf, cfg.d_vocab),
        })
    }

    /// The model's config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Positions decoded so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing has been decoded since the last reset.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Positions the KV cache holds.
    pub fn capacity(&self) -> usize {
        self.ctx
    }

    /// Forgets every position.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.has_logits = false;
    }

    /// Appends `token` and returns its logits, Q16.16: `[d_vocab]`.
    pub fn step(&mut self, token: u32) -> Result<&[i32], Error> {
        self.step_with(token, &mut ())
    }

    /// [`step`](Self::step), calling `hooks` on the way.
    pub fn step_with(&mut self, token: u32, hooks: &mut impl IntHooks) -> Result<&[i32], Error> {
        self.cfg.check_token(token)?;
        if self.pos >= self.ctx {
            return Err(Error::ContextFull { capacity: self.ctx });
        }
        self.forward(token, hooks, true);
        Ok(self.logits)
    }

    /// Runs a prompt and returns the logits of its last token (Q16.16). Checks every token
    /// first, so a bad prompt changes nothing.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[i32], Error> {
        self.cfg
            .check_prompt(tokens, self.ctx - self.pos, self.ctx)?;
        let last = tokens.len() - 1;
        for (i, &t) in tokens.iter().enumerate() {
            self.forward(t, &mut (), i == last);
        }
        Ok(self.logits)
    }

    /// Starts over with `recent` re-encoded at positions `0..recent.len()` (see
    /// [`Decoder::slide`](crate::Decoder::slide)).
    pub fn slide(&mut self, recent: &[u32]) -> Result<&[i32], Error> {
        self.cfg.check_prompt(recent, self.ctx, self.ctx)?;
        self.reset();
        self.prefill(recent)
    }

    /// Logits of the current position, Q16.16: `[d_vocab]`.
    pub fn logits(&self) -> Result<&[i32], Error> {
        if self.has_logits {
            Ok(self.logits)
        } else {
            Err(Error::NoPosition)
        }
    }

    /// The residual stream after the last layer, at the residual scale: `[d_model]`.
    pub fn resid(&self) -> &[i16] {
        self.resid
    }

    fn head_index(&self, layer: usize, head: usize) -> Result<usize, Error> {
        if self.pos == 0 {
            return Err(Error::NoPosition);
        }
        if layer >= self.cfg.n_layers {
            return Err(Error::OutOfRange {
                what: "layer",
                index: layer,
                len: self.cfg.n_layers,
            });
        }
        if head >= self.cfg.n_heads {
            return Err(Error::OutOfRange {
                what: "head",
                index: head,
                len: self.cfg.n_heads,
            });
        }
        Ok(layer * self.cfg.n_heads + head)
    }

    /// Attention of the current position in `head` of `layer` over `0..len()`, Q15.
    pub fn pattern(&self, layer: usize, head: usize) -> Result<&[u16], Error> {
        let i = self.head_index(layer, head)?;
        Ok(&self.pattern[i * self.ctx..][..self.pos])
    }

    /// `z` of the current position in `head` of `layer`, at that layer's `z` scale.
    pub fn z(&self, layer: usize, head: usize) -> Result<&[i16], Error> {
        let i = self.head_index(layer, head)?;
        Ok(&self.z[i * self.cfg.d_head..][..self.cfg.d_head])
    }

    /// One position through the model (token and capacity already checked).
    fn forward(&mut self, token: u32, hooks: &mut impl IntHooks, with_logits: bool) {
        let p = self.pos;
        let m = self.cfg.d_model;
        let w = self.w;
        let w_e_row = &w.i8s(TensorKind::WE, 0)[token as usize * m..][..m];
        let pos = match self.cfg.pos {
            PosEmbed::Standard => Some((&w.i8s(TensorKind::WPos, 0)[p * m..][..m], w.rq_pos())),
            _ => None,
        };
        embed_int(w_e_row, w.rq_embed(), pos, self.resid);
        for l in 0..self.cfg.n_layers {
            self.attention_layer(l, p, hooks);
            hooks.resid_post(l, self.resid);
        }
        self.pos = p + 1;
        self.token = token;
        self.has_logits = with_logits;
        if with_logits {
            let input: &[i16] = match self.cfg.norm {
                Norm::LayerNorm { .. } => {
                    self.final_scale = layer_norm_int(
                        self.resid,
                        w.i32s(TensorKind::LnFinalW, 0),
                        w.i32s(TensorKind::LnFinalB, 0),
                        w.ln_final_eps(),
                        self.normed,
                    );
                    self.normed
                }
                Norm::None => self.resid,
            };
            matvec_int(
                input,
                w.i8s(TensorKind::WU, 0),
                Some(w.i32s(TensorKind::BU, 0)),
                w.rq_unembed(),
                self.logits,
            );
        }
    }

    /// One attention layer at position `p`: `x_{l+1} = x_l + sum_h result_h + b_O`.
    fn attention_layer(&mut self, l: usize, p: usize, hooks: &mut impl IntHooks) {
        let Config {
            n_heads,
            d_model: m,
            d_head: d,
            ..
        } = self.cfg;
        let (ctx, w) = (self.ctx, self.w);
        match self.cfg.norm {
            Norm::LayerNorm { .. } => {
                layer_norm_int(
                    self.resid,
                    w.i32s(TensorKind::Ln1W, l),
                    w.i32s(TensorKind::Ln1B, l),
                    w.ln1_eps(l),
                    self.normed,
                );
            }
            Norm::None => self.normed.copy_from_slice(self.resid),
        }
        let (w_q, w_k, w_v) = (
            w.i8s(TensorKind::WQ, l),
            w.i8s(TensorKind::WK, l),
            w.i8s(TensorKind::WV, l),
        );
        let (b_q, b_k, b_v) = (
            w.i32s(TensorKind::BQ, l),
            w.i32s(TensorKind::BK, l),
            w.i32s(TensorKind::BV, l),
        );
        let head_w = |t: &'m [i8], h: usize| &t[h * m * d..][..m * d];
        let head_b = |t: &'m [i32], h: usize| &t[h * d..][..d];
        // Values, cached at position p (int8).
        for h in 0..n_heads {
            let at = ((l * n_heads + h) * ctx + p) * d;
            let acc = &mut self.scratch[..d];
            let v = &mut self.v_cache[at..][..d];
            project_int(
                self.normed,
                head_w(w_v, h),
                head_b(b_v, h),
                w.rq_proj(l, 2, h),
                v,
                acc,
            );
        }
        // Shortformer: positions reach queries and keys only.
        if self.cfg.pos == PosEmbed::Shortformer {
            add_pos_int(
                &w.i8s(TensorKind::WPos, 0)[p * m..][..m],
                w.rq_pos_layer(l),
                self.normed,
            );
        }
        for h in 0..n_heads {
            let head = l * n_heads + h;
            let cache = head * ctx * d..(head + 1) * ctx * d;
            let acc = &mut self.scratch[..d];
            let k = &mut self.k_cache[cache.clone()][p * d..][..d];
            project_int(
                self.normed,
                head_w(w_k, h),
                head_b(b_k, h),
                w.rq_proj(l, 1, h),
                k,
                acc,
            );
            let acc = &mut self.scratch[..d];
            query_int(
                self.normed,
                head_w(w_q, h),
                head_b(b_q, h),
                w.rq_proj(l, 0, h),
                self.q,
                acc,
            );
            let scores = &mut self.scratch[..p + 1];
            attention_scores_int(self.q, &self.k_cache[cache.clone()], scores);
            let pattern = &mut self.pattern[head * ctx..][..p + 1];
            let rq = w.rq_softmax(l, h);
            softmax_q15(scores, rq.multiplier, rq.shift, pattern);
            mix_values_int(
                pattern,
                &self.v_cache[cache],
                w.rq_z(l, h),
                &mut self.z[head * d..][..d],
            );
        }
        let w_o = w.i8s(TensorKind::WO, l);
        for h in 0..n_heads {
            let head = l * n_heads + h;
            let z = &self.z[head * d..][..d];
            let acc = &mut self.scratch[..m];
            head_result_int(z, &w_o[h * d * m..][..d * m], w.rq_o(l), self.normed, acc);
            hooks.result(l, h, self.normed);
            add_int(self.resid, self.normed);
        }
        let b_o = w.i32s(TensorKind::BO, l);
        for (x, &b) in self.resid.iter_mut().zip(b_o) {
            *x = saturate_i16((*x as i32).saturating_add(b));
        }
    }

    // --------------------------------------------------------------------------------------
    // Attribution, in integers
    // --------------------------------------------------------------------------------------

    /// Writes into `normed` the residual-stream vector `term` adds at the current position,
    /// at the residual scale (the constant term: the LayerNorm bias at its output scale, or
    /// zeros).
    fn term_vector(&mut self, term: Term) {
        let Config {
            n_heads,
            d_model: m,
            d_head: d,
            ..
        } = self.cfg;
        let w = self.w;
        let p = self.pos - 1;
        match term {
            Term::Embed => {
                let row = &w.i8s(TensorKind::WE, 0)[self.token as usize * m..][..m];
                embed_int(row, w.rq_embed(), None, self.normed);
            }
            Term::Pos => match self.cfg.pos {
                PosEmbed::Standard => {
                    let row = &w.i8s(TensorKind::WPos, 0)[p * m..][..m];
                    embed_int(row, w.rq_pos(), None, self.normed);
                }
                _ => self.normed.fill(0),
            },
            Term::Head { layer, head } => {
                let z = &self.z[(layer * n_heads + head) * d..][..d];
                let w_o = &w.i8s(TensorKind::WO, layer)[head * d * m..][..d * m];
                head_result_int(z, w_o, w.rq_o(layer), self.normed, &mut self.scratch[..m]);
            }
            Term::BiasO { layer } => {
                for (x, &b) in self.normed.iter_mut().zip(w.i32s(TensorKind::BO, layer)) {
                    *x = saturate_i16(b);
                }
            }
            Term::Const => match self.cfg.norm {
                // ln_final.b, at the LayerNorm output scale: round(B_i / 2^16).
                Norm::LayerNorm { .. } => {
                    for (x, &b) in self.normed.iter_mut().zip(w.i32s(TensorKind::LnFinalB, 0)) {
                        *x = saturate_i16_wide(round_shift_i64(b as i64, LN_FRAC_BITS));
                    }
                }
                Norm::None => self.normed.fill(0),
            },
        }
        if term != Term::Const && matches!(self.cfg.norm, Norm::LayerNorm { .. }) {
            frozen_layer_norm_int(
                self.normed,
                w.i32s(TensorKind::LnFinalW, 0),
                self.final_scale,
            );
        }
    }

    fn check_attributable(&self, conv: LnConvention) -> Result<(), Error> {
        if self.pos == 0 || !self.has_logits {
            return Err(Error::NoPosition);
        }
        if conv != LnConvention::Exact && matches!(self.cfg.norm, Norm::LayerNorm { .. }) {
            return Err(Error::BadConfig(
                "the int format attributes with LnConvention::Exact only",
            ));
        }
        Ok(())
    }

    /// The whole attribution table of the current position in integers: row `k` is term
    /// [`Term::nth`]`(k)`'s contribution to every logit, Q16.16 (`out`: `[Term::count,
    /// d_vocab]`). Each term's residual vector goes through the frozen final LayerNorm and
    /// `W_U` with the logits' own requantization, so rows sum to the logits up to rounding.
    pub fn attribution_table(&mut self, conv: LnConvention, out: &mut [i32]) -> Result<(), Error> {
        self.check_attributable(conv)?;
        let v = self.cfg.d_vocab;
        let count = Term::count(&self.cfg);
        Error::check_length(count * v, out.len())?;
        let w = self.w;
        for (k, row) in out.chunks_exact_mut(v).enumerate() {
            let term = Term::nth(&self.cfg, k).unwrap_or(Term::Const);
            self.term_vector(term);
            let bias = (term == Term::Const).then(|| w.i32s(TensorKind::BU, 0));
            matvec_int(
                self.normed,
                w.i8s(TensorKind::WU, 0),
                bias,
                w.rq_unembed(),
                row,
            );
        }
        Ok(())
    }

    /// Attributes one logit (or a difference of two) to every term, Q16.16:
    /// `out`: `[Term::count]`. Reads only the target's columns of `W_U`.
    pub fn attribute(
        &mut self,
        target: Target,
        conv: LnConvention,
        out: &mut [i32],
    ) -> Result<(), Error> {
        self.check_attributable(conv)?;
        let count = Term::count(&self.cfg);
        Error::check_length(count, out.len())?;
        let (a, b) = match target {
            Target::Token(t) => (t, None),
            Target::Diff(a, b) => (a, Some(b)),
        };
        for t in core::iter::once(a).chain(b) {
            self.cfg.check_token(t)?;
        }
        let w = self.w;
        let v = self.cfg.d_vocab;
        let w_u = w.i8s(TensorKind::WU, 0);
        let b_u = w.i32s(TensorKind::BU, 0);
        for (k, o) in out.iter_mut().enumerate() {
            let term = Term::nth(&self.cfg, k).unwrap_or(Term::Const);
            self.term_vector(term);
            let logit = |t: u32| {
                let t = t as usize;
                let mut acc = if term == Term::Const { b_u[t] } else { 0 };
                for (i, &x) in self.normed.iter().enumerate() {
                    acc = acc.wrapping_add((x as i32).wrapping_mul(w_u[i * v + t] as i32));
                }
                Requant::from_pair(w.rq_unembed(), t).apply(acc)
            };
            *o = logit(a).wrapping_sub(b.map_or(0, logit));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matvec_int_matches_its_reference() {
        let x: [i16; 5] = [32767, -32768, 1234, 0, -7];
        let w: [i8; 15] = [127, -128, 5, 1, 2, 3, -4, 0, 9, 100, -100, 50, -1, -2, -3];
        let b = [10, -20, 30];
        let rq = [1 << 30, -3, 1_500_000_000, 0, 1 << 30, -31];
        let (mut fast, mut plain) = ([0; 3], [0; 3]);
        matvec_int(&x, &w, Some(&b), &rq, &mut fast);
        matvec_int_reference(&x, &w, Some(&b), &rq, &mut plain);
        assert_eq!(fast, plain);
        // Shapes that use every tile width (16 or 8, then 4, then 1) and their remainders.
        for (rows, cols) in [(8, 4), (7, 9), (32, 8), (3, 13), (5, 16), (9, 31), (4, 233)] {
            let x: std::vec::Vec<i16> = (0..rows)
                .map(|i| (i as i16).wrapping_mul(7919) ^ 0x5a5a)
                .collect();
            let w: std::vec::Vec<i8> = (0..rows * cols)
                .map(|i| (i * 37 % 256) as u8 as i8)
                .collect();
            let b: std::vec::Vec<i32> = (0..cols as i32).map(|j| j * 1000 - 3000).collect();
            let rq: std::vec::Vec<i32> = (0..cols)
                .flat_map(|j| [(1 << 30) + j as i32 * 12345, -(j as i32 % 7)])
                .collect();
            let (mut fast, mut plain) = (std::vec![0; cols], std::vec![0; cols]);
            matvec_int(&x, &w, Some(&b), &rq, &mut fast);
            matvec_int_reference(&x, &w, Some(&b), &rq, &mut plain);
            assert_eq!(fast, plain, "{rows}x{cols}");
        }
    }

    #[test]
    fn layer_norm_int_normalizes() {
        // x = [1, 2, 3, 4] * 1000: mean 2500, std 1118.03; w = 1 / s_out with s_out = 1/4096.
        let x = [1000i16, 2000, 3000, 4000];
        let w = [4096 << 12; 4];
        let b = [0; 4];
        let mut out = [0i16; 4];
        layer_norm_int(&x, &w, &b, 0, &mut out);
        let expected = [-1.341_640_8, -0.447_213_6, 0.447_213_6, 1.341_640_8];
        for (o, e) in out.iter().zip(expected) {
            assert!((*o as f64 / 4096.0 - e).abs() < 2e-3, "{out:?}");
        }
    }
}
