//! Cortex-M under QEMU: counting executed instructions, printing, exiting, and measuring the
//! stack; the reports of the QEMU examples ([`Semihosting`], [`DefmtSemihosting`]).

use core::fmt::Display;
use core::ptr::{addr_of, read_volatile, write_volatile};

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_semihosting::{debug, hio};

use crate::cost::Clock;
use crate::report::Report;
use crate::transcript::{FmtOut, Line, Out};

/// SysTick as an instruction counter. QEMU has no timing model; with `-icount shift=0` every
/// instruction takes 1 ns of virtual time, so SysTick (clocked at the core clock) counts one
/// tick per `1e9 / f_core` instructions: 40 on mps2 (25 MHz), 80 on lm3s6965evb (12.5 MHz),
/// 62.5 on microbit (16 MHz). The 24-bit counter wraps every 2^24 ticks; readings less than a
/// wrap apart (any one decoding step) are exact to one tick.
pub struct SysTickClock {
    last: u32,
    ticks: u64,
    /// Instructions per tick, as `num / den`.
    num: u64,
    den: u64,
}

impl SysTickClock {
    /// Starts SysTick free-running from the core clock, without interrupts. The core clock
    /// is `instructions_num / instructions_den` instructions per tick.
    pub fn start(mut syst: SYST, instructions_num: u64, instructions_den: u64) -> Self {
        syst.disable_interrupt();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(0x00FF_FFFF);
        syst.clear_current();
        syst.enable_counter();
        SysTickClock {
            last: SYST::get_current(),
            ticks: 0,
            num: instructions_num,
            den: instructions_den,
        }
    }
}

impl Clock for SysTickClock {
    #[inline]
    fn now(&mut self) -> Option<u64> {
        // SysTick counts down.
        let now = SYST::get_current();
        self.ticks += (self.last.wrapping_sub(now) & 0x00FF_FFFF) as u64;
        self.last = now;
        Some(self.ticks)
    }

    fn instructions(&self, elapsed: u64) -> u64 {
        elapsed * self.num / self.den
    }
}

/// Transcript lines to the host's stdout through semihosting.
pub fn stdout() -> FmtOut<hio::HostStream> {
    match hio::hstdout() {
        Ok(out) => FmtOut(out),
        Err(()) => exit(false),
    }
}

/// Prints `what` to stderr and exits QEMU with failure.
pub fn fail(what: impl Display) -> ! {
    if let Ok(mut err) = hio::hstderr() {
        let _ = core::fmt::Write::write_fmt(&mut err, format_args!("error: {what}\n"));
    }
    exit(false)
}

/// Exits QEMU with status 0 (`success`) or 1.
pub fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Ends a successful run: the peak stack use, `done`, exit 0.
pub fn finish(out: &mut impl Out) -> ! {
    out.emit(&Line::Stack(stack_peak()));
    out.emit(&Line::Done);
    exit(true)
}

/// The transcript through semihosting on the host's stdout, an error on its stderr, and QEMU's
/// exit status for success or failure.
pub struct Semihosting(FmtOut<hio::HostStream>);

impl Semihosting {
    /// Paints the stack ([`paint_stack`], for the `stack:` line at the end), opens the host's
    /// stdout and prints the `target:` line naming the machine. Call it first thing in `main`.
    pub fn start(target: &str) -> Self {
        paint_stack();
        let mut out = Semihosting(stdout());
        out.emit(&Line::Target(target));
        out
    }
}

impl Out for Semihosting {
    fn emit(&mut self, line: &Line<'_>) {
        self.0.emit(line);
    }
}

impl Report for Semihosting {
    fn finish(&mut self) -> ! {
        finish(self)
    }
    fn fail(&mut self, what: &dyn Display) -> ! {
        fail(what)
    }
}

/// The transcript as defmt frames through semihosting (decoded on the host by `defmt-print`),
/// and QEMU's exit status for success or failure.
#[cfg(feature = "defmt")]
pub struct DefmtSemihosting;

#[cfg(feature = "defmt")]
impl DefmtSemihosting {
    /// Paints the stack ([`paint_stack`], for the `stack:` line at the end) and prints the
    /// `target:` line naming the machine. Call it first thing in `main`.
    pub fn start(target: &str) -> Self {
        paint_stack();
        let mut out = DefmtSemihosting;
        out.emit(&Line::Target(target));
        out
    }
}

#[cfg(feature = "defmt")]
impl Out for DefmtSemihosting {
    fn emit(&mut self, line: &Line<'_>) {
        defmt::println!("{}", line);
    }
}

#[cfg(feature = "defmt")]
impl Report for DefmtSemihosting {
    fn finish(&mut self) -> ! {
        finish(self)
    }
    fn fail(&mut self, what: &dyn Display) -> ! {
        defmt::println!("error: {}", defmt::Display2Format(what));
        exit(false)
    }
}

/// Declares the `HardFault` handler of a QEMU example that prints through semihosting: the
/// faulting address on stderr and an exit with failure, so that a fault fails the run instead
/// of hanging it. The example depends on `cortex-m-rt`.
#[macro_export]
macro_rules! exit_on_hard_fault {
    () => {
        #[cortex_m_rt::exception]
        unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
            $crate::qemu::fail(format_args!("HardFault at pc {:#010x}", frame.pc()))
        }
    };
}

const PAINT: u32 = 0x5AFE_C0DE;

extern "C" {
    /// End of `.bss`/`.uninit`, where the free RAM below the stack starts (cortex-m-rt).
    static __sheap: u32;
    /// Initial stack pointer, the top of RAM (cortex-m-rt).
    static _stack_start: u32;
}

/// Fills the free RAM between the statics and the current stack pointer with a pattern, so
/// that [`stack_peak`] can find how deep the stack went. The reports call it when they start.
pub fn paint_stack() {
    let bottom = addr_of!(__sheap) as usize;
    let sp = cortex_m::register::msp::read() as usize;
    let mut at = bottom;
    // Stay well below this function's own frame.
    while at + 256 < sp {
        // SAFETY: [bottom, sp - 256) is RAM that nothing uses: above every static, below the
        // live stack.
        unsafe { write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
}

/// Bytes of stack used at most since [`paint_stack`]: from the top of RAM down to the lowest
/// word that no longer holds the pattern.
pub fn stack_peak() -> usize {
    let bottom = addr_of!(__sheap) as usize;
    let top = addr_of!(_stack_start) as usize;
    let mut at = bottom;
    // SAFETY: reads of RAM between the statics and the stack top, word aligned.
    while at < top && unsafe { read_volatile(at as *const u32) } == PAINT {
        at += 4;
    }
    top - at
}
