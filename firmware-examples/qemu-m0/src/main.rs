//! The full-integer blob on a Cortex-M0 with 16 KB of RAM (a BBC micro:bit v1): int8 weights,
//! an int8 KV cache, no float at run time, and the same bits as the host kernel. The demo model
//! is demo-2l-micro, demo-2l with its context cut to 32 positions: its whole context fits, in
//! about 10.4 KB of state (demo-2l's 64 positions would take 19 KB, and the build refuses it).
//! Another way to fit a long context in little RAM is `IntDecoder::with_context` with
//! `Config::int_state_len_for(ctx)`: a shorter KV cache for the same blob.
#![no_std]
#![no_main]

use common::{qemu, Int, Report};
use cortex_m_rt::entry;
use panic_semihosting as _;

common::embed_model!(); // CONFIG, MODEL, State: from TINYLENS_BLOB, or demo-2l-micro

#[entry]
fn main() -> ! {
    static mut STATE: State = State::new(); // in .bss, handed out once by `#[entry]`
    let mut report = qemu::Semihosting::start("QEMU microbit, Cortex-M0");
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| report.fail(&"peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 125, 2); // 16 MHz: 62.5 instructions a tick
    common::run_demo::<Int>(&MODEL, STATE.as_mut_slice(), &mut report, &mut clock)
}

common::exit_on_hard_fault!();
