//! `tinylens run`: the kernel over a prompt; top-k, attribution, and optionally every hook.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::inputs::{tokens_of, vocab_of};
use crate::report::print_prediction;
use crate::trace::{longest_trace, write_safetensors, Attribution, MAX_TRACE_BYTES};

/// Run a model (.tlb or .safetensors) with the kernel: top next tokens and attribution.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: super::ModelInput,
    /// How many next tokens to list.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Write every hook and the attribution of every position to this safetensors file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With --out: write the hooks only (what TransformerLens' `run_with_cache` caches), not
    /// the attribution of every position, which costs ten times the run.
    #[arg(long, requires = "out")]
    pub no_attribution: bool,
}

/// `tinylens run`.
pub fn run(args: Args) -> Result<()> {
    args.model.refuse_overwrite(args.out.as_deref(), &[])?;
    let loaded = args.model.load()?;
    let model = loaded.model()?;
    let tokens = tokens_of(&model, &args.model.input())?;
    let every = args.out.is_some() && !args.no_attribution;
    let dla = match every {
        true => Attribution::Every,
        false => Attribution::Last(None),
    };
    let longest = longest_trace(model.config(), every);
    if args.out.is_some() && tokens.len() > longest {
        bail!(
            "run --out records every hook{}: for this model {} MiB hold at most {longest} \
             tokens, not {}; give fewer tokens{}, or leave out --out",
            if every {
                " and the attribution of every position"
            } else {
                ""
            },
            MAX_TRACE_BYTES >> 20,
            tokens.len(),
            if every { ", add --no-attribution" } else { "" },
        );
    }
    let t = print_prediction(&model, vocab_of(&model).as_deref(), &tokens, args.top, dla)?;
    if let Some(path) = &args.out {
        let left_out = write_safetensors(&t, model.config(), path)?;
        if left_out.is_empty() {
            println!(
                "\nwrote every hook{} to {}",
                if every {
                    " and the attribution of every position"
                } else {
                    ""
                },
                path.display()
            );
        } else {
            println!(
                "\nwrote the logits, the attention patterns{} to {}; left out, as the {} \
                 format keeps them as integers at scales the blob does not record: {}",
                if every {
                    " and the attribution of every position"
                } else {
                    ""
                },
                path.display(),
                model.format().name(),
                left_out.join(", ")
            );
        }
    }
    Ok(())
}
