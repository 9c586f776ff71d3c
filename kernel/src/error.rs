//! The one error type of the kernel. Every public function that can meet bad input returns it;
//! nothing in the kernel panics on a blob, a token or a buffer the caller hands in.

use core::fmt;

use crate::blob::TensorId;

/// Everything that can go wrong when loading a blob or running a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The blob is shorter than its fixed prefix, or shorter than the length it declares.
    Truncated {
        /// Bytes the blob says it has (or the minimum a blob can have).
        expected: usize,
        /// Bytes actually given.
        found: usize,
    },
    /// The blob is longer than the length it declares.
    TrailingBytes {
        /// Bytes the blob says it has.
        expected: usize,
        /// Bytes actually given.
        found: usize,
    },
    /// The first eight bytes are not `b"tinylens"`: this is not a tinylens blob.
    BadMagic,
    /// The blob was written in a format version this kernel does not read.
    UnsupportedVersion {
        /// Version in the blob.
        found: u16,
        /// Version this kernel reads.
        supported: u16,
    },
    /// The reserved flag bits of the prefix are not zero.
    ReservedFlags(u16),
    /// The CRC32 trailer does not match the bytes before it: the blob is corrupted.
    Checksum {
        /// CRC32 stored in the blob.
        stored: u32,
        /// CRC32 computed over the blob.
        computed: u32,
    },
    /// The postcard-encoded header could not be decoded.
    Header,
    /// A config field is zero or too large: the name of the field.
    BadConfig(&'static str),
    /// The blob uses a number format this kernel was not built to run.
    UnsupportedFormat(u32),
    /// The tensor directory lists a different tensor than the config requires at this place.
    UnexpectedTensor {
        /// The tensor the config requires next.
        expected: TensorId,
    },
    /// The directory has more or fewer entries than the config requires.
    TensorCount {
        /// Entries the config requires.
        expected: usize,
        /// Entries in the directory.
        found: usize,
    },
    /// A tensor's length disagrees with the config.
    TensorLength {
        /// Which tensor.
        tensor: TensorId,
        /// Elements the config implies.
        expected: usize,
        /// Elements the directory declares.
        found: usize,
    },
    /// A tensor does not start where the canonical layout puts it (offsets are multiples of 16).
    TensorOffset {
        /// Which tensor.
        tensor: TensorId,
        /// Byte offset in the data section the layout requires.
        expected: usize,
        /// Byte offset the directory declares.
        found: usize,
    },
    /// A tensor holds NaN or an infinity.
    NonFinite {
        /// Which tensor.
        tensor: TensorId,
        /// Index of the first bad element.
        index: usize,
    },
    /// A quantization record holds an invalid (multiplier, shift) pair: a negative multiplier
    /// or a shift outside `-31..=30`.
    QuantParam {
        /// Which record.
        tensor: TensorId,
        /// Index of the multiplier word of the bad pair.
        index: usize,
    },
    /// The tokenizer vocabulary is malformed (wrong count, bad length prefix or not UTF-8).
    BadVocab,
    /// The blob's bytes do not start at a 4-byte aligned address, so `f32` tensors cannot be
    /// borrowed in place. Embed blobs with [`include_blob!`](crate::include_blob) or copy them
    /// into an aligned buffer.
    Misaligned {
        /// The address of the blob modulo 4.
        address_mod_4: usize,
    },
    /// This target is big-endian; blobs are little-endian and borrowed in place.
    BigEndian,
    /// The caller's buffer is too small for this model.
    CapacityTooSmall {
        /// Bytes the model needs.
        needed_bytes: usize,
        /// Bytes the buffer has.
        available_bytes: usize,
    },
    /// The requested context is larger than the model's `n_ctx`.
    ContextTooLong {
        /// Requested context.
        requested: usize,
        /// The model's `n_ctx`.
        n_ctx: usize,
    },
    /// A token id is not below `d_vocab`.
    TokenOutOfRange {
        /// The token.
        token: u32,
        /// The vocabulary size.
        d_vocab: usize,
    },
    /// The KV cache is full: `step` past the context length. Use
    /// [`Decoder::slide`](crate::Decoder::slide) to keep generating.
    ContextFull {
        /// Positions the cache holds.
        capacity: usize,
    },
    /// A prompt with no tokens.
    EmptyPrompt,
    /// Nothing has been decoded yet, so there is no current position to read.
    NoPosition,
    /// A layer or head index past the model's.
    OutOfRange {
        /// What was indexed: "layer", "head" or "token".
        what: &'static str,
        /// The index given.
        index: usize,
        /// The number of valid indices.
        len: usize,
    },
    /// A caller's output slice has the wrong length.
    OutputLength {
        /// Elements required.
        expected: usize,
        /// Elements given.
        found: usize,
    },
}

impl Error {
    /// [`Error::OutputLength`] unless a buffer of `found` elements is the `expected` length.
    pub(crate) fn check_length(expected: usize, found: usize) -> Result<(), Error> {
        if found == expected {
            Ok(())
        } else {
            Err(Error::OutputLength { expected, found })
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { expected, found } => {
                write!(f, "blob truncated: expected {expected} bytes, found {found}")
            }
            Error::TrailingBytes { expected, found } => write!(
                f,
                "blob has trailing bytes: header says {expected} bytes, found {found}"
            ),
            Error::BadMagic => f.write_str("not a tinylens blob (bad magic, expected \"tinylens\")"),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "blob format version {found} is not supported (this kernel reads version {supported})"
            ),
            Error::ReservedFlags(v) => write!(f, "reserved flags are set in the blob prefix: {v:#06x}"),
            Error::Checksum { stored, computed } => write!(
                f,
                "blob corrupted: CRC32 mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Error::Header => f.write_str("blob header could not be decoded"),
            Error::BadConfig(field) => write!(f, "invalid config: {field}"),
            Error::UnsupportedFormat(code) => {
                match crate::blob::NumberFormat::from_code_any(code) {
                    Some(format) => write!(
                        f,
                        "number format {code} ({}) is not supported by this build of the kernel (enable its Cargo feature `{}`)",
                        format.name(),
                        format.feature()
                    ),
                    None => write!(
                        f,
                        "number format {code} is not supported by this build of the kernel"
                    ),
                }
            }
            Error::UnexpectedTensor { expected } => {
                write!(f, "tensor directory out of order: expected {expected} here")
            }
            Error::TensorCount { expected, found } => write!(
                f,
                "tensor directory has {found} entries, the config requires {expected}"
            ),
            Error::TensorLength { tensor, expected, found } => write!(
                f,
                "tensor {tensor} has {found} elements, the config requires {expected}"
            ),
            Error::TensorOffset { tensor, expected, found } => write!(
                f,
                "tensor {tensor} starts at data offset {found}, the layout requires {expected}"
            ),
            Error::NonFinite { tensor, index } => {
                write!(f, "tensor {tensor} holds NaN or Inf at element {index}")
            }
            Error::QuantParam { tensor, index } => write!(
                f,
                "tensor {tensor} has an invalid multiplier/shift pair at element {index}"
            ),
            Error::BadVocab => f.write_str("tokenizer vocabulary in the blob is malformed"),
            Error::Misaligned { address_mod_4 } => write!(
                f,
                "blob is not 4-byte aligned (address % 4 = {address_mod_4}); embed it with include_blob! or copy it to an aligned buffer"
            ),
            Error::BigEndian => f.write_str("blobs are little-endian; this target is big-endian"),
            Error::CapacityTooSmall { needed_bytes, available_bytes } => write!(
                f,
                "model needs {needed_bytes} bytes of state, the buffer has {available_bytes}"
            ),
            Error::ContextTooLong { requested, n_ctx } => write!(
                f,
                "requested context {requested} is longer than the model's n_ctx {n_ctx}"
            ),
            Error::TokenOutOfRange { token, d_vocab } => write!(
                f,
                "token {token} is out of range (d_vocab = {d_vocab})"
            ),
            Error::ContextFull { capacity } => write!(
                f,
                "context is full ({capacity} positions); slide the window to go on"
            ),
            Error::EmptyPrompt => f.write_str("the prompt has no tokens"),
            Error::NoPosition => f.write_str("nothing decoded yet"),
            Error::OutOfRange { what, index, len } => {
                write!(f, "{what} {index} is out of range (there are {len})")
            }
            Error::OutputLength { expected, found } => write!(
                f,
                "output buffer has {found} elements, {expected} are required"
            ),
        }
    }
}

impl core::error::Error for Error {}
