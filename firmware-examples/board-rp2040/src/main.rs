//! Tinylens on an RP2040 (Cortex-M0+, e.g. a Raspberry Pi Pico), logging with defmt over RTT.
//! Flash and run with `cargo run --release` and a debug probe (probe-rs); the chip runs from its
//! reset clock, which is all the demo needs.
#![no_std]
#![no_main]

use common::{DefmtBoard, Int, NoClock};
use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;

/// The RP2040's second-stage bootloader (for the Pico's W25Q080 flash), first in flash.
#[link_section = ".boot2"]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

common::embed_model!(); // CONFIG, MODEL, State: from TINYLENS_BLOB, or demo-2l (int)

#[entry]
fn main() -> ! {
    static mut STATE: State = State::new(); // in .bss, handed out once by `#[entry]`
    let mut report = DefmtBoard::start("RP2040, Cortex-M0+", cortex_m::asm::wfi);
    common::run_demo::<Int>(&MODEL, STATE.as_mut_slice(), &mut report, &mut NoClock)
}
