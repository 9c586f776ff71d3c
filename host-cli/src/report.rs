//! Tables for people: the model in one line, the top next tokens, and the per-head
//! attribution of a prediction.

use anyhow::Result;
use tinylens::{Config, Model, Norm, PosEmbed, Term};

use crate::tokenize::{decode, show};
use crate::trace::{trace_for, Attribution, Trace};

/// `2 layers x 4 heads, d_model 32, d_head 8, vocab 40, n_ctx 24, LayerNorm, standard pos`
pub fn describe(cfg: &Config) -> String {
    let norm = match cfg.norm {
        Norm::None => "no norm".to_string(),
        Norm::LayerNorm { eps } => format!("LayerNorm (eps {eps:e})"),
    };
    let pos = match cfg.pos {
        PosEmbed::Standard => "standard positions",
        PosEmbed::Shortformer => "shortformer positions",
        PosEmbed::None => "no positions",
    };
    format!(
        "{} layer{} x {} heads, d_model {}, d_head {}, vocab {}, n_ctx {}, {norm}, {pos}",
        cfg.n_layers,
        if cfg.n_layers == 1 { "" } else { "s" },
        cfg.n_heads,
        cfg.d_model,
        cfg.d_head,
        cfg.d_vocab,
        cfg.n_ctx
    )
}

/// Softmax of a row of logits, in f64.
pub fn probabilities(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&x| (x as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The ids of the `k` largest logits, largest first.
pub fn top_k(logits: &[f32], k: usize) -> Vec<u32> {
    top_k_by(logits.len(), k, |a, b| logits[a].total_cmp(&logits[b]))
}

/// The ids of the `k` largest of `n` values that `cmp` orders, largest first, the lowest id
/// among equals.
pub fn top_k_by(n: usize, k: usize, cmp: impl Fn(usize, usize) -> std::cmp::Ordering) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..n as u32).collect();
    ids.sort_by(|&a, &b| cmp(b as usize, a as usize).then(a.cmp(&b)));
    ids.truncate(k);
    ids
}

/// Prints the top `k` next tokens of the last position.
pub fn print_top_k(logits: &[f32], vocab: Option<&[String]>, k: usize) {
    let probs = probabilities(logits);
    println!("top {k} next tokens:");
    for (rank, id) in top_k(logits, k).into_iter().enumerate() {
        println!(
            "  {:>2}. {:<12} logit {:>8.3}   p {:.3}",
            rank + 1,
            show(vocab, id),
            logits[id as usize],
            probs[id as usize]
        );
    }
}

/// The name of attribution term `k`.
pub fn term_name(cfg: &Config, k: usize) -> String {
    match Term::nth(cfg, k) {
        Some(Term::Embed) => "direct path: W_E".into(),
        Some(Term::Pos) => "direct path: W_pos".into(),
        Some(Term::Head { layer, head }) => format!("head {layer}.{head}"),
        Some(Term::BiasO { layer }) => format!("b_O of layer {layer}"),
        Some(Term::Const) => match cfg.norm {
            Norm::None => "b_U".into(),
            Norm::LayerNorm { .. } => "b_U + ln_final.b W_U".into(),
        },
        None => format!("term {k}"),
    }
}

/// The contribution of every term to `logit[token]` at the last position of `trace`: the
/// terms a trace with [`Attribution::Last`] recorded for this token, or a column of the tables
/// of one with [`Attribution::Every`].
pub fn last_position_terms(trace: &Trace, cfg: &Config, token: u32) -> Vec<f32> {
    if trace.last_token == Some(token) {
        return trace.last_terms.clone();
    }
    let (l, h, v, s) = (cfg.n_layers, cfg.n_heads, cfg.d_vocab, trace.seq);
    let (p, t) = (s - 1, token as usize);
    let mut terms = vec![
        trace.dla_direct_embed[p * v + t],
        trace.dla_direct_pos[p * v + t],
    ];
    terms.extend((0..l * h).map(|k| trace.dla_heads[(k * s + p) * v + t]));
    terms.extend((0..l).map(|layer| trace.dla_bias_b_o[(layer * s + p) * v + t]));
    terms.push(trace.dla_bias_const[t]);
    terms
}

/// Prints the attribution of `logit[token]` at the last position, one bar per term.
pub fn print_attribution(trace: &Trace, cfg: &Config, vocab: Option<&[String]>, token: u32) {
    let terms = last_position_terms(trace, cfg, token);
    let logit = trace.logits[(trace.seq - 1) * cfg.d_vocab + token as usize];
    let how = match cfg.norm {
        Norm::None => "the residual stream is a sum, so the logit is too",
        Norm::LayerNorm { .. } => "exact split through the final LayerNorm, its scale frozen",
    };
    println!(
        "attribution of logit[{}] = {logit:.3} ({how}):",
        show(vocab, token)
    );
    let widest = terms.iter().fold(0.0f32, |a, t| a.max(t.abs())).max(1e-12);
    for (k, &value) in terms.iter().enumerate() {
        println!(
            "  {:<24} {value:>9.3}  {}",
            term_name(cfg, k),
            bar(value, widest, 24)
        );
    }
    let sum: f32 = terms.iter().sum();
    println!("  {:<24} {sum:>9.3}  (logit {logit:.3})", "sum");
}

/// Runs `model` on `tokens` with every hook and prints what `run` and `demo` show: the model,
/// the prompt, the `top` next tokens, and the attribution of the first of them. Returns the
/// trace, with the attribution `dla` asks for (at least the top prediction's).
pub fn print_prediction(
    model: &Model<'_>,
    vocab: Option<&[String]>,
    tokens: &[u32],
    top: usize,
    dla: Attribution,
) -> Result<Trace> {
    let cfg = *model.config();
    println!("model: {} ({})", describe(&cfg), model.format().name());
    match vocab {
        Some(v) => println!("prompt: {:?} ({} tokens)", decode(v, tokens), tokens.len()),
        None => println!("prompt: {} tokens {:?}", tokens.len(), tokens),
    }
    let dla = match dla {
        Attribution::Every => dla,
        _ => Attribution::Last(None),
    };
    let t = trace_for(model, tokens, dla)?;
    let last = &t.logits[(t.seq - 1) * cfg.d_vocab..];
    print_top_k(last, vocab, top.min(cfg.d_vocab));
    let best = top_k(last, 1)[0];
    println!();
    print_attribution(&t, &cfg, vocab, best);
    Ok(t)
}

/// A signed bar: `+████` or `-██`, `width` characters for the largest magnitude.
pub fn bar(value: f32, largest: f32, width: usize) -> String {
    let n = ((value.abs() / largest) * width as f32).round() as usize;
    let sign = if value < 0.0 { '-' } else { '+' };
    format!("{sign}{}", "█".repeat(n))
}
