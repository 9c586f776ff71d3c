//! Tinylens on an RP2040 (Cortex-M0+, e.g. a Raspberry Pi Pico), logging with defmt over RTT.
//! Flash and run with `cargo run --release` and a debug probe (probe-rs); the chip runs from its
//! reset clock, which is all the demo needs.
#![no_std]
#![no_main]

use common::{models, DefmtBoard, Int, NoClock};
use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;
use tinylens::IntArena;

/// The RP2040's second-stage bootloader (for the Pico's W25Q080 flash), first in flash.
#[link_section = ".boot2"]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The model, 16-byte aligned in flash.
static BLOB: &[u8] = tinylens::include_blob!("../../../fixtures/firmware/demo-2l.int.tlb");
/// Its config, as `tinylens inspect` prints it.
const CONFIG: tinylens::Config = models::DEMO_2L;

#[entry]
fn main() -> ! {
    // Handed out once as `&'static mut` by `#[entry]`: the state lives in .bss.
    static mut STATE: IntArena<{ CONFIG.int_state_len() }> = IntArena::new();
    let mut report = DefmtBoard::start("RP2040, Cortex-M0+", cortex_m::asm::wfi);
    let state = STATE.as_mut_slice();
    common::run_demo::<Int>(
        BLOB,
        &CONFIG,
        &common::DEMO,
        state,
        &mut report,
        &mut NoClock,
    )
}
