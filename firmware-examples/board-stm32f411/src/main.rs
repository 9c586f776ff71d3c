//! Tinylens on an STM32F411 (Cortex-M4F, e.g. a WeAct Black Pill), logging with defmt over RTT.
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
use tinylens::{Arena, Decoder, Model};

/// The model, 16-byte aligned in flash.
static BLOB: &[u8] = tinylens::include_blob!("../../../fixtures/firmware/demo-2l.i8.tlb");
/// Its config, as `tinylens inspect` prints it.
const CONFIG: tinylens::Config = models::DEMO_2L;

#[entry]
fn main() -> ! {
    // Handed out once as `&'static mut` by `#[entry]`: the state lives in .bss.
    static mut STATE: Arena<{ CONFIG.state_len() }> = Arena::new();
    let mut out = DefmtOut;
    out.emit(&Line::Target("STM32F411, Cortex-M4F"));
    let model = Model::from_blob(BLOB).unwrap_or_else(|e| defmt::panic!("{}", Display2Format(&e)));
    let mut decoder = Decoder::new(&model, STATE.as_mut_slice())
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
