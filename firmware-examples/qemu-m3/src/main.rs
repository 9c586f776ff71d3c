//! The full-integer blob on a Cortex-M3, a core without an FPU: int8 weights, an int8 KV cache,
//! no float at run time, and the same bits as the host kernel.
#![no_std]
#![no_main]

use common::{qemu, Int, Report};
use cortex_m_rt::entry;
use panic_semihosting as _;

common::embed_model!(); // CONFIG, MODEL, State: from TINYLENS_BLOB, or demo-2l

#[entry]
fn main() -> ! {
    static mut STATE: State = State::new(); // in .bss, handed out once by `#[entry]`
    let mut report = qemu::Semihosting::start("QEMU lm3s6965evb, Cortex-M3");
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| report.fail(&"peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 80, 1); // 12.5 MHz: 80 instructions a tick
    common::run_demo::<Int>(&MODEL, STATE.as_mut_slice(), &mut report, &mut clock)
}

common::exit_on_hard_fault!();
