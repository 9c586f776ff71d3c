//! What the commands feed a model: prompts and token ids checked against it, token files,
//! random sequences, and greedy generation through the KV cache. Every command uses these;
//! this module uses no command.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tinylens::{Config, Model};

use crate::tokenize::{encode, parse_ids, show};
use crate::trace::check_finite;

/// Where the tokens of a run come from.
pub enum Input {
    /// Token ids.
    Tokens(String),
    /// Text, encoded with the model's vocabulary.
    Prompt(String),
}

impl Input {
    /// `--tokens` or `--prompt`, as clap guarantees one of them (`--tokens` wins).
    pub fn from_flags(tokens: Option<String>, prompt: Option<String>) -> Input {
        match (tokens, prompt) {
            (Some(t), _) => Input::Tokens(t),
            (None, Some(p)) => Input::Prompt(p),
            (None, None) => unreachable!("clap requires one of --tokens, --prompt"),
        }
    }
}

/// The vocabulary of a loaded model, as owned strings.
pub fn vocab_of(model: &Model<'_>) -> Option<Vec<String>> {
    model
        .vocab()
        .map(|v| v.iter().map(str::to_string).collect())
}

/// Shows a token for messages.
pub fn token_label(model: &Model<'_>, id: u32) -> String {
    show(vocab_of(model).as_deref(), id)
}

/// A token named by a flag: its text in the model's vocabulary, else its id (`12` or `#12`)
/// below `d_vocab`.
pub fn token_arg(model: &Model<'_>, text: &str, flag: &str) -> Result<u32> {
    let d_vocab = model.config().d_vocab;
    if let Some(i) = vocab_of(model).and_then(|v| v.iter().position(|t| t == text)) {
        return Ok(i as u32);
    }
    match text.strip_prefix('#').unwrap_or(text).parse::<u32>() {
        Ok(id) if (id as usize) < d_vocab => Ok(id),
        Ok(id) => bail!("{flag} {id} is out of range: the model has d_vocab = {d_vocab}"),
        Err(_) => bail!("{flag} {text:?} is neither a token of the vocabulary nor a token id"),
    }
}

/// The token ids of `input`, checked against the model: at most `n_ctx` of them, each below
/// `d_vocab`.
pub fn tokens_of(model: &Model<'_>, input: &Input) -> Result<Vec<u32>> {
    let cfg = model.config();
    let tokens = match input {
        Input::Tokens(list) => parse_ids(list)?,
        Input::Prompt(text) => match vocab_of(model) {
            Some(v) => encode(&v, text)?,
            None => bail!("this model has no vocabulary: give --tokens instead of --prompt"),
        },
    };
    if tokens.len() > cfg.n_ctx {
        bail!(
            "the prompt is {} tokens long, longer than the model's context n_ctx = {}",
            tokens.len(),
            cfg.n_ctx
        );
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= cfg.d_vocab) {
        bail!(
            "token {bad} is out of range: the model has d_vocab = {}",
            cfg.d_vocab
        );
    }
    Ok(tokens)
}

/// Reads token sequences: one sequence per line, ids separated by commas or spaces; empty
/// lines and lines starting with `#` are skipped.
pub fn read_tokens_file(path: &Path) -> Result<Vec<Vec<u32>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let ids = parse_ids(&line.replace(char::is_whitespace, ","))
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        out.push(ids);
    }
    if out.is_empty() {
        bail!("{} has no token sequences", path.display());
    }
    Ok(out)
}

/// Checks that every sequence has 1 to `n_ctx` tokens, each below `d_vocab`; errors name the
/// sequence as `{what} {number}` (counted from 1).
pub fn check_sequences(cfg: &Config, sequences: &[Vec<u32>], what: &str) -> Result<()> {
    for (i, s) in sequences.iter().enumerate() {
        if s.is_empty() || s.len() > cfg.n_ctx {
            bail!(
                "{what} {} has {} tokens; it needs 1 to n_ctx = {}",
                i + 1,
                s.len(),
                cfg.n_ctx
            );
        }
        if let Some(&t) = s.iter().find(|&&t| t as usize >= cfg.d_vocab) {
            bail!(
                "{what} {} has token {t}, out of range (d_vocab = {})",
                i + 1,
                cfg.d_vocab
            );
        }
    }
    Ok(())
}

/// Deterministic random sequences of length `len` over `d_vocab` tokens (xorshift64*).
pub fn random_sequences(n: usize, len: usize, d_vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..n)
        .map(|_| (0..len).map(|_| (next() % d_vocab as u64) as u32).collect())
        .collect()
}

/// The most sequences a command runs (`validate --random`, `heads --seqs`, text windows).
pub const MAX_SEQUENCES: usize = 10_000;

/// The longest generated sequence (random validation and calibration sequences): a model with
/// a longer context is measured on its first `MAX_GENERATED_LEN` positions, and longer inputs
/// come from a file. It bounds time and memory by what is asked, not by what `n_ctx` claims.
pub const MAX_GENERATED_LEN: usize = 512;

/// The length of generated sequences for a model of context `n_ctx`, and a note to print when
/// it is shorter than the context.
pub fn generated_len(n_ctx: usize) -> (usize, Option<String>) {
    let len = n_ctx.min(MAX_GENERATED_LEN);
    let note = (len < n_ctx).then(|| {
        format!(
            "(generated sequences are {len} tokens long, the model's n_ctx is {n_ctx}: \
             positions past {len} are not exercised; give a token file for longer ones)"
        )
    });
    (len, note)
}

/// Refuses a count of sequences past [`MAX_SEQUENCES`] or zero, naming the flag.
pub fn check_count(n: usize, flag: &str) -> Result<()> {
    if n == 0 || n > MAX_SEQUENCES {
        bail!("{flag} {n}: expected 1 to {MAX_SEQUENCES} sequences");
    }
    Ok(())
}

/// The sequences a model is measured on (`validate`, and with a file `heads`).
#[derive(Clone, Debug)]
pub enum Sequences {
    /// Token sequences, one per line (`--tokens-file`).
    TokensFile(PathBuf),
    /// A text, tokenized with the model's vocabulary and cut into windows of `n_ctx`, at most
    /// [`MAX_GENERATED_LEN`] tokens (`--text`).
    Text(PathBuf),
    /// `n` random sequences of length `n_ctx`, at most [`MAX_GENERATED_LEN`] (`--random`,
    /// `--seed`).
    Random {
        /// How many.
        n: usize,
        /// The seed of [`random_sequences`].
        seed: u64,
    },
}

impl Sequences {
    /// The token sequences for a model of config `cfg` with vocabulary `vocab`.
    pub fn load(&self, cfg: &Config, vocab: Option<&[String]>) -> Result<Vec<Vec<u32>>> {
        match self {
            Sequences::TokensFile(path) => {
                let seqs = read_tokens_file(path)?;
                check_sequences(cfg, &seqs, "sequence")
                    .with_context(|| format!("in {}", path.display()))?;
                Ok(seqs)
            }
            Sequences::Text(path) => {
                let Some(vocab) = vocab else {
                    bail!("--text needs a vocabulary, and the model has none: use --tokens-file");
                };
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let ids = encode(vocab, &text)
                    .with_context(|| format!("cannot tokenize {}", path.display()))?;
                let (len, note) = generated_len(cfg.n_ctx);
                let all = ids.len().div_ceil(len);
                let windows: Vec<Vec<u32>> = ids
                    .chunks(len)
                    .take(MAX_SEQUENCES)
                    .map(|w| w.to_vec())
                    .collect();
                println!(
                    "{}: {} tokens, {} windows of up to {len} tokens{}",
                    path.display(),
                    ids.len(),
                    windows.len(),
                    if all > windows.len() {
                        format!(" (the first {MAX_SEQUENCES} of {all})")
                    } else {
                        String::new()
                    }
                );
                if let Some(note) = note {
                    println!("{note}");
                }
                Ok(windows)
            }
            Sequences::Random { n, seed } => {
                check_count(*n, "--random")?;
                let (len, note) = generated_len(cfg.n_ctx);
                if let Some(note) = note {
                    println!("{note}");
                }
                Ok(random_sequences(*n, len, cfg.d_vocab, *seed))
            }
        }
    }
}

/// Greedy generation through the KV cache: prefill once, then one `step` per new token, up
/// to `n` tokens or the end of the context. Returns the new tokens.
pub fn generate(model: &Model<'_>, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    let mut arena = vec![0.0f32; model.config().state_len()];
    let mut decoder = tinylens::Decoder::new(model, &mut arena)?;
    let logits = decoder.prefill(prompt)?;
    check_finite(logits, prompt.len().saturating_sub(1))?;
    let mut next = tinylens::argmax(logits);
    let mut out = Vec::new();
    for _ in 0..n.min(model.config().n_ctx.saturating_sub(prompt.len())) {
        out.push(next);
        let logits = decoder.step(next)?;
        check_finite(logits, prompt.len() + out.len() - 1)?;
        next = tinylens::argmax(logits);
    }
    Ok(out)
}
