//! `tinylens demo`: the embedded demo-2l model completes a repeated invented name, and the
//! attribution shows which head did it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tinylens::{Config, Model};

use crate::analysis::plot::attention::{page, Patterns};
use crate::commands::{run_model, vocab_of, Input};
use crate::report::{last_position_terms, term_name, top_k};
use crate::tokenize::{encode, show};
use crate::trace::trace;

/// Where `demo` writes the attention page: the system temp directory.
pub fn attention_page_path() -> PathBuf {
    std::env::temp_dir().join("tinylens-demo.html")
}

/// The head with the largest attribution term for `token` at the last position, its term, and
/// the position it attends to most from there with that weight.
pub struct Driver {
    /// Layer.
    pub layer: usize,
    /// Head.
    pub head: usize,
    /// Its attribution term.
    pub term: f32,
    /// Where it attends most from the last position.
    pub attends_to: usize,
    /// With this attention weight.
    pub weight: f32,
}

/// The head that drives the prediction of `token` at the last position of `tokens`.
pub fn driving_head(model: &Model<'_>, tokens: &[u32], token: u32) -> Result<Driver> {
    let cfg: Config = *model.config();
    let t = trace(model, tokens)?;
    let terms = last_position_terms(&t, &cfg, token);
    // Terms 2.. are the heads, layer by layer (see `report::last_position_terms`).
    let n = cfg.n_layers * cfg.n_heads;
    let (k, &term) = terms[2..2 + n]
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .expect("a model has a head");
    let (layer, head) = (k / cfg.n_heads, k % cfg.n_heads);
    let s = t.seq;
    // hook_pattern of the layer: [n_heads, seq, seq]; the last query row of this head.
    let row_start = (head * s + (s - 1)) * s;
    let row = &t.pattern[layer][row_start..row_start + s];
    let attends_to = tinylens::argmax(row) as usize;
    Ok(Driver {
        layer,
        head,
        term,
        attends_to,
        weight: row[attends_to],
    })
}

/// The demo on `model` and `prompt`: prediction, attribution, the head that drives it, a greedy
/// continuation, and the attention page written to `html`.
pub fn story_demo(model: &Model<'_>, prompt: &str, html: &Path) -> Result<()> {
    let cfg = *model.config();
    let vocab = vocab_of(model).unwrap_or_default();
    let tokens = encode(&vocab, prompt)?;
    run_model(model, &Input::Prompt(prompt.to_string()), 5, None)?;
    let t = trace(model, &tokens)?;
    let best = top_k(&t.logits[(t.seq - 1) * cfg.d_vocab..], 1)[0];
    let d = driving_head(model, &tokens, best)?;
    let context = |p: usize| -> String {
        let from = p.saturating_sub(6);
        let text: String = tokens[from..=p]
            .iter()
            .map(|&i| vocab[i as usize].as_str())
            .collect();
        format!("...{text}")
    };
    println!(
        "\nthe largest term is {} ({:+.3}): from the last token it attends {:.2} to position {} \
         ({} in {:?}), the token after the earlier occurrence of what precedes the prediction. \
         That is an induction head: it copies what followed last time.",
        term_name(&cfg, 2 + d.layer * cfg.n_heads + d.head),
        d.term,
        d.weight,
        d.attends_to,
        show(Some(&vocab), tokens[d.attends_to]),
        context(d.attends_to),
    );
    crate::commands::generate(model, prompt, 8)?;
    let texts: Vec<String> = tokens.iter().map(|&i| vocab[i as usize].clone()).collect();
    let patterns = Patterns {
        tokens: &texts,
        n_layers: cfg.n_layers,
        n_heads: cfg.n_heads,
        pattern: &t.pattern,
    };
    std::fs::write(
        html,
        page("tinylens demo: attention of every head", &patterns),
    )
    .with_context(|| format!("cannot write {}", html.display()))?;
    println!(
        "\nwrote the attention of every head on this story to {}",
        html.display()
    );
    Ok(())
}
