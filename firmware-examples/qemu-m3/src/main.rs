//! The full-integer blob on a Cortex-M3, a core without an FPU: int8 weights, an int8 KV cache,
//! no float at run time, and the same bits as the host kernel.
#![no_std]
#![no_main]

use common::{models, qemu, Int};
use cortex_m_rt::entry;
use panic_semihosting as _;
use tinylens::IntArena;

/// The model, 16-byte aligned in flash.
static BLOB: &[u8] = tinylens::include_blob!("../../../fixtures/firmware/demo-2l.int.tlb");
/// Its config, as `tinylens inspect` prints it.
const CONFIG: tinylens::Config = models::DEMO_2L;

#[entry]
fn main() -> ! {
    // Handed out once as `&'static mut` by `#[entry]`: the state lives in .bss.
    static mut STATE: IntArena<{ CONFIG.int_state_len() }> = IntArena::new();
    qemu::paint_stack();
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| qemu::fail("peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 80, 1); // 12.5 MHz: 80 instructions a tick
    let mut report = qemu::Semihosting::start("QEMU lm3s6965evb, Cortex-M3");
    let state = STATE.as_mut_slice();
    common::run_demo::<Int>(BLOB, &CONFIG, &common::DEMO, state, &mut report, &mut clock)
}

common::exit_on_hard_fault!();
