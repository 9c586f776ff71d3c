//! `tinylens circuits`: the direct path (bigrams), full OV and QK circuits and skip-trigrams
//! of every head.

use std::path::PathBuf;

use anyhow::{bail, Result};
use tinylens::Norm;

use crate::analysis::circuits::{
    circuits, circuits_tensors, print_circuits, CircuitsOptions, CircuitsReport, DENSE_OUT_LIMIT,
};
use crate::analysis::{write_tensors, HeadId};
use crate::report::describe;

/// Circuits: direct path (bigrams), full OV and QK circuits and skip-trigrams per head.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Only this head, LAYER.HEAD (e.g. 1.0); default every head.
    #[arg(long)]
    pub head: Option<String>,
    /// Entries per row of each table.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Rows printed per table, those with the largest entries (0: every row).
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
    /// Skip the direct path W_E W_U (a vocab x vocab x d_model product).
    #[arg(long)]
    pub no_direct: bool,
    /// Write direct_path, full_OV, full_QK and the top-k tables to this safetensors file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `tinylens circuits`.
pub fn run(args: Args) -> Result<()> {
    args.model.refuse_overwrite(args.out.as_deref(), &[])?;
    let loaded = args.model.load()?;
    let p = loaded.params()?;
    let head = args
        .head
        .as_deref()
        .map(|h| HeadId::parse(h, &p.config))
        .transpose()?;
    if args.top == 0 {
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
        top: args.top,
        rows: args.rows,
        direct: !args.no_direct,
        progress: true,
    };
    // Refuse an impossible dense --out before the long computation.
    if args.out.is_some() {
        let c = &p.config;
        let bytes = (2 * c.n_layers * c.n_heads + 1) * c.d_vocab * c.d_vocab * 4;
        if bytes > DENSE_OUT_LIMIT {
            let empty = CircuitsReport {
                direct: None,
                heads: vec![],
            };
            circuits_tensors(&p, &empty)?;
        }
    }
    let start = std::time::Instant::now();
    let report = circuits(&p, &opts)?;
    println!();
    print_circuits(&p, &report, args.rows);
    eprintln!("computed in {:.1} s", start.elapsed().as_secs_f64());
    if let Some(path) = &args.out {
        write_tensors(path, &circuits_tensors(&p, &report)?)?;
        println!(
            "wrote direct_path, full_OV, full_QK and the top-k tables to {}",
            path.display()
        );
    }
    Ok(())
}
