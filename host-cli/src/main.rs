//! `tinylens`: import, quantize, run, validate and inspect attention-only transformers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};
use tinylens_cli::commands::{self, Input};

/// TransformerLens for microcontrollers: attention-only transformers, run by a no_std kernel
/// and read the way the Transformer Circuits framework reads them.
#[derive(Parser)]
#[command(name = "tinylens", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded demo model on a default prompt: prediction and per-head attribution.
    Demo {
        /// Another prompt for the demo model.
        #[arg(long)]
        prompt: Option<String>,
    },
    /// Convert a TransformerLens safetensors checkpoint into a tinylens blob.
    Quantize {
        /// The checkpoint (`config.json` beside it is read when present).
        input: PathBuf,
        /// The blob to write (.tlb).
        #[arg(short, long)]
        output: PathBuf,
        /// Number format of the blob: f32, i8 (int8 weights, per-column scales), i8-block32
        /// (int8 weights, a scale per 32 elements) or int (full integer, no float at run time).
        #[arg(long, default_value = "f32")]
        format: String,
        /// A TransformerLens config.json, if not beside the checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Token sequences (one per line) that calibrate the activation ranges of
        /// `--format int` (default: a built-in mix of random and repeated-random sequences).
        #[arg(long)]
        calibrate: Option<PathBuf>,
    },
    /// Run a model (.tlb or .safetensors) with the kernel: top next tokens and attribution.
    #[command(group(ArgGroup::new("input").required(true).args(["tokens", "prompt"])))]
    Run {
        /// A .tlb blob or a .safetensors checkpoint.
        model: PathBuf,
        /// Token ids, comma separated.
        #[arg(long)]
        tokens: Option<String>,
        /// Text, encoded with the model's vocabulary.
        #[arg(long)]
        prompt: Option<String>,
        /// How many next tokens to list.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Write every hook and the attribution of every position to this safetensors file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A TransformerLens config.json for a checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Compare the kernel running a blob with an independent f64 reference on a checkpoint.
    #[command(group(ArgGroup::new("sequences").args(["tokens_file", "random"])))]
    Validate {
        /// The checkpoint the blob was made from.
        checkpoint: PathBuf,
        /// The blob to check.
        model: PathBuf,
        /// Token sequences, one per line.
        #[arg(long)]
        tokens_file: Option<PathBuf>,
        /// Number of random sequences of length n_ctx (default 8).
        #[arg(long)]
        random: Option<usize>,
        /// Seed for the random sequences.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A TransformerLens config.json for the checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show what a blob or checkpoint holds: config, tensors, sizes, format, checksum.
    Inspect {
        /// A .tlb blob or a .safetensors checkpoint.
        file: PathBuf,
        /// A TransformerLens config.json for a checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Restores the default action of SIGPIPE, so that `tinylens ... | head` ends quietly like any
/// Unix tool instead of failing on a closed pipe.
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default is async-signal-safe and touches
    // no Rust state; it happens once, before any output.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { prompt } => commands::demo(prompt.as_deref()),
        Command::Quantize {
            input,
            output,
            format,
            config,
            calibrate,
        } => commands::quantize(
            &input,
            &output,
            &format,
            config.as_deref(),
            calibrate.as_deref(),
        ),
        Command::Run {
            model,
            tokens,
            prompt,
            top,
            out,
            config,
        } => {
            let input = match (tokens, prompt) {
                (Some(t), _) => Input::Tokens(t),
                (None, Some(p)) => Input::Prompt(p),
                (None, None) => unreachable!("clap requires one of --tokens, --prompt"),
            };
            commands::run(&model, config.as_deref(), &input, top, out.as_deref())
        }
        Command::Validate {
            checkpoint,
            model,
            tokens_file,
            random,
            seed,
            config,
        } => tinylens_cli::validate::validate_command(
            &checkpoint,
            &model,
            config.as_deref(),
            tokens_file.as_deref(),
            random,
            seed,
        )
        .map(|_| ()),
        Command::Inspect { file, config } => commands::inspect(&file, config.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
