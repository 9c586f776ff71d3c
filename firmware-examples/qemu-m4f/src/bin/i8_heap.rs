//! The int8-weight blob on a Cortex-M4F, with its state on a heap: for firmware that picks a
//! model at run time (from a file system, a radio, another flash bank) and so cannot size a
//! static from a config constant. Only the heap's size is fixed at compile time.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use core::mem::MaybeUninit;

use common::{qemu, Float, Report};
use cortex_m_rt::entry;
use embedded_alloc::LlffHeap as Heap;
use panic_semihosting as _;
use tinylens::Model;

#[global_allocator]
static HEAP: Heap = Heap::empty();

/// The heap: room for the state of any model that needs up to about 70 KiB (demo-2l takes
/// 69604 bytes for its context of 64).
const HEAP_BYTES: usize = 70 * 1024;

// `MODEL`, from the blob build.rs read: TINYLENS_BLOB, or demo-2l (i8). Its blob could as well
// come from anywhere at run time.
common::embed_model!("model-i8.rs");

#[entry]
fn main() -> ! {
    static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
    // SAFETY: called once, before any allocation, on memory nothing else uses.
    unsafe { HEAP.init(HEAP_MEM.as_mut_ptr() as usize, HEAP_BYTES) }
    let mut report = qemu::Semihosting::start("QEMU mps2-an386, Cortex-M4F, state on the heap");
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| report.fail(&"peripherals"));
    let mut clock = qemu::SysTickClock::start(core.SYST, 40, 1); // 25 MHz: 40 instructions a tick

    // The state's size comes from the blob's config, read at run time.
    let state_len = match Model::from_blob(MODEL.blob) {
        Ok(model) => model.config().state_len(),
        Err(e) => report.fail(&e),
    };
    let mut state = vec![0.0f32; state_len];
    common::run_demo::<Float>(&MODEL, &mut state, &mut report, &mut clock)
}

common::exit_on_hard_fault!();
