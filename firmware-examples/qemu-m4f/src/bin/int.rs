//! The full-integer blob on a Cortex-M4F: no float at run time, the same bits as on the host.
#![no_std]
#![no_main]

use common::{models, qemu, Line, Out};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use panic_semihosting as _;
use tinylens::{IntArena, IntDecoder, Model};

/// The model, 16-byte aligned in flash.
static BLOB: &[u8] = tinylens::include_blob!("../../../../fixtures/firmware/demo-2l.int.tlb");
/// Its config, as `tinylens inspect` prints it.
const CONFIG: tinylens::Config = models::DEMO_2L;

#[entry]
fn main() -> ! {
    static mut STATE: IntArena<{ CONFIG.int_state_len() }> = IntArena::new();
    qemu::paint_stack();
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| qemu::fail("peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 40, 1); // 25 MHz: 40 instructions a tick
    let mut out = qemu::stdout();
    out.emit(&Line::Target("QEMU mps2-an386, Cortex-M4F"));

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
