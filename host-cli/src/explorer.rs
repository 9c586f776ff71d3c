//! The explorer: one self-contained HTML page that runs the model in the browser. The page
//! carries the kernel compiled to WebAssembly (`web/`, built by `cargo xtask web` into
//! `assets/explorer.wasm`), the blob and its vocabulary, all inline (base64 and JSON): no
//! server, no network, it opens from `file://`.
//!
//! What the page computes itself, in the module, on every change of the prompt: the run
//! through the KV cache with the heads the reader ablated, the top next tokens, the
//! attribution of a chosen token, every head's attention, the head scores on the prompt, the
//! greedy continuation and the circuit rows of a token. What needs the host's analysis code is
//! computed here, once, and embedded as data (the page says so): the head scores on repeated
//! random tokens (`tinylens heads`), the composition scores of a model with two layers or more,
//! and the skip-trigram table of a one-layer model (`tinylens circuits`).

use anyhow::{bail, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use tinylens::{Config, Model, NumberFormat};

use crate::analysis::circuits::{head_tables, rows_to_show, TopTable};
use crate::analysis::composition::Mode;
use crate::analysis::heads::{heads, repeated_sequences};
use crate::analysis::plot::svg::escape;
use crate::analysis::HeadId;
use crate::params::Params;
use crate::report::{describe, term_name};

/// The kernel as a WebAssembly module (`cargo xtask web` writes it).
pub const EXPLORER_WASM: &[u8] = include_bytes!("../assets/explorer.wasm");
/// The page's script: plain JavaScript, no framework, no build step.
const SCRIPT: &str = include_str!("../assets/explorer.js");
/// The page's style.
const STYLE: &str = include_str!("../assets/explorer.css");

/// Repeated random sequences behind the embedded head scores (as `tinylens heads` uses).
pub const HEAD_SEQUENCES: usize = 8;
/// Their seed.
pub const HEAD_SEED: u64 = 0;
/// Source tokens per head in the skip-trigram table of a one-layer model.
const TRIGRAM_ROWS: usize = 8;
/// Tokens per cell of that table.
const TRIGRAM_TOKENS: usize = 4;

/// The prompt the page opens with.
pub enum StartPrompt {
    /// Text, encoded in the page with the model's vocabulary.
    Text(String),
    /// Token ids.
    Ids(Vec<u32>),
}

/// Everything the page needs, as the CLI writes it.
pub struct Explorer<'a> {
    /// The page's title.
    pub title: String,
    /// The blob (f32).
    pub blob: &'a [u8],
    /// Its parameters, for the host analyses.
    pub params: &'a Params,
    /// The prompt the page opens with.
    pub prompt: StartPrompt,
}

/// Refuses a model the page cannot run: the module carries the `f32` path only, and the
/// circuit rows read `f32` weights.
pub fn check_format(model: &Model<'_>) -> Result<()> {
    if model.format() != NumberFormat::F32 {
        bail!(
            "explore runs f32 blobs; this one is {}: give its checkpoint (.safetensors) or an \
             f32 blob (tinylens quantize MODEL -o model.tlb --format f32)",
            model.format().name()
        );
    }
    Ok(())
}

/// A repeated random sequence for a model without a prompt: `half` tokens twice, so that an
/// induction head shows itself.
pub fn repeated_prompt(cfg: &Config) -> Vec<u32> {
    let half = (cfg.n_ctx / 2).clamp(1, 12);
    repeated_sequences(1, half, cfg.d_vocab, 7)
        .pop()
        .unwrap_or_default()
}

/// The names of the attribution terms, in `Term::nth` order.
fn term_names(cfg: &Config) -> Vec<String> {
    (0..tinylens::Term::count(cfg))
        .map(|k| term_name(cfg, k))
        .collect()
}

/// The head scores on repeated random tokens, by `tinylens heads`' code.
fn head_scores(p: &Params, model: &Model<'_>) -> Result<Value> {
    let c = &p.config;
    let half = (c.n_ctx.saturating_sub(1) / 2).clamp(1, crate::commands::heads::MAX_HALF);
    let sequences = repeated_sequences(HEAD_SEQUENCES, half, c.d_vocab, HEAD_SEED);
    let r = heads(p, model, sequences)?;
    let composition = (c.n_layers >= 2).then(|| {
        let mut scores = serde_json::Map::new();
        for (mode, values) in &r.composition {
            scores.insert(mode.name().to_string(), json!(values));
        }
        json!({ "scores": scores, "baseline": r.baseline, "modes": Mode::ALL.map(Mode::name) })
    });
    Ok(json!({
        "sequences": HEAD_SEQUENCES,
        "seed": HEAD_SEED,
        "length": 2 * half,
        "prev": r.scores.prev_diag,
        "duplicate": r.scores.duplicate_diag,
        "induction": r.scores.induction_diag,
        "copying": r.copying,
        "composition": composition,
    }))
}

/// The skip-trigram table of every head of a one-layer model: per head the source tokens with
/// the strongest OV rows, each with its top destination tokens (QK column) and top out tokens
/// (OV row), as `tinylens circuits` prints them.
fn skip_trigrams(p: &Params) -> Result<Value> {
    let ids = |t: &TopTable, row: u32| -> Vec<u32> {
        t.row(row as usize)
            .take(TRIGRAM_TOKENS)
            .map(|(i, _)| i)
            .collect()
    };
    let mut heads = Vec::new();
    for id in HeadId::all(&p.config) {
        let t = head_tables(p, id, TRIGRAM_TOKENS, false)?;
        let rows: Vec<Value> = rows_to_show(&t.ov, TRIGRAM_ROWS)
            .into_iter()
            .map(|s| {
                json!({
                    "source": s,
                    "destinations": ids(&t.qk_by_source, s),
                    "outs": ids(&t.ov, s),
                })
            })
            .collect();
        heads.push(json!({ "head": id.to_string(), "rows": rows }));
    }
    Ok(Value::Array(heads))
}

/// The data the page reads, as JSON.
fn data(e: &Explorer<'_>, model: &Model<'_>) -> Result<Value> {
    let p = e.params;
    let c = &p.config;
    let prompt = match &e.prompt {
        StartPrompt::Text(t) => json!({ "text": t }),
        StartPrompt::Ids(ids) => json!({ "ids": ids }),
    };
    Ok(json!({
        "title": e.title,
        "model": describe(c),
        "config": {
            "n_layers": c.n_layers, "n_heads": c.n_heads, "d_model": c.d_model,
            "d_head": c.d_head, "d_vocab": c.d_vocab, "n_ctx": c.n_ctx,
        },
        "terms": term_names(c),
        "vocab": p.vocab,
        "prompt": prompt,
        "host": head_scores(p, model)?,
        "skip_trigrams": if c.n_layers == 1 { skip_trigrams(p)? } else { Value::Null },
    }))
}

/// The whole page.
pub fn page(e: &Explorer<'_>) -> Result<String> {
    let model = Model::from_blob(e.blob)?;
    check_format(&model)?;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    // `</` cannot appear inside a script element.
    let json = data(e, &model)?.to_string().replace("</", "<\\/");
    Ok(format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style></head>
<body>
<h1>{title}</h1>
<p class="note" id="model"></p>
<p class="note">The model runs in this page: the tinylens kernel, compiled to WebAssembly, on the
blob embedded below, through its KV cache, on every change of the prompt. Nothing is loaded
from a network. The head scores on repeated random tokens, the composition scores and the
skip-trigram table were computed by <code>tinylens explore</code> when it wrote the page
(the host analyses of <code>tinylens heads</code> and <code>tinylens circuits</code>); everything
else is computed here.</p>
<noscript><p>This page runs the model with JavaScript and WebAssembly; enable them to use it.</p></noscript>
<main id="app"></main>
<script type="application/json" id="data">{json}</script>
<script type="application/octet-stream" id="blob">{blob}</script>
<script type="application/octet-stream" id="wasm">{wasm}</script>
<script>{SCRIPT}</script>
</body></html>
"#,
        title = escape(&e.title),
        blob = b64(e.blob),
        wasm = b64(EXPLORER_WASM),
    ))
}
