//! # tinylens-web
//!
//! The `no_std` kernel as a WebAssembly module for the explorer page that `tinylens explore`
//! writes. The kernel compiles to `wasm32-unknown-unknown` unchanged; this crate adds only a
//! thin layer the page calls:
//!
//! - [`explore`]: safe functions over slices: a run of the prompt with heads ablated (logits,
//!   attribution, every attention row, the loss, head scores), a greedy continuation through
//!   the KV cache, and the circuit rows of a token. Tested on the host like any crate.
//! - `exports` (on `wasm32` only): plain `extern "C"` functions over regions of the module's
//!   linear memory. The page copies the blob and the prompt into that memory, past the
//!   module's own data (`__heap_base`), lays out the arena and the outputs there, and reads
//!   the outputs back. No allocator and no bindings generator: the page's
//!   `WebAssembly.Memory` is the arena.
//!
//! Build it with `cargo xtask web`, which writes `host-cli/assets/explorer.wasm`.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![deny(missing_docs)]
// `unsafe` is allowed in one module only, `exports`, which says why.
#![deny(unsafe_code)]

pub mod explore;

#[cfg(target_arch = "wasm32")]
mod exports;

/// A panic cannot happen on the page's input (every function returns a named error), so the
/// handler only traps: the page then reports the trap.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
