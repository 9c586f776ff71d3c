//! `tinylens generate`: streams new tokens through the KV cache, greedy or sampled, and slides
//! the window when the context is full.

use std::io::Write;

use anyhow::{bail, Result};
use tinylens::{Decoder, IntDecoder, Model, NumberFormat};

use crate::analysis::SplitMix;
use crate::inputs::{tokens_of, vocab_of};
use crate::report::top_k_by;
use crate::tokenize::decode;
use crate::trace::check_finite;

/// The most tokens one `generate` writes.
pub const MAX_NEW_TOKENS: usize = 100_000;

/// Generate text with the kernel: prefill once, one step per token, sliding past the context.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: super::ModelInput,
    /// How many new tokens.
    #[arg(short = 'n', default_value_t = 32)]
    pub n: usize,
    /// Sampling temperature; 0 picks the largest logit (greedy).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Sample among the K largest logits only (default: all of them).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Seed of the sampler: the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Choice {
    /// The largest logit, the lowest id among equals (as `tinylens::argmax`).
    Greedy,
    /// A draw from `softmax(logits / temperature)` over the `top_k` largest logits.
    Sample {
        /// Divides the logits before the softmax; above 0.
        temperature: f64,
        /// How many of the largest logits take part.
        top_k: usize,
    },
}

/// The choice the flags name, checked against a vocabulary of `d_vocab` tokens.
pub fn choice_of(args: &Args, d_vocab: usize) -> Result<Choice> {
    if args.n == 0 || args.n > MAX_NEW_TOKENS {
        bail!("-n {}: expected 1 to {MAX_NEW_TOKENS} new tokens", args.n);
    }
    let t = args.temperature;
    if !t.is_finite() || t < 0.0 {
        bail!("--temperature {t}: expected a finite number >= 0");
    }
    let top_k = args.top_k.unwrap_or(d_vocab);
    if top_k == 0 || top_k > d_vocab {
        bail!("--top-k {top_k}: expected 1 to d_vocab = {d_vocab}");
    }
    Ok(if t == 0.0 {
        Choice::Greedy
    } else {
        Choice::Sample {
            temperature: t,
            top_k,
        }
    })
}

/// The index of the largest value, the lowest among equals: `tinylens::argmax` over `f64`, so
/// Q16.16 logits converted without loss pick the same token as their `i32`s.
fn argmax(values: &[f64]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Draws a token from `softmax(logits / temperature)` restricted to the `top_k` largest logits.
pub fn sample(logits: &[f64], temperature: f64, top_k: usize, rng: &mut SplitMix) -> u32 {
    let ids = top_k_by(logits.len(), top_k.max(1), |a, b| {
        logits[a].total_cmp(&logits[b])
    });
    let Some(&first) = ids.first() else {
        return 0;
    };
    let max = logits[first as usize];
    let weights: Vec<f64> = ids
        .iter()
        .map(|&i| ((logits[i as usize] - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.unit() * total;
    for (&id, &w) in ids.iter().zip(&weights) {
        if u < w {
            return id;
        }
        u -= w;
    }
    // Rounding can leave `u` a hair above the last weight: the last candidate.
    ids[ids.len() - 1]
}

/// Either kernel decoder, with logits in logit units as `f64` (the integer decoder's Q16.16
/// divided by 2^16, exactly).
enum Stream<'m, 's> {
    /// `f32`, `i8` and `i8-block32` blobs.
    Float(Decoder<'m, 's>),
    /// `int` blobs.
    Int(IntDecoder<'m, 's>),
}

/// The arena of either decoder.
enum Storage {
    Float(Vec<f32>),
    Int(Vec<i32>),
}

impl Storage {
    fn for_model(model: &Model<'_>) -> Storage {
        let cfg = model.config();
        match model.format() {
            NumberFormat::Int => Storage::Int(vec![0; cfg.int_state_len()]),
            _ => Storage::Float(vec![0.0; cfg.state_len()]),
        }
    }
}

/// Q16.16 logits in logit units.
fn from_q16(logits: &[i32]) -> Vec<f64> {
    let unit = (1u64 << tinylens::forward_int::LOGIT_FRAC_BITS) as f64;
    logits.iter().map(|&x| x as f64 / unit).collect()
}

/// `f32` logits as `f64`, refusing NaN and infinities at `position`.
fn from_f32(logits: &[f32], position: usize) -> Result<Vec<f64>> {
    check_finite(logits, position)?;
    Ok(logits.iter().map(|&x| x as f64).collect())
}

impl<'m, 's> Stream<'m, 's> {
    fn new(model: &Model<'m>, storage: &'s mut Storage) -> Result<Self> {
        Ok(match storage {
            Storage::Float(a) => Stream::Float(Decoder::new(model, a)?),
            Storage::Int(a) => Stream::Int(IntDecoder::new(model, a)?),
        })
    }

    fn capacity(&self) -> usize {
        match self {
            Stream::Float(d) => d.capacity(),
            Stream::Int(d) => d.capacity(),
        }
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f64>> {
        match self {
            Stream::Float(d) => from_f32(d.prefill(tokens)?, tokens.len() - 1),
            Stream::Int(d) => Ok(from_q16(d.prefill(tokens)?)),
        }
    }

    fn slide(&mut self, recent: &[u32]) -> Result<Vec<f64>> {
        match self {
            Stream::Float(d) => from_f32(d.slide(recent)?, recent.len() - 1),
            Stream::Int(d) => Ok(from_q16(d.slide(recent)?)),
        }
    }

    /// One step, or `None` when the context is full.
    fn step(&mut self, token: u32) -> Result<Option<Vec<f64>>> {
        let full = |e: &tinylens::Error| matches!(e, tinylens::Error::ContextFull { .. });
        match self {
            Stream::Float(d) => {
                let position = d.len();
                match d.step(token) {
                    Err(e) if full(&e) => Ok(None),
                    r => from_f32(r?, position).map(Some),
                }
            }
            Stream::Int(d) => match d.step(token) {
                Err(e) if full(&e) => Ok(None),
                r => Ok(Some(from_q16(r?))),
            },
        }
    }
}

/// What a generation produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// The new tokens.
    pub tokens: Vec<u32>,
    /// How many times the window slid.
    pub slides: usize,
}

/// Generates `n` tokens after `prompt`, calling `emit` with each as soon as it is chosen.
/// Prefills once, then steps once per token; when the cache is full it slides, keeping the
/// newest half of the window before the new token (the kernel's documented pattern), and
/// `on_slide` hears of it.
pub fn generate_with(
    model: &Model<'_>,
    prompt: &[u32],
    n: usize,
    choice: Choice,
    seed: u64,
    mut emit: impl FnMut(u32) -> Result<()>,
    mut on_slide: impl FnMut(usize),
) -> Result<Generated> {
    let mut storage = Storage::for_model(model);
    let mut stream = Stream::new(model, &mut storage)?;
    let mut rng = SplitMix(seed);
    let mut history = prompt.to_vec();
    let mut logits = stream.prefill(prompt)?;
    let mut out = Generated {
        tokens: Vec::new(),
        slides: 0,
    };
    for i in 0..n {
        let next = match choice {
            Choice::Greedy => argmax(&logits),
            Choice::Sample { temperature, top_k } => sample(&logits, temperature, top_k, &mut rng),
        };
        emit(next)?;
        out.tokens.push(next);
        history.push(next);
        if i + 1 == n {
            break;
        }
        logits = match stream.step(next)? {
            Some(l) => l,
            None => {
                let keep = (stream.capacity() / 2 + 1).min(stream.capacity());
                out.slides += 1;
                on_slide(keep);
                stream.slide(&history[history.len() - keep..])?
            }
        };
    }
    Ok(out)
}

/// `tinylens generate`.
pub fn run(args: Args) -> Result<()> {
    let loaded = args.model.load()?;
    let model = loaded.model()?;
    let cfg = *model.config();
    let choice = choice_of(&args, cfg.d_vocab)?;
    let tokens = tokens_of(&model, &args.model.input())?;
    if tokens.is_empty() {
        bail!("the prompt has no tokens");
    }
    let vocab = vocab_of(&model);
    let show = |ids: &[u32], first: bool| match &vocab {
        Some(v) => decode(v, ids),
        None => {
            let list: Vec<String> = ids.iter().map(u32::to_string).collect();
            let sep = if first { "" } else { " " };
            format!("{sep}{}", list.join(" "))
        }
    };
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{}", show(&tokens, true))?;
    if vocab.is_none() {
        write!(stdout, " |")?;
    }
    stdout.flush()?;
    let mut said = false;
    let done = generate_with(
        &model,
        &tokens,
        args.n,
        choice,
        args.seed,
        |t| {
            write!(stdout, "{}", show(&[t], false))?;
            stdout.flush()?;
            Ok(())
        },
        |keep| {
            if !said {
                eprintln!(
                    "(the context of {} tokens is full: sliding the window, going on from the \
                     newest {keep} tokens)",
                    cfg.n_ctx
                );
                said = true;
            }
        },
    )?;
    writeln!(stdout)?;
    writeln!(
        stdout,
        "({} tokens, {} slides)",
        done.tokens.len(),
        done.slides
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_at_a_tiny_temperature_is_greedy() {
        let logits = [0.5, 2.0, 1.0, 2.0 - 1e-3];
        let mut rng = SplitMix(7);
        for _ in 0..50 {
            assert_eq!(sample(&logits, 1e-6, 4, &mut rng), 1);
        }
    }

    #[test]
    fn top_1_sampling_is_greedy_and_top_2_never_leaves_the_two() {
        let logits = [0.0, 3.0, 1.0, 2.9];
        let mut rng = SplitMix(1);
        let mut seen = [0usize; 4];
        for _ in 0..200 {
            assert_eq!(sample(&logits, 1.0, 1, &mut rng), 1);
            seen[sample(&logits, 1.0, 2, &mut rng) as usize] += 1;
        }
        assert_eq!((seen[0], seen[2]), (0, 0));
        assert!(seen[1] > 50 && seen[3] > 50, "{seen:?}");
    }

    #[test]
    fn unit_draws_stay_in_range() {
        let mut rng = SplitMix(0);
        assert!((0..1000)
            .map(|_| rng.unit())
            .all(|u| (0.0..1.0).contains(&u)));
    }
}
