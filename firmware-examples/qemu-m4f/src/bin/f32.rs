//! The f32 blob on a Cortex-M4F: weights read in place from flash, all decoding state in one
//! static arena sized at compile time from the model's config.
#![no_std]
#![no_main]

use common::{qemu, Float, Report};
use cortex_m_rt::entry;
use panic_semihosting as _;

common::embed_model!("model-f32.rs"); // CONFIG, MODEL, State: from TINYLENS_BLOB, or demo-2l (f32)

#[entry]
fn main() -> ! {
    static mut STATE: State = State::new(); // in .bss, handed out once by `#[entry]`
    let mut report = qemu::Semihosting::start("QEMU mps2-an386, Cortex-M4F");
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| report.fail(&"peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 40, 1); // 25 MHz: 40 instructions a tick
    common::run_demo::<Float>(&MODEL, STATE.as_mut_slice(), &mut report, &mut clock)
}

common::exit_on_hard_fault!();
