//! `tinylens validate`: the kernel running a blob against the independent f64 reference
//! running the checkpoint; fails when a measure is past its tolerance.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::ArgGroup;

use crate::blobio::load_model;
use crate::import::load_checkpoint;
use crate::inputs::{vocab_of, Sequences};
use crate::trace::{longest_trace, MAX_TRACE_BYTES};
use crate::validate::{validate_with, Tolerances};

/// Compare the kernel running a blob with an independent f64 reference on a checkpoint.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("sequences").args(["tokens_file", "text", "random"])))]
pub struct Args {
    /// The checkpoint the blob was made from.
    pub checkpoint: PathBuf,
    /// The blob to check.
    pub model: PathBuf,
    /// Token sequences, one per line.
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// A text file, tokenized with the blob's vocabulary and cut into windows of n_ctx
    /// tokens.
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Number of random sequences of length n_ctx, at most 512 tokens each (default 8, at
    /// most 10000).
    #[arg(long)]
    pub random: Option<usize>,
    /// Seed for the random sequences.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A TransformerLens config.json for the checkpoint.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one tolerance, NAME=VALUE (repeatable). Names: logit, pattern, top1 (f32);
    /// kl (every format); clear-top1, logit-range, attr-range (quantized formats).
    #[arg(long, value_name = "NAME=VALUE")]
    pub tolerance: Vec<String>,
}

impl Args {
    /// The sequences the flags ask for.
    fn sequences(&self) -> Sequences {
        match (&self.tokens_file, &self.text) {
            (Some(path), _) => Sequences::TokensFile(path.clone()),
            (None, Some(path)) => Sequences::Text(path.clone()),
            (None, None) => Sequences::Random {
                n: self.random.unwrap_or(8),
                seed: self.seed,
            },
        }
    }
}

/// `tinylens validate`: loads both files, picks the sequences, prints the report, and fails
/// when any measure is past its tolerance.
pub fn run(args: Args) -> Result<()> {
    let params = load_checkpoint(&args.checkpoint, args.config.as_deref())
        .with_context(|| format!("cannot import {}", args.checkpoint.display()))?;
    let loaded = load_model(&args.model, None)?;
    let model = loaded.model()?;
    let sequences = args
        .sequences()
        .load(model.config(), vocab_of(&model).as_deref())?;
    let tolerances = Tolerances::for_format(model.format()).with_overrides(&args.tolerance)?;
    let longest = longest_trace(model.config(), true);
    if let Some(s) = sequences.iter().find(|s| s.len() > longest) {
        bail!(
            "validate records every hook of every position: for this model {} MiB hold \
             sequences of at most {longest} tokens, and one has {}; give --tokens-file with \
             shorter sequences",
            MAX_TRACE_BYTES >> 20,
            s.len()
        );
    }
    let report = validate_with(&params, &model, &sequences, tolerances)?;
    report.print();
    if !report.passed() {
        bail!(
            "the kernel is outside tolerance on {}",
            args.model.display()
        );
    }
    Ok(())
}
