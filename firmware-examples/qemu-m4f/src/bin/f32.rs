//! The f32 blob on a Cortex-M4F: weights read in place from flash, all decoding state in one
//! static arena sized at compile time from the model's config.
#![no_std]
#![no_main]

use common::{models, qemu, Float};
use cortex_m_rt::entry;
use panic_semihosting as _;
use tinylens::Arena;

/// The model, 16-byte aligned in flash.
static BLOB: &[u8] = tinylens::include_blob!("../../../../fixtures/firmware/demo-2l.f32.tlb");
/// Its config, as `tinylens inspect` prints it.
const CONFIG: tinylens::Config = models::DEMO_2L;

#[entry]
fn main() -> ! {
    // Handed out once as `&'static mut` by `#[entry]`: the state lives in .bss.
    static mut STATE: Arena<{ CONFIG.state_len() }> = Arena::new();
    qemu::paint_stack();
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| qemu::fail("peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 40, 1); // 25 MHz: 40 instructions a tick
    let mut report = qemu::Semihosting::start("QEMU mps2-an386, Cortex-M4F");
    let state = STATE.as_mut_slice();
    common::run_demo::<Float>(BLOB, &CONFIG, &common::DEMO, state, &mut report, &mut clock)
}

common::exit_on_hard_fault!();
