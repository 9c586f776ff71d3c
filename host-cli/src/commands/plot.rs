//! `tinylens plot`: pictures. The attention of every head (a self-contained HTML page, and
//! SVG heatmaps), attribution bars for one logit, and grids of head and composition scores.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::analysis::patching::{input_name, PATH_INPUTS};
use crate::analysis::plot::attention::{page, Patterns};
use crate::analysis::plot::svg::{bars, document, Heatmap};
use crate::analysis::HeadId;
use crate::commands::patch::Pair;
use crate::files::write;
use crate::inputs::{token_arg, tokens_of, vocab_of};
use crate::report::{last_position_terms, term_name, top_k};
use crate::tokenize::show;
use crate::trace::{trace_for, Attribution};

/// Pictures: attention (HTML page and SVG heatmaps), attribution bars, head score grids.
#[derive(clap::Args)]
pub struct Args {
    /// What to draw.
    #[command(subcommand)]
    pub what: Plot,
}

/// The pictures `plot` draws.
#[derive(Subcommand)]
pub enum Plot {
    /// A self-contained HTML page of every head's attention (and SVG heatmaps with --svg-dir).
    Attention(AttentionArgs),
    /// Bars per term (direct path, heads, biases) for one logit at the last position (SVG).
    Attribution(AttributionArgs),
    /// Grids of head scores and composition scores (SVG).
    Heads(HeadsArgs),
    /// Heatmaps of activation patching (head x position, layer x position) and path patching
    /// (sender x receiver per query, key and value input) (SVG).
    Patching(PatchingArgs),
}

/// The arguments of `plot attention`.
#[derive(clap::Args)]
pub struct AttentionArgs {
    #[command(flatten)]
    pub model: super::ModelInput,
    /// The HTML page to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write one SVG heatmap per head into this directory.
    #[arg(long)]
    pub svg_dir: Option<PathBuf>,
}

/// The arguments of `plot attribution`.
#[derive(clap::Args)]
pub struct AttributionArgs {
    #[command(flatten)]
    pub model: super::ModelInput,
    /// The token whose logit to split (text or id); default the top prediction.
    #[arg(long)]
    pub token: Option<String>,
    /// The SVG to write.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// The arguments of `plot heads`.
#[derive(clap::Args)]
pub struct HeadsArgs {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Number of repeated random sequences (at most 10000).
    #[arg(long, default_value_t = 8)]
    pub seqs: usize,
    /// Seed of the random sequences.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The SVG to write.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// The arguments of `plot patching`.
#[derive(clap::Args)]
pub struct PatchingArgs {
    #[command(flatten)]
    pub pair: super::patch::PairArgs,
    /// The SVG to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write the attention page of the clean prompt with the patching heatmaps under it.
    #[arg(long)]
    pub page: Option<PathBuf>,
}

/// `tinylens plot`.
pub fn run(args: Args) -> Result<()> {
    match args.what {
        Plot::Attention(a) => attention(a),
        Plot::Attribution(a) => attribution(a),
        Plot::Heads(a) => heads(a),
        Plot::Patching(a) => patching(a),
    }
}

/// `tinylens plot attention`: the HTML page, and with `--svg-dir` one SVG heatmap per head.
fn attention(a: AttentionArgs) -> Result<()> {
    a.model.refuse_overwrite(Some(&a.output), &[])?;
    let path = a.model.file.model.as_path();
    let output = a.output.as_path();
    let loaded = a.model.load()?;
    let model = loaded.model()?;
    let tokens = tokens_of(&model, &a.model.input())?;
    let cfg = *model.config();
    let vocab = vocab_of(&model);
    let texts: Vec<String> = tokens
        .iter()
        .map(|&t| match &vocab {
            Some(v) => v[t as usize].clone(),
            None => format!("#{t}"),
        })
        .collect();
    let t = trace_for(&model, &tokens, Attribution::Off)?;
    let patterns = Patterns {
        tokens: &texts,
        n_layers: cfg.n_layers,
        n_heads: cfg.n_heads,
        pattern: &t.pattern,
    };
    let title = format!("attention patterns: {}", path.display());
    write(output, page(&title, &patterns, ""))?;
    println!(
        "wrote {} ({} heads, {} tokens)",
        output.display(),
        cfg.n_layers * cfg.n_heads,
        tokens.len()
    );
    if let Some(dir) = &a.svg_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for id in HeadId::all(&cfg) {
            let file = dir.join(format!("attention_{}_{}.svg", id.layer, id.head));
            write(
                &file,
                document(&title, &[patterns.heatmap(id.layer, id.head)]),
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

/// `tinylens plot attribution`: one bar per term for the logit of `--token` (default: the top
/// prediction) at the last position.
fn attribution(a: AttributionArgs) -> Result<()> {
    a.model.refuse_overwrite(Some(&a.output), &[])?;
    let output = a.output.as_path();
    let loaded = a.model.load()?;
    let model = loaded.model()?;
    let tokens = tokens_of(&model, &a.model.input())?;
    let cfg = *model.config();
    let vocab = vocab_of(&model);
    let given = a
        .token
        .as_deref()
        .map(|text| token_arg(&model, text, "--token"))
        .transpose()?;
    let t = trace_for(&model, &tokens, Attribution::Last(given))?;
    let last = &t.logits[(t.seq - 1) * cfg.d_vocab..];
    let target = given.unwrap_or_else(|| top_k(last, 1)[0]);
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
    write(output, document(&title, &[bars(&title, &items)]))?;
    println!("wrote {}: {title}", output.display());
    Ok(())
}

/// `tinylens plot heads`: heatmaps of the head scores (`[n_layers, n_heads]` each) and of the
/// composition scores (`[L*H, L*H]`).
fn heads(a: HeadsArgs) -> Result<()> {
    a.model.refuse_overwrite(Some(&a.output), &[])?;
    let output = a.output.as_path();
    let (p, r) = super::heads::report(&a.model, None, a.seqs, a.seed)?;
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
    write(output, document("head scores", &parts))?;
    println!(
        "wrote {} (head scores and composition scores)",
        output.display()
    );
    Ok(())
}

/// `tinylens plot patching`: the results of `tinylens patch` as heatmaps on one SVG page, and
/// with `--page` the clean prompt's attention page with the heatmaps under it.
fn patching(a: PatchingArgs) -> Result<()> {
    let model_path = a.pair.model.model.clone();
    a.pair.model.refuse_overwrite(Some(&a.output), &[])?;
    a.pair.model.refuse_overwrite(a.page.as_deref(), &[])?;
    if a.page.as_deref() == Some(a.output.as_path()) {
        anyhow::bail!("--page and --output name the same file");
    }
    let loaded = a.pair.model.load()?;
    let model = loaded.model()?;
    let (
        Pair {
            clean,
            corrupted,
            name,
            ..
        },
        p,
    ) = a.pair.patch(&model)?;
    let cfg = *model.config();
    let (l, h, s) = (cfg.n_layers, cfg.n_heads, clean.len());
    let vocab = vocab_of(&model);
    let text = |t: u32| show(vocab.as_deref(), t);
    // A position where the prompts differ shows both tokens.
    let positions: Vec<String> = (0..s)
        .map(|i| match (clean[i], corrupted[i]) {
            (c, k) if c == k => format!("{i} {}", text(c)),
            (c, k) => format!("{i} {} / {}", text(c), text(k)),
        })
        .collect();
    let layers: Vec<String> = (0..l).map(|l| format!("layer {l}")).collect();
    let heads: Vec<String> = (0..h).map(|h| format!("head {h}")).collect();
    let all = &|_: usize, _: usize| true;
    let scale = format!(
        "{name}: 0 = corrupted ({:.3}), 1 = clean ({:.3})",
        p.corrupted, p.clean
    );
    let map = |title: &str, values: &[f32], rows: &[String], cols: &[String], axes| {
        Heatmap {
            title,
            values,
            row_labels: rows,
            col_labels: cols,
            max: 1.0,
            signed: true,
            mask: all,
            axes,
        }
        .render()
    };
    let mut parts = vec![map(
        &format!("each head's output at every position (attn_head_out_all_pos); {scale}"),
        &p.head_all_pos,
        &layers,
        &heads,
        ("", ""),
    )];
    for layer in 0..l {
        // attn_head_out_by_pos is [layer, pos, head]: one map per layer, a row per head.
        let values: Vec<f32> = (0..h)
            .flat_map(|head| (0..s).map(move |pos| (pos, head)))
            .map(|(pos, head)| p.head_by_pos[(layer * s + pos) * h + head])
            .collect();
        let rows: Vec<String> = (0..h).map(|head| format!("head {layer}.{head}")).collect();
        parts.push(map(
            &format!("layer {layer}: one head's output at one position (attn_head_out_by_pos)"),
            &values,
            &rows,
            &positions,
            ("head", "position"),
        ));
    }
    parts.push(map(
        "the residual stream entering a layer at one position (resid_pre)",
        &p.resid_pre,
        &layers,
        &positions,
        ("", "position"),
    ));
    if l > 1 {
        // Senders are the heads of every layer but the last, receivers those of every layer
        // but the first; a sender reaches the receivers of later layers only.
        let labels: Vec<String> = HeadId::all(&cfg).iter().map(|h| h.to_string()).collect();
        let n = l * h;
        let (senders, receivers) = (&labels[..n - h], &labels[h..]);
        let later = &|a: usize, b: usize| a / h <= b / h;
        for (i, input) in PATH_INPUTS.into_iter().enumerate() {
            let grid = &p.path[i * n * n..][..n * n];
            let values: Vec<f32> = (0..n - h)
                .flat_map(|s| (h..n).map(move |r| grid[s * n + r]))
                .collect();
            parts.push(
                Heatmap {
                    title: &format!(
                        "path patching to the {} input (path_patch; row = sender, column = receiver)",
                        input_name(input)
                    ),
                    values: &values,
                    row_labels: senders,
                    col_labels: receivers,
                    max: 1.0,
                    signed: true,
                    mask: later,
                    axes: ("sender", "receiver"),
                }
                .render(),
            );
        }
    }
    let title = format!("activation patching: {}", model_path.display());
    write(&a.output, document(&title, &parts))?;
    println!("wrote {} ({scale})", a.output.display());
    if let Some(page_path) = &a.page {
        let t = trace_for(&model, &clean, Attribution::Off)?;
        let texts: Vec<String> = clean.iter().map(|&c| text(c)).collect();
        let patterns = Patterns {
            tokens: &texts,
            n_layers: l,
            n_heads: h,
            pattern: &t.pattern,
        };
        let html = page(
            &format!("attention and patching: {}", model_path.display()),
            &patterns,
            &format!("<h2>activation patching</h2>{}", parts.concat()),
        );
        write(page_path, html)?;
        println!("wrote {}", page_path.display());
    }
    Ok(())
}
