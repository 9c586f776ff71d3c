//! HuggingFace's ways of writing a vocabulary: a `{"token": id}` map (`vocab.json`), and the
//! `model.vocab` of a `tokenizer.json`, whose byte-level BPE tokens are mapped back to text.
//!
//! A blob carries a vocabulary as a list of token strings indexed by id, and the device
//! encodes text by greedy longest match over it ([`crate::tokenize::encode`]). These functions
//! turn each HuggingFace form into that list, checking that the ids are exactly
//! `0..d_vocab`, each once.

use serde_json::{Map, Value};

use super::ImportError;

/// A `{"token": id, ...}` map as the list of tokens indexed by id. The ids must be exactly
/// `0..d_vocab`, each once: an id at or past `d_vocab`, an id given twice or one left out is an
/// error naming it (and the tokens involved). `file` names the file in errors.
pub fn vocab_from_ids(
    map: &Map<String, Value>,
    d_vocab: usize,
    file: &'static str,
) -> Result<Vec<String>, ImportError> {
    let mut slots = Vec::new();
    for (token, id) in map {
        let id = token_id(token, id, file)?;
        place_token(&mut slots, token.clone(), id, d_vocab, file)?;
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

/// Refuses an id at or past `d_vocab`, growing `slots` to hold `id` otherwise.
fn make_room(
    slots: &mut Vec<Option<String>>,
    token: &str,
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
    Ok(())
}

/// Puts `token` at `id` in `slots`, refusing an id out of range or already taken.
fn place_token(
    slots: &mut Vec<Option<String>>,
    token: String,
    id: usize,
    d_vocab: usize,
    file: &'static str,
) -> Result<(), ImportError> {
    make_room(slots, &token, id, d_vocab, file)?;
    match &slots[id] {
        Some(first) => Err(ImportError::DuplicateTokenId {
            file,
            id,
            first: first.clone(),
            second: token,
        }),
        None => {
            slots[id] = Some(token);
            Ok(())
        }
    }
}

/// The filled slots as a list of `d_vocab` tokens, or the first id that has none.
fn collect_tokens(
    mut slots: Vec<Option<String>>,
    d_vocab: usize,
    file: &'static str,
) -> Result<Vec<String>, ImportError> {
    slots.resize(d_vocab, None);
    slots
        .into_iter()
        .enumerate()
        .map(|(id, token)| token.ok_or(ImportError::MissingTokenId { file, id, d_vocab }))
        .collect()
}

// ------------------------------------------------------------------------------------------------
// tokenizer.json
// ------------------------------------------------------------------------------------------------

/// The file name in errors about a `tokenizer.json`.
const TOKENIZER: &str = "tokenizer.json";

/// A `tokenizer.json`'s vocabulary as a blob carries it, and what the user should be told.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenizerVocab {
    /// The text of each token id, `0..d_vocab`.
    pub tokens: Vec<String>,
    /// Warnings for the user: how the device will encode with this vocabulary, and what of the
    /// tokenizer could not be carried over.
    pub notes: Vec<String>,
}

/// One step of a tokenizer's decoder that changes a single token's text.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// GPT-2's byte-level alphabet back to bytes, then to text (`Ġ` -> space).
    ByteLevel,
    /// Every `from` becomes `to` (`Metaspace`'s `▁` -> space, or a `Replace` decoder).
    Replace {
        /// The text replaced.
        from: String,
        /// Its replacement.
        to: String,
    },
    /// `<0xNN>` byte tokens below 0x80 become that character.
    ByteFallback,
    /// WordPiece's continuation prefix (`##`) is dropped.
    StripPrefix(String),
    /// A BPE end-of-word suffix (`</w>`) becomes a space.
    Suffix(String),
}

/// Reads a HuggingFace `tokenizer.json`: `model.vocab` (a `{"token": id}` map for BPE,
/// WordPiece and WordLevel, a `[[piece, score], ...]` list for Unigram) plus `added_tokens`,
/// each model token decoded to its text by the tokenizer's `decoder` (byte-level BPE's `Ġ`
/// becomes a space, `▁` a space, ...). The ids must be exactly `0..d_vocab`, each once.
///
/// A byte-level token that is not whole UTF-8 characters (a piece of a multi-byte character)
/// is written with its bytes escaped as `<0xNN>`, the form SentencePiece byte tokens already
/// have, and counted in a note: a blob stores text, and the ids stay where they are.
pub fn vocab_from_tokenizer_json(
    text: &str,
    d_vocab: usize,
) -> Result<TokenizerVocab, ImportError> {
    let root: Value = serde_json::from_str(text).map_err(|e| bad_tokenizer(e.to_string()))?;
    let model = root
        .get("model")
        .and_then(Value::as_object)
        .ok_or_else(|| bad_tokenizer("no \"model\" object".to_string()))?;
    let kind = model.get("type").and_then(Value::as_str).unwrap_or("BPE");
    let mut notes = Vec::new();
    let steps = decoder_steps(&root, &mut notes);
    let raw = model_tokens(model, kind)?;
    let n_model = raw.len();
    let mut slots = Vec::new();
    let mut escaped = Vec::new();
    for (token, id) in raw {
        let (text, was_escaped) = decode_token(&token, &steps, id)?;
        if was_escaped {
            escaped.push(id);
        }
        place_token(&mut slots, text, id, d_vocab, TOKENIZER)?;
    }
    add_special_tokens(&root, &mut slots, d_vocab)?;
    let tokens = collect_tokens(slots, d_vocab, TOKENIZER)?;
    notes.insert(0, encoding_note(kind, n_model, model));
    if let Some(&first) = escaped.first() {
        notes.push(format!(
            "{TOKENIZER}: {} tokens are pieces of multi-byte characters, not text; the blob \
             has their bytes escaped as <0xNN> (the first is token {first}, {:?})",
            escaped.len(),
            tokens[first]
        ));
    }
    Ok(TokenizerVocab { tokens, notes })
}

/// Shorthand for an [`ImportError::InvalidJson`] about `tokenizer.json`.
fn bad_tokenizer(reason: String) -> ImportError {
    ImportError::InvalidJson {
        file: TOKENIZER,
        reason,
    }
}

/// The note every imported tokenizer gets: the device does not run the tokenizer's algorithm.
fn encoding_note(kind: &str, n_tokens: usize, model: &Map<String, Value>) -> String {
    let merges = model
        .get("merges")
        .and_then(Value::as_array)
        .map_or(String::new(), |m| {
            format!(" and ignores its {} merges", m.len())
        });
    format!(
        "{TOKENIZER}: the blob carries the {kind} model's {n_tokens} tokens as text; encoding \
         on the device is greedy longest match over them{merges}, which is exact for a \
         character-level vocabulary and an approximation for {kind}: prompts may split into \
         other ids than the tokenizer gives"
    )
}

/// `model.vocab` as (token, id) pairs: a map for BPE, WordPiece and WordLevel, a list of
/// `[piece, score]` (id = position) for Unigram.
fn model_tokens(
    model: &Map<String, Value>,
    kind: &str,
) -> Result<Vec<(String, usize)>, ImportError> {
    match model.get("vocab") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(token, id)| Ok((token.clone(), token_id(token, id, TOKENIZER)?)))
            .collect(),
        Some(Value::Array(pieces)) => pieces
            .iter()
            .enumerate()
            .map(|(id, piece)| match piece.get(0).and_then(Value::as_str) {
                Some(token) => Ok((token.to_string(), id)),
                None => Err(bad_tokenizer(format!(
                    "model.vocab entry {id} is {piece}, expected [piece, score]"
                ))),
            })
            .collect(),
        _ => Err(bad_tokenizer(format!(
            "the {kind} model has no \"vocab\" map or list"
        ))),
    }
}

/// `added_tokens` (`[{"id": n, "content": "..."}]`): special tokens, kept as written. They
/// take the place of a model token with the same id, as in the tokenizer's own decoding.
fn add_special_tokens(
    root: &Value,
    slots: &mut Vec<Option<String>>,
    d_vocab: usize,
) -> Result<(), ImportError> {
    let Some(added) = root.get("added_tokens").and_then(Value::as_array) else {
        return Ok(());
    };
    for entry in added {
        let content = entry.get("content").and_then(Value::as_str);
        let (Some(content), Some(id)) = (content, entry.get("id")) else {
            return Err(bad_tokenizer(format!(
                "added_tokens entry {entry} has no \"id\" and \"content\""
            )));
        };
        let id = token_id(content, id, TOKENIZER)?;
        make_room(slots, content, id, d_vocab, TOKENIZER)?;
        slots[id] = Some(content.to_string());
    }
    Ok(())
}

/// The per-token steps of the tokenizer's decoder, in order. A `ByteLevel` pre-tokenizer
/// makes the vocabulary byte-level even without a decoder. Decoder steps that act on the
/// joined text only (`Fuse`, `Strip`) are skipped; unknown ones are skipped with a note.
fn decoder_steps(root: &Value, notes: &mut Vec<String>) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some(decoder) = root.get("decoder").filter(|d| !d.is_null()) {
        collect_steps(decoder, &mut steps, notes);
    }
    let byte_level_pre = root
        .get("pre_tokenizer")
        .is_some_and(|p| mentions_type(p, "ByteLevel"));
    if byte_level_pre && !steps.contains(&Step::ByteLevel) {
        steps.insert(0, Step::ByteLevel);
    }
    steps
}

/// Whether `value` or anything inside it is an object with `"type": kind`.
fn mentions_type(value: &Value, kind: &str) -> bool {
    match value {
        Value::Object(map) => {
            map.get("type").and_then(Value::as_str) == Some(kind)
                || map.values().any(|v| mentions_type(v, kind))
        }
        Value::Array(items) => items.iter().any(|v| mentions_type(v, kind)),
        _ => false,
    }
}

/// Appends the steps of one decoder (recursing into a `Sequence`).
fn collect_steps(decoder: &Value, steps: &mut Vec<Step>, notes: &mut Vec<String>) {
    let text = |key: &str, default: &str| {
        decoder
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    match decoder.get("type").and_then(Value::as_str).unwrap_or("") {
        "Sequence" => {
            for inner in decoder
                .get("decoders")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                collect_steps(inner, steps, notes);
            }
        }
        "ByteLevel" => steps.push(Step::ByteLevel),
        "Metaspace" => steps.push(Step::Replace {
            from: text("replacement", "\u{2581}"),
            to: " ".to_string(),
        }),
        "Replace" => match decoder.get("pattern").and_then(|p| p.get("String")) {
            Some(Value::String(from)) => steps.push(Step::Replace {
                from: from.clone(),
                to: text("content", ""),
            }),
            _ => notes.push(format!(
                "{TOKENIZER}: a Replace decoder with a regex pattern is not applied to the \
                 tokens"
            )),
        },
        "ByteFallback" => steps.push(Step::ByteFallback),
        "WordPiece" => steps.push(Step::StripPrefix(text("prefix", "##"))),
        "BPEDecoder" => steps.push(Step::Suffix(text("suffix", "</w>"))),
        "Fuse" | "Strip" => {}
        other => notes.push(format!(
            "{TOKENIZER}: the {other:?} decoder is not applied; its tokens are kept as written"
        )),
    }
}

/// The text of model token `id`, `token` as written, after `steps`; and whether bytes had to
/// be escaped.
fn decode_token(token: &str, steps: &[Step], id: usize) -> Result<(String, bool), ImportError> {
    let mut text = token.to_string();
    let mut escaped = false;
    for step in steps {
        text = match step {
            Step::ByteLevel => {
                let bytes = byte_level_bytes(&text, id)?;
                let (decoded, lossy) = escape_invalid_utf8(&bytes);
                escaped |= lossy;
                decoded
            }
            Step::Replace { from, to } if !from.is_empty() => text.replace(from.as_str(), to),
            Step::Replace { .. } => text,
            Step::ByteFallback => byte_fallback(&text).unwrap_or(text),
            Step::StripPrefix(prefix) => text
                .strip_prefix(prefix.as_str())
                .map_or(text.clone(), str::to_string),
            Step::Suffix(suffix) => match text.strip_suffix(suffix.as_str()) {
                Some(stem) => format!("{stem} "),
                None => text,
            },
        };
    }
    Ok((text, escaped))
}

/// `<0xNN>` with NN below 0x80 as that ASCII character (`<0x0A>` -> newline); `None` for
/// anything else, which stays as written.
fn byte_fallback(token: &str) -> Option<String> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    let byte = u8::from_str_radix(hex, 16).ok().filter(u8::is_ascii)?;
    Some(char::from(byte).to_string())
}

/// The byte a character of GPT-2's byte-level alphabet (`bytes_to_unicode`) stands for. The
/// printable bytes `!`..=`~`, `¡`..=`¬` and `®`..=`ÿ` stand for themselves; the other 68
/// bytes, in order (0x00..=0x20, 0x7F..=0xA0, 0xAD), take the characters from U+0100 on, so
/// space, 0x20, is `Ġ` U+0120 and newline `Ċ` U+010A.
fn byte_of_char(c: char) -> Option<u8> {
    let code = u32::from(c);
    if let Ok(byte) = u8::try_from(code) {
        return is_printable_byte(byte).then_some(byte);
    }
    let k = code.checked_sub(0x100)?;
    let byte = match k {
        0..=32 => k,
        33..=66 => 0x7F + (k - 33),
        67 => 0xAD,
        _ => return None,
    };
    u8::try_from(byte).ok()
}

/// Whether `tokens` look like a byte-level BPE vocabulary written in GPT-2's alphabet: some
/// token has `Ġ` (a space), and every character of every token is in the alphabet.
pub fn looks_byte_level(tokens: &[String]) -> bool {
    tokens.iter().any(|t| t.contains('\u{120}'))
        && tokens
            .iter()
            .all(|t| t.chars().all(|c| byte_of_char(c).is_some()))
}

/// Whether GPT-2's byte-level alphabet writes `byte` as the character of the same code.
fn is_printable_byte(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The bytes a byte-level token stands for; a character outside the alphabet is an error
/// naming the token.
fn byte_level_bytes(token: &str, id: usize) -> Result<Vec<u8>, ImportError> {
    token
        .chars()
        .map(|c| {
            byte_of_char(c).ok_or_else(|| {
                bad_tokenizer(format!(
                    "token {id} {token:?} has {c:?}, which is not a byte-level BPE character \
                     (the decoder is ByteLevel)"
                ))
            })
        })
        .collect()
}

/// `bytes` as text, each byte of an invalid UTF-8 sequence written `<0xNN>`; and whether any
/// was.
fn escape_invalid_utf8(bytes: &[u8]) -> (String, bool) {
    let mut text = String::new();
    let mut escaped = false;
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("<0x{byte:02X}>"));
            escaped = true;
        }
    }
    (text, escaped)
}

// ------------------------------------------------------------------------------------------------
// config.json keys
// ------------------------------------------------------------------------------------------------

/// HuggingFace `config.json` keys (GPT-2's, BERT's, Llama's, ...) and the TransformerLens key
/// each one means.
pub const CONFIG_ALIASES: [(&str, &str); 12] = [
    ("n_embd", "d_model"),
    ("hidden_size", "d_model"),
    ("n_head", "n_heads"),
    ("num_attention_heads", "n_heads"),
    ("n_layer", "n_layers"),
    ("num_hidden_layers", "n_layers"),
    ("head_dim", "d_head"),
    ("vocab_size", "d_vocab"),
    ("n_positions", "n_ctx"),
    ("max_position_embeddings", "n_ctx"),
    ("layer_norm_epsilon", "eps"),
    ("layer_norm_eps", "eps"),
];

/// HuggingFace keys that say nothing about an attention-only model's numbers: names, token
/// ids, dropout, the MLP's width and activation (the tensors say whether there is an MLP).
/// They are ignored with a note naming them.
pub const CONFIG_INERT: [&str; 23] = [
    "_name_or_path",
    "architectures",
    "model_type",
    "transformers_version",
    "torch_dtype",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "id2label",
    "label2id",
    "task_specific_params",
    "use_cache",
    "attn_pdrop",
    "embd_pdrop",
    "resid_pdrop",
    "attention_dropout",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "n_inner",
    "intermediate_size",
    "activation_function",
    "hidden_act",
    "reorder_and_upcast_attn",
];

/// HuggingFace keys for features tinylens does not run, and what each one means. Present
/// with any value other than "off" (null, false, or GPT-2's `scale_attn_weights: true`), they
/// refuse the model.
pub const CONFIG_REFUSED: [(&str, &str); 9] = [
    ("rms_norm_eps", "RMSNorm"),
    ("rope_theta", "rotary positional embeddings"),
    ("rope_scaling", "rotary positional embeddings"),
    ("rotary_pct", "rotary positional embeddings"),
    ("partial_rotary_factor", "rotary positional embeddings"),
    ("sliding_window", "sliding-window attention"),
    ("attn_logit_softcapping", "soft-capped attention scores"),
    ("final_logit_softcapping", "soft-capped logits"),
    ("alibi", "ALiBi positional biases"),
];

/// Whether two JSON values say the same thing (`1e-05` and `0.00001`, `32` and `32.0` do).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Rewrites every HuggingFace key of [`CONFIG_ALIASES`] in `obj` as its TransformerLens key.
/// Two keys for the same value that disagree (`d_model` 8 and `n_embd` 16) are an error naming
/// both.
pub fn apply_config_aliases(obj: &mut Map<String, Value>) -> Result<(), ImportError> {
    // Which key each TransformerLens value came from, for the error.
    let mut origin: Vec<(&str, &str)> = Vec::new();
    for (hf_key, tl_key) in CONFIG_ALIASES {
        let Some(value) = obj.remove(hf_key) else {
            continue;
        };
        if let Some(existing) = obj.get(tl_key) {
            if !same_value(existing, &value) {
                let first = origin
                    .iter()
                    .find(|(tl, _)| *tl == tl_key)
                    .map_or(tl_key, |(_, key)| key);
                return Err(ImportError::InvalidConfig(format!(
                    "config.json gives {first} = {existing} and {hf_key} = {value}, which \
                     disagree"
                )));
            }
        }
        origin.push((tl_key, hf_key));
        obj.insert(tl_key.to_string(), value);
    }
    Ok(())
}

/// Refuses a HuggingFace key of [`CONFIG_REFUSED`] that is set, or `scale_attn_weights:
/// false` (GPT-2's switch for dividing scores by sqrt(d_head)).
pub fn refuse_config_keys(obj: &Map<String, Value>) -> Result<(), ImportError> {
    for (key, what) in CONFIG_REFUSED {
        match obj.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(value) => {
                return Err(ImportError::Unsupported(format!(
                    "{what} (config.json has {key} = {value})"
                )))
            }
        }
    }
    if obj.get("scale_attn_weights") == Some(&Value::Bool(false)) {
        return Err(ImportError::Unsupported(
            "scale_attn_weights: false (attention scores must be divided by sqrt(d_head))"
                .to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPT-2's `bytes_to_unicode`, built as its Python source builds it.
    fn bytes_to_unicode() -> Vec<(u8, char)> {
        let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
            .chain(0xA1..=0xAC)
            .chain(0xAE..=0xFF)
            .collect();
        let mut chars = printable.clone();
        let mut n = 0;
        for b in 0..256 {
            if !printable.contains(&b) {
                printable.push(b);
                chars.push(256 + n);
                n += 1;
            }
        }
        printable
            .iter()
            .zip(&chars)
            .map(|(&b, &c)| (b as u8, char::from_u32(c).expect("char")))
            .collect()
    }

    #[test]
    fn byte_of_char_inverts_gpt2_bytes_to_unicode() {
        let table = bytes_to_unicode();
        assert_eq!(table.len(), 256);
        for (byte, c) in table {
            assert_eq!(byte_of_char(c), Some(byte), "{c:?}");
        }
        for c in ['\0', ' ', '\u{7f}', '\u{ad}', '\u{144}', '€'] {
            assert_eq!(byte_of_char(c), None, "{c:?}");
        }
        assert_eq!(byte_of_char('Ġ'), Some(b' '));
        assert_eq!(byte_of_char('Ċ'), Some(b'\n'));
    }

    #[test]
    fn invalid_utf8_is_escaped_byte_by_byte() {
        assert_eq!(
            escape_invalid_utf8(b"a\xe2\x80b"),
            ("a<0xE2><0x80>b".to_string(), true)
        );
        assert_eq!(
            escape_invalid_utf8("é".as_bytes()),
            ("é".to_string(), false)
        );
    }
}
