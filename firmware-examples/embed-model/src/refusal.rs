//! Why a model is not embedded: every check of the build, as one message each, giving the
//! figures on both sides.

use std::fmt;
use std::path::PathBuf;

/// A model the build refuses, and why.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// `TINYLENS_BLOB` names no file (the places looked in).
    NoFile(Vec<PathBuf>),
    /// The file could not be read.
    Read(PathBuf, String),
    /// The kernel does not read the blob.
    Blob(PathBuf, tinylens::Error),
    /// The blob's format is not one this example runs.
    Format {
        /// The blob.
        blob: PathBuf,
        /// Its format.
        found: &'static str,
        /// The formats the example runs, as `tinylens quantize --format` spells them.
        runs: Vec<&'static str>,
    },
    /// Blob and code do not fit the flash.
    Flash {
        /// Bytes of the blob.
        blob: usize,
        /// Estimated bytes of code.
        code: usize,
        /// Bytes of flash in `memory.x`.
        flash: usize,
    },
    /// Decoding state and stack do not fit the RAM.
    Ram {
        /// Bytes of decoding state.
        state: usize,
        /// What the state is (`Config::int_state_bytes()` or `Config::state_bytes()`).
        what: &'static str,
        /// Bytes kept for the stack and the firmware's other statics.
        reserve: usize,
        /// Bytes of RAM in `memory.x`.
        ram: usize,
    },
    /// `memory.x` does not give a region's length.
    Memory(&'static str),
    /// An environment variable that is not valid.
    Variable(&'static str, String),
    /// The blob has no vocabulary, and the transcript prints tokens as text.
    NoVocab,
    /// The prompt has no tokens.
    EmptyPrompt,
    /// A character of `TINYLENS_PROMPT` that no vocabulary entry starts with.
    OutOfVocab {
        /// The character.
        found: char,
        /// Its byte offset in the prompt.
        at: usize,
    },
    /// An id of `TINYLENS_TOKENS` that is not below `d_vocab`.
    TokenId {
        /// The id.
        id: u32,
        /// Its place in the list, from 0.
        index: usize,
        /// The model's vocabulary size.
        d_vocab: usize,
    },
    /// Prompt and generated tokens need more positions than the model's context.
    Context {
        /// Prompt tokens.
        prompt: usize,
        /// Tokens to generate.
        new_tokens: usize,
        /// The model's `n_ctx`.
        n_ctx: usize,
    },
    /// No prompt was given, and the demo's does not suit the model: why.
    DemoPrompt(Box<Refusal>),
    /// More attribution terms than the demo prints.
    Terms {
        /// The model's `Term::count`.
        count: usize,
        /// The most the demo handles.
        max: usize,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoFile(tried) => {
                let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
                write!(f, "TINYLENS_BLOB names no file (looked for {})", tried.join(" and "))
            }
            Refusal::Read(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            Refusal::Blob(path, e) => write!(f, "{} is not a blob the kernel reads: {e}", path.display()),
            Refusal::Format { blob, found, runs } => write!(
                f,
                "{} is in format {found}, but this example runs {} blobs (make one with `tinylens quantize CHECKPOINT -o MODEL.{}.tlb --format {}`)",
                blob.display(),
                runs.join(" or "),
                runs[0],
                runs[0]
            ),
            Refusal::Flash { blob, code, flash } => write!(
                f,
                "the model does not fit the flash: the blob takes {blob} bytes and the code about {code} more, {} bytes, but memory.x gives FLASH {flash} bytes",
                blob + code
            ),
            Refusal::Ram { state, what, reserve, ram } => write!(
                f,
                "the model does not fit the RAM: its decoding state takes {state} bytes ({what}) and the stack and other statics about {reserve} more, {} bytes, but memory.x gives RAM {ram} bytes (a shorter context, `tinylens train --n-ctx`, needs less)",
                state + reserve
            ),
            Refusal::Memory(region) => write!(f, "memory.x gives no LENGTH for the {region} region"),
            Refusal::Variable(name, why) => write!(f, "{name}: {why}"),
            Refusal::NoVocab => f.write_str(
                "the blob has no vocabulary, and the transcript prints tokens as text (quantize a checkpoint that has a vocab.json)",
            ),
            Refusal::EmptyPrompt => f.write_str("the prompt has no tokens"),
            Refusal::OutOfVocab { found, at } => write!(
                f,
                "the prompt has {found:?} at byte {at}, which begins no token of the model's vocabulary"
            ),
            Refusal::TokenId { id, index, d_vocab } => write!(
                f,
                "TINYLENS_TOKENS: token {index} is id {id}, but the model's vocabulary has {d_vocab} tokens (ids 0 to {})",
                d_vocab - 1
            ),
            Refusal::Context { prompt, new_tokens, n_ctx } => write!(
                f,
                "the prompt's {prompt} tokens and the {new_tokens} generated (TINYLENS_NEW_TOKENS) take {} positions, more than the model's context of {n_ctx}",
                prompt + new_tokens - 1
            ),
            Refusal::DemoPrompt(why) => write!(
                f,
                "no prompt given, and the demo's does not suit this model ({why}): set TINYLENS_PROMPT=\"text\" or TINYLENS_TOKENS=\"1,2,3\""
            ),
            Refusal::Terms { count, max } => write!(
                f,
                "the model's attribution has {count} terms, more than the {max} the demo prints"
            ),
        }
    }
}
