//! Tinylens on an nRF52840 (Cortex-M4F, e.g. the nRF52840 DK), logging with defmt over RTT.
//! Flash and run with `cargo run --release` and a debug probe (probe-rs); the chip runs from its
//! reset clock, which is all the demo needs.
#![no_std]
#![no_main]

use common::{models, DefmtBoard, Float, NoClock};
use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;
use tinylens::Arena;

/// The model, 16-byte aligned in flash.
static BLOB: &[u8] = tinylens::include_blob!("../../../fixtures/firmware/demo-2l.f32.tlb");
/// Its config, as `tinylens inspect` prints it.
const CONFIG: tinylens::Config = models::DEMO_2L;

#[entry]
fn main() -> ! {
    // Handed out once as `&'static mut` by `#[entry]`: the state lives in .bss.
    static mut STATE: Arena<{ CONFIG.state_len() }> = Arena::new();
    let mut report = DefmtBoard::start("nRF52840, Cortex-M4F", cortex_m::asm::wfi);
    let state = STATE.as_mut_slice();
    common::run_demo::<Float>(
        BLOB,
        &CONFIG,
        &common::DEMO,
        state,
        &mut report,
        &mut NoClock,
    )
}
