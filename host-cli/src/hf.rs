//! HuggingFace's ways of writing a vocabulary: a `{"token": id}` map (`vocab.json`), and the
//! `model.vocab` of a `tokenizer.json`, whose byte-level BPE tokens are mapped back to text.
//!
//! A blob carries a vocabulary as a list of token strings indexed by id, and the device
//! encodes text by greedy longest match over it ([`crate::tokenize::encode`]). These functions
//! turn each HuggingFace form into that list, checking that the ids are exactly
//! `0..d_vocab`, each once.

use serde_json::{Map, Value};

use crate::import::ImportError;

/// A `{"token": id, ...}` map as the list of tokens indexed by id. The ids must be exactly
/// `0..d_vocab`, each once: an id at or past `d_vocab`, an id given twice or one left out is an
/// error naming it (and the tokens involved). `file` names the file in errors.
pub fn vocab_from_ids(
    map: &Map<String, Value>,
    d_vocab: usize,
    file: &'static str,
) -> Result<Vec<String>, ImportError> {
    let mut slots: Vec<Option<&str>> = vec![None; d_vocab.min(map.len())];
    for (token, id) in map {
        let id = token_id(token, id, file)?;
        place_token(&mut slots, token, id, d_vocab, file)?;
    }
    collect_tokens(slots, d_vocab, file)
}

/// The id a vocabulary map gives `token`: a non-negative integer.
fn token_id(token: &str, id: &Value, file: &'static str) -> Result<usize, ImportError> {
    id.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| ImportError::InvalidJson {
            file,
            reason: format!("token {token:?} has id {id}, expected a non-negative integer"),
        })
}

/// Puts `token` at `id` in `slots` (which grows as needed up to `d_vocab`), refusing an id out
/// of range or already taken.
fn place_token<'a>(
    slots: &mut Vec<Option<&'a str>>,
    token: &'a str,
    id: usize,
    d_vocab: usize,
    file: &'static str,
) -> Result<(), ImportError> {
    if id >= d_vocab {
        return Err(ImportError::TokenIdOutOfRange {
            file,
            token: token.to_string(),
            id,
            d_vocab,
        });
    }
    if id >= slots.len() {
        slots.resize(id + 1, None);
    }
    match slots[id] {
        Some(first) => Err(ImportError::DuplicateTokenId {
            file,
            id,
            first: first.to_string(),
            second: token.to_string(),
        }),
        None => {
            slots[id] = Some(token);
            Ok(())
        }
    }
}

/// The filled slots as a list of `d_vocab` tokens, or the first id that has none.
fn collect_tokens(
    mut slots: Vec<Option<&str>>,
    d_vocab: usize,
    file: &'static str,
) -> Result<Vec<String>, ImportError> {
    slots.resize(d_vocab, None);
    slots
        .into_iter()
        .enumerate()
        .map(|(id, token)| {
            token
                .map(str::to_string)
                .ok_or(ImportError::MissingTokenId { file, id, d_vocab })
        })
        .collect()
}
