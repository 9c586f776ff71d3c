//! The analysis subcommands of `tinylens`: `circuits`, `heads`, `ablate` and `plot`, one
//! function each, from file paths to printed tables and written files.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tinylens::model::Weights;
use tinylens::{Model, Norm};

use super::ablate::{ablate, ablation_tensors, print_ablation};
use super::circuits::{circuits, circuits_tensors, print_circuits, CircuitsOptions};
use super::heads::{heads, heads_tensors, print_heads, repeated_sequences, HeadsReport};
use super::plot::attention::{page, Patterns};
use super::plot::svg::{bars, document, Heatmap};
use super::{write_tensors, HeadId};
use crate::blobio::{load_model, LoadedModel};
use crate::commands::{read_tokens_file, vocab_of, Input};
use crate::params::{LayerParams, LnParams, Params};
use crate::report::{describe, last_position_terms, term_name, top_k};
use crate::tokenize::{encode, parse_ids, show};
use crate::trace::trace;

/// The parameters of a loaded model: the checkpoint's, or read back from the blob.
pub fn params_of(loaded: &LoadedModel, model: &Model<'_>) -> Result<Params> {
    if let Some(p) = &loaded.params {
        return Ok(p.clone());
    }
    let cfg = *model.config();
    let w = match model.weights() {
        Weights::F32(w) => *w,
        #[allow(unreachable_patterns)]
        _ => bail!(
            "circuit analysis reads f32 weights; this blob is {}",
            model.format().name()
        ),
    };
    let ln = |l: Option<tinylens::model::LnWeights<'_>>| {
        l.map(|l| LnParams {
            w: l.w.to_vec(),
            b: l.b.to_vec(),
        })
    };
    Ok(Params {
        config: cfg,
        vocab: vocab_of(model),
        w_e: w.w_e().to_vec(),
        w_pos: w.w_pos().map(<[f32]>::to_vec),
        layers: (0..cfg.n_layers)
            .map(|l| {
                let x = w.layer(l);
                LayerParams {
                    ln1: ln(x.ln1),
                    w_q: x.w_q.to_vec(),
                    w_k: x.w_k.to_vec(),
                    w_v: x.w_v.to_vec(),
                    b_q: x.b_q.to_vec(),
                    b_k: x.b_k.to_vec(),
                    b_v: x.b_v.to_vec(),
                    w_o: x.w_o.to_vec(),
                    b_o: x.b_o.to_vec(),
                }
            })
            .collect(),
        ln_final: ln(w.ln_final()),
        w_u: w.w_u().to_vec(),
        b_u: w.b_u().to_vec(),
    })
}

/// The token ids of `input`, checked against the model.
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

/// `tinylens circuits`.
pub fn circuits_command(
    path: &Path,
    config: Option<&Path>,
    head: Option<&str>,
    top: usize,
    rows: usize,
    no_direct: bool,
    out: Option<&Path>,
) -> Result<()> {
    let loaded = load_model(path, config)?;
    let model = loaded.model()?;
    let p = params_of(&loaded, &model)?;
    let head = head.map(|h| HeadId::parse(h, &p.config)).transpose()?;
    if top == 0 {
        bail!("--top must be at least 1");
    }
    println!("model: {}", describe(&p.config));
    if matches!(p.config.norm, Norm::LayerNorm { .. }) {
        println!(
            "(circuits use the weights as stored, like TransformerLens' W_E @ OV @ W_U: \
             LayerNorm is not folded in)"
        );
    }
    let opts = CircuitsOptions {
        head,
        top,
        rows,
        direct: !no_direct,
        progress: true,
    };
    // Refuse an impossible dense --out before the long computation.
    if out.is_some() {
        let c = &p.config;
        let bytes = (2 * c.n_layers * c.n_heads + 1) * c.d_vocab * c.d_vocab * 4;
        if bytes > super::circuits::DENSE_OUT_LIMIT {
            circuits_tensors(
                &p,
                &super::circuits::CircuitsReport {
                    direct: None,
                    heads: vec![],
                },
            )?;
        }
    }
    let start = std::time::Instant::now();
    let report = circuits(&p, &opts)?;
    println!();
    print_circuits(&p, &report, rows);
    eprintln!("computed in {:.1} s", start.elapsed().as_secs_f64());
    if let Some(path) = out {
        write_tensors(path, &circuits_tensors(&p, &report)?)?;
        println!(
            "wrote direct_path, full_OV, full_QK and the top-k tables to {}",
            path.display()
        );
    }
    Ok(())
}

/// Longest random half of a generated `heads` sequence (TransformerLens' induction demos use
/// 50): every position costs a full step of the kernel, logits included.
pub const MAX_HALF: usize = 50;

/// The sequences of `heads`: from a file, or `n` repeated random ones, `half` random tokens
/// twice with `2 * half < n_ctx` (TransformerLens' detector requires it) and `half <=`
/// [`MAX_HALF`].
pub fn head_sequences(
    p: &Params,
    tokens_file: Option<&Path>,
    n: usize,
    seed: u64,
) -> Result<Vec<Vec<u32>>> {
    let c = &p.config;
    if let Some(f) = tokens_file {
        let seqs = read_tokens_file(&f.to_path_buf())?;
        for s in &seqs {
            if s.len() > c.n_ctx {
                bail!(
                    "a sequence of {} tokens is longer than n_ctx = {}",
                    s.len(),
                    c.n_ctx
                );
            }
            if let Some(&t) = s.iter().find(|&&t| t as usize >= c.d_vocab) {
                bail!(
                    "token {t} is out of range: the model has d_vocab = {}",
                    c.d_vocab
                );
            }
        }
        return Ok(seqs);
    }
    let half = (c.n_ctx.saturating_sub(1) / 2).clamp(1, MAX_HALF);
    if n == 0 {
        bail!("--seqs must be at least 1");
    }
    Ok(repeated_sequences(n, half, c.d_vocab, seed))
}

fn heads_report(
    path: &Path,
    config: Option<&Path>,
    tokens_file: Option<&Path>,
    seqs: usize,
    seed: u64,
) -> Result<(Params, HeadsReport)> {
    let loaded = load_model(path, config)?;
    let model = loaded.model()?;
    let p = params_of(&loaded, &model)?;
    let sequences = head_sequences(&p, tokens_file, seqs, seed)?;
    let r = heads(&p, &model, sequences)?;
    Ok((p, r))
}

/// `tinylens heads`.
pub fn heads_command(
    path: &Path,
    config: Option<&Path>,
    tokens_file: Option<&Path>,
    seqs: usize,
    seed: u64,
    out: Option<&Path>,
) -> Result<()> {
    let (p, r) = heads_report(path, config, tokens_file, seqs, seed)?;
    println!("model: {}\n", describe(&p.config));
    print_heads(&p, &r);
    if let Some(path) = out {
        write_tensors(path, &heads_tensors(&p, &r))?;
        println!("\nwrote the scores to {}", path.display());
    }
    Ok(())
}

/// `tinylens ablate`.
pub fn ablate_command(
    path: &Path,
    config: Option<&Path>,
    input: &Input,
    out: Option<&Path>,
) -> Result<()> {
    let loaded = load_model(path, config)?;
    let model = loaded.model()?;
    let p = params_of(&loaded, &model)?;
    let tokens = tokens_of(&model, input)?;
    println!("model: {}", describe(&p.config));
    println!(
        "tokens: {} ({} tokens)\n",
        show_tokens(&p, &tokens),
        tokens.len()
    );
    let r = ablate(&p, &tokens)?;
    print_ablation(&p, &r);
    if let Some(path) = out {
        write_tensors(path, &ablation_tensors(&p, &r, &tokens))?;
        println!("\nwrote the losses to {}", path.display());
    }
    Ok(())
}

fn show_tokens(p: &Params, tokens: &[u32]) -> String {
    tokens
        .iter()
        .map(|&t| show(p.vocab.as_deref(), t))
        .collect::<Vec<_>>()
        .join(" ")
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `tinylens plot attention`: the HTML page, and with `svg_dir` one SVG heatmap per head.
pub fn plot_attention_command(
    path: &Path,
    config: Option<&Path>,
    input: &Input,
    output: &Path,
    svg_dir: Option<&Path>,
) -> Result<()> {
    let loaded = load_model(path, config)?;
    let model = loaded.model()?;
    let tokens = tokens_of(&model, input)?;
    let cfg = *model.config();
    let vocab = vocab_of(&model);
    let texts: Vec<String> = tokens
        .iter()
        .map(|&t| match &vocab {
            Some(v) => v[t as usize].clone(),
            None => format!("#{t}"),
        })
        .collect();
    let t = trace(&model, &tokens)?;
    let patterns = Patterns {
        tokens: &texts,
        n_layers: cfg.n_layers,
        n_heads: cfg.n_heads,
        pattern: &t.pattern,
    };
    let title = format!("attention patterns: {}", path.display());
    write(output, &page(&title, &patterns))?;
    println!(
        "wrote {} ({} heads, {} tokens)",
        output.display(),
        cfg.n_layers * cfg.n_heads,
        tokens.len()
    );
    if let Some(dir) = svg_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for id in HeadId::all(&cfg) {
            let file = dir.join(format!("attention_{}_{}.svg", id.layer, id.head));
            write(
                &file,
                &document(&title, &[patterns.heatmap(id.layer, id.head)]),
            )?;
        }
        println!(
            "wrote {} SVG heatmaps to {}",
            cfg.n_layers * cfg.n_heads,
            dir.display()
        );
    }
    Ok(())
}

/// `tinylens plot attribution`: one bar per term for the logit of `token` (default: the top
/// prediction) at the last position.
pub fn plot_attribution_command(
    path: &Path,
    config: Option<&Path>,
    input: &Input,
    token: Option<&str>,
    output: &Path,
) -> Result<()> {
    let loaded = load_model(path, config)?;
    let model = loaded.model()?;
    let tokens = tokens_of(&model, input)?;
    let cfg = *model.config();
    let vocab = vocab_of(&model);
    let t = trace(&model, &tokens)?;
    let last = &t.logits[(t.seq - 1) * cfg.d_vocab..];
    let target = match token {
        None => top_k(last, 1)[0],
        Some(text) => match &vocab {
            Some(v) => match v.iter().position(|x| x == text) {
                Some(i) => i as u32,
                None => text
                    .parse::<u32>()
                    .ok()
                    .filter(|&i| (i as usize) < cfg.d_vocab)
                    .with_context(|| {
                        format!(
                            "--token {text:?} is neither a token of the vocabulary nor a token id"
                        )
                    })?,
            },
            None => parse_ids(text)?[0],
        },
    };
    if target as usize >= cfg.d_vocab {
        bail!(
            "token {target} is out of range: the model has d_vocab = {}",
            cfg.d_vocab
        );
    }
    let terms = last_position_terms(&t, &cfg, target);
    let items: Vec<(String, f32)> = terms
        .iter()
        .enumerate()
        .map(|(k, &v)| (term_name(&cfg, k), v))
        .collect();
    let title = format!(
        "attribution of logit[{}] = {:.3} at the last position",
        show(vocab.as_deref(), target),
        last[target as usize]
    );
    write(output, &document(&title, &[bars(&title, &items)]))?;
    println!("wrote {}: {title}", output.display());
    Ok(())
}

/// `tinylens plot heads`: heatmaps of the head scores (`[n_layers, n_heads]` each) and of the
/// composition scores (`[L*H, L*H]`).
pub fn plot_heads_command(
    path: &Path,
    config: Option<&Path>,
    seqs: usize,
    seed: u64,
    output: &Path,
) -> Result<()> {
    let (p, r) = heads_report(path, config, None, seqs, seed)?;
    let c = &p.config;
    let layers: Vec<String> = (0..c.n_layers).map(|l| format!("layer {l}")).collect();
    let heads: Vec<String> = (0..c.n_heads).map(|h| format!("head {h}")).collect();
    let all = &|_: usize, _: usize| true;
    let s = &r.scores;
    let mut parts = Vec::new();
    for (name, values, signed) in [
        ("previous-token score (diagonal)", &s.prev_diag, false),
        ("duplicate-token score (diagonal)", &s.duplicate_diag, false),
        ("induction score (diagonal)", &s.induction_diag, false),
        ("copying score", &r.copying, true),
    ] {
        parts.push(
            Heatmap {
                title: name,
                values,
                row_labels: &layers,
                col_labels: &heads,
                max: 1.0,
                signed,
                mask: all,
                axes: ("", ""),
            }
            .render(),
        );
    }
    let labels: Vec<String> = HeadId::all(c).iter().map(|h| h.to_string()).collect();
    let n = c.n_heads;
    let earlier = &|a: usize, b: usize| a / n < b / n;
    for (mode, values) in &r.composition {
        let max = values.iter().fold(0.0f32, |m, &v| m.max(v)).max(1e-6);
        parts.push(
            Heatmap {
                title: &format!(
                    "{}-composition (row = earlier head, column = later head; random baseline {:.3})",
                    mode.name(),
                    r.baseline
                ),
                values,
                row_labels: &labels,
                col_labels: &labels,
                max,
                signed: false,
                mask: earlier,
                axes: ("earlier head", "later head"),
            }
            .render(),
        );
    }
    write(output, &document("head scores", &parts))?;
    println!(
        "wrote {} (head scores and composition scores)",
        output.display()
    );
    Ok(())
}
