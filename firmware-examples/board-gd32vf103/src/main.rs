//! Tinylens on a GD32VF103 (RISC-V RV32IMAC, e.g. a Sipeed Longan Nano), logging with defmt over RTT.
//! Flash and run with `cargo run --release` and a debug probe (probe-rs); the chip runs from its
//! reset clock, which is all the demo needs.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use common::{DefmtBoard, Int, NoClock};
use defmt_rtt as _;

common::embed_model!(); // CONFIG, MODEL, State: from TINYLENS_BLOB, or demo-2l (int)

/// The decoding state, in .bss.
static mut STATE: State = State::new();

#[riscv_rt::entry]
fn main() -> ! {
    // SAFETY: the only reference to STATE, taken once.
    let state = unsafe { &mut *addr_of_mut!(STATE) }.as_mut_slice();
    let mut report = DefmtBoard::start("GD32VF103, RISC-V RV32IMAC", riscv::asm::wfi);
    common::run_demo::<Int>(&MODEL, state, &mut report, &mut NoClock)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::println!("panic: {}", defmt::Display2Format(info));
    loop {
        riscv::asm::wfi();
    }
}
