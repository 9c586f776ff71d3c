//! `tinylens quantize`: a TransformerLens checkpoint to a blob of any number format.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tinylens::blob::NumberFormat;

use crate::files::{refuse_overwrite, write};
use crate::import::load_checkpoint;
use crate::inputs::random_sequences;
use crate::inputs::{check_count, generated_len, read_tokens_file};
use crate::quantize::sensitivity::sensitivity;
use crate::quantize::{default_calibration, quantize_rounded, rounding, Round, Rounding};
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
    /// Token sequences (one per line) that calibrate the activation ranges of `--format int`
    /// and the statistics of `--rounding gptq` (default: a built-in mix of random and
    /// repeated-random sequences).
    #[arg(long)]
    pub calibrate: Option<PathBuf>,
    /// How weights are rounded to int8: nearest, or gptq (each matrix's rounding error
    /// compensated over the calibration sequences, W_E's by its effect on the next-token
    /// distributions; see docs/accuracy.md).
    #[arg(long, default_value = "nearest")]
    pub rounding: String,
    /// Also measure each quantized matrix alone (the rest exact) against the f64 reference
    /// on 8 random sequences, and print them, the largest logit error first.
    #[arg(long)]
    pub report: bool,
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
    let Some(round) = Round::from_name(&args.rounding) else {
        bail!(
            "unknown --rounding {:?}: expected gptq or nearest",
            args.rounding
        );
    };
    if args.calibrate.is_some() && number_format != NumberFormat::Int && round == Round::Nearest {
        bail!(
            "--calibrate sets activation ranges of the int format and the statistics of \
             --rounding gptq; this is --format {format} rounded to nearest"
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
    // The statistics of GPTQ are made once, for the blob and for --report.
    let default = default_calibration(&params.config);
    let sequences = calibration.as_deref().unwrap_or(&default);
    let rounding = match number_format {
        NumberFormat::F32 => Rounding::Nearest,
        _ => rounding(&params, sequences, round)?,
    };
    let bytes = quantize_rounded(&params, number_format, sequences, &rounding)
        .with_context(|| format!("cannot quantize {} to {format}", args.input.display()))?;
    write(&args.output, &bytes)?;
    let rounded = match number_format {
        NumberFormat::F32 => String::new(),
        _ => format!(", {} rounding", round.name()),
    };
    println!(
        "wrote {} ({} bytes, {format}{rounded}): {}",
        args.output.display(),
        bytes.len(),
        describe(&params.config)
    );
    if args.report && number_format != NumberFormat::F32 {
        print_report(&params, number_format, &rounding)?;
    }
    Ok(())
}

/// `quantize --report`: every quantized matrix alone against the reference.
fn print_report(
    params: &crate::params::Params,
    format: NumberFormat,
    rounding: &Rounding,
) -> Result<()> {
    let cfg = &params.config;
    let (len, _) = generated_len(cfg.n_ctx);
    let sequences = random_sequences(8, len, cfg.d_vocab, 0);
    let rows = sensitivity(params, format, rounding, &sequences)?;
    println!(
        "\neach matrix quantized alone (the rest exact), kernel vs f64 reference on 8 random \
         sequences of {len} tokens:"
    );
    println!(
        "  {:<24} {:>12} {:>14}",
        "matrix", "mean KL", "max |d logit|"
    );
    for r in rows {
        println!(
            "  {:<24} {:>12.3e} {:>13.2}%",
            r.name,
            r.mean_kl,
            100.0 * r.dlogit
        );
    }
    println!("  (|d logit| as a share of the logit range)");
    Ok(())
}
