//! `tinylens quantize`: a TransformerLens checkpoint to a blob of any number format.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tinylens::blob::NumberFormat;

use crate::files::{refuse_overwrite, write};
use crate::import::load_checkpoint;
use crate::inputs::{check_count, generated_len, read_tokens_file};
use crate::quantize::quantize_params;
use crate::report::describe;

/// Convert a TransformerLens safetensors checkpoint into a tinylens blob.
#[derive(clap::Args)]
pub struct Args {
    /// The checkpoint (`config.json` beside it is read when present).
    pub input: PathBuf,
    /// The blob to write (.tlb).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number format of the blob: f32, i8 (int8 weights, per-column scales), i8-block32
    /// (int8 weights, a scale per 32 elements) or int (full integer, no float at run time).
    #[arg(long, default_value = "f32")]
    pub format: String,
    /// A TransformerLens config.json, if not beside the checkpoint.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Token sequences (one per line) that calibrate the activation ranges of
    /// `--format int` (default: a built-in mix of random and repeated-random sequences).
    #[arg(long)]
    pub calibrate: Option<PathBuf>,
}

/// `tinylens quantize`: `--calibrate` (token sequences, one per line) sets the activation
/// ranges of the `int` format.
pub fn run(args: Args) -> Result<()> {
    let format = args.format.as_str();
    let Some(number_format) = NumberFormat::from_name(format) else {
        let names: Vec<&str> = NumberFormat::ALL.iter().map(|f| f.name()).collect();
        bail!(
            "unsupported --format {format:?}: expected one of {}",
            names.join(", ")
        );
    };
    if args.calibrate.is_some() && number_format != NumberFormat::Int {
        bail!(
            "--calibrate sets activation ranges of the int format only (this is --format {format})"
        );
    }
    let mut inputs = vec![args.input.as_path()];
    inputs.extend(args.config.as_deref());
    inputs.extend(args.calibrate.as_deref());
    refuse_overwrite(&args.output, &inputs)?;
    let params = load_checkpoint(&args.input, args.config.as_deref())
        .with_context(|| format!("cannot import {}", args.input.display()))?;
    let calibration = match &args.calibrate {
        Some(path) => {
            let seqs = read_tokens_file(path)?;
            check_count(seqs.len(), "--calibrate with sequences:")
                .with_context(|| format!("in {}", path.display()))?;
            Some(seqs)
        }
        None => None,
    };
    if number_format == NumberFormat::Int && calibration.is_none() {
        if let (_, Some(note)) = generated_len(params.config.n_ctx) {
            println!("calibration {note}");
        }
    }
    let bytes = quantize_params(&params, number_format, calibration.as_deref())
        .with_context(|| format!("cannot quantize {} to {format}", args.input.display()))?;
    write(&args.output, &bytes)?;
    println!(
        "wrote {} ({} bytes, {}): {}",
        args.output.display(),
        bytes.len(),
        format,
        describe(&params.config)
    );
    Ok(())
}
