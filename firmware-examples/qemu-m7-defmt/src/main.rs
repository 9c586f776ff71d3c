//! The f32 blob on a Cortex-M7, logging with defmt: the firmware sends compact frames (format
//! strings stay in the ELF) through semihosting, and `defmt-print` formats them on the host.
//! The same firmware logs over RTT on a board by swapping `defmt-semihosting` for `defmt-rtt`.
#![no_std]
#![no_main]

use common::defmt_impls::DefmtOut;
use common::{models, qemu, Line, Out};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use defmt_semihosting as _;
use tinylens::{Arena, Decoder, Model};

/// The model, 16-byte aligned in flash.
static BLOB: &[u8] = tinylens::include_blob!("../../../fixtures/firmware/demo-2l.f32.tlb");
/// Its config, as `tinylens inspect` prints it.
const CONFIG: tinylens::Config = models::DEMO_2L;

#[entry]
fn main() -> ! {
    static mut STATE: Arena<{ CONFIG.state_len() }> = Arena::new();
    qemu::paint_stack();
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| fail("peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 40, 1); // 25 MHz: 40 instructions a tick
    let mut out = DefmtOut;
    out.emit(&Line::Target("QEMU mps2-an500, Cortex-M7, defmt"));

    let model = Model::from_blob(BLOB).unwrap_or_else(|e| fail(e));
    if !models::same_config(model.config(), &CONFIG) {
        fail("the blob's config is not CONFIG");
    }
    let mut decoder = Decoder::new(&model, STATE.as_mut_slice()).unwrap_or_else(|e| fail(e));
    if let Err(e) = common::run(
        &model,
        &mut decoder,
        CONFIG.n_ctx,
        &common::DEMO,
        &mut out,
        &mut clock,
    ) {
        fail(e);
    }
    out.emit(&Line::Stack(qemu::stack_peak()));
    out.emit(&Line::Done);
    qemu::exit(true)
}

/// Logs the error and exits QEMU with failure.
fn fail(what: impl core::fmt::Display) -> ! {
    defmt::println!("error: {}", defmt::Display2Format(&what));
    qemu::exit(false)
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
