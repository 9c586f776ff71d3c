//! `tinylens run`: the kernel over a prompt; top-k, attribution, and optionally every hook.

use std::path::PathBuf;

use anyhow::Result;
use clap::ArgGroup;

use crate::blobio::load_model;
use crate::inputs::{tokens_of, vocab_of, Input};
use crate::report::print_prediction;
use crate::trace::write_safetensors;

/// Run a model (.tlb or .safetensors) with the kernel: top next tokens and attribution.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("input").required(true).args(["tokens", "prompt"])))]
pub struct Args {
    /// A .tlb blob or a .safetensors checkpoint.
    pub model: PathBuf,
    /// Token ids, comma separated.
    #[arg(long)]
    pub tokens: Option<String>,
    /// Text, encoded with the model's vocabulary.
    #[arg(long)]
    pub prompt: Option<String>,
    /// How many next tokens to list.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Write every hook and the attribution of every position to this safetensors file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A TransformerLens config.json for a checkpoint.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `tinylens run`.
pub fn run(args: Args) -> Result<()> {
    let loaded = load_model(&args.model, args.config.as_deref())?;
    let model = loaded.model()?;
    let tokens = tokens_of(&model, &Input::from_flags(args.tokens, args.prompt))?;
    let t = print_prediction(&model, vocab_of(&model).as_deref(), &tokens, args.top)?;
    if let Some(path) = &args.out {
        write_safetensors(&t, model.config(), path)?;
        println!(
            "\nwrote every hook and the attribution of every position to {}",
            path.display()
        );
    }
    Ok(())
}
