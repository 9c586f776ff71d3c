#![no_std]
#![deny(missing_docs)]
//! What the tinylens firmware examples share, so that each example is only its board's setup:
//!
//! - [`transcript`]: the demo every example runs (prefill a prompt, generate greedily through
//!   the KV cache, attribute the last prediction to every head) and the lines it prints. The
//!   host runs the same function on the host kernel to make the golden transcripts that
//!   `cargo xtask qemu` compares the firmware's output with.
//! - [`cost`]: multiply-accumulates per token and the theoretical minimum of RAM, for the
//!   figures; the [`cost::Clock`] the demo reads instruction counts from.
//! - `qemu` (feature `qemu`): a SysTick instruction counter for QEMU's `-icount shift=0`,
//!   semihosting output and exit, and stack painting.
//! - feature `defmt`: `defmt::Format` for transcript lines.
//!
//! # Crate features
//! - `f32`, `i8`, `int`: the number formats to build into the kernel.
//! - `qemu`: Cortex-M under QEMU.
//! - `defmt`: log transcript lines with defmt.

pub mod cost;
#[cfg(feature = "defmt")]
pub mod defmt_impls;
pub mod models;
#[cfg(feature = "qemu")]
pub mod qemu;
pub mod transcript;

pub use cost::{Clock, NoClock};
pub use transcript::{
    run, Demo, DemoError, Engine, FmtOut, Line, Out, Summary, Value, DEMO, DEMO_MICRO, PROMPT,
};
