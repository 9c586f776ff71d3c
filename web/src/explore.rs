//! What the explorer page asks of the kernel, as safe functions over slices: a run of the
//! prompt with some heads ablated (logits, attribution, every attention row, the loss), a
//! greedy continuation through the KV cache, and the circuit rows of one token.
//!
//! Ablation works on the value vectors, through the kernel's `patch_qkv` hook:
//! - zero: every value of the head is 0, so its `z`, its result and its attribution term are 0
//!   at every position (TransformerLens: `hook_result` zeroed);
//! - mean: every value of the head is the mean over the prompt of its `z`. The pattern sums to
//!   1, so `z` becomes that mean and the head's result its mean result, as the host's
//!   `tinylens ablate` replaces `hook_result` with its mean over positions. The mean is taken
//!   in a run with the ablations of earlier layers already applied, one run per layer that
//!   has a mean-ablated head.
//!
//! Since attribution reads each head's `z`, the terms of an ablated run still add up to its
//! logit.

use tinylens::circuits::{direct_row_top_k, ov_row_top_k, qk_row_top_k, row_scratch_len, TopK};
use tinylens::stats::{observe_row, HeadCounters};
use tinylens::{argmax, Config, Decoder, Error, Hooks, LnConvention, Model, Proj, Target, Term};

/// A head's ablation code: left as it is.
pub const KEEP: u8 = 0;
/// A head's ablation code: its values (hence `z` and result) zeroed.
pub const ZERO: u8 = 1;
/// A head's ablation code: its values replaced by the mean of its `z` over the prompt.
pub const MEAN: u8 = 2;

/// Most entries per circuit row ([`circuit_rows`]).
pub const MAX_K: usize = 16;

/// `f32` elements the page's arena needs: the decoder's state and one mean `z` per head.
pub const fn arena_len(cfg: &Config) -> usize {
    cfg.state_len() + cfg.n_layers * cfg.n_heads * cfg.d_head
}

/// Where each part of [`run`]'s output starts, in `f32` elements, for a prompt of `n` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `[d_vocab]`: the logits of the last position.
    pub logits: usize,
    /// `[Term::count]`: the target's logit split into terms (`Term::nth` order).
    pub terms: usize,
    /// `[n_layers, n_heads, n, n]`: `hook_pattern`, row = destination, zero above the diagonal.
    pub patterns: usize,
    /// `[n]`: `log p(token[q + 1])` at position `q`; 0 at the last position.
    pub next_logprob: usize,
    /// `[n_layers * n_heads, 3]`: previous-token, duplicate and induction scores (diagonal) of
    /// every head on this prompt.
    pub scores: usize,
    /// `[1]`: the target token, as a float.
    pub target: usize,
    /// `[1]`: mean next-token cross-entropy over the prompt; NaN for one token.
    pub loss: usize,
    /// Elements in all.
    pub len: usize,
}

impl Layout {
    /// The output layout of `cfg` for a prompt of `n` tokens.
    pub const fn new(cfg: &Config, n: usize) -> Layout {
        let heads = cfg.n_layers * cfg.n_heads;
        let logits = 0;
        let terms = logits + cfg.d_vocab;
        let patterns = terms + Term::count(cfg);
        let next_logprob = patterns + heads * n * n;
        let scores = next_logprob + n;
        let target = scores + heads * 3;
        let loss = target + 1;
        Layout {
            logits,
            terms,
            patterns,
            next_logprob,
            scores,
            target,
            loss,
            len: loss + 1,
        }
    }
}

/// The ablation of every head, applied through `patch_qkv`: `codes[layer * n_heads + head]`,
/// and the mean `z` of the mean-ablated heads of the layers below `means_below`.
struct Ablate<'a> {
    codes: &'a [u8],
    means: &'a [f32],
    means_below: usize,
    n_heads: usize,
    d_head: usize,
}

impl Hooks for Ablate<'_> {
    fn patch_qkv(&mut self, layer: usize, head: usize, which: Proj, x: &mut [f32]) {
        if which != Proj::V {
            return;
        }
        let i = layer * self.n_heads + head;
        match self.codes.get(i).copied() {
            Some(ZERO) => x.fill(0.0),
            Some(MEAN) if layer < self.means_below => {
                if let Some(mean) = self.means.get(i * self.d_head..(i + 1) * self.d_head) {
                    x.copy_from_slice(mean);
                }
            }
            _ => {}
        }
    }
}

/// Checks the prompt (1 to `n_ctx` tokens, each below `d_vocab`) and the ablation codes (one
/// per head, each [`KEEP`], [`ZERO`] or [`MEAN`]) before anything runs.
fn check_request(cfg: &Config, tokens: &[u32], codes: &[u8]) -> Result<(), Error> {
    if tokens.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    if tokens.len() > cfg.n_ctx {
        return Err(Error::ContextTooLong {
            requested: tokens.len(),
            n_ctx: cfg.n_ctx,
        });
    }
    if let Some(&token) = tokens.iter().find(|&&t| t as usize >= cfg.d_vocab) {
        return Err(Error::TokenOutOfRange {
            token,
            d_vocab: cfg.d_vocab,
        });
    }
    let heads = cfg.n_layers * cfg.n_heads;
    if codes.len() != heads {
        return Err(Error::OutputLength {
            expected: heads,
            found: codes.len(),
        });
    }
    if let Some(&c) = codes.iter().find(|&&c| c > MEAN) {
        return Err(Error::OutOfRange {
            what: "ablation code (0 keep, 1 zero, 2 mean)",
            index: c as usize,
            len: 3,
        });
    }
    Ok(())
}

/// Splits the arena into the decoder's state and the mean `z` of every head.
fn split_arena<'a>(
    cfg: &Config,
    arena: &'a mut [f32],
) -> Result<(&'a mut [f32], &'a mut [f32]), Error> {
    let needed = arena_len(cfg);
    if arena.len() < needed {
        return Err(Error::CapacityTooSmall {
            needed_bytes: needed * 4,
            available_bytes: arena.len() * 4,
        });
    }
    let (state, rest) = arena.split_at_mut(cfg.state_len());
    Ok((state, &mut rest[..needed - cfg.state_len()]))
}

/// Fills `means` (`[n_layers * n_heads, d_head]`) for every mean-ablated head: layer by layer,
/// the mean of its `z` over `tokens` in a run with the ablations below that layer applied.
fn fill_means(
    model: &Model<'_>,
    state: &mut [f32],
    tokens: &[u32],
    codes: &[u8],
    means: &mut [f32],
) -> Result<(), Error> {
    let cfg = *model.config();
    let (h, d) = (cfg.n_heads, cfg.d_head);
    for layer in 0..cfg.n_layers {
        let heads = layer * h..(layer + 1) * h;
        if !codes[heads.clone()].contains(&MEAN) {
            continue;
        }
        let (below, rest) = means.split_at_mut(layer * h * d);
        let sums = &mut rest[..h * d];
        sums.fill(0.0);
        let mut hooks = Ablate {
            codes,
            means: below,
            means_below: layer,
            n_heads: h,
            d_head: d,
        };
        let mut decoder = Decoder::new(model, state)?;
        for &t in tokens {
            decoder.step_with(t, &mut hooks)?;
            for head in 0..h {
                if codes[layer * h + head] == MEAN {
                    let z = decoder.z(layer, head)?;
                    for (s, &zk) in sums[head * d..(head + 1) * d].iter_mut().zip(z) {
                        *s += zk;
                    }
                }
            }
        }
        let n = tokens.len() as f32;
        sums.iter_mut().for_each(|s| *s /= n);
    }
    Ok(())
}

/// `log softmax(logits)[token]`, accumulated in `f64`.
pub fn log_prob(logits: &[f32], token: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&x| libm::exp(x as f64 - max)).sum();
    let x = logits.get(token).copied().unwrap_or(f32::NEG_INFINITY) as f64;
    (x - max - libm::log(sum)) as f32
}

/// Runs `tokens` with the heads ablated as `codes` says (one code per head) and fills `out`
/// as [`Layout::new`]`(cfg, tokens.len())` lays it out. `target`: the token whose logit is
/// split into terms; `None` for the top prediction. `arena`: at least [`arena_len`].
pub fn run(
    model: &Model<'_>,
    arena: &mut [f32],
    tokens: &[u32],
    codes: &[u8],
    target: Option<u32>,
    out: &mut [f32],
) -> Result<(), Error> {
    let cfg = *model.config();
    check_request(&cfg, tokens, codes)?;
    let n = tokens.len();
    let at = Layout::new(&cfg, n);
    if out.len() != at.len {
        return Err(Error::OutputLength {
            expected: at.len,
            found: out.len(),
        });
    }
    if let Some(t) = target.filter(|&t| t as usize >= cfg.d_vocab) {
        return Err(Error::TokenOutOfRange {
            token: t,
            d_vocab: cfg.d_vocab,
        });
    }
    let (state, means) = split_arena(&cfg, arena)?;
    fill_means(model, state, tokens, codes, means)?;
    let mut hooks = Ablate {
        codes,
        means,
        means_below: cfg.n_layers,
        n_heads: cfg.n_heads,
        d_head: cfg.d_head,
    };
    let mut decoder = Decoder::new(model, state)?;
    let heads = cfg.n_layers * cfg.n_heads;
    out.fill(0.0);
    for (q, &t) in tokens.iter().enumerate() {
        let logits = decoder.step_with(t, &mut hooks)?;
        out[at.next_logprob + q] = match tokens.get(q + 1) {
            Some(&next) => log_prob(logits, next as usize),
            None => 0.0,
        };
        for k in 0..heads {
            let row = decoder.pattern(k / cfg.n_heads, k % cfg.n_heads)?;
            let start = at.patterns + (k * n + q) * n;
            out[start..start + q + 1].copy_from_slice(row);
        }
    }
    let logits = decoder.logits()?;
    let target = target.unwrap_or_else(|| argmax(logits));
    out[at.logits..at.logits + cfg.d_vocab].copy_from_slice(logits);
    let terms = &mut out[at.terms..at.terms + Term::count(&cfg)];
    decoder.attribute(Target::Token(target), LnConvention::Exact, terms)?;
    for k in 0..heads {
        let c = prompt_scores(&out[at.patterns + k * n * n..][..n * n], tokens);
        let s = &mut out[at.scores + 3 * k..][..3];
        s.copy_from_slice(&[
            c.prev.diagonal(),
            c.duplicate.diagonal(),
            c.induction.diagonal(),
        ]);
    }
    out[at.target] = target as f32;
    out[at.loss] = if n > 1 {
        -out[at.next_logprob..at.next_logprob + n - 1]
            .iter()
            .sum::<f32>()
            / (n - 1) as f32
    } else {
        f32::NAN
    };
    Ok(())
}

/// One head's statistics over every row of its pattern on the prompt, by the kernel's
/// `stats::observe_row`. `pattern`: `[n, n]`
fn prompt_scores(pattern: &[f32], tokens: &[u32]) -> HeadCounters {
    let n = tokens.len();
    let mut c = HeadCounters::default();
    for q in 0..n {
        observe_row(&mut c, &pattern[q * n..q * n + q + 1], &tokens[..q + 1]);
    }
    c
}

/// Greedy continuation of `tokens` with the same ablations as [`run`]: the prompt is
/// prefilled, then each new token is one step on the KV cache. Writes each token and its
/// probability, stops at `out_tokens.len()` tokens or when the cache is full, and returns how
/// many it wrote.
pub fn generate(
    model: &Model<'_>,
    arena: &mut [f32],
    tokens: &[u32],
    codes: &[u8],
    out_tokens: &mut [u32],
    out_probs: &mut [f32],
) -> Result<usize, Error> {
    let cfg = *model.config();
    check_request(&cfg, tokens, codes)?;
    if out_probs.len() != out_tokens.len() {
        return Err(Error::OutputLength {
            expected: out_tokens.len(),
            found: out_probs.len(),
        });
    }
    let (state, means) = split_arena(&cfg, arena)?;
    fill_means(model, state, tokens, codes, means)?;
    let mut hooks = Ablate {
        codes,
        means,
        means_below: cfg.n_layers,
        n_heads: cfg.n_heads,
        d_head: cfg.d_head,
    };
    let mut decoder = Decoder::new(model, state)?;
    decoder.prefill_with(tokens, &mut hooks)?;
    let mut written = 0;
    for (slot, prob) in out_tokens.iter_mut().zip(out_probs.iter_mut()) {
        let logits = decoder.logits()?;
        let next = argmax(logits);
        *slot = next;
        *prob = libm::expf(log_prob(logits, next as usize));
        written += 1;
        if decoder.len() >= decoder.capacity() {
            break;
        }
        decoder.step_with(next, &mut hooks)?;
    }
    Ok(written)
}

/// Rows of [`circuit_rows`] for `cfg`: the direct path, then the OV and the QK row of every
/// head (`1 + 2 * n_layers * n_heads`).
pub const fn circuit_row_count(cfg: &Config) -> usize {
    1 + 2 * cfg.n_layers * cfg.n_heads
}

/// The top `k` entries (`1..=`[`MAX_K`]) of the circuit rows of `token`, by the kernel's
/// `circuits` module: the direct path's row (the next tokens `W_E W_U` favours), then per head
/// its full OV row (out tokens that attending to `token` boosts) and its full QK row (source
/// tokens a query at `token` scores highest). `ids`, `values`: `[circuit_row_count, k]`; rows
/// of a vocabulary smaller than `k` end with id `u32::MAX` and value NaN.
/// `scratch`: `[d_model + d_head]`.
pub fn circuit_rows(
    model: &Model<'_>,
    token: u32,
    k: usize,
    scratch: &mut [f32],
    ids: &mut [u32],
    values: &mut [f32],
) -> Result<(), Error> {
    let cfg = *model.config();
    if k == 0 || k > MAX_K {
        return Err(Error::OutOfRange {
            what: "circuit row length k",
            index: k,
            len: MAX_K + 1,
        });
    }
    let rows = circuit_row_count(&cfg);
    for found in [ids.len(), values.len()] {
        if found != rows * k {
            return Err(Error::OutputLength {
                expected: rows * k,
                found,
            });
        }
    }
    if scratch.len() < row_scratch_len(&cfg) {
        return Err(Error::CapacityTooSmall {
            needed_bytes: row_scratch_len(&cfg) * 4,
            available_bytes: scratch.len() * 4,
        });
    }
    let scratch = &mut scratch[..row_scratch_len(&cfg)];
    let mut top = TopK::<MAX_K>::new();
    let mut put = |row: usize, top: &TopK<MAX_K>| {
        let entries = top.as_slice();
        for j in 0..k {
            let (id, value) = entries.get(j).copied().unwrap_or((u32::MAX, f32::NAN));
            ids[row * k + j] = id;
            values[row * k + j] = value;
        }
    };
    direct_row_top_k(model, token, scratch, &mut top)?;
    put(0, &top);
    for i in 0..cfg.n_layers * cfg.n_heads {
        let (layer, head) = (i / cfg.n_heads, i % cfg.n_heads);
        ov_row_top_k(model, layer, head, token, scratch, &mut top)?;
        put(1 + 2 * i, &top);
        qk_row_top_k(model, layer, head, token, scratch, &mut top)?;
        put(2 + 2 * i, &top);
    }
    Ok(())
}
