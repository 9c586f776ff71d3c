//! Importing TransformerLens-named safetensors checkpoints.
//!
//! A checkpoint is a `model.safetensors` holding `HookedTransformer.state_dict()` of an
//! attention-only model, optionally with the model's `config.json` (the fields of
//! `HookedTransformerConfig`, or a HuggingFace config whose keys have TransformerLens
//! equivalents) and a vocabulary beside it: a `vocab.json` (a JSON array of token strings,
//! index = token id, or HuggingFace's `{"token": id}` map), or else a HuggingFace
//! `tokenizer.json` (see [`hf`]).
//!
//! Loading goes in five steps, each a function below:
//!
//! 1. `parse_safetensors`: the bytes must be a well-formed safetensors file, its header at
//!    most [`MAX_HEADER_BYTES`] long and listing at most [`MAX_TENSORS`] tensors.
//! 2. `parse_config_json`: whatever `config.json` says, with everything tinylens cannot run
//!    rejected up front (MLPs, `LNPre`/`RMS`, rotary, ...). Every key is either read, known
//!    to have no effect, or refused; none is dropped without a note.
//! 3. `classify_tensor`: every tensor name must be a known attention-only parameter or a
//!    known TransformerLens buffer (`attn.mask`, `attn.IGNORE`, `attn.rotary_*`, ignored).
//! 4. `infer_config`: fill in what `config.json` leaves out (or everything, without one)
//!    from the tensor shapes.
//! 5. `read_params`: every expected tensor is present, has exactly the expected shape, a
//!    float dtype (F32, F16, BF16 or F64, all converted to f32) and only finite values.
//!
//! Nothing here panics on any input bytes: every size comes from a validated safetensors
//! header and every failure is an [`ImportError`] naming the offending tensor or key. What
//! the user should know about a model that loads (keys ignored, how the device encodes with an
//! imported tokenizer) comes back as notes ([`Loaded::notes`]).
//!
//! [`save_checkpoint`] writes the same layout back (F32 tensors, `config.json`, `vocab.json`).

pub mod hf;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView, View};
use safetensors::SafeTensors;
use serde_json::{Map, Value};
use tinylens::{Config, Norm, PosEmbed};

use crate::params::{LayerParams, LnParams, Params};

/// TransformerLens' default `eps`, used when `config.json` does not give one.
pub const DEFAULT_EPS: f32 = 1e-5;

/// The largest safetensors header accepted, in bytes (16 MiB). An attention-only model has a
/// dozen tensors per layer, about 100 bytes of header each; the cap is checked before the
/// header is parsed, so a forged length costs nothing.
pub const MAX_HEADER_BYTES: usize = 16 << 20;

/// The longest token a blob stores, in bytes of UTF-8 (FORMAT.md: one length byte per token).
pub const MAX_TOKEN_BYTES: usize = u8::MAX as usize;

/// The most tensors a safetensors header may list (100 000: a thousand layers' worth). Counted
/// before the header is parsed, so a header of a million entries is refused at once.
pub const MAX_TENSORS: usize = 100_000;

/// Everything that can go wrong reading or writing a checkpoint. The `Display` text is meant to
/// be shown to users as-is: it always names the file, key or tensor at fault.
#[derive(Debug)]
pub enum ImportError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// "read", "write" or "remove".
        action: &'static str,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The checkpoint bytes are not a well-formed safetensors file.
    NotSafetensors(String),
    /// The file is of another kind (a PyTorch pickle, a tinylens blob, ...), recognized by its
    /// first bytes or its extension.
    WrongFileKind {
        /// What the file is, e.g. "a PyTorch file (torch.save)".
        what: &'static str,
        /// What to do instead.
        hint: &'static str,
    },
    /// `d_head` from the configuration disagrees with the heads' tensors.
    DHeadMismatch {
        /// Where the configuration's `d_head` comes from, e.g. "config.json's d_head".
        source: String,
        /// The configuration's `d_head`.
        d_head: usize,
        /// The tensor the heads' width was read from.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// The safetensors header is longer than [`MAX_HEADER_BYTES`].
    HeaderTooLarge {
        /// The header length the file declares, in bytes.
        bytes: u64,
        /// [`MAX_HEADER_BYTES`].
        cap: usize,
    },
    /// The safetensors header lists more than [`MAX_TENSORS`] tensors.
    TooManyTensors {
        /// Entries in the header.
        count: usize,
        /// [`MAX_TENSORS`].
        cap: usize,
    },
    /// `config.json` or `vocab.json` is not JSON of the expected form.
    InvalidJson {
        /// Which file ("config.json" or "vocab.json").
        file: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration describes no valid model (a zero size, a negative eps, ...).
    InvalidConfig(String),
    /// The model uses a TransformerLens feature tinylens does not implement.
    Unsupported(String),
    /// The model has MLP layers.
    NotAttentionOnly(String),
    /// An expected tensor is absent.
    MissingTensor(String),
    /// A tensor that this model should not have.
    UnexpectedTensor {
        /// The tensor's name.
        tensor: String,
        /// Why it does not belong.
        reason: String,
    },
    /// A `blocks.{l}.*` tensor with `l >= n_layers`.
    LayerOutOfRange {
        /// The tensor's name.
        tensor: String,
        /// Its layer index.
        layer: usize,
        /// The model's number of layers.
        n_layers: usize,
    },
    /// A tensor whose shape differs from what the configuration implies.
    ShapeMismatch {
        /// The tensor's name.
        tensor: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor with the wrong number of dimensions, met while inferring the configuration.
    WrongRank {
        /// The tensor's name.
        tensor: String,
        /// The expected shape in symbols, e.g. "`[d_vocab, d_model]`".
        expected: &'static str,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor stored as something other than F32, F16, BF16 or F64.
    UnsupportedDtype {
        /// The tensor's name.
        tensor: String,
        /// Its safetensors dtype, e.g. "I64".
        dtype: String,
    },
    /// A tensor holding a NaN or an infinity.
    NonFinite {
        /// The tensor's name.
        tensor: String,
        /// The multi-dimensional index of the first bad element.
        index: Vec<usize>,
        /// The bad value (after conversion to f32).
        value: f32,
    },
    /// `vocab.json` does not have exactly `d_vocab` entries.
    VocabLength {
        /// `d_vocab`.
        expected: usize,
        /// Entries in `vocab.json`.
        found: usize,
    },
    /// A vocabulary map gives a token an id at or past `d_vocab`.
    TokenIdOutOfRange {
        /// Which file ("vocab.json" or "tokenizer.json").
        file: &'static str,
        /// The token.
        token: String,
        /// Its id.
        id: usize,
        /// The model's `d_vocab`.
        d_vocab: usize,
    },
    /// A vocabulary map gives two tokens the same id.
    DuplicateTokenId {
        /// Which file ("vocab.json" or "tokenizer.json").
        file: &'static str,
        /// The id.
        id: usize,
        /// One token with that id.
        first: String,
        /// The other.
        second: String,
    },
    /// A vocabulary map gives no token an id below `d_vocab`.
    MissingTokenId {
        /// Which file ("vocab.json" or "tokenizer.json").
        file: &'static str,
        /// The first id without a token.
        id: usize,
        /// The model's `d_vocab`.
        d_vocab: usize,
    },
    /// A token longer than a blob can store ([`MAX_TOKEN_BYTES`] bytes of UTF-8).
    TokenTooLong {
        /// Which file ("vocab.json" or "tokenizer.json").
        file: &'static str,
        /// The token's id.
        id: usize,
        /// Its length in bytes.
        bytes: usize,
        /// [`MAX_TOKEN_BYTES`].
        cap: usize,
    },
    /// A configuration value that neither `config.json` nor the tensors determine.
    CannotInfer(String),
    /// [`save_checkpoint`] was given inconsistent parameters.
    InvalidParams(String),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Self::NotSafetensors(reason) => write!(f, "not a valid safetensors file: {reason}"),
            Self::WrongFileKind { what, hint } => {
                write!(f, "not a safetensors file: it is {what}; {hint}")
            }
            Self::DHeadMismatch {
                source,
                d_head,
                tensor,
                shape,
            } => write!(
                f,
                "shape mismatch: {source} is {d_head}, but {tensor} has shape {shape:?}, heads \
                 {} wide",
                shape.last().copied().unwrap_or(0)
            ),
            Self::HeaderTooLarge { bytes, cap } => write!(
                f,
                "not a valid safetensors file: the header is {bytes} bytes, more than the \
                 {cap}-byte cap"
            ),
            Self::TooManyTensors { count, cap } => write!(
                f,
                "not a valid safetensors file: the header lists {count} tensors, more than the \
                 cap of {cap}"
            ),
            Self::InvalidJson { file, reason } => write!(f, "invalid {file}: {reason}"),
            Self::InvalidConfig(msg) => write!(f, "invalid model config: {msg}"),
            Self::Unsupported(msg) => write!(f, "unsupported model: {msg}"),
            Self::NotAttentionOnly(msg) => write!(f, "not attention-only: {msg}"),
            Self::MissingTensor(name) => write!(f, "missing tensor {name}"),
            Self::UnexpectedTensor { tensor, reason } => {
                write!(f, "unexpected tensor {tensor}: {reason}")
            }
            Self::LayerOutOfRange {
                tensor,
                layer,
                n_layers,
            } => write!(
                f,
                "tensor {tensor} belongs to layer {layer}, but the model has n_layers = {n_layers}"
            ),
            Self::ShapeMismatch {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "tensor {tensor} has shape {found:?}, expected {expected:?}"
            ),
            Self::WrongRank {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "tensor {tensor} has shape {found:?}, expected a shape {expected}"
            ),
            Self::UnsupportedDtype { tensor, dtype } => write!(
                f,
                "tensor {tensor} has unsupported dtype {dtype} (expected F32, F16, BF16 or F64)"
            ),
            Self::NonFinite {
                tensor,
                index,
                value,
            } => write!(
                f,
                "tensor {tensor} contains a non-finite value ({value}) at index {index:?}"
            ),
            Self::VocabLength { expected, found } => write!(
                f,
                "vocab.json has {found} entries, but the model has d_vocab = {expected}"
            ),
            Self::TokenIdOutOfRange {
                file,
                token,
                id,
                d_vocab,
            } => write!(
                f,
                "{file} gives token {token:?} id {id}, but the model has d_vocab = {d_vocab} \
                 (ids 0..{d_vocab})"
            ),
            Self::DuplicateTokenId {
                file,
                id,
                first,
                second,
            } => write!(
                f,
                "{file} gives id {id} to two tokens, {first:?} and {second:?}"
            ),
            Self::MissingTokenId { file, id, d_vocab } => write!(
                f,
                "{file} has no token with id {id} (the model has d_vocab = {d_vocab}: every id \
                 0..{d_vocab} needs one)"
            ),
            Self::TokenTooLong {
                file,
                id,
                bytes,
                cap,
            } => write!(
                f,
                "{file}: token {id} is {bytes} bytes long, more than the {cap} bytes a blob \
                 stores per token"
            ),
            Self::CannotInfer(msg) => write!(f, "cannot infer {msg}"),
            Self::InvalidParams(msg) => write!(f, "cannot save checkpoint: {msg}"),
        }
    }
}

impl std::error::Error for ImportError {
    // The I/O error's text is already part of this error's message, so it is not repeated
    // as a source (a chain printer would print it twice).
}

// ------------------------------------------------------------------------------------------------
// Tensor names
// ------------------------------------------------------------------------------------------------

/// `embed.W_E`: `[d_vocab, d_model]`
const W_E: &str = "embed.W_E";
/// `pos_embed.W_pos`: `[n_ctx, d_model]`
const W_POS: &str = "pos_embed.W_pos";
/// `ln_final.w`: `[d_model]`
const LN_FINAL_W: &str = "ln_final.w";
/// `ln_final.b`: `[d_model]`
const LN_FINAL_B: &str = "ln_final.b";
/// `unembed.W_U`: `[d_model, d_vocab]`
const W_U: &str = "unembed.W_U";
/// `unembed.b_U`: `[d_vocab]`
const B_U: &str = "unembed.b_U";

/// The parameter names inside `blocks.{l}.` of an attention-only model.
const BLOCK_PARAMS: [&str; 10] = [
    "attn.W_Q", "attn.W_K", "attn.W_V", "attn.b_Q", "attn.b_K", "attn.b_V", "attn.W_O", "attn.b_O",
    "ln1.w", "ln1.b",
];

/// The full name of a tensor of layer `layer`, e.g. `blocks.0.attn.W_Q`.
fn block_name(layer: usize, rest: &str) -> String {
    format!("blocks.{layer}.{rest}")
}

/// What a tensor name is, by name alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TensorKind {
    /// A parameter outside the blocks (`embed.W_E`, `unembed.W_U`, ...).
    Global,
    /// A parameter of `blocks.{layer}`.
    BlockParam {
        /// The layer index.
        layer: usize,
    },
    /// A buffer TransformerLens saves in `state_dict()` that holds no parameter
    /// (`attn.mask`, `attn.IGNORE`, `attn.rotary_*`).
    Buffer {
        /// The layer index.
        layer: usize,
        /// Whether it is a rotary-embedding table (`attn.rotary_sin` / `attn.rotary_cos`).
        rotary: bool,
    },
}

/// Splits `blocks.{l}.{rest}` into `(l, rest)`. `None` if the name does not have that form;
/// an error if `{l}` is digits but not a usable layer index.
fn split_block_name(name: &str) -> Result<Option<(usize, &str)>, ImportError> {
    let Some(tail) = name.strip_prefix("blocks.") else {
        return Ok(None);
    };
    let Some((index, rest)) = tail.split_once('.') else {
        return Ok(None);
    };
    let canonical = !index.is_empty()
        && index.bytes().all(|b| b.is_ascii_digit())
        && (index == "0" || !index.starts_with('0'));
    if !canonical {
        return Ok(None);
    }
    match index.parse::<usize>() {
        Ok(layer) => Ok(Some((layer, rest))),
        Err(_) => Err(ImportError::UnexpectedTensor {
            tensor: name.to_string(),
            reason: "layer index out of range".to_string(),
        }),
    }
}

/// Step 3: what a tensor name is, or why it has no place in an attention-only model.
fn classify_tensor(name: &str) -> Result<TensorKind, ImportError> {
    if [W_E, W_POS, LN_FINAL_W, LN_FINAL_B, W_U, B_U].contains(&name) {
        return Ok(TensorKind::Global);
    }
    let unexpected = || ImportError::UnexpectedTensor {
        tensor: name.to_string(),
        reason: "not a parameter of a TransformerLens attention-only model".to_string(),
    };
    let Some((layer, rest)) = split_block_name(name)? else {
        return Err(unexpected());
    };
    if rest.starts_with("mlp.") {
        return Err(ImportError::NotAttentionOnly(format!(
            "found MLP tensor {name}"
        )));
    }
    if rest.starts_with("ln2.") {
        return Err(ImportError::NotAttentionOnly(format!(
            "found tensor {name} (the LayerNorm in front of an MLP)"
        )));
    }
    if BLOCK_PARAMS.contains(&rest) {
        return Ok(TensorKind::BlockParam { layer });
    }
    if rest == "attn.mask" || rest == "attn.IGNORE" {
        return Ok(TensorKind::Buffer {
            layer,
            rotary: false,
        });
    }
    if rest.starts_with("attn.rotary_") {
        return Ok(TensorKind::Buffer {
            layer,
            rotary: true,
        });
    }
    Err(unexpected())
}

// ------------------------------------------------------------------------------------------------
// Step 1: the safetensors container
// ------------------------------------------------------------------------------------------------

/// Step 1: parses the safetensors header and checks that every tensor's bytes lie inside the
/// file. Bytes that are not safetensors but another known kind of file say which.
fn parse_safetensors(bytes: &[u8]) -> Result<SafeTensors<'_>, ImportError> {
    check_data_offsets(bytes)
        .and_then(|()| {
            SafeTensors::deserialize(bytes).map_err(|e| ImportError::NotSafetensors(e.to_string()))
        })
        .map_err(|err| sniff_file_kind(bytes).unwrap_or(err))
}

/// What to do with a PyTorch file.
const TORCH_HINT: &str = "convert it in Python with `from safetensors.torch import save_file; \
    save_file(torch.load(\"model.pt\", map_location=\"cpu\"), \"model.safetensors\")` (from a \
    HookedTransformer: `save_file(model.state_dict(), \"model.safetensors\")`) and import \
    model.safetensors";

/// What to do with a blob given as a checkpoint.
const BLOB_HINT: &str = "it is already a blob, which `tinylens run` and `inspect` take as it \
    is; `quantize` needs the .safetensors checkpoint the blob was made from";

/// What to do with a GGUF file.
const GGUF_HINT: &str = "tinylens imports TransformerLens safetensors checkpoints: save the \
    model's state_dict() with safetensors.torch.save_file";

/// A file kind recognized by its first bytes: a tinylens blob, a PyTorch zip or pickle, GGUF.
fn sniff_file_kind(bytes: &[u8]) -> Option<ImportError> {
    let (what, hint) = if bytes.starts_with(&tinylens::blob::MAGIC) {
        ("a tinylens blob", BLOB_HINT)
    } else if bytes.starts_with(b"PK\x03\x04") {
        ("a PyTorch file (torch.save's zip format)", TORCH_HINT)
    } else if matches!(bytes, [0x80, 2..=5, ..]) {
        (
            "a PyTorch or pickle file (torch.save's legacy format)",
            TORCH_HINT,
        )
    } else if bytes.starts_with(b"GGUF") {
        ("a GGUF file", GGUF_HINT)
    } else {
        return None;
    };
    Some(ImportError::WrongFileKind { what, hint })
}

/// A file kind recognized by its extension (`.pt`, `.pth`, `.bin`, `.ckpt`, `.tlb`, `.gguf`).
fn file_kind_by_extension(path: &Path) -> Option<ImportError> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    let (what, hint) = match extension.as_str() {
        "pt" | "pth" | "bin" | "ckpt" => ("a PyTorch file, by its extension", TORCH_HINT),
        "tlb" => ("a tinylens blob, by its extension", BLOB_HINT),
        "gguf" => ("a GGUF file, by its extension", GGUF_HINT),
        _ => return None,
    };
    Some(ImportError::WrongFileKind { what, hint })
}

/// The error for a file that is not a safetensors checkpoint but another known kind (by its
/// first bytes, else its extension), or `None`. For callers that route files by extension: a
/// `.pt` given where a blob or a checkpoint is expected gets this message instead of a parse
/// error.
pub fn foreign_file_error(path: &Path, bytes: &[u8]) -> Option<ImportError> {
    sniff_file_kind(bytes).or_else(|| file_kind_by_extension(path))
}

/// Counts the header's entries without parsing it: every tensor entry has exactly one
/// `"data_offsets"` key, so their number bounds the tensor count (from above, should a name
/// contain the word) at the cost of one scan.
fn check_tensor_count(header: &[u8]) -> Result<(), ImportError> {
    let key = b"\"data_offsets\"";
    let count = header.windows(key.len()).filter(|w| w == key).count();
    if count > MAX_TENSORS {
        return Err(ImportError::TooManyTensors {
            count,
            cap: MAX_TENSORS,
        });
    }
    Ok(())
}

/// Checks, before the safetensors crate sees them, that no tensor's `data_offsets` point past
/// the end of the file. The crate adds up these offsets unchecked, so absurd values could
/// overflow; with every offset at most the file size the sum cannot.
fn check_data_offsets(bytes: &[u8]) -> Result<(), ImportError> {
    let Some((len_bytes, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(ImportError::NotSafetensors(format!(
            "{} bytes is too short for a safetensors header",
            bytes.len()
        )));
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    if header_len > MAX_HEADER_BYTES as u64 {
        return Err(ImportError::HeaderTooLarge {
            bytes: header_len,
            cap: MAX_HEADER_BYTES,
        });
    }
    let Some(header_len) = usize::try_from(header_len)
        .ok()
        .filter(|&n| n <= rest.len())
    else {
        return Err(ImportError::NotSafetensors(format!(
            "header length {header_len} exceeds the file size ({} bytes)",
            bytes.len()
        )));
    };
    let (header, data) = rest.split_at(header_len);
    check_tensor_count(header)?;
    // A malformed header is left for the safetensors crate to describe.
    let Ok(header) = serde_json::from_slice::<Map<String, Value>>(header) else {
        return Ok(());
    };
    for (name, info) in &header {
        let offsets = info.get("data_offsets").and_then(Value::as_array);
        for offset in offsets.into_iter().flatten() {
            if let Some(offset) = offset.as_u64() {
                if usize::try_from(offset).map_or(true, |o| o > data.len()) {
                    return Err(ImportError::NotSafetensors(format!(
                        "tensor {name} has data offset {offset}, past the end of the {} data bytes",
                        data.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Step 2: config.json
// ------------------------------------------------------------------------------------------------

/// What `config.json` says about the model. `None` means "not given: infer from the tensors".
#[derive(Clone, Debug, Default, PartialEq)]
struct ConfigJson {
    /// `n_layers`
    n_layers: Option<usize>,
    /// `n_heads` (-1, TransformerLens' "unset", counts as not given)
    n_heads: Option<usize>,
    /// `d_model`
    d_model: Option<usize>,
    /// `d_head`
    d_head: Option<usize>,
    /// `d_vocab` (-1 counts as not given)
    d_vocab: Option<usize>,
    /// `d_vocab_out` (-1 counts as not given); must equal `d_vocab`
    d_vocab_out: Option<usize>,
    /// `n_ctx`
    n_ctx: Option<usize>,
    /// `normalization_type`: `Some(false)` for null, `Some(true)` for "LN"
    layer_norm: Option<bool>,
    /// `eps`
    eps: Option<f32>,
    /// `positional_embedding_type`
    pos: Option<PosEmbed>,
    /// `attn_scale` (-1, TransformerLens' "default", counts as not given); must be sqrt(d_head)
    attn_scale: Option<f64>,
    /// Warnings about keys that were ignored.
    notes: Vec<String>,
}

/// Shorthand for an [`ImportError::InvalidJson`] about `config.json`.
fn bad_config_json(reason: String) -> ImportError {
    ImportError::InvalidJson {
        file: "config.json",
        reason,
    }
}

/// A size key: absent, null or -1 give `None`; otherwise a non-negative integer.
fn size_field(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>, ImportError> {
    let Some(value) = obj.get(key) else {
        return Ok(None);
    };
    if value.is_null() || value.as_i64() == Some(-1) {
        return Ok(None);
    }
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| bad_config_json(format!("{key} must be an integer, found {value}")))
}

/// A boolean key: absent or null give `None`.
fn bool_field(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ImportError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(bad_config_json(format!(
            "{key} must be true or false, found {other}"
        ))),
    }
}

/// A number key: absent or null give `None`.
fn number_field(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, ImportError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad_config_json(format!("{key} must be a number, found {value}"))),
    }
}

/// A string-or-null key: `None` if absent, `Some(None)` if null.
fn string_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<Option<&'a str>>, ImportError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s))),
        Some(other) => Err(bad_config_json(format!(
            "{key} must be a string or null, found {other}"
        ))),
    }
}

/// `normalization_type`: null means none, "LN" LayerNorm with weights; the rest is rejected.
fn parse_normalization(value: Option<Option<&str>>) -> Result<Option<bool>, ImportError> {
    match value {
        None => Ok(None),
        Some(None) => Ok(Some(false)),
        Some(Some("LN")) => Ok(Some(true)),
        Some(Some(other @ ("LNPre" | "RMS" | "RMSPre"))) => Err(ImportError::Unsupported(format!(
            "normalization_type \"{other}\" (only null and \"LN\" are supported)"
        ))),
        Some(Some(other)) => Err(ImportError::Unsupported(format!(
            "unknown normalization_type \"{other}\" (only null and \"LN\" are supported)"
        ))),
    }
}

/// `positional_embedding_type`: "standard", "shortformer" or "none" (tinylens' own value for
/// a model without positional information).
fn parse_positional(value: Option<Option<&str>>) -> Result<Option<PosEmbed>, ImportError> {
    match value {
        None => Ok(None),
        Some(Some("standard")) => Ok(Some(PosEmbed::Standard)),
        Some(Some("shortformer")) => Ok(Some(PosEmbed::Shortformer)),
        Some(Some("none")) | Some(None) => Ok(Some(PosEmbed::None)),
        Some(Some(other)) => Err(ImportError::Unsupported(format!(
            "positional_embedding_type \"{other}\" (only \"standard\", \"shortformer\" and \
             \"none\" are supported)"
        ))),
    }
}

/// Rejects `HookedTransformerConfig` settings that change the attention-only forward pass in
/// ways tinylens does not implement.
fn reject_unsupported_options(obj: &Map<String, Value>) -> Result<(), ImportError> {
    if bool_field(obj, "attn_only")? == Some(false) {
        return Err(ImportError::NotAttentionOnly(
            "config.json has attn_only: false".to_string(),
        ));
    }
    if bool_field(obj, "use_attn_scale")? == Some(false) {
        return Err(ImportError::Unsupported(
            "use_attn_scale: false (attention scores must be divided by sqrt(d_head))".to_string(),
        ));
    }
    let enabled_flags = [
        (
            "scale_attn_by_inverse_layer_idx",
            "attention scaled by inverse layer index",
        ),
        ("use_local_attn", "local attention"),
        ("use_qk_norm", "query/key normalization"),
        ("use_logn_attn", "log-n attention scaling"),
        ("post_embedding_ln", "a LayerNorm after the embedding"),
        ("use_attention_sinks", "attention sinks"),
        ("uses_rms_norm", "RMSNorm"),
        ("final_rms", "a final RMSNorm"),
        (
            "use_normalization_before_and_after",
            "normalization after attention",
        ),
    ];
    for (key, what) in enabled_flags {
        if bool_field(obj, key)? == Some(true) {
            return Err(ImportError::Unsupported(format!("{what} ({key}: true)")));
        }
    }
    if let Some(Some(dir)) = string_field(obj, "attention_dir")? {
        if dir != "causal" {
            return Err(ImportError::Unsupported(format!(
                "attention_dir \"{dir}\" (only causal attention is supported)"
            )));
        }
    }
    for key in ["attn_scores_soft_cap", "output_logits_soft_cap"] {
        if number_field(obj, key)?.is_some_and(|cap| cap > 0.0) {
            return Err(ImportError::Unsupported(format!(
                "soft-capping ({key} > 0)"
            )));
        }
    }
    if obj.get("clip_qkv").is_some_and(|v| !v.is_null()) {
        return Err(ImportError::Unsupported(
            "clipping of queries, keys and values (clip_qkv is set)".to_string(),
        ));
    }
    if obj.get("n_key_value_heads").is_some_and(|v| !v.is_null()) {
        return Err(ImportError::Unsupported(
            "grouped-query attention (n_key_value_heads is set)".to_string(),
        ));
    }
    Ok(())
}

/// The `config.json` keys tinylens reads: the sizes, the normalization, the positional
/// embedding, and every switch whose "on" value it refuses.
const READ_KEYS: [&str; 28] = [
    "n_layers",
    "n_heads",
    "d_model",
    "d_head",
    "d_vocab",
    "d_vocab_out",
    "n_ctx",
    "normalization_type",
    "eps",
    "positional_embedding_type",
    "attn_scale",
    "attn_only",
    "use_attn_scale",
    "scale_attn_by_inverse_layer_idx",
    "use_local_attn",
    "use_qk_norm",
    "use_logn_attn",
    "post_embedding_ln",
    "use_attention_sinks",
    "use_normalization_before_and_after",
    "attention_dir",
    "attn_scores_soft_cap",
    "output_logits_soft_cap",
    "clip_qkv",
    "n_key_value_heads",
    "uses_rms_norm",
    "final_rms",
    "scale_attn_weights",
];

/// `HookedTransformerConfig` fields that do not change an attention-only model's numbers once
/// the keys above are checked: bookkeeping (`model_name`, `seed`, `device`, `dtype`: the
/// tensors carry their own), hooks, initialization, MLP and mixture-of-experts settings (the
/// tensors say whether there is an MLP), and the parameters of features refused above (rotary,
/// local and relative attention) that only act when their feature is on. Accepted silently:
/// TransformerLens writes every one of them.
const INERT_KEYS: [&str; 60] = [
    "model_name",
    "original_architecture",
    "device",
    "n_devices",
    "dtype",
    "seed",
    "init_mode",
    "init_weights",
    "initializer_range",
    "n_params",
    "from_checkpoint",
    "checkpoint_index",
    "checkpoint_label_type",
    "checkpoint_value",
    "tokenizer_name",
    "tokenizer_prepends_bos",
    "default_prepend_bos",
    "trust_remote_code",
    "load_in_4bit",
    "quantization_method",
    "train_seq_length",
    "decoder_start_token_id",
    "use_attn_result",
    "use_split_qkv_input",
    "use_hook_mlp_in",
    "use_attn_in",
    "use_hook_tokens",
    "d_mlp",
    "act_fn",
    "gated_mlp",
    "parallel_attn_mlp",
    "num_experts",
    "experts_per_token",
    "norm_topk_prob",
    "layer_norm_folding",
    "tie_word_embeddings",
    "ungroup_grouped_query_attention",
    "window_size",
    "attn_types",
    "relative_attention_max_distance",
    "relative_attention_num_buckets",
    "rotary_dim",
    "rotary_base",
    "rotary_base_local",
    "rotary_scaling_factor",
    "rotary_adjacent_pairs",
    "use_dynamic_ntk_rope",
    "use_NTK_by_parts_rope",
    "NTK_by_parts_low_freq_factor",
    "NTK_by_parts_high_freq_factor",
    "NTK_by_parts_factor",
    "NTK_original_ctx_len",
    "use_yarn_rope",
    "yarn_factor",
    "yarn_attention_factor",
    "yarn_beta_fast",
    "yarn_beta_slow",
    "yarn_original_max_position_embeddings",
    "yarn_truncate",
    "yarn_global_attn_only",
];

/// Words in an unknown key's name that suggest it changes the numbers (an epsilon, a scale, a
/// norm, a positional scheme, ...): such a key is refused rather than ignored.
const NUMERIC_WORDS: [&str; 14] = [
    "eps",
    "norm",
    "scale",
    "rope",
    "rotary",
    "alibi",
    "cap",
    "window",
    "attn",
    "attention",
    "pos",
    "bias",
    "head",
    "temperature",
];

/// Checks every key of `config.json` (after [`hf::apply_config_aliases`]): read keys
/// and TransformerLens' own inert keys pass; HuggingFace's inert keys pass with a note naming
/// them; an unknown key is refused if its name suggests it changes the numbers
/// ([`NUMERIC_WORDS`]), else ignored with a note naming it. Returns the notes.
fn check_config_keys(obj: &Map<String, Value>) -> Result<Vec<String>, ImportError> {
    let mut inert = Vec::new();
    let mut unknown = Vec::new();
    for key in obj.keys().map(String::as_str) {
        if READ_KEYS.contains(&key) || INERT_KEYS.contains(&key) {
            continue;
        }
        if hf::CONFIG_INERT.contains(&key) || key.starts_with("summary_") {
            inert.push(key);
            continue;
        }
        let lower = key.to_ascii_lowercase();
        if NUMERIC_WORDS.iter().any(|w| lower.contains(w)) {
            return Err(ImportError::Unsupported(format!(
                "config.json has {key} = {}, a key tinylens does not read and which may change \
                 the model's numbers (remove it if it has no effect)",
                obj[key]
            )));
        }
        unknown.push(key);
    }
    let mut notes = Vec::new();
    if !inert.is_empty() {
        notes.push(format!(
            "config.json: ignored keys with no effect on an attention-only model: {}",
            inert.join(", ")
        ));
    }
    if !unknown.is_empty() {
        notes.push(format!(
            "config.json: ignored unknown keys: {}",
            unknown.join(", ")
        ));
    }
    Ok(notes)
}

/// Step 2: reads `config.json`, rejecting unsupported settings; sizes it omits stay `None`.
fn parse_config_json(text: &str) -> Result<ConfigJson, ImportError> {
    let value: Value = serde_json::from_str(text).map_err(|e| bad_config_json(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(bad_config_json("expected a JSON object".to_string()));
    };
    hf::apply_config_aliases(&mut obj)?;
    hf::refuse_config_keys(&obj)?;
    reject_unsupported_options(&obj)?;
    let notes = check_config_keys(&obj)?;
    let eps = match number_field(&obj, "eps")? {
        None => None,
        Some(eps) if eps.is_finite() && eps >= 0.0 && (eps as f32).is_finite() => Some(eps as f32),
        Some(eps) => {
            return Err(ImportError::InvalidConfig(format!(
                "eps must be a finite non-negative number, found {eps}"
            )))
        }
    };
    Ok(ConfigJson {
        n_layers: size_field(&obj, "n_layers")?,
        n_heads: size_field(&obj, "n_heads")?,
        d_model: size_field(&obj, "d_model")?,
        d_head: size_field(&obj, "d_head")?,
        d_vocab: size_field(&obj, "d_vocab")?,
        d_vocab_out: size_field(&obj, "d_vocab_out")?,
        n_ctx: size_field(&obj, "n_ctx")?,
        layer_norm: parse_normalization(string_field(&obj, "normalization_type")?)?,
        eps,
        pos: parse_positional(string_field(&obj, "positional_embedding_type")?)?,
        attn_scale: number_field(&obj, "attn_scale")?.filter(|&s| s != -1.0),
        notes,
    })
}

// ------------------------------------------------------------------------------------------------
// Step 4: the configuration
// ------------------------------------------------------------------------------------------------

/// One axis of a tensor's shape, used to infer a size `config.json` does not give.
fn dim_of(
    st: &SafeTensors<'_>,
    name: &str,
    symbols: &'static str,
    rank: usize,
    axis: usize,
) -> Result<usize, ImportError> {
    let view = st
        .tensor(name)
        .map_err(|_| ImportError::MissingTensor(name.to_string()))?;
    let shape = view.shape();
    if shape.len() != rank {
        return Err(ImportError::WrongRank {
            tensor: name.to_string(),
            expected: symbols,
            found: shape.to_vec(),
        });
    }
    shape
        .get(axis)
        .copied()
        .ok_or_else(|| ImportError::MissingTensor(name.to_string()))
}

/// `n_ctx` of a model without `W_pos`: TransformerLens saves the causal mask
/// `blocks.0.attn.mask` `[n_ctx, n_ctx]` in every checkpoint.
fn n_ctx_from_mask(st: &SafeTensors<'_>) -> Result<usize, ImportError> {
    let name = block_name(0, "attn.mask");
    match st.tensor(&name) {
        // Recent TransformerLens versions save an empty [0, 0] placeholder instead.
        Ok(view) if view.shape() == [0, 0] => Err(ImportError::CannotInfer(format!(
            "n_ctx: the model has no pos_embed.W_pos, {name} is empty, and no config.json \
             gives n_ctx"
        ))),
        Ok(view) => match view.shape() {
            [rows, cols] if rows == cols => Ok(*rows),
            found => Err(ImportError::WrongRank {
                tensor: name,
                expected: "[n_ctx, n_ctx]",
                found: found.to_vec(),
            }),
        },
        Err(_) => Err(ImportError::CannotInfer(
            "n_ctx: the model has no pos_embed.W_pos and no blocks.0.attn.mask, and no \
             config.json gives n_ctx"
                .to_string(),
        )),
    }
}

/// Checks the configuration's `d_head` against `blocks.0.attn.W_Q` `[n_heads, d_model,
/// d_head]` before anything is derived from it (`attn_scale` is sqrt(d_head)): a `d_head` that
/// `config.json` gives, or, for a HuggingFace config without one, `d_model / n_heads`, must be
/// the width of the heads in the tensors. A missing or odd-shaped `W_Q` is left for
/// `read_params` to report.
fn check_d_head(st: &SafeTensors<'_>, json: &ConfigJson, d_head: usize) -> Result<(), ImportError> {
    let tensor = block_name(0, "attn.W_Q");
    let Ok(view) = st.tensor(&tensor) else {
        return Ok(());
    };
    let &[_, _, found] = view.shape() else {
        return Ok(());
    };
    let claimed = match (json.d_head, json.d_model, json.n_heads) {
        (Some(_), _, _) => Some(("config.json's d_head".to_string(), d_head)),
        (None, Some(m), Some(h)) if h > 0 && m % h == 0 => {
            Some((format!("d_model / n_heads = {m} / {h}"), m / h))
        }
        _ => None,
    };
    match claimed {
        Some((source, d_head)) if d_head != found => Err(ImportError::DHeadMismatch {
            source,
            d_head,
            tensor,
            shape: view.shape().to_vec(),
        }),
        _ => Ok(()),
    }
}

/// Step 4: the model's configuration, from `config.json` where it speaks, else from shapes.
///
/// `layers` is the largest `blocks.{l}` index present (if any); `has_rotary` whether any
/// `attn.rotary_*` buffer is present.
fn infer_config(
    st: &SafeTensors<'_>,
    json: &ConfigJson,
    max_layer: Option<usize>,
    has_rotary: bool,
) -> Result<Config, ImportError> {
    let n_layers = match (json.n_layers, max_layer) {
        (Some(n), _) => n,
        (None, Some(max)) => max.checked_add(1).ok_or_else(|| {
            ImportError::CannotInfer("n_layers: layer index out of range".to_string())
        })?,
        (None, None) => return Err(ImportError::MissingTensor(block_name(0, "attn.W_Q"))),
    };
    let w_q = block_name(0, "attn.W_Q");
    let d_vocab = match json.d_vocab {
        Some(n) => n,
        None => dim_of(st, W_E, "[d_vocab, d_model]", 2, 0)?,
    };
    let d_model = match json.d_model {
        Some(n) => n,
        None => dim_of(st, W_E, "[d_vocab, d_model]", 2, 1)?,
    };
    let n_heads = match json.n_heads {
        Some(n) => n,
        None => dim_of(st, &w_q, "[n_heads, d_model, d_head]", 3, 0)?,
    };
    let d_head = match json.d_head {
        Some(n) => n,
        None => dim_of(st, &w_q, "[n_heads, d_model, d_head]", 3, 2)?,
    };
    check_d_head(st, json, d_head)?;
    let layer_norm = json
        .layer_norm
        .unwrap_or_else(|| st.tensor(LN_FINAL_W).is_ok());
    let norm = if layer_norm {
        Norm::LayerNorm {
            eps: json.eps.unwrap_or(DEFAULT_EPS),
        }
    } else {
        Norm::None
    };
    let pos = match json.pos {
        Some(pos) => pos,
        None if has_rotary => {
            return Err(ImportError::Unsupported(
                "rotary positional embeddings (found attn.rotary_* buffers)".to_string(),
            ))
        }
        None if st.tensor(W_POS).is_ok() => PosEmbed::Standard,
        None => PosEmbed::None,
    };
    let n_ctx = match (json.n_ctx, pos) {
        (Some(n), _) => n,
        (None, PosEmbed::Standard | PosEmbed::Shortformer) => {
            dim_of(st, W_POS, "[n_ctx, d_model]", 2, 0)?
        }
        (None, PosEmbed::None) => n_ctx_from_mask(st)?,
    };
    let sizes = [
        ("n_layers", n_layers),
        ("n_heads", n_heads),
        ("d_model", d_model),
        ("d_head", d_head),
        ("d_vocab", d_vocab),
        ("n_ctx", n_ctx),
    ];
    for (key, value) in sizes {
        if value == 0 {
            return Err(ImportError::InvalidConfig(format!(
                "{key} must be at least 1, found 0"
            )));
        }
    }
    if let Some(out) = json.d_vocab_out.filter(|&out| out != d_vocab) {
        return Err(ImportError::Unsupported(format!(
            "d_vocab_out = {out} differs from d_vocab = {d_vocab}"
        )));
    }
    if let Some(scale) = json.attn_scale {
        let expected = (d_head as f64).sqrt();
        if (scale - expected).abs() > 1e-6 * expected {
            return Err(ImportError::Unsupported(format!(
                "attn_scale = {scale} (only sqrt(d_head) = {expected} is supported)"
            )));
        }
    }
    Ok(Config {
        n_layers,
        n_heads,
        d_model,
        d_head,
        d_vocab,
        n_ctx,
        norm,
        pos,
    })
}

/// Checks every tensor name against the final configuration: layer indices in range, and no
/// LayerNorm or `W_pos` tensors in a model that has none.
fn check_tensor_names(names: &[&str], config: &Config) -> Result<(), ImportError> {
    for &name in names {
        let layer = match classify_tensor(name)? {
            TensorKind::Global => None,
            TensorKind::BlockParam { layer } | TensorKind::Buffer { layer, .. } => Some(layer),
        };
        if let Some(layer) = layer.filter(|&l| l >= config.n_layers) {
            return Err(ImportError::LayerOutOfRange {
                tensor: name.to_string(),
                layer,
                n_layers: config.n_layers,
            });
        }
        let is_norm = name == LN_FINAL_W
            || name == LN_FINAL_B
            || name.ends_with(".ln1.w")
            || name.ends_with(".ln1.b");
        if is_norm && config.norm == Norm::None {
            return Err(ImportError::UnexpectedTensor {
                tensor: name.to_string(),
                reason: "the model has no LayerNorm (normalization_type null)".to_string(),
            });
        }
        if name == W_POS && config.pos == PosEmbed::None {
            return Err(ImportError::UnexpectedTensor {
                tensor: name.to_string(),
                reason: "the model has no positional embedding (positional_embedding_type \
                         \"none\")"
                    .to_string(),
            });
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Step 5: the parameters
// ------------------------------------------------------------------------------------------------

/// Converts a tensor's little-endian bytes to f32, or `None` for a non-float dtype.
fn decode_f32(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let bytes = view.data();
    let values = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        _ => return None,
    };
    Some(values)
}

/// The multi-dimensional index of flat position `flat` in a row-major tensor of `shape`.
fn unravel_index(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        if dim > 0 {
            *slot = flat % dim;
            flat /= dim;
        }
    }
    index
}

/// Reads tensor `name` as f32, checking dtype, shape (exactly `expected`) and finiteness.
fn read_tensor(
    st: &SafeTensors<'_>,
    name: &str,
    expected: &[usize],
) -> Result<Vec<f32>, ImportError> {
    let view = st
        .tensor(name)
        .map_err(|_| ImportError::MissingTensor(name.to_string()))?;
    let unsupported_dtype = || ImportError::UnsupportedDtype {
        tensor: name.to_string(),
        dtype: view.dtype().to_string(),
    };
    if !matches!(
        view.dtype(),
        Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64
    ) {
        return Err(unsupported_dtype());
    }
    if view.shape() != expected {
        return Err(ImportError::ShapeMismatch {
            tensor: name.to_string(),
            expected: expected.to_vec(),
            found: view.shape().to_vec(),
        });
    }
    let values = decode_f32(&view).ok_or_else(unsupported_dtype)?;
    let n_elements = expected
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if n_elements != Some(values.len()) {
        return Err(ImportError::NotSafetensors(format!(
            "tensor {name} has {} values for shape {expected:?}",
            values.len()
        )));
    }
    if let Some((flat, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ImportError::NonFinite {
            tensor: name.to_string(),
            index: unravel_index(flat, expected),
            value,
        });
    }
    Ok(values)
}

/// Reads a LayerNorm's `{prefix}.w` and `{prefix}.b` if the model has LayerNorm.
fn read_ln(
    st: &SafeTensors<'_>,
    config: &Config,
    prefix: &str,
) -> Result<Option<LnParams>, ImportError> {
    match config.norm {
        Norm::None => Ok(None),
        Norm::LayerNorm { .. } => Ok(Some(LnParams {
            w: read_tensor(st, &format!("{prefix}.w"), &[config.d_model])?,
            b: read_tensor(st, &format!("{prefix}.b"), &[config.d_model])?,
        })),
    }
}

/// Reads `blocks.{layer}.*`.
fn read_layer(
    st: &SafeTensors<'_>,
    config: &Config,
    layer: usize,
) -> Result<LayerParams, ImportError> {
    let (h, d_model, d_head) = (config.n_heads, config.d_model, config.d_head);
    let read = |rest: &str, shape: &[usize]| read_tensor(st, &block_name(layer, rest), shape);
    Ok(LayerParams {
        ln1: read_ln(st, config, &block_name(layer, "ln1"))?,
        w_q: read("attn.W_Q", &[h, d_model, d_head])?,
        w_k: read("attn.W_K", &[h, d_model, d_head])?,
        w_v: read("attn.W_V", &[h, d_model, d_head])?,
        b_q: read("attn.b_Q", &[h, d_head])?,
        b_k: read("attn.b_K", &[h, d_head])?,
        b_v: read("attn.b_V", &[h, d_head])?,
        w_o: read("attn.W_O", &[h, d_head, d_model])?,
        b_o: read("attn.b_O", &[d_model])?,
    })
}

/// Step 5: reads every parameter of the model `config` describes.
fn read_params(st: &SafeTensors<'_>, config: &Config) -> Result<Params, ImportError> {
    let w_e = read_tensor(st, W_E, &[config.d_vocab, config.d_model])?;
    let w_pos = match config.pos {
        PosEmbed::Standard | PosEmbed::Shortformer => {
            Some(read_tensor(st, W_POS, &[config.n_ctx, config.d_model])?)
        }
        PosEmbed::None => None,
    };
    // No `with_capacity(n_layers)`: n_layers may come from an untrusted config.json.
    let mut layers = Vec::new();
    for layer in 0..config.n_layers {
        layers.push(read_layer(st, config, layer)?);
    }
    let ln_final = read_ln(st, config, "ln_final")?;
    let w_u = read_tensor(st, W_U, &[config.d_model, config.d_vocab])?;
    let b_u = read_tensor(st, B_U, &[config.d_vocab])?;
    Ok(Params {
        config: *config,
        vocab: None,
        w_e,
        w_pos,
        layers,
        ln_final,
        w_u,
        b_u,
    })
}

/// Parses `vocab.json`: a JSON array of exactly `d_vocab` strings (index = id), or a
/// HuggingFace `{"token": id}` map whose ids are exactly `0..d_vocab` (one that looks
/// byte-level adds a note to `notes`).
fn parse_vocab(
    text: &str,
    d_vocab: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, ImportError> {
    const FILE: &str = "vocab.json";
    let bad = |reason: String| ImportError::InvalidJson { file: FILE, reason };
    let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let vocab = match value {
        Value::Array(items) => vocab_from_list(items, d_vocab)?,
        Value::Object(map) => {
            let tokens = hf::vocab_from_ids(&map, d_vocab, FILE)?;
            if hf::looks_byte_level(&tokens) {
                notes.push(format!(
                    "{FILE}: the tokens look like GPT-2's byte-level alphabet (\"\u{120}\" for a \
                     space) and are kept as written; put the model's tokenizer.json beside the \
                     checkpoint instead of vocab.json to have them read as text"
                ));
            }
            tokens
        }
        _ => {
            return Err(bad(
                "expected a JSON array of token strings or an object {\"token\": id}".to_string(),
            ))
        }
    };
    check_token_lengths(&vocab, FILE)?;
    Ok(vocab)
}

/// A JSON array of exactly `d_vocab` strings, index = id.
fn vocab_from_list(items: Vec<Value>, d_vocab: usize) -> Result<Vec<String>, ImportError> {
    if items.len() != d_vocab {
        return Err(ImportError::VocabLength {
            expected: d_vocab,
            found: items.len(),
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(id, item)| match item {
            Value::String(token) => Ok(token),
            other => Err(ImportError::InvalidJson {
                file: "vocab.json",
                reason: format!("entry {id} is {other}, expected a string"),
            }),
        })
        .collect()
}

/// Refuses a token longer than a blob can store, naming its id.
pub(crate) fn check_token_lengths(vocab: &[String], file: &'static str) -> Result<(), ImportError> {
    match vocab
        .iter()
        .enumerate()
        .find(|(_, t)| t.len() > MAX_TOKEN_BYTES)
    {
        Some((id, token)) => Err(ImportError::TokenTooLong {
            file,
            id,
            bytes: token.len(),
            cap: MAX_TOKEN_BYTES,
        }),
        None => Ok(()),
    }
}

// ------------------------------------------------------------------------------------------------
// Public entry points
// ------------------------------------------------------------------------------------------------

/// The text of a checkpoint's vocabulary file, by its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabFile<'a> {
    /// `vocab.json`: a JSON array of token strings, or a `{"token": id}` map.
    VocabJson(&'a str),
    /// A HuggingFace `tokenizer.json` (see [`hf::vocab_from_tokenizer_json`]).
    TokenizerJson(&'a str),
}

/// A loaded checkpoint, and what the user should be told about it (config keys ignored, how
/// the device encodes with an imported tokenizer's vocabulary, ...), one line each.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The model.
    pub params: Params,
    /// Warnings to show the user, each a full sentence naming its file.
    pub notes: Vec<String>,
}

/// Loads a checkpoint from memory: the bytes of `model.safetensors`, and the texts of
/// `config.json` and `vocab.json` if there are any. The notes of
/// [`load_checkpoint_bytes_noted`] are dropped.
///
/// Without `config_json` everything is inferred from the tensors: LayerNorm iff `ln_final.w`
/// exists (eps 1e-5), a standard positional embedding iff `pos_embed.W_pos` exists. Note that
/// shortformer models and `LNPre` models cannot be told apart from standard and unnormalized
/// ones by their tensors: they need their `config.json`.
pub fn load_checkpoint_bytes(
    st_bytes: &[u8],
    config_json: Option<&str>,
    vocab_json: Option<&str>,
) -> Result<Params, ImportError> {
    let vocab = vocab_json.map(VocabFile::VocabJson);
    load_checkpoint_bytes_noted(st_bytes, config_json, vocab).map(|loaded| loaded.params)
}

/// [`load_checkpoint_bytes`] with any vocabulary file, returning the notes for the user too.
pub fn load_checkpoint_bytes_noted(
    st_bytes: &[u8],
    config_json: Option<&str>,
    vocab: Option<VocabFile<'_>>,
) -> Result<Loaded, ImportError> {
    let st = parse_safetensors(st_bytes)?;
    let json = match config_json {
        Some(text) => parse_config_json(text)?,
        None => ConfigJson::default(),
    };

    let mut names = st.names();
    names.sort_unstable();
    let mut max_layer = None;
    let mut has_rotary = false;
    for &name in &names {
        match classify_tensor(name)? {
            TensorKind::Global => {}
            TensorKind::BlockParam { layer } => max_layer = max_layer.max(Some(layer)),
            TensorKind::Buffer { layer, rotary } => {
                max_layer = max_layer.max(Some(layer));
                has_rotary |= rotary;
            }
        }
    }

    let config = infer_config(&st, &json, max_layer, has_rotary)?;
    check_tensor_names(&names, &config)?;
    let mut params = read_params(&st, &config)?;
    let mut notes = json.notes;
    params.vocab = match vocab {
        None => None,
        Some(VocabFile::VocabJson(text)) => Some(parse_vocab(text, config.d_vocab, &mut notes)?),
        Some(VocabFile::TokenizerJson(text)) => {
            let imported = hf::vocab_from_tokenizer_json(text, config.d_vocab)?;
            check_token_lengths(&imported.tokens, "tokenizer.json")?;
            notes.extend(imported.notes);
            Some(imported.tokens)
        }
    };
    Ok(Loaded { params, notes })
}

/// Reads a whole file, naming it on failure.
fn read_file(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })
}

/// Reads a whole text file, naming it on failure.
fn read_text(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })
}

/// Loads a TransformerLens checkpoint from `path` (a `.safetensors` file), printing its
/// notes (see [`load_checkpoint_noted`]) to stderr as `warning: ...` lines.
///
/// The configuration comes from `config_path` if given, else from `config.json` beside the
/// checkpoint if it exists, else from the tensor shapes alone (see [`load_checkpoint_bytes`]).
/// A `vocab.json` beside the checkpoint, or else a HuggingFace `tokenizer.json`, becomes
/// [`Params::vocab`].
pub fn load_checkpoint(path: &Path, config_path: Option<&Path>) -> Result<Params, ImportError> {
    let loaded = load_checkpoint_noted(path, config_path)?;
    for note in &loaded.notes {
        eprintln!("warning: {note}");
    }
    Ok(loaded.params)
}

/// [`load_checkpoint`] returning the notes for the caller to show instead of printing them.
pub fn load_checkpoint_noted(
    path: &Path,
    config_path: Option<&Path>,
) -> Result<Loaded, ImportError> {
    let st_bytes = read_file(path)?;
    let beside_config = path.with_file_name("config.json");
    let config_json = match config_path {
        Some(config_path) => Some(read_text(config_path)?),
        None if beside_config.is_file() => Some(read_text(&beside_config)?),
        None => None,
    };
    let vocab_path = path.with_file_name("vocab.json");
    let tokenizer_path = path.with_file_name("tokenizer.json");
    let (vocab_text, is_tokenizer) = if vocab_path.is_file() {
        (Some(read_text(&vocab_path)?), false)
    } else if tokenizer_path.is_file() {
        (Some(read_text(&tokenizer_path)?), true)
    } else {
        (None, false)
    };
    let vocab = vocab_text.as_deref().map(|text| match is_tokenizer {
        true => VocabFile::TokenizerJson(text),
        false => VocabFile::VocabJson(text),
    });
    load_checkpoint_bytes_noted(&st_bytes, config_json.as_deref(), vocab).map_err(|err| {
        match (&err, file_kind_by_extension(path)) {
            (
                ImportError::NotSafetensors(_)
                | ImportError::HeaderTooLarge { .. }
                | ImportError::TooManyTensors { .. },
                Some(kind),
            ) => kind,
            _ => err,
        }
    })
}

// ------------------------------------------------------------------------------------------------
// Saving
// ------------------------------------------------------------------------------------------------

/// An F32 tensor ready for `safetensors::serialize`.
struct F32Tensor {
    /// The tensor's shape.
    shape: Vec<usize>,
    /// Its values as little-endian bytes: [product(shape) * 4]
    bytes: Vec<u8>,
}

impl View for &F32Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Packs `values` as an F32 tensor of `shape`, checking the length matches.
fn f32_tensor(name: &str, values: &[f32], shape: &[usize]) -> Result<F32Tensor, ImportError> {
    let n_elements = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if n_elements != Some(values.len()) {
        return Err(ImportError::InvalidParams(format!(
            "{name} has {} values, but its shape {shape:?} needs {}",
            values.len(),
            n_elements.map_or("more than usize::MAX".to_string(), |n| n.to_string())
        )));
    }
    Ok(F32Tensor {
        shape: shape.to_vec(),
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    })
}

/// Every tensor of `params` under its TransformerLens name, F32.
fn params_to_tensors(params: &Params) -> Result<Vec<(String, F32Tensor)>, ImportError> {
    let c = &params.config;
    let (h, d_model, d_head) = (c.n_heads, c.d_model, c.d_head);
    let mut tensors = Vec::new();
    let mut push = |name: String, values: &[f32], shape: &[usize]| {
        let tensor = f32_tensor(&name, values, shape)?;
        tensors.push((name, tensor));
        Ok::<(), ImportError>(())
    };
    let has_ln = matches!(c.norm, Norm::LayerNorm { .. });
    let has_pos = c.pos != PosEmbed::None;
    if params.layers.len() != c.n_layers
        || params.ln_final.is_some() != has_ln
        || params.w_pos.is_some() != has_pos
        || params.layers.iter().any(|l| l.ln1.is_some() != has_ln)
    {
        return Err(ImportError::InvalidParams(
            "the parameters do not match their config (layer count, LayerNorm or W_pos)"
                .to_string(),
        ));
    }

    push(W_E.to_string(), &params.w_e, &[c.d_vocab, d_model])?;
    if let Some(w_pos) = &params.w_pos {
        push(W_POS.to_string(), w_pos, &[c.n_ctx, d_model])?;
    }
    for (l, layer) in params.layers.iter().enumerate() {
        if let Some(ln1) = &layer.ln1 {
            push(block_name(l, "ln1.w"), &ln1.w, &[d_model])?;
            push(block_name(l, "ln1.b"), &ln1.b, &[d_model])?;
        }
        push(block_name(l, "attn.W_Q"), &layer.w_q, &[h, d_model, d_head])?;
        push(block_name(l, "attn.W_K"), &layer.w_k, &[h, d_model, d_head])?;
        push(block_name(l, "attn.W_V"), &layer.w_v, &[h, d_model, d_head])?;
        push(block_name(l, "attn.b_Q"), &layer.b_q, &[h, d_head])?;
        push(block_name(l, "attn.b_K"), &layer.b_k, &[h, d_head])?;
        push(block_name(l, "attn.b_V"), &layer.b_v, &[h, d_head])?;
        push(block_name(l, "attn.W_O"), &layer.w_o, &[h, d_head, d_model])?;
        push(block_name(l, "attn.b_O"), &layer.b_o, &[d_model])?;
    }
    if let Some(ln_final) = &params.ln_final {
        push(LN_FINAL_W.to_string(), &ln_final.w, &[d_model])?;
        push(LN_FINAL_B.to_string(), &ln_final.b, &[d_model])?;
    }
    push(W_U.to_string(), &params.w_u, &[d_model, c.d_vocab])?;
    push(B_U.to_string(), &params.b_u, &[c.d_vocab])?;
    Ok(tensors)
}

/// A JSON number printing as the shortest decimal that reads back as exactly `x` (so 1e-5f32
/// is written `1e-5`, not `9.999999747378752e-6`).
fn f32_json(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// The `config.json` TransformerLens would write for `config` (plus `"none"` as a
/// `positional_embedding_type`, which TransformerLens itself lacks).
pub fn config_to_json(config: &Config) -> Value {
    let (normalization_type, eps) = match config.norm {
        Norm::None => (Value::Null, DEFAULT_EPS),
        Norm::LayerNorm { eps } => (Value::from("LN"), eps),
    };
    let positional = match config.pos {
        PosEmbed::Standard => "standard",
        PosEmbed::Shortformer => "shortformer",
        PosEmbed::None => "none",
    };
    serde_json::json!({
        "n_layers": config.n_layers,
        "n_heads": config.n_heads,
        "d_model": config.d_model,
        "d_head": config.d_head,
        "d_vocab": config.d_vocab,
        "d_vocab_out": config.d_vocab,
        "n_ctx": config.n_ctx,
        "normalization_type": normalization_type,
        "positional_embedding_type": positional,
        "eps": f32_json(eps),
        "attn_only": true,
        "d_mlp": null,
        "act_fn": null,
        "use_attn_scale": true,
        "attention_dir": "causal",
    })
}

/// Writes `contents` to `path`, naming it on failure.
fn write_file(path: &Path, contents: &[u8]) -> Result<(), ImportError> {
    crate::files::write_atomic(path, contents).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        action: "write",
        source,
    })
}

/// Writes `params` as a TransformerLens checkpoint: F32 tensors under TransformerLens names at
/// `path`, `config.json` beside it, and `vocab.json` beside it when `params` has a vocabulary
/// (a stale `vocab.json` is removed when it has none, so the directory describes exactly this
/// model). [`load_checkpoint`] reads the result back to identical `Params`.
pub fn save_checkpoint(params: &Params, path: &Path) -> Result<(), ImportError> {
    let tensors = params_to_tensors(params)?;
    let views = tensors.iter().map(|(name, tensor)| (name.as_str(), tensor));
    let bytes = safetensors::serialize(views, None)
        .map_err(|e| ImportError::InvalidParams(e.to_string()))?;
    write_file(path, &bytes)?;

    let config = serde_json::to_string_pretty(&config_to_json(&params.config))
        .map_err(|e| ImportError::InvalidParams(e.to_string()))?;
    write_file(&path.with_file_name("config.json"), config.as_bytes())?;

    let vocab_path = path.with_file_name("vocab.json");
    match &params.vocab {
        Some(vocab) => {
            if vocab.len() != params.config.d_vocab {
                return Err(ImportError::InvalidParams(format!(
                    "the vocabulary has {} entries, but d_vocab = {}",
                    vocab.len(),
                    params.config.d_vocab
                )));
            }
            let text = serde_json::to_string(vocab)
                .map_err(|e| ImportError::InvalidParams(e.to_string()))?;
            write_file(&vocab_path, text.as_bytes())?;
        }
        None if vocab_path.is_file() => {
            std::fs::remove_file(&vocab_path).map_err(|source| ImportError::Io {
                path: vocab_path.clone(),
                action: "remove",
                source,
            })?;
        }
        None => {}
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Test helpers shared with the reference's tests
// ------------------------------------------------------------------------------------------------

/// Deterministic pseudo-random models for tests.
#[cfg(test)]
pub(crate) mod test_params {
    use super::*;

    /// A small deterministic generator (SplitMix64) of values in [-scale, scale).
    pub(crate) struct Rng(u64);

    impl Rng {
        /// A generator seeded with `seed`.
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed)
        }

        /// The next value in [-1, 1).
        pub(crate) fn next_f32(&mut self) -> f32 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        }

        /// `n` values in [-scale, scale).
        pub(crate) fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
            (0..n).map(|_| self.next_f32() * scale).collect()
        }
    }

    /// A random model of shape `config`, with LayerNorm weights near 1.
    pub(crate) fn random_params(config: Config, seed: u64) -> Params {
        let mut rng = Rng::new(seed);
        let c = config;
        let has_ln = matches!(c.norm, Norm::LayerNorm { .. });
        let ln = |rng: &mut Rng| {
            has_ln.then(|| LnParams {
                w: rng.vec(c.d_model, 0.5).iter().map(|v| 1.0 + v).collect(),
                b: rng.vec(c.d_model, 0.2),
            })
        };
        let w_e = rng.vec(c.d_vocab * c.d_model, 1.0);
        let w_pos = (c.pos != PosEmbed::None).then(|| rng.vec(c.n_ctx * c.d_model, 0.5));
        let qkv = c.n_heads * c.d_model * c.d_head;
        let layers = (0..c.n_layers)
            .map(|_| LayerParams {
                ln1: ln(&mut rng),
                w_q: rng.vec(qkv, 0.6),
                w_k: rng.vec(qkv, 0.6),
                w_v: rng.vec(qkv, 0.6),
                b_q: rng.vec(c.n_heads * c.d_head, 0.1),
                b_k: rng.vec(c.n_heads * c.d_head, 0.1),
                b_v: rng.vec(c.n_heads * c.d_head, 0.1),
                w_o: rng.vec(qkv, 0.6),
                b_o: rng.vec(c.d_model, 0.1),
            })
            .collect();
        let ln_final = ln(&mut rng);
        Params {
            config,
            vocab: None,
            w_e,
            w_pos,
            layers,
            ln_final,
            w_u: rng.vec(c.d_model * c.d_vocab, 0.5),
            b_u: rng.vec(c.d_vocab, 0.1),
        }
    }

    /// A small config: 2 layers, 2 heads, d_model 8, d_head 4, 11 tokens, n_ctx 6.
    pub(crate) use tinylens::testing::tiny_config as small_config;
}

#[cfg(test)]
mod tests {
    use super::test_params::{random_params, small_config};
    use super::*;
    use std::collections::HashMap;

    const LN: Norm = Norm::LayerNorm { eps: 1e-5 };

    /// A fresh, empty directory under the system temp dir.
    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tinylens-import-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    /// A tensor for `serialize_raw`: dtype, shape, raw little-endian bytes.
    type RawTensor = (Dtype, Vec<usize>, Vec<u8>);

    /// Raw tensors, in the order and form `save_checkpoint` would write them.
    fn raw_tensors(params: &Params) -> HashMap<String, RawTensor> {
        params_to_tensors(params)
            .expect("consistent params")
            .into_iter()
            .map(|(name, t)| (name, (Dtype::F32, t.shape, t.bytes)))
            .collect()
    }

    /// Serializes raw tensors of any dtype.
    fn serialize_raw(tensors: &HashMap<String, RawTensor>) -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|(name, (dtype, shape, bytes))| {
                let view = TensorView::new(*dtype, shape.clone(), bytes).expect("valid view");
                (name.clone(), view)
            })
            .collect();
        safetensors::serialize(views, None).expect("serialize")
    }

    /// The LN + standard test model, its tensors and its config.json.
    fn ln_fixture() -> (Params, HashMap<String, RawTensor>, String) {
        let params = random_params(small_config(LN, PosEmbed::Standard), 7);
        let raw = raw_tensors(&params);
        let config = config_to_json(&params.config).to_string();
        (params, raw, config)
    }

    /// Loads `raw` with `config`, expecting an error.
    fn load_err(raw: &HashMap<String, RawTensor>, config: Option<&str>) -> ImportError {
        match load_checkpoint_bytes(&serialize_raw(raw), config, None) {
            Ok(_) => panic!("expected an import error"),
            Err(e) => e,
        }
    }

    #[test]
    fn roundtrip_every_variant() {
        let variants = [
            (LN, PosEmbed::Standard),
            (LN, PosEmbed::Shortformer),
            (Norm::None, PosEmbed::Standard),
            (Norm::None, PosEmbed::None),
            (Norm::LayerNorm { eps: 1e-6 }, PosEmbed::None),
        ];
        for (i, (norm, pos)) in variants.into_iter().enumerate() {
            let dir = temp_dir(&format!("roundtrip{i}"));
            let path = dir.join("model.safetensors");
            let mut params = random_params(small_config(norm, pos), i as u64);
            if i % 2 == 0 {
                params.vocab = Some((0..11).map(|t| format!("tok{t}")).collect());
            }
            save_checkpoint(&params, &path).expect("save");
            let loaded = load_checkpoint(&path, None).expect("load");
            assert_eq!(loaded, params, "variant {i}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn infers_config_from_shapes_alone() {
        for (norm, pos) in [
            (LN, PosEmbed::Standard),
            (Norm::None, PosEmbed::Standard),
            (Norm::None, PosEmbed::None),
        ] {
            let params = random_params(small_config(norm, pos), 3);
            let mut raw = raw_tensors(&params);
            if pos == PosEmbed::None {
                // n_ctx comes from the causal mask buffer TransformerLens saves.
                let mask = vec![1u8; 36];
                raw.insert(block_name(0, "attn.mask"), (Dtype::BOOL, vec![6, 6], mask));
            }
            let loaded = load_checkpoint_bytes(&serialize_raw(&raw), None, None).expect("load");
            assert_eq!(loaded, params);
            if pos == PosEmbed::None {
                // The empty placeholder mask of recent TransformerLens versions says nothing.
                raw.insert(
                    block_name(0, "attn.mask"),
                    (Dtype::BOOL, vec![0, 0], vec![]),
                );
                let err = load_err(&raw, None);
                assert!(matches!(err, ImportError::CannotInfer(_)), "{err}");
            }
        }
    }

    #[test]
    fn accepts_half_precision_and_ignores_buffers() {
        let (params, mut raw, config) = ln_fixture();
        for (dtype, to_bits) in [
            (
                Dtype::F16,
                (|v: f32| half::f16::from_f32(v).to_bits()) as fn(f32) -> u16,
            ),
            (Dtype::BF16, |v: f32| half::bf16::from_f32(v).to_bits()),
        ] {
            let values = &params.w_e;
            let bytes = values
                .iter()
                .flat_map(|&v| to_bits(v).to_le_bytes())
                .collect();
            raw.insert(W_E.to_string(), (dtype, vec![11, 8], bytes));
            for l in 0..2 {
                raw.insert(
                    block_name(l, "attn.mask"),
                    (Dtype::BOOL, vec![6, 6], vec![1; 36]),
                );
                let ignore = (-1e5f32).to_le_bytes().to_vec();
                raw.insert(block_name(l, "attn.IGNORE"), (Dtype::F32, vec![], ignore));
            }
            let loaded =
                load_checkpoint_bytes(&serialize_raw(&raw), Some(&config), None).expect("load");
            for (a, b) in loaded.w_e.iter().zip(&params.w_e) {
                assert!(
                    (a - b).abs() <= 1e-2 * b.abs().max(1e-3),
                    "{dtype}: {a} vs {b}"
                );
            }
            assert_eq!(loaded.layers, params.layers);
        }
    }

    #[test]
    fn error_missing_tensor() {
        let (_, mut raw, config) = ln_fixture();
        raw.remove("blocks.1.attn.W_V");
        let err = load_err(&raw, Some(&config));
        assert!(matches!(&err, ImportError::MissingTensor(n) if n == "blocks.1.attn.W_V"));
        assert_eq!(err.to_string(), "missing tensor blocks.1.attn.W_V");
    }

    #[test]
    fn error_wrong_shape() {
        let (_, mut raw, config) = ln_fixture();
        raw.insert(
            "blocks.0.attn.b_O".to_string(),
            (Dtype::F32, vec![7], vec![0; 28]),
        );
        let err = load_err(&raw, Some(&config));
        assert!(matches!(
            &err,
            ImportError::ShapeMismatch { tensor, expected, found }
                if tensor == "blocks.0.attn.b_O" && expected == &[8] && found == &[7]
        ));
        assert_eq!(
            err.to_string(),
            "tensor blocks.0.attn.b_O has shape [7], expected [8]"
        );
    }

    #[test]
    fn error_unsupported_dtype() {
        let (_, mut raw, config) = ln_fixture();
        raw.insert(B_U.to_string(), (Dtype::I64, vec![11], vec![0; 88]));
        let err = load_err(&raw, Some(&config));
        assert!(matches!(
            &err,
            ImportError::UnsupportedDtype { tensor, dtype } if tensor == B_U && dtype == "I64"
        ));
        assert!(err.to_string().contains("unembed.b_U"), "{err}");
    }

    #[test]
    fn error_nan() {
        let (params, mut raw, config) = ln_fixture();
        let mut w_o = params.layers[1].w_o.clone();
        // [n_heads=2, d_head=4, d_model=8]: flat 1*32 + 2*8 + 5 = 53 is index [1, 2, 5].
        w_o[53] = f32::NAN;
        w_o[60] = f32::INFINITY;
        let bytes = w_o.iter().flat_map(|v| v.to_le_bytes()).collect();
        raw.insert(
            "blocks.1.attn.W_O".to_string(),
            (Dtype::F32, vec![2, 4, 8], bytes),
        );
        let err = load_err(&raw, Some(&config));
        assert!(matches!(
            &err,
            ImportError::NonFinite { tensor, index, value }
                if tensor == "blocks.1.attn.W_O" && index == &[1, 2, 5] && value.is_nan()
        ));
        assert_eq!(
            err.to_string(),
            "tensor blocks.1.attn.W_O contains a non-finite value (NaN) at index [1, 2, 5]"
        );
    }

    #[test]
    fn error_mlp_tensor() {
        let (_, mut raw, config) = ln_fixture();
        raw.insert(
            "blocks.0.mlp.W_in".to_string(),
            (Dtype::F32, vec![8, 32], vec![0; 1024]),
        );
        for config in [Some(config.as_str()), None] {
            let err = load_err(&raw, config);
            assert_eq!(
                err.to_string(),
                "not attention-only: found MLP tensor blocks.0.mlp.W_in"
            );
        }
    }

    #[test]
    fn error_unknown_tensor_and_layer_out_of_range() {
        let (_, raw, config) = ln_fixture();
        let mut unknown = raw.clone();
        unknown.insert("foo.bar".to_string(), (Dtype::F32, vec![1], vec![0; 4]));
        let err = load_err(&unknown, Some(&config));
        assert!(
            matches!(&err, ImportError::UnexpectedTensor { tensor, .. } if tensor == "foo.bar")
        );

        let mut extra_layer = raw;
        let view = extra_layer["blocks.1.attn.b_O"].clone();
        extra_layer.insert("blocks.2.attn.b_O".to_string(), view);
        let err = load_err(&extra_layer, Some(&config));
        assert!(matches!(
            &err,
            ImportError::LayerOutOfRange {
                layer: 2,
                n_layers: 2,
                ..
            }
        ));
        // Without a config the extra layer makes n_layers 3, and layer 2 is incomplete.
        let err = load_err(&extra_layer, None);
        assert!(matches!(&err, ImportError::MissingTensor(n) if n.starts_with("blocks.2.")));
    }

    #[test]
    fn error_config_disagrees_with_shapes() {
        let (params, raw, _) = ln_fixture();
        let mut config = params.config;
        config.d_model = 16;
        let err = load_err(&raw, Some(&config_to_json(&config).to_string()));
        assert!(matches!(
            &err,
            ImportError::ShapeMismatch { tensor, expected, found }
                if tensor == W_E && expected == &[11, 16] && found == &[11, 8]
        ));
        assert_eq!(
            err.to_string(),
            "tensor embed.W_E has shape [11, 8], expected [11, 16]"
        );

        let mut config = params.config;
        config.norm = Norm::None;
        let err = load_err(&raw, Some(&config_to_json(&config).to_string()));
        assert!(
            matches!(&err, ImportError::UnexpectedTensor { tensor, .. } if tensor.contains("ln"))
        );
    }

    #[test]
    fn error_not_safetensors() {
        for bytes in [
            &b""[..],
            b"hello",
            b"\xff\xff\xff\xff\xff\xff\xff\xffgarbage",
            b"\x04\x00\x00\x00\x00\x00\x00\x00nope",
        ] {
            let err = load_checkpoint_bytes(bytes, None, None).expect_err("must fail");
            assert!(
                err.to_string().starts_with("not a valid safetensors file"),
                "{bytes:?}: {err}"
            );
        }
        // A well-formed but empty file is a valid safetensors holding no model.
        let empty = b"\x02\x00\x00\x00\x00\x00\x00\x00{}";
        let err = load_checkpoint_bytes(empty, None, None).expect_err("must fail");
        assert!(matches!(err, ImportError::MissingTensor(_)), "{err}");
    }

    #[test]
    fn no_panic_on_huge_offsets() {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let mut header = String::from("{");
        let step = (1u64 << 61) - 1;
        for (i, name) in names.iter().enumerate() {
            let (s, e) = (i as u64 * step, (i as u64 + 1) * step);
            let sep = if i == 0 { "" } else { "," };
            header += &format!(
                r#"{sep}"{name}":{{"dtype":"U8","shape":[{}],"data_offsets":[{s},{e}]}}"#,
                e - s
            );
        }
        header += "}";
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        let err = load_checkpoint_bytes(&bytes, None, None).expect_err("must fail");
        assert!(matches!(err, ImportError::NotSafetensors(_)), "{err}");
    }

    #[test]
    fn error_vocab_wrong_length() {
        let (params, raw, config) = ln_fixture();
        let vocab = serde_json::to_string(&vec!["a"; 10]).expect("json");
        let err = load_checkpoint_bytes(&serialize_raw(&raw), Some(&config), Some(&vocab))
            .expect_err("must fail");
        assert!(matches!(
            err,
            ImportError::VocabLength {
                expected: 11,
                found: 10
            }
        ));
        let vocab = serde_json::to_string(&vec!["a"; 11]).expect("json");
        let loaded =
            load_checkpoint_bytes(&serialize_raw(&raw), Some(&config), Some(&vocab)).expect("load");
        assert_eq!(loaded.vocab.as_deref().map(<[String]>::len), Some(11));
        assert_eq!(loaded.w_e, params.w_e);
    }

    #[test]
    fn error_unsupported_config() {
        let (_, raw, config) = ln_fixture();
        let base: Value = serde_json::from_str(&config).expect("json");
        let cases = [
            ("normalization_type", Value::from("LNPre"), "LNPre"),
            ("normalization_type", Value::from("RMS"), "RMS"),
            ("positional_embedding_type", Value::from("rotary"), "rotary"),
            ("positional_embedding_type", Value::from("alibi"), "alibi"),
            ("use_attn_scale", Value::from(false), "use_attn_scale"),
            ("attn_scale", Value::from(3.0), "attn_scale"),
            (
                "attention_dir",
                Value::from("bidirectional"),
                "bidirectional",
            ),
        ];
        for (key, value, needle) in cases {
            let mut json = base.clone();
            json[key] = value;
            let err = load_err(&raw, Some(&json.to_string()));
            assert!(matches!(err, ImportError::Unsupported(_)), "{key}: {err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
        let mut json = base.clone();
        json["attn_only"] = Value::from(false);
        let err = load_err(&raw, Some(&json.to_string()));
        assert_eq!(
            err.to_string(),
            "not attention-only: config.json has attn_only: false"
        );

        // TransformerLens' own sqrt(d_head) and its -1 "default" are fine.
        for scale in [2.0, -1.0] {
            let mut json = base.clone();
            json["attn_scale"] = Value::from(scale);
            load_checkpoint_bytes(&serialize_raw(&raw), Some(&json.to_string()), None)
                .expect("load");
        }
    }

    #[test]
    fn error_invalid_config_json() {
        let (_, raw, _) = ln_fixture();
        for text in [
            "not json",
            "[1, 2]",
            r#"{"d_model": "eight"}"#,
            r#"{"d_model": -3}"#,
        ] {
            let err = load_err(&raw, Some(text));
            assert!(
                matches!(err, ImportError::InvalidJson { .. }),
                "{text}: {err}"
            );
        }
        let err = load_err(&raw, Some(r#"{"n_heads": 0}"#));
        assert!(matches!(err, ImportError::InvalidConfig(_)), "{err}");
    }

    /// The TransformerLens fixtures, when they have been generated.
    fn fixture_dirs() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tl");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("model.safetensors").is_file())
            .collect();
        dirs.sort();
        dirs
    }

    #[test]
    fn loads_transformer_lens_fixtures() {
        for dir in fixture_dirs() {
            let params = load_checkpoint(&dir.join("model.safetensors"), None)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let c = params.config;
            assert!(c.n_layers >= 1 && c.n_heads >= 1, "{name}");
            if name.contains("_ln") {
                assert!(matches!(c.norm, Norm::LayerNorm { .. }), "{name}");
            }
            if name.contains("nonorm") {
                assert_eq!(c.norm, Norm::None, "{name}");
            }
            if name.contains("shortformer") {
                assert_eq!(c.pos, PosEmbed::Shortformer, "{name}");
            }
            if let Some(digit) = name.strip_prefix('l').and_then(|s| s.chars().next()) {
                assert_eq!(Some(c.n_layers), digit.to_digit(10).map(|d| d as usize));
            }
            assert_eq!(
                params.vocab.as_ref().map(Vec::len),
                Some(c.d_vocab),
                "{name}"
            );
            // Without config.json the same model comes out of the shapes alone (a shortformer
            // model looks like a standard one: only its config tells them apart).
            let bytes = std::fs::read(dir.join("model.safetensors")).expect("read");
            let inferred = load_checkpoint_bytes(&bytes, None, None).expect("infer");
            let mut expected = Params {
                vocab: None,
                ..params.clone()
            };
            if c.pos == PosEmbed::Shortformer {
                expected.config.pos = PosEmbed::Standard;
            }
            assert_eq!(inferred, expected, "{name}");
            // Saving and loading again is lossless.
            let out = temp_dir(&format!("fixture-{name}"));
            let path = out.join("model.safetensors");
            save_checkpoint(&params, &path).expect("save");
            assert_eq!(
                load_checkpoint(&path, None).expect("reload"),
                params,
                "{name}"
            );
            let _ = std::fs::remove_dir_all(&out);
        }
    }
}
