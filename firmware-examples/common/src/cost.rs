//! Cost accounting: multiply-accumulates per token, the theoretical minimum of decoding RAM,
//! and the clock the demo reads.

use tinylens::Config;

/// A counter of executed instructions (under QEMU with `-icount shift=0`), or nothing.
/// Readings are in the counter's own units, converted once at the end, so that a reading
/// costs a few instructions and no division.
pub trait Clock {
    /// The counter now, or `None` where nothing is counted.
    fn now(&mut self) -> Option<u64>;
    /// An elapsed count of `now` units in executed instructions.
    fn instructions(&self, elapsed: u64) -> u64 {
        elapsed
    }
}

/// No clock: the host, and boards without a counter.
pub struct NoClock;

impl Clock for NoClock {
    fn now(&mut self) -> Option<u64> {
        None
    }
}

/// Multiply-accumulates of one decoding step at position `pos` (attending to `pos + 1`
/// positions), logits included:
/// `n_layers * (3 n_heads d_model d_head + 2 n_heads (pos + 1) d_head + n_heads d_head d_model)
/// + d_model d_vocab` (the projections, `q k^T`, `A v`, `z W_O`, and `W_U`).
pub const fn macs_at(cfg: &Config, pos: usize) -> u64 {
    let (l, h, m, d) = (
        cfg.n_layers as u64,
        cfg.n_heads as u64,
        cfg.d_model as u64,
        cfg.d_head as u64,
    );
    let attended = pos as u64 + 1;
    l * (3 * h * m * d + 2 * h * attended * d + h * d * m) + m * cfg.d_vocab as u64
}

/// The least RAM any decoder of this model can use for a context of `ctx`, in bytes: the KV
/// cache, one residual row, the scores of one head and the logits, at the element sizes of a
/// format (`f32`: 4 everywhere; `int`: int8 cache, int16 residual, i32 scores and logits).
pub const fn min_ram_bytes(cfg: &Config, ctx: usize, int: bool) -> usize {
    let kv = 2 * cfg.n_layers * cfg.n_heads * ctx * cfg.d_head;
    if int {
        kv + 2 * cfg.d_model + 4 * ctx + 4 * cfg.d_vocab
    } else {
        4 * (kv + cfg.d_model + ctx + cfg.d_vocab)
    }
}
