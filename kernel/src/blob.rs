//! The blob: a model in one byte slice, read in place from flash. `FORMAT.md` at the root of the
//! repository is the specification; this module is its reader.
//!
//! ```text
//! offset          size  field
//! 0               8     magic b"tinylens"
//! 8               2     format version, u16 LE (this kernel reads VERSION)
//! 10              2     flags, u16 LE, must be 0
//! 12              4     header length H, u32 LE
//! 16              4     file length N (all bytes, trailer included), u32 LE
//! 20              H     header, postcard: Header, then n_tensors TensorEntry
//! 20+H            ..    zero padding to a multiple of 16: the data section starts there
//! data_start      ..    tensors in canonical order, each at a 16-byte aligned offset
//! N-4             4     CRC32 (ISO-HDLC, as zlib) of bytes [0, N-4), u32 LE
//! ```

use serde::{Deserialize, Serialize};

use crate::{Config, Error, Norm, PosEmbed};

/// The first eight bytes of every blob.
pub const MAGIC: [u8; 8] = *b"tinylens";
/// The format version this kernel writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the postcard header.
pub const PREFIX_LEN: usize = 20;
/// Bytes of the CRC32 trailer.
pub const TRAILER_LEN: usize = 4;
/// Alignment of the data section and of every tensor in it, in bytes.
pub const ALIGN: usize = 16;
/// The CRC32 used by the trailer: the common one of zlib, PNG and Ethernet.
pub const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Rounds `n` up to the next multiple of [`ALIGN`].
pub const fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// How the weights are stored and which forward pass runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NumberFormat {
    /// Every tensor `f32`; the forward pass in `f32` (`forward.rs`). Cargo feature `f32`.
    F32,
    /// int8 matrices with one `f32` scale per output column, everything else `f32`;
    /// activations in `f32` (`forward_i8.rs`). For cores with an FPU. Cargo feature `i8`.
    I8,
    /// Full integer: int8 matrices, int16/int8 activations, i32 accumulators, every scale
    /// a precomputed multiplier and shift; no float at run time (`forward_int.rs`). For cores
    /// without an FPU. Cargo feature `int`.
    Int,
    /// int8 matrices with one `f32` scale per block of 32 consecutive elements (GGML's
    /// Q8_0 grouping), everything else `f32`; activations in `f32`. Cargo feature `i8`.
    I8Block32,
}

impl NumberFormat {
    /// Every format, in code order.
    pub const ALL: [NumberFormat; 4] = [
        NumberFormat::F32,
        NumberFormat::I8,
        NumberFormat::Int,
        NumberFormat::I8Block32,
    ];

    /// The code stored in the header.
    pub const fn code(self) -> u32 {
        match self {
            NumberFormat::F32 => 0,
            NumberFormat::I8 => 1,
            NumberFormat::Int => 2,
            NumberFormat::I8Block32 => 3,
        }
    }

    /// The format of a header code, if this build of the kernel runs it (each format has a
    /// Cargo feature; all are on by default).
    pub const fn from_code(code: u32) -> Result<Self, Error> {
        match Self::from_code_any(code) {
            Some(f) if f.is_built() => Ok(f),
            _ => Err(Error::UnsupportedFormat(code)),
        }
    }

    /// The format of a header code, whether or not this build runs it.
    pub const fn from_code_any(code: u32) -> Option<Self> {
        match code {
            0 => Some(NumberFormat::F32),
            1 => Some(NumberFormat::I8),
            2 => Some(NumberFormat::Int),
            3 => Some(NumberFormat::I8Block32),
            _ => None,
        }
    }

    /// Whether this build of the kernel runs the format (its Cargo feature is on).
    pub const fn is_built(self) -> bool {
        match self {
            NumberFormat::F32 => cfg!(feature = "f32"),
            NumberFormat::I8 | NumberFormat::I8Block32 => cfg!(feature = "i8"),
            NumberFormat::Int => cfg!(feature = "int"),
        }
    }

    /// The Cargo feature of the kernel that runs the format.
    pub const fn feature(self) -> &'static str {
        match self {
            NumberFormat::F32 => "f32",
            NumberFormat::I8 | NumberFormat::I8Block32 => "i8",
            NumberFormat::Int => "int",
        }
    }

    /// Short name, as the CLI's `--format` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            NumberFormat::F32 => "f32",
            NumberFormat::I8 => "i8",
            NumberFormat::Int => "int",
            NumberFormat::I8Block32 => "i8-block32",
        }
    }

    /// The format named `name` (as [`name`](Self::name) spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the matrices are int8 (every format but `f32`).
    pub const fn is_quantized(self) -> bool {
        !matches!(self, NumberFormat::F32)
    }

    /// The element type of tensor `kind` in this format.
    pub const fn dtype(self, kind: TensorKind) -> DType {
        use TensorKind::*;
        match (self, kind) {
            (NumberFormat::F32, _) => DType::F32,
            (_, WE | WPos | WQ | WK | WV | WO | WU) => DType::I8,
            (NumberFormat::Int, _) => DType::I32,
            _ => DType::F32,
        }
    }
}

/// Element types of tensors in the data section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DType {
    /// IEEE 754 binary32, little-endian.
    F32,
    /// Two's complement 8-bit integer.
    I8,
    /// Two's complement 32-bit integer, little-endian.
    I32,
}

impl DType {
    /// The code stored in a tensor entry.
    pub const fn code(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::I8 => 1,
            DType::I32 => 2,
        }
    }
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I8 => 1,
        }
    }
}

/// The header that follows the prefix, postcard-encoded. The tensor directory follows it: a
/// varint count, then that many [`TensorEntry`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header<'a> {
    /// The model's hyperparameters.
    pub config: Config,
    /// [`NumberFormat::code`].
    pub format: u32,
    /// Tokenizer vocabulary: for each token id in order, one length byte then that many bytes
    /// of UTF-8 text.
    #[serde(borrow)]
    pub vocab: Option<&'a [u8]>,
}

/// One entry of the tensor directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// [`TensorKind`] as a byte.
    pub kind: u8,
    /// Layer index for per-layer tensors, 0 otherwise.
    pub layer: u32,
    /// [`DType::code`].
    pub dtype: u8,
    /// Byte offset from the start of the data section, a multiple of [`ALIGN`].
    pub offset: u32,
    /// Number of elements.
    pub len: u32,
}

/// The parameters of an attention-only model, named as in TransformerLens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum TensorKind {
    WE = 0,
    WPos = 1,
    Ln1W = 2,
    Ln1B = 3,
    WQ = 4,
    WK = 5,
    WV = 6,
    BQ = 7,
    BK = 8,
    BV = 9,
    WO = 10,
    BO = 11,
    LnFinalW = 12,
    LnFinalB = 13,
    WU = 14,
    BU = 15,
    /// Quantization parameters of the whole model (quantized formats only).
    Quant = 16,
    /// Quantization parameters of one block (quantized formats only).
    LayerQuant = 17,
}

impl TensorKind {
    /// The TransformerLens parameter name (per-layer names without the `blocks.{l}.` prefix).
    pub const fn name(self) -> &'static str {
        match self {
            TensorKind::WE => "embed.W_E",
            TensorKind::WPos => "pos_embed.W_pos",
            TensorKind::Ln1W => "ln1.w",
            TensorKind::Ln1B => "ln1.b",
            TensorKind::WQ => "attn.W_Q",
            TensorKind::WK => "attn.W_K",
            TensorKind::WV => "attn.W_V",
            TensorKind::BQ => "attn.b_Q",
            TensorKind::BK => "attn.b_K",
            TensorKind::BV => "attn.b_V",
            TensorKind::WO => "attn.W_O",
            TensorKind::BO => "attn.b_O",
            TensorKind::LnFinalW => "ln_final.w",
            TensorKind::LnFinalB => "ln_final.b",
            TensorKind::WU => "unembed.W_U",
            TensorKind::BU => "unembed.b_U",
            TensorKind::Quant => "quant",
            TensorKind::LayerQuant => "quant",
        }
    }

    /// Whether the tensor belongs to a block (`blocks.{l}.…`).
    pub const fn per_layer(self) -> bool {
        matches!(
            self,
            TensorKind::Ln1W
                | TensorKind::Ln1B
                | TensorKind::WQ
                | TensorKind::WK
                | TensorKind::WV
                | TensorKind::BQ
                | TensorKind::BK
                | TensorKind::BV
                | TensorKind::WO
                | TensorKind::BO
                | TensorKind::LayerQuant
        )
    }

    /// Elements of this tensor under `cfg` (quantization records: see
    /// [`quant_len`]).
    pub const fn len(self, cfg: &Config) -> usize {
        let (h, m, d) = (cfg.n_heads, cfg.d_model, cfg.d_head);
        match self {
            TensorKind::WE => cfg.d_vocab * m,
            TensorKind::WPos => cfg.n_ctx * m,
            TensorKind::WQ | TensorKind::WK | TensorKind::WV | TensorKind::WO => h * m * d,
            TensorKind::BQ | TensorKind::BK | TensorKind::BV => h * d,
            TensorKind::Ln1W
            | TensorKind::Ln1B
            | TensorKind::BO
            | TensorKind::LnFinalW
            | TensorKind::LnFinalB => m,
            TensorKind::WU => m * cfg.d_vocab,
            TensorKind::BU => cfg.d_vocab,
            TensorKind::Quant | TensorKind::LayerQuant => 0,
        }
    }
}

/// A tensor of a model: its kind and, for block tensors, its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorId {
    /// Which parameter.
    pub kind: TensorKind,
    /// The block, for per-layer tensors.
    pub layer: u32,
}

impl core::fmt::Display for TensorId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.kind.per_layer() {
            write!(f, "blocks.{}.{}", self.layer, self.kind.name())
        } else {
            f.write_str(self.kind.name())
        }
    }
}

const GLOBAL_BEFORE: [TensorKind; 2] = [TensorKind::WE, TensorKind::WPos];
const PER_LAYER: [TensorKind; 10] = [
    TensorKind::Ln1W,
    TensorKind::Ln1B,
    TensorKind::WQ,
    TensorKind::WK,
    TensorKind::WV,
    TensorKind::BQ,
    TensorKind::BK,
    TensorKind::BV,
    TensorKind::WO,
    TensorKind::BO,
];
const GLOBAL_AFTER: [TensorKind; 4] = [
    TensorKind::LnFinalW,
    TensorKind::LnFinalB,
    TensorKind::WU,
    TensorKind::BU,
];

/// Whether `cfg` has this tensor at all (LayerNorm and `W_pos` are optional).
const fn present(cfg: &Config, kind: TensorKind) -> bool {
    match kind {
        TensorKind::WPos => !matches!(cfg.pos, PosEmbed::None),
        TensorKind::Ln1W | TensorKind::Ln1B | TensorKind::LnFinalW | TensorKind::LnFinalB => {
            matches!(cfg.norm, Norm::LayerNorm { .. })
        }
        _ => true,
    }
}

/// The canonical order of the tensors of `cfg`: `embed.W_E`, `pos_embed.W_pos`, then for each
/// block `ln1.w, ln1.b, W_Q, W_K, W_V, b_Q, b_K, b_V, W_O, b_O`, then `ln_final.w, ln_final.b,
/// W_U, b_U`, leaving out what the config does not have. Yields `(tensor, elements)`.
pub fn tensors(cfg: &Config) -> impl Iterator<Item = (TensorId, usize)> + '_ {
    let global = |kind: TensorKind| TensorId { kind, layer: 0 };
    let before = GLOBAL_BEFORE.into_iter().map(global);
    let layers = (0..cfg.n_layers as u32).flat_map(|layer| {
        PER_LAYER
            .into_iter()
            .map(move |kind| TensorId { kind, layer })
    });
    let after = GLOBAL_AFTER.into_iter().map(global);
    before
        .chain(layers)
        .chain(after)
        .filter(move |t| present(cfg, t.kind))
        .map(move |t| (t, t.kind.len(cfg)))
}

/// Elements of the quantization record `kind` ([`TensorKind::Quant`] or
/// [`TensorKind::LayerQuant`]) of `format`; FORMAT.md gives the layout of each record.
pub const fn quant_len(format: NumberFormat, cfg: &Config, kind: TensorKind) -> usize {
    let (h, m, d, v, c) = (cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab, cfg.n_ctx);
    let has_pos = !matches!(cfg.pos, PosEmbed::None);
    let standard = matches!(cfg.pos, PosEmbed::Standard);
    let shortformer = matches!(cfg.pos, PosEmbed::Shortformer);
    let has_ln = matches!(cfg.norm, Norm::LayerNorm { .. });
    let global = matches!(kind, TensorKind::Quant);
    const fn b(n: usize) -> usize {
        n.div_ceil(32)
    }
    match format {
        NumberFormat::F32 => 0,
        // One f32 scale per output column: W_E and W_pos per residual dimension, W_U per
        // token; W_Q, W_K, W_V per (head, column); W_O per residual dimension.
        NumberFormat::I8 => {
            if global {
                m + if has_pos { m } else { 0 } + v
            } else {
                3 * h * d + m
            }
        }
        // One f32 scale per 32 consecutive elements of each matrix.
        NumberFormat::I8Block32 => {
            if global {
                b(v * m) + if has_pos { b(c * m) } else { 0 } + b(m * v)
            } else {
                4 * b(h * m * d)
            }
        }
        // (multiplier, shift) pairs and LayerNorm epsilons; see FORMAT.md.
        NumberFormat::Int => {
            let ln = if has_ln { 2 } else { 0 };
            if global {
                2 * m + if standard { 2 * m } else { 0 } + 2 * v + ln
            } else {
                3 * 2 * h * d + 2 * h + 2 * h * d + 2 * m + if shortformer { 2 * m } else { 0 } + ln
            }
        }
    }
}

/// The canonical tensors of `cfg` in `format`, in blob order, with their element counts and
/// types. For `f32` this is [`tensors`]; quantized formats add a [`TensorKind::LayerQuant`]
/// record at the end of every block and a [`TensorKind::Quant`] record at the very end.
pub fn tensors_in(
    cfg: &Config,
    format: NumberFormat,
) -> impl Iterator<Item = (TensorId, usize, DType)> + '_ {
    let global = |kind: TensorKind| TensorId { kind, layer: 0 };
    let quantized = format.is_quantized();
    let before = GLOBAL_BEFORE.into_iter().map(global);
    let layers = (0..cfg.n_layers as u32).flat_map(move |layer| {
        PER_LAYER
            .into_iter()
            .chain(core::iter::once(TensorKind::LayerQuant).filter(move |_| quantized))
            .map(move |kind| TensorId { kind, layer })
    });
    let after = GLOBAL_AFTER
        .into_iter()
        .chain(core::iter::once(TensorKind::Quant).filter(move |_| quantized))
        .map(global);
    before
        .chain(layers)
        .chain(after)
        .filter(move |t| present(cfg, t.kind))
        .map(move |t| {
            let len = match t.kind {
                TensorKind::Quant | TensorKind::LayerQuant => quant_len(format, cfg, t.kind),
                kind => kind.len(cfg),
            };
            (t, len, format.dtype(t.kind))
        })
}

/// Byte offsets of every tensor of a blob in the data section, for formats whose tensors
/// have mixed element types. Per-layer tensors are at `layer0[kind] + l * layer_stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ByteLayout {
    /// Offset of each tensor (of block 0 for per-layer ones), indexed by `TensorKind as usize`.
    pub at: [usize; 18],
    /// Bytes between the same tensor of two consecutive blocks.
    pub layer_stride: usize,
}

impl ByteLayout {
    /// The layout of `cfg` in `format` (call [`Config::check`] first).
    pub fn new(cfg: &Config, format: NumberFormat) -> Self {
        let mut layout = ByteLayout::default();
        let mut bytes = 0usize;
        let mut layer1 = None;
        for (id, len, dtype) in tensors_in(cfg, format) {
            if id.layer == 0 || !id.kind.per_layer() {
                // One slot per kind: the `get_mut` never misses.
                if let Some(slot) = layout.at.get_mut(id.kind as usize) {
                    *slot = bytes;
                }
            } else if id.layer == 1 && layer1.is_none() {
                layer1 = Some(bytes);
            }
            bytes += align_up(len * dtype.size());
        }
        let first = if matches!(cfg.norm, Norm::LayerNorm { .. }) {
            TensorKind::Ln1W
        } else {
            TensorKind::WQ
        };
        layout.layer_stride = layer1.map_or(0, |b| b - layout.offset(first));
        layout
    }

    /// Byte offset of tensor `kind` (of block 0 for per-layer ones).
    fn offset(&self, kind: TensorKind) -> usize {
        // One slot per kind: the `get` never misses.
        self.at.get(kind as usize).copied().unwrap_or(0)
    }

    /// Byte range of tensor `kind` of block `layer` (`layer` is ignored for global tensors).
    pub fn range(
        &self,
        cfg: &Config,
        format: NumberFormat,
        kind: TensorKind,
        layer: usize,
    ) -> core::ops::Range<usize> {
        let len = match kind {
            TensorKind::Quant | TensorKind::LayerQuant => quant_len(format, cfg, kind),
            kind => kind.len(cfg),
        };
        let start = self.offset(kind)
            + if kind.per_layer() {
                layer * self.layer_stride
            } else {
                0
            };
        start..start + len * format.dtype(kind).size()
    }
}

/// Where each tensor lives in the data section, in elements of the format's dtype. Per-layer
/// tensors are at `layer0.<field> + l * layer_stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Layout {
    /// `embed.W_E`
    pub w_e: usize,
    /// `pos_embed.W_pos` (meaningless when the config has none)
    pub w_pos: usize,
    /// Offsets of the tensors of block 0.
    pub layer0: LayerLayout,
    /// Distance between the same tensor of two consecutive blocks.
    pub layer_stride: usize,
    /// `ln_final.w`
    pub ln_final_w: usize,
    /// `ln_final.b`
    pub ln_final_b: usize,
    /// `unembed.W_U`
    pub w_u: usize,
    /// `unembed.b_U`
    pub b_u: usize,
    /// Elements of the whole data section, padding included.
    pub total: usize,
}

/// Offsets of one block's tensors, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct LayerLayout {
    pub ln1_w: usize,
    pub ln1_b: usize,
    pub w_q: usize,
    pub w_k: usize,
    pub w_v: usize,
    pub b_q: usize,
    pub b_k: usize,
    pub b_v: usize,
    pub w_o: usize,
    pub b_o: usize,
}

impl Layout {
    /// The canonical layout of `cfg`'s tensors with elements of `elem_size` bytes: the order of
    /// [`tensors`], each tensor starting at a multiple of [`ALIGN`] bytes. Call [`Config::check`]
    /// first: sizes are then small enough not to overflow.
    pub fn new(cfg: &Config, elem_size: usize) -> Self {
        let has_ln = present(cfg, TensorKind::Ln1W);
        let mut at = Cursor {
            bytes: 0,
            elem_size,
            cfg,
        };
        let mut layout = Layout {
            w_e: at.take(TensorKind::WE),
            ..Layout::default()
        };
        if present(cfg, TensorKind::WPos) {
            layout.w_pos = at.take(TensorKind::WPos);
        }
        let block_start = at.bytes / elem_size;
        let l0 = &mut layout.layer0;
        if has_ln {
            l0.ln1_w = at.take(TensorKind::Ln1W);
            l0.ln1_b = at.take(TensorKind::Ln1B);
        }
        l0.w_q = at.take(TensorKind::WQ);
        l0.w_k = at.take(TensorKind::WK);
        l0.w_v = at.take(TensorKind::WV);
        l0.b_q = at.take(TensorKind::BQ);
        l0.b_k = at.take(TensorKind::BK);
        l0.b_v = at.take(TensorKind::BV);
        l0.w_o = at.take(TensorKind::WO);
        l0.b_o = at.take(TensorKind::BO);
        layout.layer_stride = at.bytes / elem_size - block_start;
        at.bytes = (block_start + cfg.n_layers * layout.layer_stride) * elem_size;
        if has_ln {
            layout.ln_final_w = at.take(TensorKind::LnFinalW);
            layout.ln_final_b = at.take(TensorKind::LnFinalB);
        }
        layout.w_u = at.take(TensorKind::WU);
        layout.b_u = at.take(TensorKind::BU);
        layout.total = at.bytes / elem_size;
        layout
    }
}

/// Walks the data section: each tensor starts where the previous one ended, rounded up.
struct Cursor<'c> {
    bytes: usize,
    elem_size: usize,
    cfg: &'c Config,
}

impl Cursor<'_> {
    /// The offset (in elements) of the next tensor, which is of `kind`.
    fn take(&mut self, kind: TensorKind) -> usize {
        let offset = self.bytes / self.elem_size;
        self.bytes += align_up(kind.len(self.cfg) * self.elem_size);
        offset
    }
}

/// A blob whose prefix, checksum, header and directory have been checked.
#[derive(Clone, Copy, Debug)]
pub struct Blob<'a> {
    /// The model's hyperparameters (checked with [`Config::check`]).
    pub config: Config,
    /// The number format.
    pub format: NumberFormat,
    /// The tokenizer vocabulary, if the blob has one (validated).
    pub vocab: Option<Vocab<'a>>,
    /// The encoded tensor directory (count already checked), for listing.
    pub directory: &'a [u8],
    /// The data section: starts 16-byte aligned within the blob.
    pub data: &'a [u8],
    /// The CRC32 stored in (and verified against) the trailer.
    pub crc: u32,
    /// Total bytes of the blob.
    pub len: usize,
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(s) = bytes.get(at..at + 2) {
        b.copy_from_slice(s);
    }
    u16::from_le_bytes(b)
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

impl<'a> Blob<'a> {
    /// Checks, in this order: length, magic, version, flags, declared length, CRC32, header,
    /// config, number format, vocabulary, and every directory entry against the canonical
    /// layout. Values (NaN/Inf) are checked by the typed model views.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let min = PREFIX_LEN + TRAILER_LEN;
        if bytes.len() < min {
            if bytes.len() >= MAGIC.len() && !bytes.starts_with(&MAGIC) {
                return Err(Error::BadMagic);
            }
            return Err(Error::Truncated {
                expected: min,
                found: bytes.len(),
            });
        }
        if !bytes.starts_with(&MAGIC) {
            return Err(Error::BadMagic);
        }
        let version = read_u16(bytes, 8);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let flags = read_u16(bytes, 10);
        if flags != 0 {
            return Err(Error::ReservedFlags(flags));
        }
        let header_len = read_u32(bytes, 12) as usize;
        let file_len = read_u32(bytes, 16) as usize;
        if bytes.len() < file_len {
            return Err(Error::Truncated {
                expected: file_len,
                found: bytes.len(),
            });
        }
        if bytes.len() > file_len {
            return Err(Error::TrailingBytes {
                expected: file_len,
                found: bytes.len(),
            });
        }
        if file_len < min {
            return Err(Error::Truncated {
                expected: min,
                found: file_len,
            });
        }
        let (body, trailer) = bytes.split_at(file_len - TRAILER_LEN);
        let stored = read_u32(trailer, 0);
        let computed = CRC32.checksum(body);
        if stored != computed {
            return Err(Error::Checksum { stored, computed });
        }

        let header_bytes = body
            .get(PREFIX_LEN..PREFIX_LEN.saturating_add(header_len))
            .ok_or(Error::Header)?;
        let (header, rest) =
            postcard::take_from_bytes::<Header<'a>>(header_bytes).map_err(|_| Error::Header)?;
        let config = header.config;
        config.check()?;
        let format = NumberFormat::from_code(header.format)?;
        let vocab = match header.vocab {
            Some(v) => Some(Vocab::parse(v, config.d_vocab)?),
            None => None,
        };
        let data_start = align_up(PREFIX_LEN + header_len);
        let data = body.get(data_start..).ok_or(Error::Truncated {
            expected: data_start + TRAILER_LEN,
            found: file_len,
        })?;
        check_directory(&config, format, rest, data.len())?;
        Ok(Blob {
            config,
            format,
            vocab,
            directory: rest,
            data,
            crc: stored,
            len: file_len,
        })
    }

    /// The entries of the tensor directory, with the tensor each one is.
    pub fn entries(&self) -> impl Iterator<Item = (TensorId, TensorEntry)> + 'a {
        let cfg = self.config;
        let format = self.format;
        let mut rest = match postcard::take_from_bytes::<u32>(self.directory) {
            Ok((_, rest)) => rest,
            Err(_) => &[][..],
        };
        let mut index = 0usize;
        core::iter::from_fn(move || {
            let (tensor, _, _) = tensors_in(&cfg, format).nth(index)?;
            let (entry, next) = postcard::take_from_bytes::<TensorEntry>(rest).ok()?;
            rest = next;
            index += 1;
            Some((tensor, entry))
        })
    }
}

/// Checks that the directory lists exactly the canonical tensors of `cfg`, with their lengths,
/// dtype and offsets, and that they fit in a data section of `data_len` bytes.
fn check_directory(
    cfg: &Config,
    format: NumberFormat,
    directory: &[u8],
    data_len: usize,
) -> Result<(), Error> {
    let (count, mut rest) =
        postcard::take_from_bytes::<u32>(directory).map_err(|_| Error::Header)?;
    let expected_count = tensors_in(cfg, format).count();
    if count as usize != expected_count {
        return Err(Error::TensorCount {
            expected: expected_count,
            found: count as usize,
        });
    }
    let mut at = 0usize;
    for (tensor, len, dtype) in tensors_in(cfg, format) {
        let (entry, next) =
            postcard::take_from_bytes::<TensorEntry>(rest).map_err(|_| Error::Header)?;
        rest = next;
        if entry.kind != tensor.kind as u8
            || entry.layer != tensor.layer
            || entry.dtype != dtype.code()
        {
            return Err(Error::UnexpectedTensor { expected: tensor });
        }
        if entry.len as usize != len {
            return Err(Error::TensorLength {
                tensor,
                expected: len,
                found: entry.len as usize,
            });
        }
        if entry.offset as usize != at {
            return Err(Error::TensorOffset {
                tensor,
                expected: at,
                found: entry.offset as usize,
            });
        }
        at += align_up(len * dtype.size());
    }
    if !rest.is_empty() {
        return Err(Error::Header);
    }
    if data_len != at {
        return Err(if data_len < at {
            Error::Truncated {
                expected: at,
                found: data_len,
            }
        } else {
            Error::TrailingBytes {
                expected: at,
                found: data_len,
            }
        });
    }
    Ok(())
}

/// The tokenizer vocabulary of a blob: token id -> text, borrowed from the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vocab<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Vocab<'a> {
    /// Checks that `bytes` holds exactly `d_vocab` length-prefixed UTF-8 strings.
    pub fn parse(bytes: &'a [u8], d_vocab: usize) -> Result<Self, Error> {
        let vocab = Vocab {
            bytes,
            len: d_vocab,
        };
        let mut rest = bytes;
        for _ in 0..d_vocab {
            let (&n, tail) = rest.split_first().ok_or(Error::BadVocab)?;
            let (text, tail) = tail.split_at_checked(n as usize).ok_or(Error::BadVocab)?;
            core::str::from_utf8(text).map_err(|_| Error::BadVocab)?;
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(Error::BadVocab);
        }
        Ok(vocab)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the vocabulary is empty (never, for a checked blob).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The text of token `id`, or `None` past the end.
    pub fn text(&self, id: u32) -> Option<&'a str> {
        self.iter().nth(id as usize)
    }

    /// Every token's text in id order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut rest = self.bytes;
        core::iter::from_fn(move || {
            let (&n, tail) = rest.split_first()?;
            let text = tail.get(..n as usize)?;
            rest = tail.get(n as usize..)?;
            core::str::from_utf8(text).ok()
        })
    }
}

/// A byte buffer aligned to 16 bytes, so that a blob embedded in it can be read in place.
/// [`include_blob!`](crate::include_blob) makes one from a file.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// Embeds a blob file in the binary with the alignment the kernel needs:
/// `static MODEL: &[u8] = tinylens::include_blob!("model.tlb");`
#[macro_export]
macro_rules! include_blob {
    ($path:expr) => {{
        static ALIGNED: &$crate::Aligned<[u8]> = &$crate::Aligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}
