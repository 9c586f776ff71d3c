//! The models the examples embed, with their configs as `tinylens inspect` prints them, so that
//! a firmware sizes its state at compile time.
//!
//! The blobs live in `fixtures/firmware/`, made from the project's trained demo checkpoints in
//! `models/` with `tinylens quantize --format f32|i8|int` (`cargo xtask qemu --bless` remakes
//! them):
//!
//! - `demo-2l` (`models/demo-2l`): 2 attention layers of 4 heads, `d_model` 64, `d_head` 16, a
//!   vocabulary of 233 syllables and words, a context of 64, shortformer positions, no
//!   LayerNorm. Trained on stories whose invented names recur, it has a previous-token head
//!   (0.1) and an induction head (1.2): it completes a name it has seen before. As
//!   `demo-2l.f32.tlb` (271 KB), `demo-2l.i8.tlb` (74 KB) and `demo-2l.int.tlb` (79 KB, 19 KB
//!   of state).
//! - `demo-2l-micro` (`models/demo-2l-micro`): the same weights with the context cut to 32,
//!   for 16 KB of RAM: `demo-2l-micro.int.tlb` (77 KB, 10.4 KB of state).

use tinylens::{Config, Norm, PosEmbed};

/// `tinylens inspect fixtures/firmware/demo-2l.f32.tlb`
pub const DEMO_2L: Config = Config {
    n_layers: 2,
    n_heads: 4,
    d_model: 64,
    d_head: 16,
    d_vocab: 233,
    n_ctx: 64,
    norm: Norm::None,
    pos: PosEmbed::Shortformer,
};

/// `tinylens inspect fixtures/firmware/demo-2l-micro.int.tlb`: [`DEMO_2L`] with a context of 32.
pub const DEMO_2L_MICRO: Config = Config {
    n_ctx: 32,
    ..DEMO_2L
};

/// Whether a blob's config is `expected`, compared without float arithmetic (`eps` bit for
/// bit), so that integer-only firmware links no soft-float routine.
pub fn same_config(config: &Config, expected: &Config) -> bool {
    let norm_bits = |n: Norm| match n {
        Norm::None => None,
        Norm::LayerNorm { eps } => Some(eps.to_bits()),
    };
    (
        config.n_layers,
        config.n_heads,
        config.d_model,
        config.d_head,
    ) == (
        expected.n_layers,
        expected.n_heads,
        expected.d_model,
        expected.d_head,
    ) && (config.d_vocab, config.n_ctx, config.pos)
        == (expected.d_vocab, expected.n_ctx, expected.pos)
        && norm_bits(config.norm) == norm_bits(expected.norm)
}
