//! The checkpoints, vocabularies and configs people have: oversized safetensors headers,
//! HuggingFace `vocab.json` / `tokenizer.json` / `config.json`, files that are not safetensors
//! at all. Each case goes through `load_checkpoint` on files in a temp dir, as the commands
//! read them, and checks the value or the exact message.

use std::path::{Path, PathBuf};
use std::process::Command;

use tinylens::{Config, Norm, PosEmbed};
use tinylens_cli::import::{
    load_checkpoint, save_checkpoint, ImportError, MAX_HEADER_BYTES, MAX_TENSORS,
};
use tinylens_cli::params::{LayerParams, LnParams, Params};

/// One layer, two heads of width 2, d_model 4, five tokens, n_ctx 3, LayerNorm eps 1e-5.
fn tiny_config() -> Config {
    Config {
        n_layers: 1,
        n_heads: 2,
        d_model: 4,
        d_head: 2,
        d_vocab: 5,
        n_ctx: 3,
        norm: Norm::LayerNorm { eps: 1e-5 },
        pos: PosEmbed::Standard,
    }
}

/// `n` distinct small values, so a mix-up of tensors shows.
fn ramp(n: usize, start: f32) -> Vec<f32> {
    (0..n).map(|i| start + 0.01 * i as f32).collect()
}

/// A model of shape `tiny_config()` without a vocabulary.
fn tiny_params() -> Params {
    let c = tiny_config();
    let qkv = c.n_heads * c.d_model * c.d_head;
    let hd = c.n_heads * c.d_head;
    let ln = || LnParams {
        w: ramp(c.d_model, 1.0),
        b: ramp(c.d_model, 0.0),
    };
    Params {
        config: c,
        vocab: None,
        w_e: ramp(c.d_vocab * c.d_model, -0.1),
        w_pos: Some(ramp(c.n_ctx * c.d_model, 0.2)),
        layers: vec![LayerParams {
            ln1: Some(ln()),
            w_q: ramp(qkv, 0.1),
            w_k: ramp(qkv, -0.2),
            w_v: ramp(qkv, 0.3),
            b_q: ramp(hd, 0.0),
            b_k: ramp(hd, 0.1),
            b_v: ramp(hd, 0.2),
            w_o: ramp(qkv, -0.3),
            b_o: ramp(c.d_model, 0.05),
        }],
        ln_final: Some(ln()),
        w_u: ramp(c.d_model * c.d_vocab, 0.4),
        b_u: ramp(c.d_vocab, 0.0),
    }
}

/// A fresh, empty directory for one test.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tinylens-import-inputs-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// `tiny_params()` saved in a fresh directory; returns the `model.safetensors` path.
fn tiny_checkpoint(tag: &str) -> PathBuf {
    let path = temp_dir(tag).join("model.safetensors");
    save_checkpoint(&tiny_params(), &path).expect("save");
    path
}

/// Loads `path` expecting an error.
fn load_err(path: &Path) -> ImportError {
    match load_checkpoint(path, None) {
        Ok(_) => panic!("{} loaded, expected an error", path.display()),
        Err(e) => e,
    }
}

/// Runs the binary with `args`, expecting failure; returns its stderr.
fn cli_err(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tinylens"))
        .args(args)
        .output()
        .expect("run tinylens");
    assert!(!out.status.success(), "tinylens {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A safetensors file of `header` (any bytes) and `data`, with its length field `len`.
fn forged(len: u64, header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut bytes = len.to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(data);
    bytes
}

// ------------------------------------------------------------------------------------------------
// 1. Header and tensor-count caps
// ------------------------------------------------------------------------------------------------

#[test]
fn a_header_length_past_the_cap_is_refused_before_reading_it() {
    let path = temp_dir("header-cap").join("model.safetensors");
    // A length field claiming 90 MB in a 24-byte file.
    std::fs::write(&path, forged(90_000_000, b"{}", b"")).expect("write");
    let err = load_err(&path);
    assert!(
        matches!(err, ImportError::HeaderTooLarge { bytes: 90_000_000, cap } if cap == MAX_HEADER_BYTES),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "not a valid safetensors file: the header is 90000000 bytes, more than the \
         16777216-byte cap"
    );
    // Just inside the cap the length is checked against the file, as before.
    let len = MAX_HEADER_BYTES as u64;
    std::fs::write(&path, forged(len, b"{}", b"")).expect("write");
    let err = load_err(&path);
    assert!(matches!(err, ImportError::NotSafetensors(_)), "{err}");
    assert!(err.to_string().contains("exceeds the file size"), "{err}");
}

#[test]
fn a_header_with_too_many_tensors_is_refused_before_parsing() {
    let entry = r#""t":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"#;
    let count = MAX_TENSORS + 1;
    let mut header = String::with_capacity(entry.len() * count + 2);
    header.push('{');
    for _ in 0..count {
        header.push_str(entry);
    }
    // Not even valid JSON (a trailing comma, repeated names): the count comes first.
    header.push('}');
    let path = temp_dir("tensor-cap").join("model.safetensors");
    let bytes = forged(header.len() as u64, header.as_bytes(), b"");
    assert!(bytes.len() < MAX_HEADER_BYTES);
    std::fs::write(&path, bytes).expect("write");
    let start = std::time::Instant::now();
    let err = load_err(&path);
    assert!(
        matches!(err, ImportError::TooManyTensors { count: c, cap } if c == count && cap == MAX_TENSORS),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "not a valid safetensors file: the header lists 100001 tensors, more than the cap of \
         100000"
    );
    assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
}

#[test]
fn the_header_cap_reaches_the_user_through_inspect() {
    let path = temp_dir("header-cap-cli").join("model.safetensors");
    std::fs::write(&path, forged(u64::MAX, b"", b"")).expect("write");
    let stderr = cli_err(&["inspect", path.to_str().expect("utf-8 path")]);
    assert!(
        stderr.contains(&format!(
            "the header is {} bytes, more than the 16777216-byte cap",
            u64::MAX
        )),
        "{stderr}"
    );
}

#[test]
fn a_saved_checkpoint_still_loads() {
    let path = tiny_checkpoint("roundtrip");
    let loaded = load_checkpoint(&path, None).expect("load");
    assert_eq!(loaded, tiny_params());
}

// ------------------------------------------------------------------------------------------------
// 2. A HuggingFace `{"token": id}` vocab.json
// ------------------------------------------------------------------------------------------------

/// `tiny_checkpoint(tag)` with `vocab` written as its `vocab.json`.
fn with_vocab_json(tag: &str, vocab: &str) -> PathBuf {
    let path = tiny_checkpoint(tag);
    std::fs::write(path.with_file_name("vocab.json"), vocab).expect("write vocab.json");
    path
}

#[test]
fn a_dict_vocab_is_read_by_id() {
    let path = with_vocab_json("dict-vocab", r#"{"c": 2, "a": 0, " ": 4, "b": 1, "ab": 3}"#);
    let loaded = load_checkpoint(&path, None).expect("load");
    let expected: Vec<String> = ["a", "b", "c", "ab", " "].map(String::from).to_vec();
    assert_eq!(loaded.vocab, Some(expected));
    assert_eq!(loaded.w_e, tiny_params().w_e);
}

#[test]
fn a_byte_level_dict_vocab_is_kept_as_written_with_a_note() {
    let vocab = r#"{"a": 0, "\u0120b": 1, "c": 2, "d": 3, "e": 4}"#;
    let path = with_vocab_json("byte-level-dict", vocab);
    let loaded = tinylens_cli::import::load_checkpoint_noted(&path, None).expect("load");
    assert_eq!(
        loaded.params.vocab.as_ref().map(|v| v[1].as_str()),
        Some("\u{120}b")
    );
    assert_eq!(
        loaded.notes,
        [
            "vocab.json: the tokens look like GPT-2's byte-level alphabet (\"Ġ\" for a space) and \
          are kept as written; put the model's tokenizer.json beside the checkpoint instead of \
          vocab.json to have them read as text"
        ]
    );
    // A plain dict gives no note.
    let path = with_vocab_json("plain-dict", r#"{"a": 0, " b": 1, "c": 2, "d": 3, "e": 4}"#);
    let loaded = tinylens_cli::import::load_checkpoint_noted(&path, None).expect("load");
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
}

#[test]
fn a_dict_vocab_with_bad_ids_is_refused_by_name() {
    let cases = [
        (
            r#"{"a": 0, "b": 1, "c": 2, "d": 3, "e": 5}"#,
            "vocab.json gives token \"e\" id 5, but the model has d_vocab = 5 (ids 0..5)",
        ),
        (
            r#"{"a": 0, "b": 1, "c": 2, "d": 3, "e": 3}"#,
            "vocab.json gives id 3 to two tokens, \"d\" and \"e\"",
        ),
        (
            r#"{"a": 0, "b": 1, "c": 2, "e": 4}"#,
            "vocab.json has no token with id 3 (the model has d_vocab = 5: every id 0..5 needs \
             one)",
        ),
        (
            r#"{"a": 0, "b": 1, "c": 2, "d": 3, "e": -4}"#,
            "invalid vocab.json: token \"e\" has id -4, expected a non-negative integer",
        ),
        (
            r#"["a", "b", 3, "d", "e"]"#,
            "invalid vocab.json: entry 2 is 3, expected a string",
        ),
        (
            r#""abcde""#,
            "invalid vocab.json: expected a JSON array of token strings or an object \
             {\"token\": id}",
        ),
    ];
    for (i, (vocab, message)) in cases.into_iter().enumerate() {
        let err = load_err(&with_vocab_json(&format!("bad-dict-{i}"), vocab));
        assert_eq!(err.to_string(), message, "{vocab}");
    }
    let err = load_err(&with_vocab_json(
        "dup-dict",
        r#"{"a":0,"b":1,"c":1,"d":3,"e":4}"#,
    ));
    assert!(
        matches!(&err, ImportError::DuplicateTokenId { id: 1, first, second, .. }
            if first == "b" && second == "c"),
        "{err}"
    );
}

#[test]
fn a_token_longer_than_a_blob_stores_is_named_by_id() {
    let long = "x".repeat(256);
    let vocab = serde_json::json!(["a", "b", "c", long, "e"]).to_string();
    let err = load_err(&with_vocab_json("long-token", &vocab));
    assert!(
        matches!(
            err,
            ImportError::TokenTooLong {
                id: 3,
                bytes: 256,
                cap: 255,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "vocab.json: token 3 is 256 bytes long, more than the 255 bytes a blob stores per token"
    );
    // 255 bytes fit.
    let vocab = serde_json::json!(["a", "b", "c", "x".repeat(255), "e"]).to_string();
    let loaded = load_checkpoint(&with_vocab_json("long-ok", &vocab), None).expect("load");
    assert_eq!(loaded.vocab.map(|v| v[3].len()), Some(255));
}

// ------------------------------------------------------------------------------------------------
// 3. A HuggingFace tokenizer.json
// ------------------------------------------------------------------------------------------------

/// `tiny_checkpoint(tag)` with `tokenizer` written as its `tokenizer.json` (and no vocab.json).
fn with_tokenizer(tag: &str, tokenizer: &serde_json::Value) -> PathBuf {
    let path = tiny_checkpoint(tag);
    let text = tokenizer.to_string();
    std::fs::write(path.with_file_name("tokenizer.json"), text).expect("write tokenizer.json");
    path
}

/// A GPT-2 style byte-level BPE tokenizer of five tokens: `a`, `Ġb` (" b"), `Ã©` ("é"),
/// `âĢ` (the first two bytes of a three-byte character) and the special `<|endoftext|>`.
fn byte_level_tokenizer() -> serde_json::Value {
    serde_json::json!({
        "version": "1.0",
        "added_tokens": [{"id": 4, "content": "<|endoftext|>", "special": true}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true},
        "model": {
            "type": "BPE",
            "vocab": {"a": 0, "\u{120}b": 1, "\u{c3}\u{a9}": 2, "\u{e2}\u{122}": 3},
            "merges": ["\u{120} b", "\u{c3} \u{a9}", "\u{e2} \u{122}"]
        }
    })
}

#[test]
fn a_byte_level_tokenizer_json_becomes_text_tokens_with_a_note() {
    let path = with_tokenizer("bpe", &byte_level_tokenizer());
    let loaded = tinylens_cli::import::load_checkpoint_noted(&path, None).expect("load");
    let expected: Vec<String> = ["a", " b", "é", "<0xE2><0x80>", "<|endoftext|>"]
        .map(String::from)
        .to_vec();
    assert_eq!(loaded.params.vocab, Some(expected));
    assert_eq!(
        loaded.notes,
        [
            "tokenizer.json: the blob carries the BPE model's 4 tokens as text; encoding on the \
             device is greedy longest match over them and ignores its 3 merges, which is exact \
             for a character-level vocabulary and an approximation for BPE: prompts may split \
             into other ids than the tokenizer gives",
            "tokenizer.json: 1 tokens are pieces of multi-byte characters, not text; the blob \
             has their bytes escaped as <0xNN> (the first is token 3, \"<0xE2><0x80>\")",
        ]
    );
    // A vocab.json beside it wins.
    std::fs::write(
        path.with_file_name("vocab.json"),
        r#"["q","r","s","t","u"]"#,
    )
    .expect("write");
    let loaded = tinylens_cli::import::load_checkpoint_noted(&path, None).expect("load");
    assert_eq!(
        loaded.params.vocab.map(|v| v.concat()),
        Some("qrstu".to_string())
    );
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
}

#[test]
fn sentencepiece_and_wordpiece_tokenizers_decode_their_markers() {
    let unigram = serde_json::json!({
        "model": {"type": "Unigram", "vocab": [
            ["<unk>", 0.0], ["\u{2581}the", -1.0], ["s", -2.0], ["<0x0A>", 0.0], ["<0xE2>", 0.0]
        ]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]}
    });
    let loaded = load_checkpoint(&with_tokenizer("unigram", &unigram), None).expect("load");
    let expected: Vec<String> = ["<unk>", " the", "s", "\n", "<0xE2>"]
        .map(String::from)
        .to_vec();
    assert_eq!(loaded.vocab, Some(expected));

    let wordpiece = serde_json::json!({
        "model": {"type": "WordPiece", "continuing_subword_prefix": "##",
                  "vocab": {"[UNK]": 0, "play": 1, "##ing": 2, "a": 3, "##b": 4}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true}
    });
    let loaded = load_checkpoint(&with_tokenizer("wordpiece", &wordpiece), None).expect("load");
    let expected: Vec<String> = ["[UNK]", "play", "ing", "a", "b"]
        .map(String::from)
        .to_vec();
    assert_eq!(loaded.vocab, Some(expected));
}

#[test]
fn a_bad_tokenizer_json_is_refused_by_name() {
    let mut outside = byte_level_tokenizer();
    outside["model"]["vocab"] = serde_json::json!({"a": 0, "b": 1, "c": 2, "\u{20ac}": 3});
    let mut short = byte_level_tokenizer();
    short["added_tokens"] = serde_json::json!([]);
    let mut clash = byte_level_tokenizer();
    clash["model"]["vocab"]["x"] = serde_json::json!(2);
    let cases = [
        (
            outside,
            "invalid tokenizer.json: token 3 \"€\" has '€', which is not a byte-level BPE \
             character (the decoder is ByteLevel)",
        ),
        (
            short,
            "tokenizer.json has no token with id 4 (the model has d_vocab = 5: every id 0..5 \
             needs one)",
        ),
        (
            serde_json::json!({"version": "1.0"}),
            "invalid tokenizer.json: no \"model\" object",
        ),
    ];
    for (i, (tokenizer, message)) in cases.into_iter().enumerate() {
        let err = load_err(&with_tokenizer(&format!("bad-tokenizer-{i}"), &tokenizer));
        assert_eq!(err.to_string(), message);
    }
    // Which of the two comes first depends on the JSON map's order.
    let err = load_err(&with_tokenizer("clash", &clash)).to_string();
    assert!(
        [
            "tokenizer.json gives id 2 to two tokens, \"é\" and \"x\"",
            "tokenizer.json gives id 2 to two tokens, \"x\" and \"é\"",
        ]
        .contains(&err.as_str()),
        "{err}"
    );
}

#[test]
fn the_tokenizer_note_reaches_the_user_through_inspect() {
    let path = with_tokenizer("bpe-cli", &byte_level_tokenizer());
    let out = Command::new(env!("CARGO_BIN_EXE_tinylens"))
        .args(["inspect", path.to_str().expect("utf-8 path")])
        .output()
        .expect("run tinylens");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: tokenizer.json: the blob carries the BPE model's 4 tokens"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("vocab:     5 tokens"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ------------------------------------------------------------------------------------------------
// 4. HuggingFace config.json keys, unknown keys
// ------------------------------------------------------------------------------------------------

/// `tiny_checkpoint(tag)` with `config` (JSON text) as its `config.json`.
fn with_config(tag: &str, config: &str) -> PathBuf {
    let path = tiny_checkpoint(tag);
    std::fs::write(path.with_file_name("config.json"), config).expect("write config.json");
    path
}

#[test]
fn huggingface_config_keys_are_read_as_transformer_lens_ones() {
    // GPT-2's key names, in alphabetical order so either JSON map order gives the same note.
    let config = r#"{
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "layer_norm_epsilon": 0.001,
        "model_type": "gpt2",
        "n_ctx": 3,
        "n_embd": 4,
        "n_head": 2,
        "n_layer": 1,
        "n_positions": 3,
        "scale_attn_weights": true,
        "vocab_size": 5
    }"#;
    let path = with_config("hf-config", config);
    let loaded = tinylens_cli::import::load_checkpoint_noted(&path, None).expect("load");
    let expected = Config {
        norm: Norm::LayerNorm { eps: 1e-3 },
        ..tiny_config()
    };
    assert_eq!(loaded.params.config, expected);
    assert_eq!(
        loaded.notes,
        [
            "config.json: ignored keys with no effect on an attention-only model: \
          activation_function, architectures, model_type"
        ]
    );
    // A HuggingFace size that disagrees with the tensors is a shape error.
    let path = with_config(
        "hf-config-wide",
        &config.replace("\"n_embd\": 4", "\"n_embd\": 8"),
    );
    let err = load_err(&path);
    assert_eq!(
        err.to_string(),
        "shape mismatch: d_model / n_heads = 8 / 2 is 4, but blocks.0.attn.W_Q has shape \
         [2, 4, 2], heads 2 wide"
    );
}

#[test]
fn a_key_given_both_ways_with_different_values_names_both() {
    let cases = [
        (
            r#"{"d_model": 4, "n_embd": 8}"#,
            "invalid model config: config.json gives d_model = 4 and n_embd = 8, which disagree",
        ),
        (
            r#"{"n_positions": 3, "max_position_embeddings": 6}"#,
            "invalid model config: config.json gives n_positions = 3 and \
             max_position_embeddings = 6, which disagree",
        ),
        (
            r#"{"eps": 1e-5, "layer_norm_epsilon": 1e-3}"#,
            "invalid model config: config.json gives eps = 0.00001 and layer_norm_epsilon = 0.001, \
             which disagree",
        ),
    ];
    for (i, (config, message)) in cases.into_iter().enumerate() {
        let err = load_err(&with_config(&format!("both-ways-{i}"), config));
        assert_eq!(err.to_string(), message, "{config}");
    }
    // The same value both ways is fine (1e-05 and 0.00001 are one number).
    let path = with_config(
        "both-ways-same",
        r#"{"eps": 1e-05, "layer_norm_eps": 0.00001}"#,
    );
    let loaded = load_checkpoint(&path, None).expect("load");
    assert_eq!(loaded.config, tiny_config());
}

#[test]
fn unknown_keys_that_may_change_the_numbers_are_refused_the_rest_noted() {
    let refused = [
        (r#"{"epsilon": 0.001}"#, "epsilon = 0.001"),
        (r#"{"ln_eps": 0.001}"#, "ln_eps = 0.001"),
        (r#"{"logit_scale": 2.0}"#, "logit_scale = 2.0"),
    ];
    for (i, (config, key)) in refused.into_iter().enumerate() {
        let err = load_err(&with_config(&format!("unknown-{i}"), config));
        assert_eq!(
            err.to_string(),
            format!(
                "unsupported model: config.json has {key}, a key tinylens does not read and \
                 which may change the model's numbers (remove it if it has no effect)"
            ),
            "{config}"
        );
    }
    let known = [
        (
            r#"{"rms_norm_eps": 0.001}"#,
            "RMSNorm (config.json has rms_norm_eps = 0.001)",
        ),
        (r#"{"rope_theta": 10000}"#, "rotary positional embeddings"),
        (
            r#"{"uses_rms_norm": true}"#,
            "RMSNorm (uses_rms_norm: true)",
        ),
        (
            r#"{"scale_attn_weights": false}"#,
            "scale_attn_weights: false",
        ),
    ];
    for (i, (config, needle)) in known.into_iter().enumerate() {
        let err = load_err(&with_config(&format!("refused-{i}"), config));
        assert!(
            matches!(err, ImportError::Unsupported(_)),
            "{config}: {err}"
        );
        assert!(err.to_string().contains(needle), "{config}: {err}");
    }
    let path = with_config("unknown-harmless", r#"{"comment": "trained on a laptop"}"#);
    let loaded = tinylens_cli::import::load_checkpoint_noted(&path, None).expect("load");
    assert_eq!(loaded.notes, ["config.json: ignored unknown keys: comment"]);
}

#[test]
fn a_transformer_lens_config_gives_no_notes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tl/l2_ln");
    let loaded = tinylens_cli::import::load_checkpoint_noted(&dir.join("model.safetensors"), None)
        .expect("load");
    assert_eq!(loaded.notes, Vec::<String>::new());
    assert_eq!(loaded.params.config.d_vocab, 40);
}

// ------------------------------------------------------------------------------------------------
// 5. Files that are not safetensors, d_head that disagrees with the tensors
// ------------------------------------------------------------------------------------------------

#[test]
fn other_kinds_of_file_say_what_they_are_and_what_to_do() {
    let dir = temp_dir("kinds");
    let blob = tinylens_cli::blobio::blob_from_params(&tiny_params()).expect("blob");
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "model.pt",
            b"PK\x03\x04archive/data.pkl".to_vec(),
            "a PyTorch file (torch.save's zip format)",
        ),
        (
            "model.safetensors",
            b"\x80\x02\x8a\x0alegacy".to_vec(),
            "a PyTorch or pickle file (torch.save's legacy format)",
        ),
        (
            "model.bin",
            b"something else".to_vec(),
            "a PyTorch file, by its extension",
        ),
        (
            "model.ckpt",
            forged(u64::MAX, b"", b""),
            "a PyTorch file, by its extension",
        ),
        ("model.tlb", blob, "a tinylens blob"),
    ];
    for (name, bytes, what) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let err = load_err(&path);
        assert!(
            matches!(err, ImportError::WrongFileKind { what: w, .. } if w == what),
            "{name}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("not a safetensors file: it is {what}; ")),
            "{message}"
        );
        let hint = if name.ends_with(".tlb") {
            "it is already a blob"
        } else {
            "safetensors.torch import save_file"
        };
        assert!(message.contains(hint), "{name}: {message}");
    }
    // A real checkpoint under a .bin name still loads: the bytes decide first.
    let path = dir.join("real.bin");
    std::fs::copy(tiny_checkpoint("kinds-real"), &path).expect("copy");
    assert_eq!(load_checkpoint(&path, None).expect("load"), tiny_params());
}

#[test]
fn a_pytorch_file_given_to_quantize_says_how_to_convert_it() {
    let dir = temp_dir("kinds-cli");
    let path = dir.join("model.pt");
    std::fs::write(&path, b"PK\x03\x04archive/data.pkl").expect("write");
    let out = dir.join("out.tlb");
    let stderr = cli_err(&[
        "quantize",
        path.to_str().expect("utf-8 path"),
        "-o",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(
        stderr.contains(
            "not a safetensors file: it is a PyTorch file (torch.save's zip format); convert it \
             in Python with `from safetensors.torch import save_file;"
        ),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn a_d_head_that_disagrees_with_the_tensors_is_a_shape_mismatch() {
    // A config edited to d_head 4 that still has the attn_scale sqrt(2) of the real heads:
    // the heads' width is the problem, not the scale.
    let mut config = tinylens_cli::import::config_to_json(&tiny_config());
    config["d_head"] = serde_json::json!(4);
    config["attn_scale"] = serde_json::json!(2f64.sqrt());
    let err = load_err(&with_config("d-head", &config.to_string()));
    assert!(
        matches!(&err, ImportError::DHeadMismatch { d_head: 4, shape, .. } if shape == &[2, 4, 2]),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "shape mismatch: config.json's d_head is 4, but blocks.0.attn.W_Q has shape [2, 4, 2], \
         heads 2 wide"
    );
}

#[test]
fn a_long_token_in_a_tokenizer_json_is_named_by_id() {
    let mut tokenizer = byte_level_tokenizer();
    tokenizer["added_tokens"][0]["content"] = serde_json::json!("<".repeat(300));
    let err = load_err(&with_tokenizer("long-tokenizer", &tokenizer));
    assert_eq!(
        err.to_string(),
        "tokenizer.json: token 4 is 300 bytes long, more than the 255 bytes a blob stores per \
         token"
    );
}
