//! Tinylens on an RP2040 (Cortex-M0+, e.g. a Raspberry Pi Pico), logging with defmt over RTT.
//! Flash and run with `cargo run --release` and a debug probe (probe-rs); the chip runs from its
//! reset clock, which is all the demo needs.
#![no_std]
#![no_main]

use common::defmt_impls::DefmtOut;
use common::{models, Line, NoClock, Out};
use cortex_m_rt::entry;
use defmt::Display2Format;
use defmt_rtt as _;
use panic_probe as _;
use tinylens::{IntArena, IntDecoder, Model};

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
    let mut out = DefmtOut;
    out.emit(&Line::Target("RP2040, Cortex-M0+"));
    let model = Model::from_blob(BLOB).unwrap_or_else(|e| defmt::panic!("{}", Display2Format(&e)));
    let mut decoder = IntDecoder::new(&model, STATE.as_mut_slice())
        .unwrap_or_else(|e| defmt::panic!("{}", Display2Format(&e)));
    match common::run(
        &model,
        &mut decoder,
        CONFIG.n_ctx,
        &common::DEMO,
        &mut out,
        &mut NoClock,
    ) {
        Ok(_) => out.emit(&Line::Done),
        Err(e) => defmt::panic!("{}", Display2Format(&e)),
    }
    loop {
        cortex_m::asm::wfi();
    }
}
