//! `tinylens ablate`: each head and the direct path ablated (zero and mean), the loss change
//! per term.

use std::path::PathBuf;

use anyhow::Result;

use crate::analysis::ablate::{ablate, ablation_tensors, print_ablation};
use crate::analysis::write_tensors;
use crate::inputs::tokens_of;
use crate::report::describe;
use crate::tokenize::show;

/// Ablate each head and the direct path (zero and mean): the loss change per term.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: super::ModelInput,
    /// Write the losses to this safetensors file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `tinylens ablate`.
pub fn run(args: Args) -> Result<()> {
    args.model.refuse_overwrite(args.out.as_deref(), &[])?;
    let loaded = args.model.load()?;
    let model = loaded.model()?;
    let p = loaded.params()?;
    let tokens = tokens_of(&model, &args.model.input())?;
    println!("model: {}", describe(&p.config));
    let shown: Vec<String> = tokens
        .iter()
        .map(|&t| show(p.vocab.as_deref(), t))
        .collect();
    println!("tokens: {} ({} tokens)\n", shown.join(" "), tokens.len());
    let r = ablate(&p, &tokens)?;
    print_ablation(&p, &r);
    if let Some(path) = &args.out {
        write_tensors(path, &ablation_tensors(&p, &r, &tokens))?;
        println!("\nwrote the losses to {}", path.display());
    }
    Ok(())
}
