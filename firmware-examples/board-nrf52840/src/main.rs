//! Tinylens on an nRF52840 (Cortex-M4F, e.g. the nRF52840 DK), logging with defmt over RTT.
//! Flash and run with `cargo run --release` and a debug probe (probe-rs); the chip runs from its
//! reset clock, which is all the demo needs.
#![no_std]
#![no_main]

use common::{DefmtBoard, Float, NoClock};
use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;

common::embed_model!(); // CONFIG, MODEL, State: from TINYLENS_BLOB, or demo-2l (f32)

#[entry]
fn main() -> ! {
    static mut STATE: State = State::new(); // in .bss, handed out once by `#[entry]`
    let mut report = DefmtBoard::start("nRF52840, Cortex-M4F", cortex_m::asm::wfi);
    common::run_demo::<Float>(&MODEL, STATE.as_mut_slice(), &mut report, &mut NoClock)
}
