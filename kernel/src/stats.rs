//! Head statistics on the device: which head acts as a previous-token, duplicate-token or
//! induction head, measured on the firmware's own input while it decodes.
//!
//! After every [`Decoder::step`], [`HeadStats::observe`] reads the attention pattern of the new
//! position in every head and adds the attention that falls on each kind of head's targets:
//!
//! | kind | targets of destination `q` (token `t_q`) |
//! |---|---|
//! | previous token | `q - 1` |
//! | duplicate token | every earlier `j < q` with `t_j = t_q` |
//! | induction | `j + 1` for every earlier `j < q` with `t_j = t_q` (the token that followed it) |
//!
//! These are TransformerLens' detection patterns (`head_detector`), one row at a time. Two
//! scores come out of the same sums:
//! - [`Score::mul`]: TransformerLens' `detect_head(..., error_measure="mul")`,
//!   `sum(pattern * detection) / sum(pattern)`, over every row seen;
//! - [`Score::diagonal`]: the mean attention on the targets over the rows that have any,
//!   the "diagonal" score of induction-head studies (on a sequence repeated with period `n`,
//!   `mean_q A[q, q - n + 1]` for induction, `mean_q A[q, q - 1]` for previous token).
//!
//! Storage is fixed at compile time: `HEADS >= n_layers * n_heads` counters and a history of
//! `CTX >= ` the decoder's capacity tokens.

use heapless::Vec;

use crate::{Decoder, Error};

/// Attention on one kind of head's targets, summed over the rows observed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    /// `sum_q sum_{k in targets(q)} A[q, k]`.
    pub on_target: f32,
    /// Rows that had at least one target.
    pub rows_with_target: u32,
}

impl Score {
    const ZERO: Score = Score {
        on_target: 0.0,
        rows_with_target: 0,
    };

    /// TransformerLens' "mul" score: attention on targets over all attention, `on_target /
    /// mass`. 0 before any row.
    pub fn mul(&self, counters: &HeadCounters) -> f32 {
        if counters.mass > 0.0 {
            self.on_target / counters.mass
        } else {
            0.0
        }
    }

    /// Mean attention on the targets over the rows that have targets. 0 if none had any.
    pub fn diagonal(&self) -> f32 {
        if self.rows_with_target > 0 {
            self.on_target / self.rows_with_target as f32
        } else {
            0.0
        }
    }
}

/// The running sums of one head.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HeadCounters {
    /// Attention on `q - 1`.
    pub prev: Score,
    /// Attention on earlier copies of the current token.
    pub duplicate: Score,
    /// Attention on the tokens after earlier copies of the current token.
    pub induction: Score,
    /// Total attention observed: `sum_q sum_k A[q, k]` (the number of rows, up to rounding).
    pub mass: f32,
    /// Rows observed.
    pub rows: u32,
}

impl HeadCounters {
    const ZERO: HeadCounters = HeadCounters {
        prev: Score::ZERO,
        duplicate: Score::ZERO,
        induction: Score::ZERO,
        mass: 0.0,
        rows: 0,
    };
}

/// Accumulates one attention row into `counters`.
///
/// `row`: `[q + 1]`, attention of destination `q = tokens.len() - 1` over `0..=q`;
/// `tokens`: `[q + 1]`, the tokens at positions `0..=q`.
pub fn observe_row(counters: &mut HeadCounters, row: &[f32], tokens: &[u32]) {
    let Some((&current, earlier)) = tokens.split_last() else {
        return;
    };
    let q = earlier.len();
    counters.rows += 1;
    counters.mass += row.iter().sum::<f32>();
    if q >= 1 {
        counters.prev.on_target += row[q - 1];
        counters.prev.rows_with_target += 1;
    }
    let (mut dup, mut ind, mut any) = (0.0f32, 0.0f32, false);
    for (j, &t) in earlier.iter().enumerate() {
        if t == current {
            dup += row[j];
            ind += row[j + 1];
            any = true;
        }
    }
    if any {
        counters.duplicate.on_target += dup;
        counters.duplicate.rows_with_target += 1;
        counters.induction.on_target += ind;
        counters.induction.rows_with_target += 1;
    }
}

/// Running previous-token, duplicate-token and induction statistics of every head, in static
/// storage: `HEADS` counters (`>= n_layers * n_heads`, index `layer * n_heads + head`) and a
/// history of `CTX` tokens (`>=` the decoder's capacity).
///
/// ```
/// use tinylens::stats::HeadStats;
/// # let blob = tinylens::testing::tiny_blob();
/// # let model = tinylens::Model::from_blob(blob.as_bytes())?;
/// # let mut arena = vec![0.0f32; model.config().state_len()];
/// let mut decoder = tinylens::Decoder::new(&model, &mut arena)?;
/// let mut stats = HeadStats::<16, 64>::new();
/// for &t in &[1, 2, 3, 1, 2, 3] {
///     decoder.step(t)?;
///     stats.observe(&decoder, t)?;
/// }
/// let (layer, head, score) = stats.strongest(|c| c.induction.diagonal()).unwrap();
/// # let _ = (layer, head, score);
/// # Ok::<(), tinylens::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct HeadStats<const HEADS: usize, const CTX: usize> {
    /// `[len]`: the token at every position observed.
    tokens: Vec<u32, CTX>,
    /// `[HEADS]`, index `layer * n_heads + head`.
    heads: [HeadCounters; HEADS],
    /// `(n_layers, n_heads)` of the decoder observed.
    shape: (usize, usize),
}

impl<const HEADS: usize, const CTX: usize> HeadStats<HEADS, CTX> {
    /// Empty statistics.
    pub const fn new() -> Self {
        HeadStats {
            tokens: Vec::new(),
            heads: [HeadCounters::ZERO; HEADS],
            shape: (0, 0),
        }
    }

    /// Forgets every row and token (after [`Decoder::reset`] or [`Decoder::slide`]).
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.heads = [HeadCounters::ZERO; HEADS];
    }

    /// Forgets the token history only, keeping the sums: the next observed position is
    /// position 0 of a new sequence whose statistics add to the ones so far.
    pub fn new_sequence(&mut self) {
        self.tokens.clear();
    }

    /// Reads the pattern of the position `decoder` just decoded (`token`) in every head.
    /// Call it after every step; the decoder must be exactly one position ahead of the
    /// statistics (a decoder at position 0 starts a new sequence).
    pub fn observe(&mut self, decoder: &Decoder<'_, '_>, token: u32) -> Result<(), Error> {
        let cfg = decoder.config();
        let n = cfg.n_layers * cfg.n_heads;
        if n > HEADS {
            return Err(Error::OutputLength {
                expected: n,
                found: HEADS,
            });
        }
        if decoder.len() == 1 && !self.tokens.is_empty() {
            self.new_sequence();
        }
        if decoder.len() != self.tokens.len() + 1 {
            return Err(Error::OutOfRange {
                what: "position",
                index: decoder.len().saturating_sub(1),
                len: self.tokens.len() + 1,
            });
        }
        self.tokens
            .push(token)
            .map_err(|_| Error::ContextFull { capacity: CTX })?;
        self.shape = (cfg.n_layers, cfg.n_heads);
        for layer in 0..cfg.n_layers {
            for head in 0..cfg.n_heads {
                let row = decoder.pattern(layer, head)?;
                observe_row(
                    &mut self.heads[layer * cfg.n_heads + head],
                    row,
                    &self.tokens,
                );
            }
        }
        Ok(())
    }

    /// The counters of `layer.head`.
    pub fn head(&self, layer: usize, head: usize) -> Result<&HeadCounters, Error> {
        let (n_layers, n_heads) = self.shape;
        if layer >= n_layers {
            return Err(Error::OutOfRange {
                what: "layer",
                index: layer,
                len: n_layers,
            });
        }
        if head >= n_heads {
            return Err(Error::OutOfRange {
                what: "head",
                index: head,
                len: n_heads,
            });
        }
        Ok(&self.heads[layer * n_heads + head])
    }

    /// The head with the largest `score` (e.g. `|c| c.induction.diagonal()`), as `(layer,
    /// head, score)`; `None` before anything was observed.
    pub fn strongest(&self, score: impl Fn(&HeadCounters) -> f32) -> Option<(usize, usize, f32)> {
        let (n_layers, n_heads) = self.shape;
        let mut best: Option<(usize, usize, f32)> = None;
        for layer in 0..n_layers {
            for head in 0..n_heads {
                let s = score(&self.heads[layer * n_heads + head]);
                if best.is_none_or(|(_, _, b)| s > b) {
                    best = Some((layer, head, s));
                }
            }
        }
        best
    }
}

impl<const HEADS: usize, const CTX: usize> Default for HeadStats<HEADS, CTX> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_counts_each_kind_of_target() {
        // tokens: a b a ; destination q = 2 (token a) attends [0.5, 0.3, 0.2].
        let mut c = HeadCounters::default();
        observe_row(&mut c, &[0.5, 0.3, 0.2], &[7, 8, 7]);
        assert_eq!(c.rows, 1);
        assert_eq!(c.prev.on_target, 0.3); // q - 1 = 1
        assert_eq!(c.duplicate.on_target, 0.5); // earlier a at 0
        assert_eq!(c.induction.on_target, 0.3); // after the earlier a: 1
        assert_eq!(c.induction.rows_with_target, 1);
        assert!((c.prev.mul(&c) - 0.3).abs() < 1e-6);
    }
}
