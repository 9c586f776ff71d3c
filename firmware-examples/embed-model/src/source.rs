//! The Rust a firmware includes for its model (`common::embed_model!()`): `CONFIG` as read
//! from the blob, `static MODEL` (blob, config, name, prompt) and the `State` arena type.

use std::fmt::Write;
use std::path::Path;

use tinylens::{Config, Norm};

/// What the generated file says.
pub struct Embedded<'a> {
    /// The blob file, absolute, for `include_blob!`.
    pub path: &'a Path,
    /// Its length in bytes.
    pub len: usize,
    /// Its config.
    pub config: Config,
    /// Its format's name.
    pub format: &'static str,
    /// Whether it runs on the integer decoder (state in `i32` words) or the float one.
    pub int: bool,
    /// The model's name.
    pub name: &'a str,
    /// The prompt's text and ids.
    pub prompt: &'a str,
    /// The prompt's ids.
    pub tokens: &'a [u32],
    /// Tokens to generate.
    pub new_tokens: usize,
}

/// The file's text.
pub fn rust(e: &Embedded<'_>) -> String {
    let (arena, len) = if e.int {
        ("IntArena", "int_state_len")
    } else {
        ("Arena", "state_len")
    };
    let tokens: Vec<String> = e.tokens.iter().map(u32::to_string).collect();
    let mut s = String::new();
    let _ = write!(
        s,
        "// Written by `embed-model` when building, from {path}: set TINYLENS_BLOB (and\n\
         // TINYLENS_PROMPT or TINYLENS_TOKENS) to embed another model.\n\
         \n\
         /// The embedded model's config, read from the blob's header when building.\n\
         const CONFIG: tinylens::Config = {config};\n\
         \n\
         /// The embedded model: `{name}` ({format}, {len} bytes) and the prompt it runs.\n\
         static MODEL: common::EmbeddedModel<'static> = common::EmbeddedModel {{\n    \
             blob: tinylens::include_blob!({path:?}),\n    \
             config: CONFIG,\n    \
             demo: common::Demo {{\n        \
                 model: {name:?},\n        \
                 prompt: {prompt:?},\n        \
                 tokens: Some(&[{tokens}]),\n        \
                 new_tokens: {new_tokens},\n    \
             }},\n\
         }};\n\
         \n\
         /// The decoding state, `CONFIG.{len_fn}()` elements, for a `static` (the heap example\n\
         /// sizes its state at run time instead).\n\
         #[allow(dead_code)]\n\
         type State = tinylens::{arena}<{{ CONFIG.{len_fn}() }}>;\n",
        path = e.path.display().to_string(),
        config = config(&e.config),
        name = e.name,
        format = e.format,
        len = e.len,
        prompt = e.prompt,
        tokens = tokens.join(", "),
        new_tokens = e.new_tokens,
        len_fn = len,
        arena = arena,
    );
    s
}

/// `cfg` as a Rust expression, `eps` bit for bit.
fn config(cfg: &Config) -> String {
    let norm = match cfg.norm {
        Norm::None => "tinylens::Norm::None".to_string(),
        Norm::LayerNorm { eps } => format!(
            "tinylens::Norm::LayerNorm {{ eps: f32::from_bits({:#010x}) }}",
            eps.to_bits()
        ),
    };
    format!(
        "tinylens::Config {{ n_layers: {}, n_heads: {}, d_model: {}, d_head: {}, d_vocab: {}, n_ctx: {}, norm: {norm}, pos: tinylens::PosEmbed::{:?} }}",
        cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab, cfg.n_ctx, cfg.pos
    )
}
