//! `tinylens demo`: the embedded demo-2l model completes a repeated invented name, and the
//! attribution shows which head did it.

use std::path::{Path, PathBuf};

use anyhow::Result;
use tinylens::{Config, Model};

use crate::analysis::plot::attention::{page, Patterns};
use crate::inputs::{generate, vocab_of};
use crate::report::{last_position_terms, print_prediction, term_name, top_k};
use crate::tokenize::{decode, show};
use crate::trace::{Attribution, Trace};

/// The demo model, embedded in the binary: `models/demo-2l` as an f32 blob.
pub const DEMO_BLOB: &[u8] = include_bytes!("../../assets/demo.tlb");
/// The demo prompt: a story opening in which an invented name comes back, cut inside it.
pub const DEMO_PROMPT: &str = "Mr and Mrs Durasoli, of number 4, Pivet Drive, were proud to say \
                               that they were perfectly normal. Mr Dura";

/// The demo's last line: where to go next.
pub const EXPLORE_HINT: &str = "to try other prompts and ablate heads in a browser: tinylens explore \
                                (writes explorer.html: the kernel as WebAssembly, one page, no server)";

/// Run the embedded demo model on a default prompt: prediction and per-head attribution.
#[derive(clap::Args)]
pub struct Args {
    /// Another prompt for the demo model.
    #[arg(long)]
    pub prompt: Option<String>,
}

/// `tinylens demo`: the embedded model on the default prompt.
pub fn run(args: Args) -> Result<()> {
    let blob = tinylens::writer::AlignedBytes::new(DEMO_BLOB);
    let model = Model::from_blob(blob.as_bytes())?;
    let prompt = args.prompt.as_deref().unwrap_or(DEMO_PROMPT);
    println!("tinylens demo: an attention-only transformer, run by the no_std kernel");
    println!(
        "(the embedded model is models/demo-2l: 2 layers trained by `tinylens train` on \
         generated stories whose invented names recur, new in every story: only an earlier \
         mention can tell how \"Dura...\" goes on)\n"
    );
    story_demo(&model, prompt, &attention_page_path())
}

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

/// The head that drives the prediction of `token` at the last position of the traced run `t`.
pub fn driving_head(t: &Trace, cfg: &Config, token: u32) -> Driver {
    let terms = last_position_terms(t, cfg, token);
    // Terms 2.. are the heads, layer by layer (see `report::last_position_terms`); a model
    // has at least one head.
    let n = cfg.n_layers * cfg.n_heads;
    let (k, term) = terms[2..2 + n]
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    let (layer, head) = (k / cfg.n_heads, k % cfg.n_heads);
    let s = t.seq;
    // hook_pattern of the layer: [n_heads, seq, seq]; the last query row of this head.
    let row_start = (head * s + (s - 1)) * s;
    let row = &t.pattern[layer][row_start..row_start + s];
    let attends_to = tinylens::argmax(row) as usize;
    Driver {
        layer,
        head,
        term,
        attends_to,
        weight: row[attends_to],
    }
}

/// The demo on `model` and `prompt`: prediction, attribution, the head that drives it, a greedy
/// continuation, and the attention page written to `html`.
pub fn story_demo(model: &Model<'_>, prompt: &str, html: &Path) -> Result<()> {
    let cfg = *model.config();
    let vocab = vocab_of(model).unwrap_or_default();
    let tokens = crate::inputs::tokens_of(model, &crate::inputs::Input::Prompt(prompt.into()))?;
    let t = print_prediction(model, Some(&vocab), &tokens, 5, Attribution::Last(None))?;
    let best = top_k(&t.logits[(t.seq - 1) * cfg.d_vocab..], 1)[0];
    let d = driving_head(&t, &cfg, best);
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
    let continuation = generate(model, &tokens, 8)?;
    println!(
        "\ngreedy continuation ({} steps on the KV cache): {:?} + {:?}",
        continuation.len(),
        prompt,
        decode(&vocab, &continuation)
    );
    let texts: Vec<String> = tokens.iter().map(|&i| vocab[i as usize].clone()).collect();
    let patterns = Patterns {
        tokens: &texts,
        n_layers: cfg.n_layers,
        n_heads: cfg.n_heads,
        pattern: &t.pattern,
    };
    crate::files::write(
        html,
        page("tinylens demo: attention of every head", &patterns, ""),
    )?;
    println!(
        "\nwrote the attention of every head on this story to {}",
        html.display()
    );
    println!("\n{EXPLORE_HINT}");
    Ok(())
}
