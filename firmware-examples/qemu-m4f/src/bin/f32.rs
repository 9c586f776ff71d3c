//! The f32 blob on a Cortex-M4F: weights read in place from flash, all decoding state in one
//! static arena sized at compile time from the model's config.
#![no_std]
#![no_main]

use common::{qemu, Float};
use cortex_m_rt::entry;
use panic_semihosting as _;

// `CONFIG`, `MODEL` and `State`, from the blob build.rs read: TINYLENS_BLOB, or demo-2l (f32).
common::embed_model!("model-f32.rs");

#[entry]
fn main() -> ! {
    // Handed out once as `&'static mut` by `#[entry]`: the state lives in .bss.
    static mut STATE: State = State::new();
    qemu::paint_stack();
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| qemu::fail("peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 40, 1); // 25 MHz: 40 instructions a tick
    let mut report = qemu::Semihosting::start("QEMU mps2-an386, Cortex-M4F");
    common::run_demo::<Float>(&MODEL, STATE.as_mut_slice(), &mut report, &mut clock)
}

common::exit_on_hard_fault!();
