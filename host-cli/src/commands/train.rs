//! `tinylens train`: an attention-only transformer trained on the CPU, saved as a
//! TransformerLens checkpoint.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::ArgGroup;

use crate::files::refuse_overwrite;
use crate::train::corpus::Tokenizer;
use crate::train::{train_command, write_corpus_command, Source, TrainOptions};

/// Train an attention-only transformer on the CPU and save it as a TransformerLens checkpoint.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("source").required(true).args(["text", "task"])))]
pub struct Args {
    /// A text file to train on (a tokenizer is built from it, see --tokenizer).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// A built-in generated corpus instead: skip-trigrams (demo-1l, word-level) or stories
    /// (demo-2l, syllables and words).
    #[arg(long)]
    pub task: Option<String>,
    /// Tokenizer of --text: char, byte or word.
    #[arg(long, default_value = "char")]
    pub tokenizer: String,
    /// Size of the generated corpus, in tokens.
    #[arg(long, default_value_t = 1_000_000)]
    pub corpus_tokens: usize,
    /// Also write the corpus as text to this file.
    #[arg(long)]
    pub write_corpus: Option<PathBuf>,
    /// Write the corpus (--write-corpus) and stop, training nothing: with a seed other than
    /// the model's, held-out text for `validate --text`.
    #[arg(long, requires = "write_corpus")]
    pub corpus_only: bool,
    /// The directory to write model.safetensors, config.json, vocab.json, loss.csv, loss.svg.
    #[arg(short, long, required_unless_present = "corpus_only")]
    pub output: Option<PathBuf>,
    /// Attention layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Heads per layer.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Width of the residual stream.
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    /// Width of each head.
    #[arg(long, default_value_t = 16)]
    pub d_head: usize,
    /// Context length.
    #[arg(long, default_value_t = 64)]
    pub n_ctx: usize,
    /// LayerNorm before each layer and the unembedding.
    #[arg(long)]
    pub ln: bool,
    /// Positional embedding: standard or shortformer.
    #[arg(long, default_value = "standard")]
    pub pos: String,
    /// Optimizer steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Windows per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Seed of the weights, the batches and the generated corpus.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The fraction (0 to 1) of the training windows that are a random sequence of the
    /// vocabulary's tokens repeated to fill the window (a period of an eighth to half of it,
    /// drawn anew each time) instead of corpus text: the shape `tinylens heads` scores on,
    /// which only an induction head, helped by a previous-token head, can predict. The
    /// windows are spread evenly over the run and drawn from --seed.
    #[arg(long, default_value_t = 0.0)]
    pub repeated_random: f64,
    /// CPU threads for candle (the tensors are small: one thread is usually fastest).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// `tinylens train`.
pub fn run(a: Args) -> Result<()> {
    // candle sizes its thread pool from this variable when it first computes; nothing else
    // runs yet.
    std::env::set_var("RAYON_NUM_THREADS", a.threads.max(1).to_string());
    if let (Some(corpus), Some(text)) = (&a.write_corpus, &a.text) {
        refuse_overwrite(corpus, &[text])?;
    }
    let source = match (a.text, a.task.as_deref()) {
        (Some(path), _) => Source::Text(path, Tokenizer::from_name(&a.tokenizer)?),
        (None, Some("skip-trigrams")) => Source::SkipTrigrams(a.corpus_tokens),
        (None, Some("stories")) => Source::Stories(a.corpus_tokens),
        (None, Some(other)) => {
            bail!("unknown --task {other:?}: expected skip-trigrams or stories")
        }
        (None, None) => unreachable!("clap requires one of --text, --task"),
    };
    let pos = match a.pos.as_str() {
        "standard" => tinylens::PosEmbed::Standard,
        "shortformer" => tinylens::PosEmbed::Shortformer,
        other => bail!("unknown --pos {other:?}: expected standard or shortformer"),
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
        repeated_random: a.repeated_random,
        progress: true,
    };
    match (a.output, a.write_corpus) {
        (_, Some(corpus)) if a.corpus_only => write_corpus_command(&opts, &corpus),
        (Some(output), corpus) => train_command(&opts, &output, corpus.as_deref()),
        (None, _) => unreachable!("clap requires --output unless --corpus-only"),
    }
}
