//! The forward pass in `f32`, top to bottom: first one small function per equation of the
//! framework, then how the decoder reads `f32` or int8 weights, then the [`Decoder`] that runs
//! them one position at a time over a KV cache.
//!
//! Conventions are TransformerLens': activations are row vectors multiplied on the right by
//! weights (`q = x @ W_Q[h] + b_Q[h]`), and every matrix is stored row-major in the shape its
//! comment gives.

#[cfg(feature = "i8")]
use crate::forward_i8::I8Weights;
use crate::model::{F32Weights, LnWeights, Weights};
use crate::weights::Proj;
use crate::{Config, Error, Model, Norm, PosEmbed};

// ------------------------------------------------------------------------------------------
// The equations
// ------------------------------------------------------------------------------------------

/// Token and position embedding, the start of the residual stream:
/// `x_0 = W_E[t] + W_pos[p]`. Pass `w_pos = None` when positions do not enter the residual
/// stream (shortformer, or no positional embedding).
///
/// `w_e`: `[d_vocab, d_model]`, `w_pos`: `[n_ctx, d_model]`, `x`: `[d_model]`
pub fn embed(w_e: &[f32], w_pos: Option<&[f32]>, token: usize, pos: usize, x: &mut [f32]) {
    let d_model = x.len();
    x.copy_from_slice(&w_e[token * d_model..][..d_model]);
    if let Some(w_pos) = w_pos {
        add(x, &w_pos[pos * d_model..][..d_model]);
    }
}

/// LayerNorm as TransformerLens computes it, with biased variance:
/// `out = (x - mean(x)) / scale * w + b`, `scale = sqrt(mean((x - mean(x))^2) + eps)`.
/// Returns `scale` (TransformerLens' `hook_scale`), which attribution freezes.
///
/// `x`, `out`: `[d_model]`
pub fn layer_norm(x: &[f32], ln: &LnWeights<'_>, eps: f32, out: &mut [f32]) -> f32 {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let scale = libm::sqrtf(var + eps);
    for (((o, &v), &w), &b) in out.iter_mut().zip(x).zip(ln.w).zip(ln.b) {
        *o = (v - mean) / scale * w + b;
    }
    scale
}

/// A row vector times a matrix, plus an optional bias: `out = x @ w + b`.
///
/// The plain version is [`matvec_reference`]. This one works on tiles of columns (16 wide,
/// then 4, then 1) and keeps a tile's sums in registers while the rows go by: every weight is
/// loaded once, no partial sum goes back to memory inside the loop, and a 16-wide tile reads
/// whole 64-byte lines of a wide matrix. Each output is the same sum, term for term, in the
/// same order as the plain version.
///
/// `x`: `[d_in]`, `w`: `[d_in, d_out]`, `b`, `out`: `[d_out]`
pub fn matvec(x: &[f32], w: &[f32], b: Option<&[f32]>, out: &mut [f32]) {
    let cols = out.len();
    let wide = cols - cols % 16;
    let narrow = cols - cols % 4;
    for j in (0..wide).step_by(16) {
        matvec_tile::<16>(x, w, b, cols, j, out);
    }
    for j in (wide..narrow).step_by(4) {
        matvec_tile::<4>(x, w, b, cols, j, out);
    }
    for j in narrow..cols {
        matvec_tile::<1>(x, w, b, cols, j, out);
    }
}

/// Columns `j..j + T` of [`matvec`]: `T` sums in registers over every row.
#[inline(always)]
fn matvec_tile<const T: usize>(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    cols: usize,
    j: usize,
    out: &mut [f32],
) {
    let mut acc = [0.0f32; T];
    if let Some(b) = b {
        acc.copy_from_slice(&b[j..j + T]);
    }
    for (&xi, row) in x.iter().zip(w.chunks_exact(cols)) {
        for (a, &wij) in acc.iter_mut().zip(&row[j..j + T]) {
            *a += xi * wij;
        }
    }
    out[j..j + T].copy_from_slice(&acc);
}

/// [`matvec`] as the equation reads, one output at a time: `out_j = b_j + sum_i x_i w_ij`.
///
/// `x`: `[d_in]`, `w`: `[d_in, d_out]`, `b`, `out`: `[d_out]`
pub fn matvec_reference(x: &[f32], w: &[f32], b: Option<&[f32]>, out: &mut [f32]) {
    let cols = out.len();
    for (j, o) in out.iter_mut().enumerate() {
        *o = b.map_or(0.0, |b| b[j]);
        for (i, &xi) in x.iter().enumerate() {
            *o += xi * w[i * cols + j];
        }
    }
}

/// Attention scores of one query against the keys of positions `0..=i` (the causal mask is
/// the length of `scores`): `score_j = q · k_j / sqrt(d_head)`.
///
/// `q`: `[d_head]`, `keys`: `[>= n, d_head]`, `scores`: `[n]`
pub fn attention_scores(q: &[f32], keys: &[f32], scores: &mut [f32]) {
    let attn_scale = libm::sqrtf(q.len() as f32);
    for (s, k) in scores.iter_mut().zip(keys.chunks_exact(q.len())) {
        *s = dot(q, k) / attn_scale;
    }
}

/// Softmax in place, shifted by the maximum for range: `A_j = exp(s_j) / sum_k exp(s_k)`.
///
/// `x`: `[n]`
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// The attention-weighted sum of values: `z = sum_j A_j v_j`.
///
/// `pattern`: `[n]`, `values`: `[>= n, d_head]`, `z`: `[d_head]`
pub fn mix_values(pattern: &[f32], values: &[f32], z: &mut [f32]) {
    z.fill(0.0);
    for (&a, v) in pattern.iter().zip(values.chunks_exact(z.len())) {
        for (zi, &vi) in z.iter_mut().zip(v) {
            *zi += a * vi;
        }
    }
}

/// What one head writes into the residual stream: `result_h = z_h @ W_O[h]`.
/// Together with [`mix_values`] and the value projection this is the OV circuit.
///
/// `z`: `[d_head]`, `w_o`: `[d_head, d_model]`, `out`: `[d_model]`
pub fn head_result(z: &[f32], w_o: &[f32], out: &mut [f32]) {
    matvec(z, w_o, None, out);
}

/// The unembedding: `logits = x @ W_U + b_U`.
///
/// `x`: `[d_model]`, `w_u`: `[d_model, d_vocab]`, `b_u`, `logits`: `[d_vocab]`
pub fn unembed(x: &[f32], w_u: &[f32], b_u: &[f32], logits: &mut [f32]) {
    matvec(x, w_u, Some(b_u), logits);
}

/// `a · b`
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `x += y`
pub fn add(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

// ------------------------------------------------------------------------------------------
// The weights the decoder reads: `f32` as they are, or int8 with scales (`forward_i8.rs`)
// ------------------------------------------------------------------------------------------

/// The weights of a model whose activations are `f32`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FloatWeights<'m> {
    F32(F32Weights<'m>),
    #[cfg(feature = "i8")]
    I8(I8Weights<'m>),
}

impl<'m> FloatWeights<'m> {
    /// `x = W_E[t]` (+ `W_pos[p]` when positions enter the residual stream).
    pub(crate) fn embed(&self, pos: PosEmbed, token: usize, p: usize, x: &mut [f32]) {
        let standard = matches!(pos, PosEmbed::Standard);
        match self {
            FloatWeights::F32(w) => {
                let w_pos = if standard { w.w_pos() } else { None };
                embed(w.w_e(), w_pos, token, p, x);
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.embed(token, standard.then_some(p), x),
        }
    }

    /// `x += W_pos[p]` (shortformer queries and keys).
    pub(crate) fn add_pos(&self, p: usize, x: &mut [f32]) {
        match self {
            FloatWeights::F32(w) => {
                if let Some(w_pos) = w.w_pos() {
                    add(x, &w_pos[p * x.len()..][..x.len()]);
                }
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.add_pos(p, x),
        }
    }

    pub(crate) fn ln1(&self, l: usize) -> Option<LnWeights<'m>> {
        match self {
            FloatWeights::F32(w) => w.layer(l).ln1,
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.ln1(l),
        }
    }

    pub(crate) fn ln_final(&self) -> Option<LnWeights<'m>> {
        match self {
            FloatWeights::F32(w) => w.ln_final(),
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.ln_final(),
        }
    }

    /// `out = x @ W[h] + b[h]` for the query, key or value of head `h` in layer `l`.
    pub(crate) fn project(&self, l: usize, which: Proj, h: usize, x: &[f32], out: &mut [f32]) {
        match self {
            FloatWeights::F32(w) => {
                let lw = w.layer(l);
                let (m, d) = (x.len(), out.len());
                let (w, b) = match which {
                    Proj::Q => (lw.w_q, lw.b_q),
                    Proj::K => (lw.w_k, lw.b_k),
                    Proj::V => (lw.w_v, lw.b_v),
                };
                matvec(x, &w[h * m * d..][..m * d], Some(&b[h * d..][..d]), out);
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.project(l, which, h, x, out),
        }
    }

    /// `out = z @ W_O[h]` in layer `l`.
    pub(crate) fn head_result(&self, l: usize, h: usize, z: &[f32], out: &mut [f32]) {
        match self {
            FloatWeights::F32(w) => {
                let (d, m) = (z.len(), out.len());
                head_result(z, &w.layer(l).w_o[h * d * m..][..d * m], out);
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.head_result(l, h, z, out),
        }
    }

    pub(crate) fn b_o(&self, l: usize) -> &'m [f32] {
        match self {
            FloatWeights::F32(w) => w.layer(l).b_o,
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.b_o(l),
        }
    }

    /// `out = x @ W_U` (+ `b_U` when `with_bias`).
    pub(crate) fn unembed(&self, x: &[f32], with_bias: bool, out: &mut [f32]) {
        match self {
            FloatWeights::F32(w) => {
                if with_bias {
                    unembed(x, w.w_u(), w.b_u(), out);
                } else {
                    matvec(x, w.w_u(), None, out);
                }
            }
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.unembed(x, with_bias, out),
        }
    }

    pub(crate) fn b_u(&self) -> &'m [f32] {
        match self {
            FloatWeights::F32(w) => w.b_u(),
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.b_u(),
        }
    }

    /// `W_E[t, i]`
    pub(crate) fn w_e_at(&self, t: usize, i: usize, d_model: usize) -> f32 {
        match self {
            FloatWeights::F32(w) => w.w_e()[t * d_model + i],
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.w_e_at(t, i),
        }
    }

    /// `W_pos[p, i]` (0 without positions).
    pub(crate) fn w_pos_at(&self, p: usize, i: usize, d_model: usize) -> f32 {
        match self {
            FloatWeights::F32(w) => w.w_pos().map_or(0.0, |w_pos| w_pos[p * d_model + i]),
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.w_pos_at(p, i),
        }
    }

    /// `W_O[l][h][k, i]`
    pub(crate) fn w_o_at(
        &self,
        l: usize,
        h: usize,
        k: usize,
        i: usize,
        d_head: usize,
        d_model: usize,
    ) -> f32 {
        match self {
            FloatWeights::F32(w) => w.layer(l).w_o[(h * d_head + k) * d_model + i],
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.w_o_at(l, h, k, i),
        }
    }

    /// `W_U[i, v]`
    pub(crate) fn w_u_at(&self, i: usize, v: usize, d_vocab: usize) -> f32 {
        match self {
            FloatWeights::F32(w) => w.w_u()[i * d_vocab + v],
            #[cfg(feature = "i8")]
            FloatWeights::I8(w) => w.w_u_at(i, v),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Hooks: where a caller can watch the forward pass, or change it
// ------------------------------------------------------------------------------------------

/// Called during [`Decoder::step_with`] at the points TransformerLens names hooks. Every
/// method has an empty default; `()` watches nothing and costs nothing. Three of them may change
/// what they are given, as TransformerLens hooks may: [`resid_pre`](Hooks::resid_pre),
/// [`patch_qkv`](Hooks::patch_qkv) and [`patch_result`](Hooks::patch_result) are where
/// activation and path patching write a stored activation into the run. The decoder's attribution reads the heads' `z`, so it does not
/// see a patched result.
pub trait Hooks {
    /// Called first in every step with the position about to be decoded: the `pos` of every
    /// hook call that follows, until the next `position`.
    fn position(&mut self, pos: usize) {
        let _ = pos;
    }
    /// `blocks.{layer}.hook_resid_pre[pos]`: the residual stream entering the layer, before
    /// its LayerNorm; what the hook leaves in `resid` goes on. `resid`: `[d_model]`
    fn resid_pre(&mut self, layer: usize, resid: &mut [f32]) {
        let _ = (layer, resid);
    }
    /// `blocks.{layer}.attn.hook_q`, `hook_k` or `hook_v` `[pos, head]`, as `which` says: the
    /// head's query, key or value at this position, bias included; what the hook leaves in `x`
    /// is what the head uses (a key or value also stays in the KV cache). Path patching writes
    /// here what a head's input would have been with one sender's output changed. `x`: `[d_head]`
    fn patch_qkv(&mut self, layer: usize, head: usize, which: Proj, x: &mut [f32]) {
        let _ = (layer, head, which, x);
    }
    /// `blocks.{layer}.attn.hook_result[pos, head]` before it joins the residual stream:
    /// what the hook leaves in `result` is what the head adds. `result`: `[d_model]`
    fn patch_result(&mut self, layer: usize, head: usize, result: &mut [f32]) {
        let _ = (layer, head, result);
    }
    /// `blocks.{layer}.attn.hook_result[pos, head]`: what `head` adds to the residual stream
    /// at this position. `result`: `[d_model]`
    fn result(&mut self, layer: usize, head: usize, result: &[f32]) {
        let _ = (layer, head, result);
    }
    /// `blocks.{layer}.hook_resid_post[pos]`: the residual stream after the layer.
    /// `resid`: `[d_model]`
    fn resid_post(&mut self, layer: usize, resid: &[f32]) {
        let _ = (layer, resid);
    }
}

impl Hooks for () {}

// ------------------------------------------------------------------------------------------
// The decoder: state in caller-owned memory, one position per step
// ------------------------------------------------------------------------------------------

/// Storage for a decoder, sized at compile time so that it can live in a `static`:
/// `static mut STATE: Arena<{ CONFIG.state_len() }> = Arena::new();`
#[repr(C, align(16))]
pub struct Arena<const N: usize>([f32; N]);

impl<const N: usize> Arena<N> {
    /// A zeroed arena.
    pub const fn new() -> Self {
        Arena([0.0; N])
    }

    /// The whole arena, to hand to [`Decoder::new`].
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Takes the first `n` elements off `buf`.
fn take<'s>(buf: &mut &'s mut [f32], n: usize) -> &'s mut [f32] {
    let (head, tail) = core::mem::take(buf).split_at_mut(n);
    *buf = tail;
    head
}

/// Runs a model one token at a time. Keys and values of past positions stay in a KV cache, so
/// each step costs one position's worth of work; the attention pattern, `z` and the logits of
/// the current position stay readable until the next step.
///
/// Runs the formats whose activations are `f32`: `f32` and the int8-weight formats `i8` and
/// `i8-block32` (whose matrix products are in `forward_i8.rs`). The full-integer format has
/// its own decoder, `IntDecoder` (`forward_int.rs`).
pub struct Decoder<'m, 's> {
    pub(crate) cfg: Config,
    /// The weights, `f32` or int8 with scales.
    pub(crate) w: FloatWeights<'m>,
    /// Positions the cache holds (at most `n_ctx`).
    pub(crate) ctx: usize,
    /// Positions decoded so far; the current position is `pos - 1`.
    pub(crate) pos: usize,
    /// The token at the current position.
    pub(crate) token: u32,
    /// Final LayerNorm scale at the current position (1 without LayerNorm).
    pub(crate) final_scale: f32,
    /// Whether `logits` (and `final_scale`) belong to the current position.
    pub(crate) has_logits: bool,
    /// Keys: `[n_layers, n_heads, ctx, d_head]`
    pub(crate) k_cache: &'s mut [f32],
    /// Values: `[n_layers, n_heads, ctx, d_head]`
    pub(crate) v_cache: &'s mut [f32],
    /// The residual stream at the current position: `[d_model]`
    pub(crate) resid: &'s mut [f32],
    /// The input of the heads (`ln1(x)`, plus `W_pos` for queries and keys of shortformer
    /// models), then scratch for one head's result: `[d_model]`
    pub(crate) normed: &'s mut [f32],
    /// The query of one head: `[d_head]`
    pub(crate) q: &'s mut [f32],
    /// Attention of the current position to positions `0..pos`: `[n_layers, n_heads, ctx]`
    pub(crate) pattern: &'s mut [f32],
    /// `z` of the current position: `[n_layers, n_heads, d_head]`
    pub(crate) z: &'s mut [f32],
    /// Logits of the current position: `[d_vocab]`
    pub(crate) logits: &'s mut [f32],
}

impl<'m, 's> Decoder<'m, 's> {
    /// A decoder over the model's full context `n_ctx`. `arena` must hold at least
    /// [`Config::state_len`] elements.
    pub fn new(model: &Model<'m>, arena: &'s mut [f32]) -> Result<Self, Error> {
        Self::with_context(model, arena, model.config().n_ctx)
    }

    /// A decoder whose KV cache holds only `ctx <= n_ctx` positions, for devices with less
    /// memory than the full context needs. `arena` must hold [`Config::state_len_for`]`(ctx)`.
    pub fn with_context(
        model: &Model<'m>,
        arena: &'s mut [f32],
        ctx: usize,
    ) -> Result<Self, Error> {
        let cfg = *model.config();
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
        let needed = cfg.state_len_for(ctx);
        if arena.len() < needed {
            return Err(Error::CapacityTooSmall {
                needed_bytes: needed * 4,
                available_bytes: arena.len() * 4,
            });
        }
        let w = match model.weights() {
            Weights::F32(w) => FloatWeights::F32(*w),
            #[cfg(feature = "i8")]
            Weights::I8(w) => FloatWeights::I8(*w),
            #[allow(unreachable_patterns)]
            _ => return Err(Error::UnsupportedFormat(model.format().code())),
        };
        let (l, h, d) = (cfg.n_layers, cfg.n_heads, cfg.d_head);
        let mut buf = arena;
        Ok(Decoder {
            cfg,
            w,
            ctx,
            pos: 0,
            token: 0,
            final_scale: 1.0,
            has_logits: false,
            k_cache: take(&mut buf, l * h * ctx * d),
            v_cache: take(&mut buf, l * h * ctx * d),
            resid: take(&mut buf, cfg.d_model),
            normed: take(&mut buf, cfg.d_model),
            q: take(&mut buf, d),
            pattern: take(&mut buf, l * h * ctx),
            z: take(&mut buf, l * h * d),
            logits: take(&mut buf, cfg.d_vocab),
        })
    }

    /// The model's config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Positions decoded so far (the current position is `len() - 1`).
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

    /// Forgets every position; the next step is position 0.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.has_logits = false;
    }

    /// Appends `token` at the next position and returns its logits: `[d_vocab]`.
    pub fn step(&mut self, token: u32) -> Result<&[f32], Error> {
        self.step_with(token, &mut ())
    }

    /// [`step`](Self::step), calling `hooks` at each hook point on the way.
    pub fn step_with(&mut self, token: u32, hooks: &mut impl Hooks) -> Result<&[f32], Error> {
        self.cfg.check_token(token)?;
        if self.pos >= self.ctx {
            return Err(Error::ContextFull { capacity: self.ctx });
        }
        self.forward(token, hooks, true);
        Ok(self.logits)
    }

    /// Runs a whole prompt from the current position and returns the logits of its last
    /// token. Every token is checked before anything runs, so a bad prompt changes nothing.
    /// Logits are computed for the last position only.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], Error> {
        self.prefill_with(tokens, &mut ())
    }

    /// [`prefill`](Self::prefill), calling `hooks` at each hook point of every position.
    pub fn prefill_with(
        &mut self,
        tokens: &[u32],
        hooks: &mut impl Hooks,
    ) -> Result<&[f32], Error> {
        self.cfg
            .check_prompt(tokens, self.ctx - self.pos, self.ctx)?;
        let last = tokens.len() - 1;
        for (i, &t) in tokens.iter().enumerate() {
            self.forward(t, hooks, i == last);
        }
        Ok(self.logits)
    }

    /// Forgets every position from `len` on: the cache keeps positions `0..len`, and the next
    /// step is position `len`. A run that changes only later positions (a patch at position
    /// `len`, another continuation of a shared prefix) starts here instead of from 0.
    pub fn rewind(&mut self, len: usize) -> Result<(), Error> {
        if len > self.pos {
            return Err(Error::OutOfRange {
                what: "rewind length",
                index: len,
                len: self.pos + 1,
            });
        }
        self.pos = len;
        self.has_logits = false;
        Ok(())
    }

    /// Keeps generating past the context: starts over with `recent` (the last tokens the
    /// caller kept, at most the capacity) re-encoded at positions `0..recent.len()`, and
    /// returns the logits of the last one. Absolute positional embeddings make this a
    /// re-prefill: the cached keys cannot be shifted in place.
    ///
    /// ```
    /// # fn demo(decoder: &mut tinylens::Decoder, history: &[u32], next: u32) -> Result<(), tinylens::Error> {
    /// match decoder.step(next) {
    ///     Err(tinylens::Error::ContextFull { .. }) => {
    ///         // Keep the newest half of the window, then go on.
    ///         let keep = decoder.capacity() / 2;
    ///         decoder.slide(&history[history.len() - keep..])?;
    ///         decoder.step(next)?;
    ///     }
    ///     other => { other?; }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn slide(&mut self, recent: &[u32]) -> Result<&[f32], Error> {
        self.cfg.check_prompt(recent, self.ctx, self.ctx)?;
        self.reset();
        self.prefill(recent)
    }

    /// Logits of the current position: `[d_vocab]`.
    pub fn logits(&self) -> Result<&[f32], Error> {
        if self.has_logits {
            Ok(self.logits)
        } else {
            Err(Error::NoPosition)
        }
    }

    /// The residual stream at the current position after the last layer: `[d_model]`.
    pub fn resid(&self) -> &[f32] {
        self.resid
    }

    /// Attention of the current position in `head` of `layer` over positions `0..len()`:
    /// TransformerLens' `hook_pattern[head, pos, :pos+1]`.
    pub fn pattern(&self, layer: usize, head: usize) -> Result<&[f32], Error> {
        let i = self.head_index(layer, head)?;
        Ok(&self.pattern[i * self.ctx..][..self.pos])
    }

    /// `z` of the current position in `head` of `layer`: `[d_head]`, TransformerLens' `hook_z`.
    pub fn z(&self, layer: usize, head: usize) -> Result<&[f32], Error> {
        let i = self.head_index(layer, head)?;
        Ok(&self.z[i * self.cfg.d_head..][..self.cfg.d_head])
    }

    pub(crate) fn head_index(&self, layer: usize, head: usize) -> Result<usize, Error> {
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

    /// One position through the whole model: embed, every attention layer, and (if asked)
    /// the final LayerNorm and unembedding. The token and the capacity are already checked.
    fn forward(&mut self, token: u32, hooks: &mut impl Hooks, with_logits: bool) {
        let p = self.pos;
        hooks.position(p);
        // W_pos joins the residual stream only in the standard scheme.
        self.w.embed(self.cfg.pos, token as usize, p, self.resid);
        for l in 0..self.cfg.n_layers {
            self.attention_layer(l, p, hooks);
            hooks.resid_post(l, self.resid);
        }
        self.pos = p + 1;
        self.token = token;
        self.has_logits = with_logits;
        if with_logits {
            self.final_scale = match (self.w.ln_final(), self.cfg.norm) {
                (Some(ln), Norm::LayerNorm { eps }) => {
                    let scale = layer_norm(self.resid, &ln, eps, self.normed);
                    self.w.unembed(self.normed, true, self.logits);
                    scale
                }
                _ => {
                    self.w.unembed(self.resid, true, self.logits);
                    1.0
                }
            };
        }
    }

    /// One attention layer at position `p`: `x_{l+1} = x_l + sum_h result_h + b_O`.
    fn attention_layer(&mut self, l: usize, p: usize, hooks: &mut impl Hooks) {
        let Config {
            n_heads, d_head, ..
        } = self.cfg;
        let ctx = self.ctx;
        hooks.resid_pre(l, self.resid);
        // Every head reads the same input: ln1(x), or x itself.
        match (self.w.ln1(l), self.cfg.norm) {
            (Some(ln), Norm::LayerNorm { eps }) => {
                layer_norm(self.resid, &ln, eps, self.normed);
            }
            _ => self.normed.copy_from_slice(self.resid),
        }
        // Values: v = x @ W_V[h] + b_V[h], cached at position p.
        for h in 0..n_heads {
            let at = ((l * n_heads + h) * ctx + p) * d_head;
            let v = &mut self.v_cache[at..][..d_head];
            self.w.project(l, Proj::V, h, self.normed, v);
            hooks.patch_qkv(l, h, Proj::V, v);
        }
        // Shortformer: positions reach queries and keys only, added after ln1.
        if self.cfg.pos == PosEmbed::Shortformer {
            self.w.add_pos(p, self.normed);
        }
        // The QK circuit, then the mixing of values: z_h = softmax(q k^T / sqrt(d_head)) v.
        for h in 0..n_heads {
            let head = l * n_heads + h;
            let cache = head * ctx * d_head..(head + 1) * ctx * d_head;
            let k = &mut self.k_cache[cache.clone()][p * d_head..][..d_head];
            self.w.project(l, Proj::K, h, self.normed, k);
            hooks.patch_qkv(l, h, Proj::K, k);
            self.w.project(l, Proj::Q, h, self.normed, self.q);
            hooks.patch_qkv(l, h, Proj::Q, self.q);
            let pattern = &mut self.pattern[head * ctx..][..p + 1];
            attention_scores(self.q, &self.k_cache[cache.clone()], pattern);
            softmax(pattern);
            mix_values(
                pattern,
                &self.v_cache[cache],
                &mut self.z[head * d_head..][..d_head],
            );
        }
        // Heads are independent and additive: each writes its result into the stream.
        for h in 0..n_heads {
            let head = l * n_heads + h;
            let z = &self.z[head * d_head..][..d_head];
            self.w.head_result(l, h, z, self.normed);
            hooks.patch_result(l, h, self.normed);
            hooks.result(l, h, self.normed);
            add(self.resid, self.normed);
        }
        add(self.resid, self.w.b_o(l));
    }
}
