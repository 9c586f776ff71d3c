#![no_std]
#![deny(missing_docs)]
//! What the tinylens firmware examples share, so that each example is only its board's setup:
//!
//! - [`transcript`]: the demo every example runs (prefill a prompt, generate greedily through
//!   the KV cache, attribute the last prediction to every head) and the lines it prints. The
//!   host runs the same function on the host kernel to make the golden transcripts that
//!   `cargo xtask qemu` compares the firmware's output with.
//! - [`run_demo`]: the whole demo of a firmware in one call (load the blob, check its config,
//!   build the decoder of a [`Format`] over the firmware's static state, run the transcript),
//!   ending through a [`Report`]; a `main` is its target's setup and this call. The model it
//!   runs, an [`EmbeddedModel`], is what the example's `build.rs` (`embed-model`) wrote from
//!   the blob, included with [`embed_model!`].
//! - [`cost`]: multiply-accumulates per token and the theoretical minimum of RAM, for the
//!   figures; the [`cost::Clock`] the demo reads instruction counts from.
//! - `qemu` (feature `qemu`): a SysTick instruction counter for QEMU's `-icount shift=0`,
//!   semihosting output and exit, stack painting, and the reports of the QEMU examples.
//! - feature `defmt`: `defmt::Format` for transcript lines, and `DefmtBoard`, the report of a
//!   board that logs with defmt.
//!
//! # Crate features
//! - `f32`, `i8`, `int`: the number formats to build into the kernel.
//! - `qemu`: Cortex-M under QEMU.
//! - `defmt`: log transcript lines with defmt.

pub mod cost;
#[cfg(feature = "defmt")]
pub mod defmt_impls;
pub mod firmware;
pub mod format;
pub mod models;
#[cfg(feature = "qemu")]
pub mod qemu;
pub mod report;
pub mod transcript;

pub use cost::{Clock, NoClock};
#[cfg(feature = "defmt")]
pub use defmt_impls::DefmtBoard;
pub use firmware::{run_demo, EmbeddedModel};
#[cfg(feature = "float")]
pub use format::Float;
pub use format::Format;
#[cfg(feature = "int")]
pub use format::Int;
pub use report::Report;
pub use transcript::{
    run, tokenize, Demo, DemoError, Engine, FmtOut, Line, Out, Summary, Value, DEMO, PROMPT,
};
