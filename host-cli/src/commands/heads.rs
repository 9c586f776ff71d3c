//! `tinylens heads`: previous-token, duplicate and induction scores, copying and composition
//! scores of every head.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::analysis::heads::{heads, heads_tensors, print_heads, repeated_sequences, HeadsReport};
use crate::analysis::write_tensors;
use crate::inputs::{check_count, check_sequences, read_tokens_file};
use crate::params::Params;
use crate::report::describe;

/// Heads: previous-token, duplicate and induction scores, copying and composition scores.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Number of repeated random sequences (at most 10000).
    #[arg(long, default_value_t = 8)]
    pub seqs: usize,
    /// Seed of the random sequences.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Token sequences to use instead, one per line.
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// Write every score to this safetensors file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `tinylens heads`.
pub fn run(args: Args) -> Result<()> {
    let tokens_file: Vec<&Path> = args.tokens_file.iter().map(PathBuf::as_path).collect();
    args.model
        .refuse_overwrite(args.out.as_deref(), &tokens_file)?;
    let (p, r) = report(
        &args.model,
        args.tokens_file.as_deref(),
        args.seqs,
        args.seed,
    )?;
    println!("model: {}\n", describe(&p.config));
    print_heads(&p, &r);
    if let Some(path) = &args.out {
        write_tensors(path, &heads_tensors(&p, &r))?;
        println!("\nwrote the scores to {}", path.display());
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
        let seqs = read_tokens_file(f)?;
        check_sequences(c, &seqs, "sequence")?;
        return Ok(seqs);
    }
    let half = (c.n_ctx.saturating_sub(1) / 2).clamp(1, MAX_HALF);
    check_count(n, "--seqs")?;
    Ok(repeated_sequences(n, half, c.d_vocab, seed))
}

/// The head scores of `model` (used by `heads` and `plot heads`).
pub fn report(
    model: &super::ModelArgs,
    tokens_file: Option<&Path>,
    seqs: usize,
    seed: u64,
) -> Result<(Params, HeadsReport)> {
    let loaded = model.load()?;
    let model = loaded.model()?;
    let p = loaded.params()?;
    let sequences = head_sequences(&p, tokens_file, seqs, seed)?;
    let r = heads(&p, &model, sequences)?;
    Ok((p, r))
}
