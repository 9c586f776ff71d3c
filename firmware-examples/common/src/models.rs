//! The models the examples embed, with their configs as `tinylens inspect` prints them, so that
//! a firmware sizes its state at compile time.
//!
//! The blobs live in `fixtures/firmware/` (made from `fixtures/tl/l2_ln` with
//! `tinylens quantize --format f32|i8|int`; `cargo xtask qemu --bless` remakes them). `l2_ln`
//! is the TransformerLens conformance fixture: 2 layers of 4 heads, `d_model` 32, LayerNorm,
//! a 40-character vocabulary and a context of 24. Its weights are random, so its text means
//! nothing; every number it prints is checked against the host kernel.

use tinylens::{Config, Norm, PosEmbed};

/// `tinylens inspect fixtures/firmware/l2_ln.f32.tlb`
pub const L2_LN: Config = Config {
    n_layers: 2,
    n_heads: 4,
    d_model: 32,
    d_head: 8,
    d_vocab: 40,
    n_ctx: 24,
    norm: Norm::LayerNorm { eps: 1e-5 },
    pos: PosEmbed::Standard,
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
