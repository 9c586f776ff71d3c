//! Whether a model fits a chip: the blob and the code in flash, the decoding state and the stack
//! in RAM. The linker has the last word (it refuses an overflowing region); these checks come
//! first, so that a model too large for a chip is refused with figures rather than a linker
//! error.

use tinylens::Config;

use crate::memory::Memory;
use crate::refusal::Refusal;

/// Flash the examples' code takes besides the blob: the least measured (about 40 KB for the
/// defmt examples, 47 KB with semihosting, 77 KB with `f32` formatting). An estimate: a model
/// that passes it may still overflow by a few KB, which the linker then reports.
pub const CODE_BYTES: usize = 40 * 1024;

/// RAM the examples take besides the decoding state: the stack (2.2 to 4.5 KB measured) and
/// the other statics (defmt's 1 KB RTT buffer).
pub const RAM_RESERVE_BYTES: usize = 4 * 1024;

/// Bytes of decoding state of `cfg` on the integer (`int`) or float decoder, and how the
/// kernel names that figure.
pub fn state_bytes(cfg: &Config, int: bool) -> (usize, &'static str) {
    if int {
        (cfg.int_state_bytes(), "Config::int_state_bytes()")
    } else {
        (cfg.state_bytes(), "Config::state_bytes()")
    }
}

/// Checks a blob of `blob_len` bytes and the state of `cfg` against `memory`.
pub fn check(blob_len: usize, cfg: &Config, int: bool, memory: &Memory) -> Result<(), Refusal> {
    if blob_len + CODE_BYTES > memory.flash {
        return Err(Refusal::Flash {
            blob: blob_len,
            code: CODE_BYTES,
            flash: memory.flash,
        });
    }
    let (state, what) = state_bytes(cfg, int);
    if state + RAM_RESERVE_BYTES > memory.ram {
        return Err(Refusal::Ram {
            state,
            what,
            reserve: RAM_RESERVE_BYTES,
            ram: memory.ram,
        });
    }
    Ok(())
}
