//! `tinylens train`: attention-only transformers trained on the CPU with candle's autodiff and
//! a hand-written AdamW, saved as TransformerLens checkpoints.
//!
//! - [`model`]: the parameters as candle variables and the batched forward pass.
//! - [`corpus`]: tokenizers and the generated corpora of the demo models.
//! - [`eval`]: name completion on fresh stories, measured with the kernel.
//! - [`curve`]: the loss curve as CSV and SVG.
//!
//! Training is deterministic for a seed on one machine: the initial weights and the batches
//! come from a seeded generator, and candle's CPU kernels sum in a fixed order.

pub mod corpus;
pub mod curve;
pub mod eval;
pub mod model;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use tinylens::{Config, Norm, PosEmbed};

use crate::analysis::SplitMix;
use crate::params::Params;
use corpus::{Corpus, Tokenizer};
use model::{token_tensor, ModelVars};

/// Where the training text comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A text file, split by a tokenizer built from it.
    Text(PathBuf, Tokenizer),
    /// The demo-1l corpus ([`corpus::skip_trigrams`]) of about this many tokens.
    SkipTrigrams(usize),
    /// The demo-2l corpus ([`corpus::stories`]) of about this many tokens.
    Stories(usize),
}

impl Source {
    /// The corpus, generated from `seed` for the built-in tasks.
    pub fn corpus(&self, seed: u64) -> Result<Corpus> {
        Ok(match self {
            Source::Text(path, tokenizer) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Corpus::from_pieces(&tokenizer.pieces(&text))
            }
            Source::SkipTrigrams(n) => corpus::skip_trigrams(seed, *n),
            Source::Stories(n) => corpus::stories(seed, *n),
        })
    }
}

/// Everything `tinylens train` takes.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The training text.
    pub source: Source,
    /// Attention layers.
    pub n_layers: usize,
    /// Heads per layer.
    pub n_heads: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Width of a head.
    pub d_head: usize,
    /// Context length (the length of every training window).
    pub n_ctx: usize,
    /// LayerNorm before each layer and the unembedding.
    pub layer_norm: bool,
    /// Positional embedding: standard or shortformer.
    pub pos: PosEmbed,
    /// Optimizer steps.
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    /// Peak learning rate (after a linear warm-up, then a cosine decay to a tenth).
    pub lr: f64,
    /// AdamW weight decay (weight matrices and embeddings only).
    pub weight_decay: f64,
    /// Seed of the initial weights, the batches and the generated corpus.
    pub seed: u64,
    /// The fraction of the training windows that are repeated random sequences of the
    /// vocabulary's tokens instead of corpus text (0 to 1).
    pub repeated_random: f64,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a training run produced.
pub struct Trained {
    /// The trained model, with the corpus' vocabulary.
    pub params: Params,
    /// The training loss of every step.
    pub losses: Vec<f32>,
    /// The learning rate of every step.
    pub lrs: Vec<f64>,
    /// Mean loss of the last tenth of the steps.
    pub final_loss: f32,
    /// Wall-clock seconds of the optimization.
    pub seconds: f64,
}

impl TrainOptions {
    /// The model shape, with `d_vocab` from the corpus.
    pub fn config(&self, d_vocab: usize) -> Config {
        Config {
            n_layers: self.n_layers,
            n_heads: self.n_heads,
            d_model: self.d_model,
            d_head: self.d_head,
            d_vocab,
            n_ctx: self.n_ctx,
            norm: if self.layer_norm {
                Norm::LayerNorm { eps: 1e-5 }
            } else {
                Norm::None
            },
            pos: self.pos,
        }
    }
}

/// The learning rate at `step`: linear warm-up over the first 5% of the steps, then a cosine
/// decay from `peak` to `peak / 10`.
pub fn learning_rate(step: usize, steps: usize, peak: f64) -> f64 {
    let warmup = (steps / 20).max(1);
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let t = (step - warmup) as f64 / (steps - warmup).max(1) as f64;
    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// AdamW (Loshchilov & Hutter): Adam moments with bias correction, decoupled weight decay.
struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// First and second moments, one pair per variable.
    moments: Vec<(Tensor, Tensor)>,
    t: i32,
}

impl AdamW {
    fn new(vars: &[(&candle_core::Var, bool)], weight_decay: f64) -> Result<AdamW> {
        let moments = vars
            .iter()
            .map(|(v, _)| Ok((v.zeros_like()?, v.zeros_like()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay,
            moments,
            t: 0,
        })
    }

    /// One step on `vars` with `grads` (each already clipped), at learning rate `lr`.
    fn step(
        &mut self,
        vars: &[(&candle_core::Var, bool)],
        grads: &[Tensor],
        lr: f64,
    ) -> Result<()> {
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t);
        let c2 = 1.0 - self.beta2.powi(self.t);
        for (((var, decay), g), (m, v)) in vars.iter().zip(grads).zip(&mut self.moments) {
            // Detached: the moments must not hold on to the graph of every step before.
            let g = g.detach();
            *m = ((&*m * self.beta1)? + (&g * (1.0 - self.beta1))?)?.detach();
            *v = ((&*v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?.detach();
            let update = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + self.eps)?)?;
            let mut next = (var.as_tensor() - (update * lr)?)?;
            if *decay {
                next = (next - (var.as_tensor() * (lr * self.weight_decay))?)?;
            }
            var.set(&next.detach())?;
        }
        Ok(())
    }
}

/// The training windows of a run, `n_ctx + 1` tokens each: most at random places of the
/// corpus, a `repeated_random` fraction of them repeated random sequences
/// ([`corpus::repeated_random`], chosen by [`corpus::is_repeated_window`]).
struct Windows<'a> {
    tokens: &'a [u32],
    d_vocab: usize,
    n_ctx: usize,
    repeated_random: f64,
    /// Windows drawn so far.
    drawn: u64,
}

impl Windows<'_> {
    /// The next window.
    fn next(&mut self, rng: &mut SplitMix) -> Vec<u32> {
        let len = self.n_ctx + 1;
        let k = self.drawn;
        self.drawn += 1;
        if corpus::is_repeated_window(k, self.repeated_random) {
            return corpus::repeated_random(rng, len, self.d_vocab);
        }
        let start = rng.below(self.tokens.len() - self.n_ctx);
        self.tokens[start..start + len].to_vec()
    }

    /// A batch of `batch` windows: the inputs and the targets (the inputs shifted by one).
    fn batch(&mut self, batch: usize, rng: &mut SplitMix) -> Result<(Tensor, Tensor)> {
        let n_ctx = self.n_ctx;
        let mut inputs = Vec::with_capacity(batch * n_ctx);
        let mut targets = Vec::with_capacity(batch * n_ctx);
        for _ in 0..batch {
            let w = self.next(rng);
            inputs.extend_from_slice(&w[..n_ctx]);
            targets.extend_from_slice(&w[1..]);
        }
        Ok((
            token_tensor(&inputs, batch, n_ctx)?,
            token_tensor(&targets, batch, n_ctx)?,
        ))
    }
}

/// Asks glibc's allocator to reuse freed memory instead of returning every large block to the
/// system: each training step allocates and frees the same few megabytes of tensors, and
/// fresh pages from the kernel (zeroed, page-faulted in) otherwise cost more than the
/// arithmetic.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is called before the training
    // loop allocates, and any value is valid for these two parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Trains a model on `corpus` with `opts`.
pub fn train(opts: &TrainOptions, corpus: &Corpus) -> Result<Trained> {
    ensure!(opts.n_layers >= 1, "--layers must be at least 1");
    ensure!(
        opts.n_heads >= 1 && opts.d_head >= 1,
        "--heads and --d-head must be at least 1"
    );
    ensure!(opts.d_model >= 2, "--d-model must be at least 2");
    ensure!(
        opts.steps >= 1 && opts.batch >= 1,
        "--steps and --batch must be at least 1"
    );
    ensure!(opts.n_ctx >= 2, "--n-ctx must be at least 2");
    ensure!(
        (0.0..=1.0).contains(&opts.repeated_random),
        "--repeated-random must be a fraction from 0 to 1, not {}",
        opts.repeated_random
    );
    if corpus.tokens.len() <= opts.n_ctx + 1 {
        bail!(
            "the corpus has {} tokens, too few for windows of n_ctx + 1 = {}",
            corpus.tokens.len(),
            opts.n_ctx + 1
        );
    }
    keep_freed_memory();
    let config = opts.config(corpus.vocab.len());
    let model = ModelVars::init(&config, opts.seed)?;
    let vars = model.all();
    let mut optimizer = AdamW::new(&vars, opts.weight_decay)?;
    let mut rng = SplitMix(opts.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0xb47c);
    let mut windows = Windows {
        tokens: &corpus.tokens,
        d_vocab: corpus.vocab.len(),
        n_ctx: opts.n_ctx,
        repeated_random: opts.repeated_random,
        drawn: 0,
    };
    let bar = if opts.progress {
        let bar = ProgressBar::new(opts.steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} steps, {msg} (eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    let mut losses = Vec::with_capacity(opts.steps);
    let mut lrs = Vec::with_capacity(opts.steps);
    let mut smooth = None::<f32>;
    for step in 0..opts.steps {
        let (inputs, targets) = windows.batch(opts.batch, &mut rng)?;
        let loss = model.loss(&inputs, &targets)?;
        let grads = loss.backward()?;
        let mut gs = Vec::with_capacity(vars.len());
        for (v, _) in &vars {
            gs.push(match grads.get(v) {
                Some(g) => g.clone(),
                None => v.zeros_like()?,
            });
        }
        // Clip the global gradient norm to 1.
        let norm_sq: f32 = gs
            .iter()
            .map(|g| g.sqr()?.sum_all()?.to_scalar::<f32>())
            .sum::<candle_core::Result<f32>>()?;
        let norm = norm_sq.sqrt();
        if norm > 1.0 {
            for g in &mut gs {
                *g = (&*g / f64::from(norm))?;
            }
        }
        let lr = learning_rate(step, opts.steps, opts.lr);
        optimizer.step(&vars, &gs, lr)?;
        let value = loss.to_scalar::<f32>()?;
        ensure!(
            value.is_finite(),
            "the loss diverged at step {step} (try a lower --lr)"
        );
        losses.push(value);
        lrs.push(lr);
        let s = smooth.map_or(value, |s| 0.95 * s + 0.05 * value);
        smooth = Some(s);
        bar.set_message(format!("loss {s:.3}"));
        bar.inc(1);
        if opts.progress && ((step + 1) % (opts.steps / 10).max(1) == 0) {
            bar.suspend(|| println!("step {:>6}: loss {s:.3}, lr {lr:.2e}", step + 1));
        }
    }
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    let tail = (losses.len() / 10).max(1);
    let final_loss = losses[losses.len() - tail..].iter().sum::<f32>() / tail as f32;
    Ok(Trained {
        params: model.to_params(Some(corpus.vocab.clone()))?,
        losses,
        lrs,
        final_loss,
        seconds,
    })
}

/// `tinylens train --corpus-only`: writes the corpus of `opts` (its source and seed) as text
/// and trains nothing. With a seed other than a model's, that is held-out text for
/// `tinylens validate --text`.
pub fn write_corpus_command(opts: &TrainOptions, path: &Path) -> Result<()> {
    let corpus = opts.source.corpus(opts.seed)?;
    crate::files::write(path, corpus.text())?;
    println!(
        "wrote the corpus ({} tokens, seed {}) to {}",
        corpus.tokens.len(),
        opts.seed,
        path.display()
    );
    Ok(())
}

/// `tinylens train`: trains, then writes `model.safetensors`, `config.json`, `vocab.json`,
/// `loss.csv` and `loss.svg` into `out_dir`.
pub fn train_command(
    opts: &TrainOptions,
    out_dir: &Path,
    write_corpus: Option<&Path>,
) -> Result<()> {
    let corpus = opts.source.corpus(opts.seed)?;
    if let Some(path) = write_corpus {
        crate::files::write(path, corpus.text())?;
        println!("wrote the corpus to {}", path.display());
    }
    let config = opts.config(corpus.vocab.len());
    println!(
        "corpus: {} tokens, vocabulary of {}",
        corpus.tokens.len(),
        corpus.vocab.len()
    );
    println!(
        "model: {}, {} parameters",
        crate::report::describe(&config),
        config.n_params()
    );
    println!(
        "training: {} steps of {} windows of {} tokens, peak lr {}, weight decay {}, seed {}",
        opts.steps, opts.batch, opts.n_ctx, opts.lr, opts.weight_decay, opts.seed
    );
    if opts.repeated_random > 0.0 {
        println!(
            "mix: {} of the windows are repeated random sequences",
            opts.repeated_random
        );
    }
    let trained = train(opts, &corpus)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let model_path = out_dir.join("model.safetensors");
    crate::import::save_checkpoint(&trained.params, &model_path)
        .with_context(|| format!("cannot save {}", model_path.display()))?;
    let csv = out_dir.join("loss.csv");
    crate::files::write(&csv, curve::csv(&trained.losses, &trained.lrs))?;
    let svg = out_dir.join("loss.svg");
    crate::files::write(&svg, curve::svg(&trained.losses))?;
    println!(
        "trained in {:.1} s: loss {:.3} -> {:.3} (mean of the last tenth of the steps)",
        trained.seconds, trained.losses[0], trained.final_loss
    );
    println!(
        "wrote {} (+ config.json, vocab.json), {} and {}",
        model_path.display(),
        csv.display(),
        svg.display()
    );
    if matches!(opts.source, Source::Stories(_)) {
        let r = eval::name_completion(&trained.params, opts.seed.wrapping_add(1_000_003), 50)?;
        println!("{r}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(steps: usize, seed: u64) -> TrainOptions {
        TrainOptions {
            source: Source::Stories(4000),
            n_layers: 2,
            n_heads: 2,
            d_model: 16,
            d_head: 8,
            n_ctx: 16,
            layer_norm: true,
            pos: PosEmbed::Standard,
            steps,
            batch: 4,
            lr: 1e-2,
            weight_decay: 0.01,
            seed,
            repeated_random: 0.0,
            progress: false,
        }
    }

    #[test]
    fn windows_mix_in_the_asked_fraction_of_repeated_sequences() {
        let corpus = Source::Stories(4000).corpus(1).unwrap();
        let d_vocab = corpus.vocab.len();
        let mut windows = Windows {
            tokens: &corpus.tokens,
            d_vocab,
            n_ctx: 16,
            repeated_random: 0.25,
            drawn: 0,
        };
        let mut rng = SplitMix(3);
        let drawn: Vec<Vec<u32>> = (0..400).map(|_| windows.next(&mut rng)).collect();
        let from_corpus = |w: &[u32]| corpus.tokens.windows(w.len()).any(|c| c == w);
        let (shortest, longest) = corpus::repeat_periods(17);
        let repeats =
            |w: &[u32]| (shortest..=longest).any(|p| (p..w.len()).all(|i| w[i] == w[i - p]));
        let repeated: Vec<&Vec<u32>> = drawn.iter().filter(|w| !from_corpus(w)).collect();
        assert_eq!(repeated.len(), 100);
        assert!(repeated.iter().all(|w| repeats(w) && w.len() == 17));
        assert!(drawn
            .iter()
            .filter(|w| from_corpus(w))
            .all(|w| w.len() == 17));
        // A batch holds the same windows, inputs and targets shifted by one.
        let (inputs, targets) = windows.batch(4, &mut rng).unwrap();
        assert_eq!(inputs.dims(), [4, 16]);
        assert_eq!(targets.dims(), [4, 16]);
        assert_eq!(windows.drawn, 404);
    }

    #[test]
    fn the_mix_is_deterministic_and_checked() {
        let mut opts = tiny(10, 5);
        opts.repeated_random = 0.5;
        let corpus = opts.source.corpus(opts.seed).unwrap();
        let a = train(&opts, &corpus).unwrap();
        assert_eq!(a.losses, train(&opts, &corpus).unwrap().losses);
        assert_ne!(a.losses, train(&tiny(10, 5), &corpus).unwrap().losses);
        opts.repeated_random = 1.5;
        let e = train(&opts, &corpus)
            .err()
            .expect("a fraction above 1 is refused");
        assert!(e.to_string().contains("--repeated-random"), "{e}");
    }

    #[test]
    fn learning_rate_warms_up_then_decays() {
        assert!(learning_rate(0, 100, 1.0) < learning_rate(4, 100, 1.0));
        assert!((learning_rate(5, 100, 1.0) - 1.0).abs() < 1e-9);
        assert!((learning_rate(99, 100, 1.0) - 0.1).abs() < 0.01);
    }

    #[test]
    fn training_is_deterministic_and_lowers_the_loss() {
        let opts = tiny(40, 5);
        let corpus = opts.source.corpus(opts.seed).unwrap();
        let a = train(&opts, &corpus).unwrap();
        let b = train(&opts, &corpus).unwrap();
        assert_eq!(a.losses, b.losses);
        assert_eq!(a.params, b.params);
        let first = a.losses[..5].iter().sum::<f32>() / 5.0;
        assert!(a.final_loss < first - 0.5, "{first} -> {}", a.final_loss);
        let c = train(&tiny(40, 6), &corpus).unwrap();
        assert_ne!(a.params, c.params);
    }
}
