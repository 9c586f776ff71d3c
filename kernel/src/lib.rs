#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// No public function panics on a blob, a token or a buffer: no `unwrap`, `expect` or `panic!`
// outside tests. The loader (`blob`, `model`, `config`, `error`: everything that reads a
// blob's bytes before its shapes are known) does not index slices either (`deny` below).
// The equation functions do, on shapes checked once at load; the fuzz targets in `fuzz/`
// drive every public entry point (README, "Hardening").
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
//! # tinylens
//!
//! Attention-only transformers on microcontrollers, read the way "A Mathematical Framework for
//! Transformer Circuits" (Elhage et al., 2021) reads them, with TransformerLens' exact
//! semantics. `no_std`, no allocator: the model is borrowed in place from a blob in flash and
//! every buffer lives in memory the caller owns.
//!
//! ## The paper, line by line
//!
//! | the framework | the code |
//! |---|---|
//! | token embedding `x_0 = W_E t` (+ `W_pos`) | [`forward::embed`] |
//! | each head reads `ln1(x)` | [`forward::layer_norm`] |
//! | `q = x W_Q + b_Q`, `k`, `v` likewise | [`forward::matvec`] |
//! | QK circuit: `A = softmax(q k^T / sqrt(d_head))`, causal | [`forward::attention_scores`], [`forward::softmax`] |
//! | OV circuit: `h(x) = A v W_O` | [`forward::mix_values`], [`forward::head_result`] |
//! | residual stream: `x_{i+1} = x_i + sum_h h(x_i)` (+ `b_O`) | `Decoder::attention_layer` (private; see `forward.rs`) |
//! | unembedding `T = W_U x_{-1}` (+ `b_U`) | [`forward::unembed`] |
//! | path expansion: direct path + one term per head | [`attribution`] |
//! | which heads act as previous-token / induction heads, while decoding | [`stats`] |
//! | a row of an OV, QK or direct-path circuit, top-k | [`circuits`] |
//!
//! The whole `f32` path is `src/forward.rs`, top to bottom.
//!
//! ## Example
//!
//! ```
//! use tinylens::{Decoder, Model};
//! # let blob = tinylens::testing::tiny_blob();
//! # let bytes = blob.as_bytes();
//! let model = Model::from_blob(bytes)?;            // checks magic, version, CRC, shapes
//! let mut arena = vec![0.0f32; model.config().state_len()];
//! let mut decoder = Decoder::new(&model, &mut arena)?;
//! let logits = decoder.prefill(&[1, 2, 3])?;       // KV cache filled, logits of the last token
//! let next = tinylens::argmax(logits);
//! decoder.step(next)?;
//! # Ok::<(), tinylens::Error>(())
//! ```
//!
//! On a device, put the blob in flash with [`include_blob!`] and the state in a `static`
//! [`Arena`] sized by [`Config::state_len`].
//!
//! ## Crate features
//! - `std`: adds the blob writer (module `writer`: `write_f32`, `AlignedBytes`) for host tools;
//!   the forward passes never use it.
//! - `f32`, `i8`, `int` (default: all three): the number formats this build runs. `i8`
//!   (int8 weights, `f32` activations, `forward_i8.rs`) runs through [`Decoder`]; `int` (no
//!   float at run time, [`fixed`], `forward_int.rs`) through `IntDecoder` over an `i32`
//!   arena of [`Config::int_state_len`] words. A blob of a format left out is
//!   [`Error::UnsupportedFormat`].

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod attribution;
#[deny(clippy::indexing_slicing)]
pub mod blob;
pub mod circuits;
#[deny(clippy::indexing_slicing)]
pub mod config;
#[deny(clippy::indexing_slicing)]
mod error;
pub mod fixed;
pub mod forward;
#[cfg(feature = "i8")]
pub mod forward_i8;
#[cfg(feature = "int")]
pub mod forward_int;
#[deny(clippy::indexing_slicing)]
pub mod model;
pub mod stats;
#[doc(hidden)]
#[cfg(any(test, feature = "std"))]
#[allow(clippy::expect_used)] // test models, not part of the API
pub mod testing;
pub mod weights;
#[cfg(any(test, feature = "std"))]
pub mod writer;

pub use attribution::{LnConvention, Target, Term};
pub use blob::{Aligned, NumberFormat};
pub use config::{Config, Norm, PosEmbed};
pub use error::Error;
pub use forward::{Arena, Decoder, Hooks};
#[cfg(feature = "int")]
pub use forward_int::{IntArena, IntDecoder, IntHooks};
pub use model::Model;
pub use weights::Proj;

/// The index of the largest value (the first, on ties); 0 for an empty slice.
#[deny(clippy::indexing_slicing)]
pub fn argmax(values: &[f32]) -> u32 {
    let Some(&first) = values.first() else {
        return 0;
    };
    let (mut best, mut best_value) = (0, first);
    for (i, &v) in values.iter().enumerate() {
        if v > best_value {
            (best, best_value) = (i, v);
        }
    }
    best as u32
}
