//! The prompt a firmware runs, as token ids found when building: `TINYLENS_PROMPT` tokenized
//! with the blob's vocabulary (the same longest-match tokenizer the host uses), or the ids of
//! `TINYLENS_TOKENS`, each checked against the model.

use common::transcript::{MAX_NEW, MAX_TERMS};
use common::DemoError;
use tinylens::blob::Vocab;
use tinylens::{Config, Term};

use crate::refusal::Refusal;

/// What the user asked to run.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    /// Text, tokenized with the blob's vocabulary.
    Text(String),
    /// Token ids.
    Tokens(Vec<u32>),
}

/// A prompt checked against a model: its text for the transcript and its ids.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// The text the transcript prints (for ids, their vocabulary entries joined).
    pub text: String,
    /// The ids the firmware prefills.
    pub tokens: Vec<u32>,
}

/// Parses `TINYLENS_TOKENS`: ids separated by commas or spaces.
pub fn parse_tokens(list: &str) -> Result<Vec<u32>, Refusal> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.parse().map_err(|_| {
                Refusal::Variable("TINYLENS_TOKENS", format!("{w:?} is not a token id"))
            })
        })
        .collect()
}

/// Checks `prompt` and `new_tokens` against the model of `cfg` and `vocab`: every id in the
/// vocabulary, every character of text covered by it, and the prompt and the generated tokens
/// within the context.
pub fn check(
    prompt: &Prompt,
    new_tokens: usize,
    cfg: &Config,
    vocab: Option<Vocab<'_>>,
) -> Result<Checked, Refusal> {
    let vocab = vocab.ok_or(Refusal::NoVocab)?;
    let checked = match prompt {
        Prompt::Text(text) => Checked {
            text: text.clone(),
            tokens: tokenize(text, vocab)?,
        },
        Prompt::Tokens(tokens) => Checked {
            text: text_of(tokens, vocab, cfg.d_vocab)?,
            tokens: tokens.clone(),
        },
    };
    check_lengths(checked.tokens.len(), new_tokens, cfg)?;
    Ok(checked)
}

fn tokenize(text: &str, vocab: Vocab<'_>) -> Result<Vec<u32>, Refusal> {
    let mut tokens = vec![0; text.len()];
    match common::tokenize(vocab, text, &mut tokens) {
        Ok(n) => {
            tokens.truncate(n);
            Ok(tokens)
        }
        Err(DemoError::Prompt(at)) => Err(Refusal::OutOfVocab {
            found: text[at..].chars().next().unwrap_or('?'),
            at,
        }),
        Err(e) => Err(Refusal::Variable("TINYLENS_PROMPT", e.to_string())),
    }
}

/// The vocabulary entries of `tokens` joined, each id checked below `d_vocab`.
fn text_of(tokens: &[u32], vocab: Vocab<'_>, d_vocab: usize) -> Result<String, Refusal> {
    let mut text = String::new();
    for (index, &id) in tokens.iter().enumerate() {
        match vocab.text(id) {
            Some(piece) if (id as usize) < d_vocab => text.push_str(piece),
            _ => return Err(Refusal::TokenId { id, index, d_vocab }),
        }
    }
    Ok(text)
}

fn check_lengths(prompt: usize, new_tokens: usize, cfg: &Config) -> Result<(), Refusal> {
    if prompt == 0 {
        return Err(Refusal::EmptyPrompt);
    }
    if new_tokens == 0 || new_tokens > MAX_NEW {
        return Err(Refusal::Variable(
            "TINYLENS_NEW_TOKENS",
            format!("{new_tokens} is not between 1 and {MAX_NEW}"),
        ));
    }
    // The decoder holds the prompt and every generated token but the last.
    if prompt + new_tokens - 1 > cfg.n_ctx {
        return Err(Refusal::Context {
            prompt,
            new_tokens,
            n_ctx: cfg.n_ctx,
        });
    }
    let count = Term::count(cfg);
    if count > MAX_TERMS {
        return Err(Refusal::Terms {
            count,
            max: MAX_TERMS,
        });
    }
    Ok(())
}
