//! One row of a circuit, on the device: the framework's virtual weights read token by token.
//!
//! The full circuits of a head are `d_vocab x d_vocab` matrices, far too large for a
//! microcontroller (or, for a real vocabulary, for a laptop). One row of each is cheap: a
//! product of the row's embedding with a few weight matrices, then one dot product per token
//! of the vocabulary, streamed into a fixed-size [`TopK`]. Orientation is TransformerLens':
//!
//! | circuit | matrix (TransformerLens) | row | column | function |
//! |---|---|---|---|---|
//! | direct path (bigrams) | `W_E W_U` | current token | next token | [`direct_row_top_k`] |
//! | full OV | `W_E W_V W_O W_U` | source (attended-to) token | out token | [`ov_row_top_k`] |
//! | full QK | `W_E W_Q W_K^T W_E^T` | destination (query) token | source (key) token | [`qk_row_top_k`] |
//!
//! Like TransformerLens' `model.W_E @ model.OV @ model.W_U`, these use the weights as stored:
//! no LayerNorm, no positions, and QK scores not divided by `sqrt(d_head)`.

use heapless::Vec;

use crate::forward::{dot, matvec};
use crate::model::{F32Weights, Weights};
use crate::{Config, Error, Model};

/// The `K` largest `(token, value)` pairs seen so far, largest first (on ties, the smaller
/// token first). A fixed-size buffer: it can live in a `static`.
#[derive(Clone, Debug)]
pub struct TopK<const K: usize> {
    /// `[<= K]` entries, sorted by value, descending.
    entries: Vec<(u32, f32), K>,
}

impl<const K: usize> TopK<K> {
    /// An empty table.
    pub const fn new() -> Self {
        TopK {
            entries: Vec::new(),
        }
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Considers `token` with `value`; keeps it if it is among the `K` largest. Offer tokens in
    /// increasing order for ties to favour the smaller token. NaN is never kept.
    pub fn offer(&mut self, token: u32, value: f32) {
        if K == 0 || value.is_nan() {
            return;
        }
        if self.entries.is_full() {
            match self.entries.last() {
                Some(&(_, smallest)) if value > smallest => {
                    self.entries.pop();
                }
                _ => return,
            }
        }
        let at = self
            .entries
            .iter()
            .position(|&(_, v)| value > v)
            .unwrap_or(self.entries.len());
        // Cannot fail: an entry was popped above if the table was full.
        let _ = self.entries.insert(at, (token, value));
    }

    /// The entries, largest first: `[<= K]`.
    pub fn as_slice(&self) -> &[(u32, f32)] {
        &self.entries
    }
}

impl<const K: usize> Default for TopK<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// Scratch elements the row functions need: `d_model + d_head`.
pub const fn row_scratch_len(cfg: &Config) -> usize {
    cfg.d_model + cfg.d_head
}

/// The `f32` weights of `model`, checked indices, and the scratch split into
/// `[d_model]` and `[d_head]`.
fn prepare<'w, 's>(
    model: &Model<'w>,
    layer: usize,
    head: usize,
    token: u32,
    scratch: &'s mut [f32],
) -> Result<(F32Weights<'w>, &'s mut [f32], &'s mut [f32]), Error> {
    let cfg = model.config();
    let w = match model.weights() {
        Weights::F32(w) => *w,
        #[allow(unreachable_patterns)]
        _ => return Err(Error::UnsupportedFormat(model.format().code())),
    };
    let checks = [
        ("layer", layer, cfg.n_layers),
        ("head", head, cfg.n_heads),
        ("token", token as usize, cfg.d_vocab),
    ];
    for (what, index, len) in checks {
        if index >= len {
            return Err(Error::OutOfRange { what, index, len });
        }
    }
    Error::check_length(row_scratch_len(cfg), scratch.len())?;
    let (resid, small) = scratch.split_at_mut(cfg.d_model);
    Ok((w, resid, small))
}

/// `x @ W_U` for every token, streamed into `top`: `value_t = sum_i x_i W_U[i, t]`.
///
/// `x`: `[d_model]`, `w_u`: `[d_model, d_vocab]`
fn unembed_top_k<const K: usize>(x: &[f32], w_u: &[f32], d_vocab: usize, top: &mut TopK<K>) {
    for t in 0..d_vocab {
        let value: f32 = x
            .iter()
            .enumerate()
            .map(|(i, &xi)| xi * w_u[i * d_vocab + t])
            .sum();
        top.offer(t as u32, value);
    }
}

/// The direct path's row for `token`: the next tokens `W_E[token] W_U` favours (the bigram
/// statistics of the path expansion's first term). `scratch`: `[row_scratch_len]`.
pub fn direct_row_top_k<const K: usize>(
    model: &Model<'_>,
    token: u32,
    scratch: &mut [f32],
    top: &mut TopK<K>,
) -> Result<(), Error> {
    let (w, x, _) = prepare(model, 0, 0, token, scratch)?;
    let cfg = model.config();
    let m = cfg.d_model;
    x.copy_from_slice(&w.w_e()[token as usize * m..][..m]);
    top.clear();
    unembed_top_k(x, w.w_u(), cfg.d_vocab, top);
    Ok(())
}

/// The full OV circuit's row for `source`: the out tokens that attending to `source` through
/// head `layer.head` boosts, `W_E[source] W_V W_O W_U`. `scratch`: `[row_scratch_len]`.
pub fn ov_row_top_k<const K: usize>(
    model: &Model<'_>,
    layer: usize,
    head: usize,
    source: u32,
    scratch: &mut [f32],
    top: &mut TopK<K>,
) -> Result<(), Error> {
    let (w, x, v) = prepare(model, layer, head, source, scratch)?;
    let cfg = model.config();
    let (m, d) = (cfg.d_model, cfg.d_head);
    let lw = w.layer(layer);
    let e = &w.w_e()[source as usize * m..][..m]; // [d_model]
    matvec(e, &lw.w_v[head * m * d..][..m * d], None, v); // v = W_E[s] W_V[h]: [d_head]
    matvec(v, &lw.w_o[head * d * m..][..d * m], None, x); // x = v W_O[h]: [d_model]
    top.clear();
    unembed_top_k(x, w.w_u(), cfg.d_vocab, top);
    Ok(())
}

/// The full QK circuit's row for `destination`: the source tokens that a query at
/// `destination` scores highest in head `layer.head`, `W_E[dest] W_Q W_K^T W_E^T` (before the
/// `1/sqrt(d_head)` scale). `scratch`: `[row_scratch_len]`.
pub fn qk_row_top_k<const K: usize>(
    model: &Model<'_>,
    layer: usize,
    head: usize,
    destination: u32,
    scratch: &mut [f32],
    top: &mut TopK<K>,
) -> Result<(), Error> {
    let (w, u, q) = prepare(model, layer, head, destination, scratch)?;
    let cfg = model.config();
    let (m, d) = (cfg.d_model, cfg.d_head);
    let lw = w.layer(layer);
    let e = &w.w_e()[destination as usize * m..][..m]; // [d_model]
    matvec(e, &lw.w_q[head * m * d..][..m * d], None, q); // q = W_E[dest] W_Q[h]: [d_head]
    let w_k = &lw.w_k[head * m * d..][..m * d]; // [d_model, d_head]
    for (ui, row) in u.iter_mut().zip(w_k.chunks_exact(d)) {
        *ui = dot(row, q); // u = W_K[h] q: [d_model]
    }
    top.clear();
    for (s, e_s) in w.w_e().chunks_exact(m).enumerate() {
        top.offer(s as u32, dot(e_s, u));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_largest_first_smaller_token_on_ties() {
        let mut top = TopK::<3>::new();
        for (t, v) in [
            (0, 1.0),
            (1, 5.0),
            (2, 3.0),
            (3, 5.0),
            (4, f32::NAN),
            (5, 0.5),
        ] {
            top.offer(t, v);
        }
        assert_eq!(top.as_slice(), &[(1, 5.0), (3, 5.0), (2, 3.0)]);
        let mut none = TopK::<0>::new();
        none.offer(0, 1.0);
        assert!(none.as_slice().is_empty());
    }
}
