//! `tinylens explore`: writes the explorer, one self-contained HTML page in which the kernel,
//! compiled to WebAssembly, runs the model on whatever prompt the reader types.

use std::path::{Path, PathBuf};

use anyhow::Result;
use tinylens::writer::AlignedBytes;

use crate::blobio::{load_model, params_of_blob};
use crate::commands::demo::{DEMO_BLOB, DEMO_PROMPT};
use crate::explorer::{check_format, page, repeated_prompt, Explorer, StartPrompt};
use crate::inputs::tokens_of;

/// The explorer: one HTML page that runs the model in the browser (WebAssembly, no server).
#[derive(clap::Args)]
pub struct Args {
    /// A .tlb blob (f32) or a .safetensors checkpoint; default the embedded demo model.
    pub model: Option<PathBuf>,
    /// A TransformerLens config.json for a checkpoint.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The page to write.
    #[arg(short, long, default_value = "explorer.html")]
    pub output: PathBuf,
    /// The prompt the page opens with (default: the demo's story for the demo model, a
    /// repeated random sequence for another).
    #[arg(long)]
    pub prompt: Option<String>,
}

/// `tinylens explore`.
pub fn run(args: Args) -> Result<()> {
    let inputs: Vec<&Path> = args
        .model
        .iter()
        .chain(&args.config)
        .map(PathBuf::as_path)
        .collect();
    crate::files::refuse_overwrite(&args.output, &inputs)?;
    let (blob, params, name) = match &args.model {
        Some(path) => {
            let loaded = load_model(path, args.config.as_deref())?;
            check_format(&loaded.model()?)?;
            let params = loaded.params()?;
            (loaded.blob, params, path.display().to_string())
        }
        None => {
            let blob = AlignedBytes::new(DEMO_BLOB);
            let params = params_of_blob(&tinylens::Model::from_blob(blob.as_bytes())?)?;
            (blob, params, "the demo model (models/demo-2l)".to_string())
        }
    };
    let model = tinylens::Model::from_blob(blob.as_bytes())?;
    check_format(&model)?;
    let prompt = match (&args.prompt, &args.model) {
        (Some(text), _) => {
            // Checked here, so a prompt the vocabulary cannot encode fails now, not in the page.
            tokens_of(&model, &crate::inputs::Input::Prompt(text.clone()))?;
            StartPrompt::Text(text.clone())
        }
        (None, None) => StartPrompt::Text(DEMO_PROMPT.to_string()),
        (None, Some(_)) => StartPrompt::Ids(repeated_prompt(model.config())),
    };
    let html = page(&Explorer {
        title: format!("tinylens explore: {name}"),
        blob: blob.as_bytes(),
        params: &params,
        prompt,
    })?;
    crate::files::write(&args.output, &html)?;
    println!(
        "wrote {} ({} KB: the kernel as WebAssembly, {} KB, and the model, {} KB, inline)",
        args.output.display(),
        kb(html.len()),
        kb(crate::explorer::EXPLORER_WASM.len()),
        kb(blob.as_bytes().len())
    );
    println!("open it in a browser (file://, no server): type a prompt, hover a token, click a head to ablate it");
    Ok(())
}

/// Bytes in kilobytes (1000), rounded.
fn kb(bytes: usize) -> usize {
    (bytes + 500) / 1000
}
