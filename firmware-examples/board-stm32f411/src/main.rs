//! Tinylens on an STM32F411 (Cortex-M4F, e.g. a WeAct Black Pill), logging with defmt over RTT.
//! Flash and run with `cargo run --release` and a debug probe (probe-rs); the chip runs from its
//! reset clock, which is all the demo needs.
#![no_std]
#![no_main]

use common::{DefmtBoard, Float, NoClock};
use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;

// `CONFIG`, `MODEL` and `State`, from the blob build.rs read: TINYLENS_BLOB, or demo-2l (i8).
common::embed_model!();

#[entry]
fn main() -> ! {
    // Handed out once as `&'static mut` by `#[entry]`: the state lives in .bss.
    static mut STATE: State = State::new();
    let mut report = DefmtBoard::start("STM32F411, Cortex-M4F", cortex_m::asm::wfi);
    common::run_demo::<Float>(&MODEL, STATE.as_mut_slice(), &mut report, &mut NoClock)
}
