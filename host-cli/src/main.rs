//! `tinylens`: import, quantize, run, validate and inspect attention-only transformers.
//! This file parses the command line and dispatches; each subcommand is a file under
//! `commands/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tinylens_cli::commands::{
    ablate, circuits, demo, explore, generate, heads, inspect, lens, patch, plot, quantize, run,
    train, validate,
};

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
    Demo(demo::Args),
    /// Convert a TransformerLens safetensors checkpoint into a tinylens blob.
    Quantize(quantize::Args),
    /// Run a model (.tlb or .safetensors) with the kernel: top next tokens and attribution.
    Run(run::Args),
    /// Compare the kernel running a blob with an independent f64 reference on a checkpoint.
    Validate(validate::Args),
    /// Circuits: direct path (bigrams), full OV and QK circuits and skip-trigrams per head.
    Circuits(circuits::Args),
    /// Heads: previous-token, duplicate and induction scores, copying and composition scores.
    Heads(heads::Args),
    /// Ablate each head and the direct path (zero and mean): the loss change per term.
    Ablate(ablate::Args),
    /// Pictures: attention (HTML page and SVG heatmaps), attribution bars, head score grids.
    Plot(plot::Args),
    /// Train an attention-only transformer on the CPU and save it as a TransformerLens checkpoint.
    Train(train::Args),
    /// Show what a blob or checkpoint holds: config, tensors, sizes, format, checksum.
    Inspect(inspect::Args),
    /// Generate text through the KV cache: greedy or sampled, sliding past the context.
    Generate(generate::Args),
    /// The logit lens: what the residual stream predicts after the embedding and each layer.
    Lens(lens::Args),
    /// Activation patching: which heads and residual streams carry a clean prompt's answer.
    Patch(patch::Args),
    /// The explorer: one HTML page that runs the model in the browser (WebAssembly, no server).
    Explore(explore::Args),
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
    let result = match Cli::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Circuits(args) => circuits::run(args),
        Command::Heads(args) => heads::run(args),
        Command::Ablate(args) => ablate::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Train(args) => train::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Lens(args) => lens::run(args),
        Command::Patch(args) => patch::run(args),
        Command::Explore(args) => explore::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
