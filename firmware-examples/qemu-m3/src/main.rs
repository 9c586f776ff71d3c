//! The full-integer blob on a Cortex-M3, a core without an FPU: int8 weights, an int8 KV cache,
//! no float at run time, and the same bits as the host kernel.
#![no_std]
#![no_main]

use common::{models, qemu, Line, Out};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use panic_semihosting as _;
use tinylens::{IntArena, IntDecoder, Model};

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
    let mut out = qemu::stdout();
    out.emit(&Line::Target("QEMU lm3s6965evb, Cortex-M3"));

    let model = Model::from_blob(BLOB).unwrap_or_else(|e| qemu::fail(e));
    if !models::same_config(model.config(), &CONFIG) {
        qemu::fail("the blob's config is not CONFIG");
    }
    let mut decoder =
        IntDecoder::new(&model, STATE.as_mut_slice()).unwrap_or_else(|e| qemu::fail(e));
    match common::run(
        &model,
        &mut decoder,
        CONFIG.n_ctx,
        &common::DEMO,
        &mut out,
        &mut clock,
    ) {
        Ok(_) => qemu::finish(&mut out),
        Err(e) => qemu::fail(e),
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    qemu::fail(format_args!("HardFault at pc {:#010x}", frame.pc()))
}
