//! The module's exports: plain `extern "C"` functions over regions of its linear memory, in
//! the order the page calls them. Each takes pointers and element counts the page chose,
//! checks them ([`region`]), turns them into slices and calls [`crate::explore`].
//!
//! This is the crate's one `unsafe` room: a slice made from a pointer the page hands in needs
//! `unsafe` (`core::slice::from_raw_parts`), and so does declaring the linker's `__heap_base`.
//! Every region is checked first to lie in the module's memory past its own data and stack,
//! to be aligned, and not to overlap any other region of the same call; the module is
//! single-threaded and the page does not touch the memory while a call runs.
#![allow(unsafe_code)]

use core::fmt::{self, Write};
use core::mem::{align_of, size_of};

use tinylens::{Error, Model};

use crate::explore;

/// Bytes in a WebAssembly memory page.
const WASM_PAGE: usize = 65536;

extern "C" {
    /// Set by the linker: the first address past the module's static data and stack.
    static __heap_base: u8;
}

/// What went wrong in a call: a region the page named, or the kernel's error.
enum CallError {
    /// A region is outside the free memory, misaligned or overlaps another: its name.
    Region(&'static str),
    /// The kernel refused the input.
    Kernel(Error),
}

impl From<Error> for CallError {
    fn from(e: Error) -> Self {
        CallError::Kernel(e)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Region(what) => write!(
                f,
                "the {what} region is outside the module's free memory, misaligned or \
                 overlapping another region"
            ),
            CallError::Kernel(e) => write!(f, "{e}"),
        }
    }
}

/// A checked region: start address and length in bytes.
#[derive(Clone, Copy)]
struct Region {
    start: usize,
    bytes: usize,
}

/// The first address the page may use.
fn free_start() -> usize {
    // Only the address of the linker symbol is taken; it is never read.
    core::ptr::addr_of!(__heap_base) as usize
}

/// `len` elements of `T` at `ptr`, checked to lie in `free_start()..memory end` and to be
/// aligned for `T`.
fn region<T>(what: &'static str, ptr: usize, len: usize) -> Result<Region, CallError> {
    let bad = CallError::Region(what);
    let bytes = len
        .checked_mul(size_of::<T>())
        .ok_or(CallError::Region(what))?;
    let end = ptr.checked_add(bytes).ok_or(CallError::Region(what))?;
    let memory_end = core::arch::wasm32::memory_size(0).saturating_mul(WASM_PAGE);
    if ptr < free_start() || end > memory_end || ptr % align_of::<T>() != 0 {
        return Err(bad);
    }
    Ok(Region { start: ptr, bytes })
}

/// Fails unless no two non-empty regions of `regions` overlap.
fn disjoint(regions: &[(&'static str, Region)]) -> Result<(), CallError> {
    for (i, (what, a)) in regions.iter().enumerate() {
        for (_, b) in &regions[i + 1..] {
            let overlap = a.start < b.start + b.bytes && b.start < a.start + a.bytes;
            if a.bytes > 0 && b.bytes > 0 && overlap {
                return Err(CallError::Region(what));
            }
        }
    }
    Ok(())
}

/// The region as a shared slice.
///
/// SAFETY: `r` comes from [`region`] for the same `T` (in memory, aligned) and [`disjoint`]
/// checked it against every region written in the same call.
unsafe fn read<'a, T>(r: Region) -> &'a [T] {
    if r.bytes == 0 {
        return &[];
    }
    core::slice::from_raw_parts(r.start as *const T, r.bytes / size_of::<T>())
}

/// The region as a mutable slice. SAFETY: as for [`read`]; no other slice of this call
/// overlaps it.
unsafe fn write<'a, T>(r: Region) -> &'a mut [T] {
    if r.bytes == 0 {
        return &mut [];
    }
    core::slice::from_raw_parts_mut(r.start as *mut T, r.bytes / size_of::<T>())
}

/// Writes into a byte buffer, dropping what does not fit.
struct Message<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for Message<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// The return value of a call: `ok` (at least 0) on success; on failure the error's text in
/// the message region and `-(1 + its length in bytes)`.
fn answer(result: Result<i32, CallError>, message: usize, message_len: usize) -> i32 {
    match result {
        Ok(v) => v,
        Err(e) => {
            let Ok(r) = region::<u8>("message", message, message_len) else {
                return -1;
            };
            // SAFETY: the message region is checked; nothing else of this call is alive.
            let buf = unsafe { write::<u8>(r) };
            let mut m = Message { buf, len: 0 };
            let _ = write!(m, "{e}");
            -1 - m.len as i32
        }
    }
}

/// The model in the blob region.
fn model<'a>(blob: usize, blob_len: usize) -> Result<(Model<'a>, Region), CallError> {
    let r = region::<u8>("blob", blob, blob_len)?;
    // SAFETY: checked region, only read in this call.
    let bytes = unsafe { read::<u8>(r) };
    Ok((Model::from_blob(bytes)?, r))
}

/// `f32` elements the arena of [`tl_run`] and [`tl_generate`] needs for this blob.
#[no_mangle]
pub extern "C" fn tl_arena_len(blob: usize, blob_len: usize, msg: usize, msg_len: usize) -> i32 {
    let result = model(blob, blob_len).map(|(m, _)| explore::arena_len(m.config()) as i32);
    answer(result, msg, msg_len)
}

/// `f32` elements of [`tl_run`]'s output for a prompt of `n_tokens` (see
/// [`explore::Layout`]).
#[no_mangle]
pub extern "C" fn tl_out_len(
    blob: usize,
    blob_len: usize,
    n_tokens: usize,
    msg: usize,
    msg_len: usize,
) -> i32 {
    let result =
        model(blob, blob_len).map(|(m, _)| explore::Layout::new(m.config(), n_tokens).len as i32);
    answer(result, msg, msg_len)
}

/// [`explore::run`]: `tokens` `[n_tokens]` u32, `ablation` `[n_layers * n_heads]` u8 codes,
/// `target` a token id or -1 for the top prediction, `out` `[out_len]` f32. Returns 0.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn tl_run(
    blob: usize,
    blob_len: usize,
    arena: usize,
    arena_len: usize,
    tokens: usize,
    n_tokens: usize,
    ablation: usize,
    ablation_len: usize,
    target: i32,
    out: usize,
    out_len: usize,
    msg: usize,
    msg_len: usize,
) -> i32 {
    let call = || -> Result<i32, CallError> {
        let (m, b) = model(blob, blob_len)?;
        let a = region::<f32>("arena", arena, arena_len)?;
        let t = region::<u32>("tokens", tokens, n_tokens)?;
        let c = region::<u8>("ablation", ablation, ablation_len)?;
        let o = region::<f32>("output", out, out_len)?;
        let g = region::<u8>("message", msg, msg_len)?;
        disjoint(&[
            ("blob", b),
            ("arena", a),
            ("tokens", t),
            ("ablation", c),
            ("output", o),
            ("message", g),
        ])?;
        // SAFETY: every region checked and disjoint.
        let (a, t, c, o) = unsafe {
            (
                write::<f32>(a),
                read::<u32>(t),
                read::<u8>(c),
                write::<f32>(o),
            )
        };
        let target = u32::try_from(target).ok();
        explore::run(&m, a, t, c, target, o)?;
        Ok(0)
    };
    answer(call(), msg, msg_len)
}

/// [`explore::generate`]: up to `steps` greedy tokens into `out_tokens` (u32) and their
/// probabilities into `out_probs` (f32). Returns how many it wrote.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn tl_generate(
    blob: usize,
    blob_len: usize,
    arena: usize,
    arena_len: usize,
    tokens: usize,
    n_tokens: usize,
    ablation: usize,
    ablation_len: usize,
    out_tokens: usize,
    out_probs: usize,
    steps: usize,
    msg: usize,
    msg_len: usize,
) -> i32 {
    let call = || -> Result<i32, CallError> {
        let (m, b) = model(blob, blob_len)?;
        let a = region::<f32>("arena", arena, arena_len)?;
        let t = region::<u32>("tokens", tokens, n_tokens)?;
        let c = region::<u8>("ablation", ablation, ablation_len)?;
        let ot = region::<u32>("generated tokens", out_tokens, steps)?;
        let op = region::<f32>("generated probabilities", out_probs, steps)?;
        let g = region::<u8>("message", msg, msg_len)?;
        disjoint(&[
            ("blob", b),
            ("arena", a),
            ("tokens", t),
            ("ablation", c),
            ("generated tokens", ot),
            ("generated probabilities", op),
            ("message", g),
        ])?;
        // SAFETY: every region checked and disjoint.
        let (a, t, c, ot, op) = unsafe {
            (
                write::<f32>(a),
                read::<u32>(t),
                read::<u8>(c),
                write::<u32>(ot),
                write::<f32>(op),
            )
        };
        Ok(explore::generate(&m, a, t, c, ot, op)? as i32)
    };
    answer(call(), msg, msg_len)
}

/// [`explore::circuit_rows`]: the direct-path, OV and QK rows of `token`, `k` entries each,
/// into `ids` (u32) and `values` (f32), `rows_len` elements each; `scratch` f32. Returns 0.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn tl_circuit_rows(
    blob: usize,
    blob_len: usize,
    token: u32,
    k: usize,
    scratch: usize,
    scratch_len: usize,
    ids: usize,
    values: usize,
    rows_len: usize,
    msg: usize,
    msg_len: usize,
) -> i32 {
    let call = || -> Result<i32, CallError> {
        let (m, b) = model(blob, blob_len)?;
        let s = region::<f32>("scratch", scratch, scratch_len)?;
        let i = region::<u32>("row ids", ids, rows_len)?;
        let v = region::<f32>("row values", values, rows_len)?;
        let g = region::<u8>("message", msg, msg_len)?;
        disjoint(&[
            ("blob", b),
            ("scratch", s),
            ("row ids", i),
            ("row values", v),
            ("message", g),
        ])?;
        // SAFETY: every region checked and disjoint.
        let (s, i, v) = unsafe { (write::<f32>(s), write::<u32>(i), write::<f32>(v)) };
        explore::circuit_rows(&m, token, k, s, i, v)?;
        Ok(0)
    };
    answer(call(), msg, msg_len)
}
