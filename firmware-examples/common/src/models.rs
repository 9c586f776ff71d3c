//! The models the examples embed, and what a firmware checks of a blob at run time.
//!
//! Each example's `build.rs` reads the blob it embeds (`TINYLENS_BLOB`, or its demo blob) and
//! writes its config, so that nothing about a model is typed into a firmware. The demo blobs
//! live in `fixtures/firmware/`, made from the project's trained demo checkpoints in `models/`
//! with `tinylens quantize --format f32|i8|int` (`cargo xtask qemu --bless` remakes them):
//!
//! - `demo-2l` (`models/demo-2l`): 2 attention layers of 4 heads, `d_model` 64, `d_head` 16, a
//!   vocabulary of 233 syllables and words, a context of 64, shortformer positions, no
//!   LayerNorm. Trained on stories whose invented names recur, it has a previous-token head
//!   (0.1) and an induction head (1.2): it completes a name it has seen before. As
//!   `demo-2l.f32.tlb` (271 KB), `demo-2l.i8.tlb` (74 KB) and `demo-2l.int.tlb` (79 KB, 19 KB
//!   of state).
//! - `demo-2l-micro` (`models/demo-2l-micro`): the same weights with the context cut to 32,
//!   for 16 KB of RAM: `demo-2l-micro.int.tlb` (77 KB, 10.4 KB of state).

use tinylens::{Config, Norm};

/// The name of the model in the blob file `file_name`, for the transcript: the file name less
/// `.tlb` and a format suffix (`demo-2l.int.tlb` is `demo-2l`).
pub fn model_name(file_name: &str) -> &str {
    let stem = file_name.strip_suffix(".tlb").unwrap_or(file_name);
    match stem.rsplit_once('.') {
        Some((name, format))
            if !name.is_empty() && tinylens::NumberFormat::from_name(format).is_some() =>
        {
            name
        }
        _ => stem,
    }
}

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
