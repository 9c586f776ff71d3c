//! Where a firmware's transcript goes and how its run ends: semihosting under QEMU
//! (`qemu::Semihosting`), defmt frames through semihosting
//! (`qemu::DefmtSemihosting`) or over RTT on a board (`DefmtBoard`).

use core::fmt::Display;

use crate::transcript::Out;

/// A transcript sink that also ends the run: QEMU exits with a status, a board stops.
pub trait Report: Out {
    /// Ends a successful run: what the device adds (`stack:` under QEMU), then `done`.
    fn finish(&mut self) -> !;
    /// Ends a failed run, saying why.
    fn fail(&mut self, what: &dyn Display) -> !;
}
