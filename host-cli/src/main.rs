//! `tinylens`: import, quantize, run, validate and inspect attention-only transformers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};
use tinylens_cli::analysis::cli as analysis;
use tinylens_cli::commands::{self, Input};
use tinylens_cli::validate::Sequences;

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
    #[command(group(ArgGroup::new("sequences").args(["tokens_file", "text", "random"])))]
    Validate {
        /// The checkpoint the blob was made from.
        checkpoint: PathBuf,
        /// The blob to check.
        model: PathBuf,
        /// Token sequences, one per line.
        #[arg(long)]
        tokens_file: Option<PathBuf>,
        /// A text file, tokenized with the blob's vocabulary and cut into windows of n_ctx
        /// tokens.
        #[arg(long)]
        text: Option<PathBuf>,
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
    /// Circuits: direct path (bigrams), full OV and QK circuits and skip-trigrams per head.
    Circuits {
        /// A .tlb blob or a .safetensors checkpoint.
        model: PathBuf,
        /// Only this head, LAYER.HEAD (e.g. 1.0); default every head.
        #[arg(long)]
        head: Option<String>,
        /// Entries per row of each table.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Rows printed per table, those with the largest entries (0: every row).
        #[arg(long, default_value_t = 10)]
        rows: usize,
        /// Skip the direct path W_E W_U (a vocab x vocab x d_model product).
        #[arg(long)]
        no_direct: bool,
        /// Write direct_path, full_OV, full_QK and the top-k tables to this safetensors file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A TransformerLens config.json for a checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Heads: previous-token, duplicate and induction scores, copying and composition scores.
    Heads {
        /// A .tlb blob or a .safetensors checkpoint.
        model: PathBuf,
        /// Number of repeated random sequences.
        #[arg(long, default_value_t = 8)]
        seqs: usize,
        /// Seed of the random sequences.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Token sequences to use instead, one per line.
        #[arg(long)]
        tokens_file: Option<PathBuf>,
        /// Write every score to this safetensors file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A TransformerLens config.json for a checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Ablate each head and the direct path (zero and mean): the loss change per term.
    #[command(group(ArgGroup::new("input").required(true).args(["tokens", "prompt"])))]
    Ablate {
        /// A .tlb blob or a .safetensors checkpoint.
        model: PathBuf,
        /// Token ids, comma separated.
        #[arg(long)]
        tokens: Option<String>,
        /// Text, encoded with the model's vocabulary.
        #[arg(long)]
        prompt: Option<String>,
        /// Write the losses to this safetensors file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A TransformerLens config.json for a checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Pictures: attention (HTML page and SVG heatmaps), attribution bars, head score grids.
    Plot {
        #[command(subcommand)]
        what: Plot,
    },
    /// Train an attention-only transformer on the CPU and save it as a TransformerLens checkpoint.
    Train(TrainArgs),
    /// Show what a blob or checkpoint holds: config, tensors, sizes, format, checksum.
    Inspect {
        /// A .tlb blob or a .safetensors checkpoint.
        file: PathBuf,
        /// A TransformerLens config.json for a checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Plot {
    /// A self-contained HTML page of every head's attention (and SVG heatmaps with --svg-dir).
    #[command(group(ArgGroup::new("input").required(true).args(["tokens", "prompt"])))]
    Attention {
        /// A .tlb blob or a .safetensors checkpoint.
        model: PathBuf,
        /// Token ids, comma separated.
        #[arg(long)]
        tokens: Option<String>,
        /// Text, encoded with the model's vocabulary.
        #[arg(long)]
        prompt: Option<String>,
        /// The HTML page to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Also write one SVG heatmap per head into this directory.
        #[arg(long)]
        svg_dir: Option<PathBuf>,
        /// A TransformerLens config.json for a checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Bars per term (direct path, heads, biases) for one logit at the last position (SVG).
    #[command(group(ArgGroup::new("input").required(true).args(["tokens", "prompt"])))]
    Attribution {
        /// A .tlb blob or a .safetensors checkpoint.
        model: PathBuf,
        /// Token ids, comma separated.
        #[arg(long)]
        tokens: Option<String>,
        /// Text, encoded with the model's vocabulary.
        #[arg(long)]
        prompt: Option<String>,
        /// The token whose logit to split (text or id); default the top prediction.
        #[arg(long)]
        token: Option<String>,
        /// The SVG to write.
        #[arg(short, long)]
        output: PathBuf,
        /// A TransformerLens config.json for a checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Grids of head scores and composition scores (SVG).
    Heads {
        /// A .tlb blob or a .safetensors checkpoint.
        model: PathBuf,
        /// Number of repeated random sequences.
        #[arg(long, default_value_t = 8)]
        seqs: usize,
        /// Seed of the random sequences.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The SVG to write.
        #[arg(short, long)]
        output: PathBuf,
        /// A TransformerLens config.json for a checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The arguments of `tinylens train`.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("source").required(true).args(["text", "task"])))]
struct TrainArgs {
    /// A text file to train on (a tokenizer is built from it, see --tokenizer).
    #[arg(long)]
    text: Option<PathBuf>,
    /// A built-in generated corpus instead: skip-trigrams (demo-1l, word-level) or stories
    /// (demo-2l, syllables and words).
    #[arg(long)]
    task: Option<String>,
    /// Tokenizer of --text: char, byte or word.
    #[arg(long, default_value = "char")]
    tokenizer: String,
    /// Size of the generated corpus, in tokens.
    #[arg(long, default_value_t = 1_000_000)]
    corpus_tokens: usize,
    /// Also write the corpus as text to this file.
    #[arg(long)]
    write_corpus: Option<PathBuf>,
    /// Write the corpus (--write-corpus) and stop, training nothing: with a seed other than
    /// the model's, held-out text for `validate --text`.
    #[arg(long, requires = "write_corpus")]
    corpus_only: bool,
    /// The directory to write model.safetensors, config.json, vocab.json, loss.csv, loss.svg.
    #[arg(short, long, required_unless_present = "corpus_only")]
    output: Option<PathBuf>,
    /// Attention layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Heads per layer.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Width of the residual stream.
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    /// Width of each head.
    #[arg(long, default_value_t = 16)]
    d_head: usize,
    /// Context length.
    #[arg(long, default_value_t = 64)]
    n_ctx: usize,
    /// LayerNorm before each layer and the unembedding.
    #[arg(long)]
    ln: bool,
    /// Positional embedding: standard or shortformer.
    #[arg(long, default_value = "standard")]
    pos: String,
    /// Optimizer steps.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Windows per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Seed of the weights, the batches and the generated corpus.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads for candle (the tensors are small: one thread is usually fastest).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// `tinylens train`.
fn train(a: TrainArgs) -> anyhow::Result<()> {
    use tinylens_cli::train::{
        corpus::Tokenizer, train_command, write_corpus_command, Source, TrainOptions,
    };
    // candle sizes its thread pool from this variable when it first computes; nothing else
    // runs yet.
    std::env::set_var("RAYON_NUM_THREADS", a.threads.max(1).to_string());
    let source = match (a.text, a.task.as_deref()) {
        (Some(path), _) => Source::Text(path, Tokenizer::from_name(&a.tokenizer)?),
        (None, Some("skip-trigrams")) => Source::SkipTrigrams(a.corpus_tokens),
        (None, Some("stories")) => Source::Stories(a.corpus_tokens),
        (None, Some(other)) => {
            anyhow::bail!("unknown --task {other:?}: expected skip-trigrams or stories")
        }
        (None, None) => unreachable!("clap requires one of --text, --task"),
    };
    let pos = match a.pos.as_str() {
        "standard" => tinylens::PosEmbed::Standard,
        "shortformer" => tinylens::PosEmbed::Shortformer,
        other => anyhow::bail!("unknown --pos {other:?}: expected standard or shortformer"),
    };
    let opts = TrainOptions {
        source,
        n_layers: a.layers,
        n_heads: a.heads,
        d_model: a.d_model,
        d_head: a.d_head,
        n_ctx: a.n_ctx,
        layer_norm: a.ln,
        pos,
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        weight_decay: a.weight_decay,
        seed: a.seed,
        progress: true,
    };
    match (a.output, a.write_corpus) {
        (_, Some(corpus)) if a.corpus_only => write_corpus_command(&opts, &corpus),
        (Some(output), corpus) => train_command(&opts, &output, corpus.as_deref()),
        (None, _) => unreachable!("clap requires --output unless --corpus-only"),
    }
}

/// `--tokens` or `--prompt`, as clap guarantees one of them.
fn input(tokens: Option<String>, prompt: Option<String>) -> Input {
    match (tokens, prompt) {
        (Some(t), _) => Input::Tokens(t),
        (None, Some(p)) => Input::Prompt(p),
        (None, None) => unreachable!("clap requires one of --tokens, --prompt"),
    }
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
            text,
            random,
            seed,
            config,
        } => tinylens_cli::validate::validate_command(
            &checkpoint,
            &model,
            config.as_deref(),
            match (tokens_file, text) {
                (Some(path), _) => Sequences::TokensFile(path),
                (None, Some(path)) => Sequences::Text(path),
                (None, None) => Sequences::Random {
                    n: random.unwrap_or(8),
                    seed,
                },
            },
        )
        .map(|_| ()),
        Command::Circuits {
            model,
            head,
            top,
            rows,
            no_direct,
            out,
            config,
        } => analysis::circuits_command(
            &model,
            config.as_deref(),
            head.as_deref(),
            top,
            rows,
            no_direct,
            out.as_deref(),
        ),
        Command::Heads {
            model,
            seqs,
            seed,
            tokens_file,
            out,
            config,
        } => analysis::heads_command(
            &model,
            config.as_deref(),
            tokens_file.as_deref(),
            seqs,
            seed,
            out.as_deref(),
        ),
        Command::Ablate {
            model,
            tokens,
            prompt,
            out,
            config,
        } => analysis::ablate_command(
            &model,
            config.as_deref(),
            &input(tokens, prompt),
            out.as_deref(),
        ),
        Command::Plot { what } => match what {
            Plot::Attention {
                model,
                tokens,
                prompt,
                output,
                svg_dir,
                config,
            } => analysis::plot_attention_command(
                &model,
                config.as_deref(),
                &input(tokens, prompt),
                &output,
                svg_dir.as_deref(),
            ),
            Plot::Attribution {
                model,
                tokens,
                prompt,
                token,
                output,
                config,
            } => analysis::plot_attribution_command(
                &model,
                config.as_deref(),
                &input(tokens, prompt),
                token.as_deref(),
                &output,
            ),
            Plot::Heads {
                model,
                seqs,
                seed,
                output,
                config,
            } => analysis::plot_heads_command(&model, config.as_deref(), seqs, seed, &output),
        },
        Command::Train(args) => train(args),
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
