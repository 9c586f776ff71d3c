//! The f32 blob on a Cortex-M7, logging with defmt: the firmware sends compact frames (format
//! strings stay in the ELF) through semihosting, and `defmt-print` formats them on the host.
//! The same firmware logs over RTT on a board by swapping `defmt-semihosting` for `defmt-rtt`.
#![no_std]
#![no_main]

use common::{qemu, Float, Report};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use defmt_semihosting as _;

common::embed_model!(); // CONFIG, MODEL, State: from TINYLENS_BLOB, or demo-2l (f32)

#[entry]
fn main() -> ! {
    static mut STATE: State = State::new(); // in .bss, handed out once by `#[entry]`
    let mut report = qemu::DefmtSemihosting::start("QEMU mps2-an500, Cortex-M7, defmt");
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| report.fail(&"peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 40, 1); // 25 MHz: 40 instructions a tick
    common::run_demo::<Float>(&MODEL, STATE.as_mut_slice(), &mut report, &mut clock)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::println!("panic: {}", defmt::Display2Format(info));
    qemu::exit(false)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::println!("HardFault at pc {=u32:#010x}", frame.pc());
    qemu::exit(false)
}
