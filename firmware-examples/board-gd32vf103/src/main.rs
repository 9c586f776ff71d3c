//! Tinylens on a GD32VF103 (RISC-V RV32IMAC, e.g. a Sipeed Longan Nano), logging with defmt over RTT.
//! Flash and run with `cargo run --release` and a debug probe (probe-rs); the chip runs from its
//! reset clock, which is all the demo needs.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use common::defmt_impls::DefmtOut;
use common::{models, Line, NoClock, Out};
use defmt::Display2Format;
use defmt_rtt as _;
use tinylens::{IntArena, IntDecoder, Model};

/// The model, 16-byte aligned in flash.
static BLOB: &[u8] = tinylens::include_blob!("../../../fixtures/firmware/demo-2l.int.tlb");
/// Its config, as `tinylens inspect` prints it.
const CONFIG: tinylens::Config = models::DEMO_2L;

/// The decoding state, in .bss.
static mut STATE: IntArena<{ CONFIG.int_state_len() }> = IntArena::new();

#[riscv_rt::entry]
fn main() -> ! {
    // SAFETY: the only reference to STATE, taken once.
    let state = unsafe { &mut *addr_of_mut!(STATE) };
    let mut out = DefmtOut;
    out.emit(&Line::Target("GD32VF103, RISC-V RV32IMAC"));
    let model = Model::from_blob(BLOB).unwrap_or_else(|e| defmt::panic!("{}", Display2Format(&e)));
    let mut decoder = IntDecoder::new(&model, state.as_mut_slice())
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
        riscv::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::println!("panic: {}", Display2Format(info));
    loop {
        riscv::asm::wfi();
    }
}
