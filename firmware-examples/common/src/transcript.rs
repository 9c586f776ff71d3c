//! The demo and its transcript.
//!
//! [`run`] tokenizes a prompt with the blob's vocabulary, prefills it, generates greedily through
//! the KV cache, and attributes the last prediction to every term of the path expansion (one
//! per head). It reports through [`Out`] as [`Line`]s, whose `Display` is the transcript
//! format; the firmware prints them, and the host prints them from the host kernel to make the
//! golden files. Lines starting with `target:`, `cost:` or `stack:` are device-only (the host
//! has no clock) and are what the runner collects as figures.
//!
//! Numbers: `f32` and `i8` blobs print values with 5 decimals (compared with a tolerance);
//! `int` blobs print Q16.16 logits both as decimals and raw (`(q16 146943)`), computed without
//! float, and are compared bit for bit.

use core::fmt::{self, Write};

use tinylens::blob::Vocab;
use tinylens::{Config, Error, Model, Norm, Term};
#[cfg(any(feature = "float", feature = "int"))]
use tinylens::{LnConvention, Target};

use crate::cost::{macs_at, Clock};

/// Longest prompt the demo tokenizes.
pub const MAX_PROMPT: usize = 64;
/// Most tokens the demo generates.
pub const MAX_NEW: usize = 64;
/// Most attribution terms (`Term::count`) the demo handles.
pub const MAX_TERMS: usize = 64;

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct Demo<'a> {
    /// The model's name, for the transcript.
    pub model: &'a str,
    /// The prompt's text, for the transcript; tokenized with the blob's vocabulary unless
    /// `tokens` are given.
    pub prompt: &'a str,
    /// The prompt's token ids, when they were found before the run (a firmware's `build.rs`
    /// tokenizes its prompt when it embeds the model).
    pub tokens: Option<&'a [u32]>,
    /// Tokens to generate (the first comes from the prefill, each next one from a step).
    pub new_tokens: usize,
}

/// The prompt every example runs, from demo-2l's held-out stories (`models/demo-2l/heldout.txt`):
/// a guest list, then the start of its first name again. The names are invented, new in every
/// story, so only the earlier mention tells how "Ku" goes on: the model copies the 8 tokens of
/// "tap Larut Sonebo", and the attribution of the last one, "bo", is mostly the induction head
/// L1H2. The vocabulary's words carry their leading space, as in the stories. 20 tokens: with
/// [`DEMO`]'s 8 new ones the decoder holds 27 positions, within demo-2l-micro's context of 32.
pub const PROMPT: &str = " The guests were Kutap Larut Sonebo. Mrs Gudavu wrote down Ku";

/// The demo of the examples: the prompt, then the rest of the name (on demo-2l and on
/// demo-2l-micro, its weights with a context of 32, alike).
pub const DEMO: Demo<'static> = Demo {
    model: "demo-2l",
    prompt: PROMPT,
    tokens: None,
    new_tokens: 8,
};

/// A logit or an attribution term.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// From the `f32` decoder (formats `f32`, `i8`).
    #[cfg(feature = "float")]
    F32(f32),
    /// From the integer decoder: Q16.16.
    Q16(i32),
}

/// `|v| / 2^16` rounded to 5 decimals, as (negative, integer part, 5 decimal digits), in
/// integers only.
pub fn q16_parts(v: i32) -> (bool, u32, u32) {
    let scaled = (v.unsigned_abs() as u64 * 100_000 + (1 << 15)) >> 16;
    (
        v < 0 && scaled != 0,
        (scaled / 100_000) as u32,
        (scaled % 100_000) as u32,
    )
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            #[cfg(feature = "float")]
            Value::F32(v) => write!(f, "{v:.5}"),
            Value::Q16(v) => {
                let (neg, int, frac) = q16_parts(v);
                let sign = if neg { "-" } else { "" };
                write!(f, "{sign}{int}.{frac:05} (q16 {v})")
            }
        }
    }
}

/// Why the demo stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DemoError {
    /// The kernel refused something.
    Kernel(Error),
    /// The blob has no vocabulary.
    NoVocab,
    /// The prompt has a character the vocabulary lacks, at this byte.
    Prompt(usize),
    /// The demo asks for more than its fixed buffers hold.
    TooLong,
    /// The blob's config is not the one the firmware sized its state from.
    Config,
}

impl From<Error> for DemoError {
    fn from(e: Error) -> Self {
        DemoError::Kernel(e)
    }
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Kernel(e) => write!(f, "{e}"),
            DemoError::NoVocab => f.write_str("the blob has no vocabulary"),
            DemoError::Prompt(at) => write!(
                f,
                "the prompt has a character at byte {at} that is not in the vocabulary"
            ),
            DemoError::TooLong => f.write_str("the demo is longer than its buffers"),
            DemoError::Config => f.write_str("the blob's config is not CONFIG"),
        }
    }
}

/// A decoder the demo can drive: [`tinylens::Decoder`] (`f32`, `i8`) or
/// `tinylens::IntDecoder` (`int`).
pub trait Engine {
    /// Runs the prompt through the KV cache.
    fn prefill(&mut self, tokens: &[u32]) -> Result<(), Error>;
    /// Appends one token.
    fn step(&mut self, token: u32) -> Result<(), Error>;
    /// The most likely next token (the first, on ties) and its logit.
    fn best(&self) -> Result<(u32, Value), Error>;
    /// Attributes the logit of `token` at the current position, `out`: `[Term::count]`.
    fn attribute(&mut self, token: u32, out: &mut [Value]) -> Result<(), Error>;
}

#[cfg(feature = "float")]
impl Engine for tinylens::Decoder<'_, '_> {
    fn prefill(&mut self, tokens: &[u32]) -> Result<(), Error> {
        tinylens::Decoder::prefill(self, tokens).map(|_| ())
    }
    fn step(&mut self, token: u32) -> Result<(), Error> {
        tinylens::Decoder::step(self, token).map(|_| ())
    }
    fn best(&self) -> Result<(u32, Value), Error> {
        let logits = self.logits()?;
        let t = tinylens::argmax(logits);
        Ok((t, Value::F32(logits[t as usize])))
    }
    fn attribute(&mut self, token: u32, out: &mut [Value]) -> Result<(), Error> {
        let mut terms = [0.0f32; MAX_TERMS];
        let terms = &mut terms[..out.len()];
        tinylens::Decoder::attribute(self, Target::Token(token), LnConvention::Exact, terms)?;
        for (o, &t) in out.iter_mut().zip(terms.iter()) {
            *o = Value::F32(t);
        }
        Ok(())
    }
}

#[cfg(feature = "int")]
impl Engine for tinylens::IntDecoder<'_, '_> {
    fn prefill(&mut self, tokens: &[u32]) -> Result<(), Error> {
        tinylens::IntDecoder::prefill(self, tokens).map(|_| ())
    }
    fn step(&mut self, token: u32) -> Result<(), Error> {
        tinylens::IntDecoder::step(self, token).map(|_| ())
    }
    fn best(&self) -> Result<(u32, Value), Error> {
        let logits = self.logits()?;
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        Ok((best as u32, Value::Q16(logits[best])))
    }
    fn attribute(&mut self, token: u32, out: &mut [Value]) -> Result<(), Error> {
        let mut terms = [0i32; MAX_TERMS];
        let terms = &mut terms[..out.len()];
        tinylens::IntDecoder::attribute(self, Target::Token(token), LnConvention::Exact, terms)?;
        for (o, &t) in out.iter_mut().zip(terms.iter()) {
            *o = Value::Q16(t);
        }
        Ok(())
    }
}

/// A term's short name: `embed`, `pos`, `L{layer}H{head}`, `b_O.{layer}`, `const`.
#[derive(Clone, Copy, Debug)]
pub struct TermName(pub Term);

impl fmt::Display for TermName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Term::Embed => f.write_str("embed"),
            Term::Pos => f.write_str("pos"),
            Term::Head { layer, head } => write!(f, "L{layer}H{head}"),
            Term::BiasO { layer } => write!(f, "b_O.{layer}"),
            Term::Const => f.write_str("const"),
        }
    }
}

/// One line of the transcript.
#[derive(Clone, Copy, Debug)]
pub enum Line<'a> {
    /// The machine (device only).
    Target(&'a str),
    /// The model, its format and the context the decoder holds.
    Model {
        /// Name.
        name: &'a str,
        /// Number format, as `tinylens quantize --format` spells it.
        format: &'a str,
        /// Config.
        cfg: &'a Config,
        /// Positions of the KV cache.
        context: usize,
    },
    /// The prompt.
    Prompt {
        /// Text.
        text: &'a str,
        /// Its length in tokens.
        tokens: usize,
    },
    /// One generated token.
    Next {
        /// Its position.
        pos: usize,
        /// Its id.
        id: u32,
        /// Its text.
        text: &'a str,
        /// Its logit.
        logit: Value,
    },
    /// The prompt and what followed it.
    Text {
        /// The prompt.
        prompt: &'a str,
        /// The generated tokens.
        generated: &'a [u32],
        /// The vocabulary to print them with.
        vocab: Vocab<'a>,
    },
    /// The heading of the attribution.
    Attribution {
        /// Whether the model has a final LayerNorm (the attribution is exact through it, frozen).
        layer_norm: bool,
        /// Position.
        pos: usize,
        /// Token id.
        id: u32,
        /// Token text.
        text: &'a str,
        /// Its logit.
        logit: Value,
    },
    /// One term of the attribution.
    Term {
        /// Which.
        term: Term,
        /// Its contribution to the logit.
        value: Value,
    },
    /// The sum of the terms.
    Sum(Value),
    /// Executed instructions (device only).
    Cost {
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Instructions of the whole prefill.
        prompt_instructions: u64,
        /// Generation steps timed.
        steps: usize,
        /// Instructions of all the steps.
        instructions: u64,
        /// Multiply-accumulates of all the steps.
        macs: u64,
    },
    /// Peak stack use in bytes (device only).
    Stack(usize),
    /// The end of a successful run.
    Done,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Line::Target(name) => write!(f, "target: {name}"),
            Line::Model { name, format, cfg, context } => write!(
                f,
                "model: {name} ({format}), {} layers x {} heads, d_model {}, d_head {}, d_vocab {}, context {context} of {}",
                cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab, cfg.n_ctx
            ),
            Line::Prompt { text, tokens } => write!(f, "prompt: \"{text}\" ({tokens} tokens)"),
            Line::Next { pos, id, text, logit } => {
                write!(f, "next at {pos}: \"{text}\" (id {id}) logit {logit}")
            }
            Line::Text { prompt, generated, vocab } => {
                write!(f, "text: \"{prompt}\" + \"")?;
                for &t in generated {
                    f.write_str(vocab.text(t).unwrap_or("?"))?;
                }
                f.write_char('"')
            }
            Line::Attribution { layer_norm, pos, id, text, logit } => write!(
                f,
                "attribution of \"{text}\" (id {id}) at {pos}, logit {logit}, {}:",
                attribution_kind(layer_norm)
            ),
            Line::Term { term, value } => write!(f, "  {} {value}", TermName(term)),
            Line::Sum(value) => write!(f, "  sum {value}"),
            Line::Cost { prompt_tokens, prompt_instructions, steps, instructions, macs } => {
                let per_token = instructions / steps.max(1) as u64;
                let per_mac_x100 = (instructions * 100 + macs / 2) / macs.max(1);
                write!(
                    f,
                    "cost: {per_token} instructions per token ({steps} generated tokens, {} MACs per token, {}.{:02} instructions per MAC), {} per prompt token ({prompt_tokens} tokens); executed instructions under QEMU -icount shift=0, not cycles",
                    macs / steps.max(1) as u64,
                    per_mac_x100 / 100,
                    per_mac_x100 % 100,
                    prompt_instructions / prompt_tokens.max(1) as u64,
                )
            }
            Line::Stack(bytes) => write!(f, "stack: {bytes} bytes at most"),
            Line::Done => f.write_str("done"),
        }
    }
}

/// How exact the attribution is: a sum of terms equal to the logit, through the final
/// LayerNorm frozen at its scale when the model has one.
pub fn attribution_kind(layer_norm: bool) -> &'static str {
    if layer_norm {
        "exact through the frozen final LayerNorm"
    } else {
        "exact (no LayerNorm)"
    }
}

/// Where transcript lines go.
pub trait Out {
    /// Prints one line.
    fn emit(&mut self, line: &Line<'_>);
}

/// Lines through `core::fmt`, one per `writeln!`.
pub struct FmtOut<W>(pub W);

impl<W: Write> Out for FmtOut<W> {
    fn emit(&mut self, line: &Line<'_>) {
        let _ = writeln!(self.0, "{line}");
    }
}

/// What a run measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Instructions per generated token, if a clock counted them.
    pub instructions_per_token: Option<u64>,
}

/// Splits `text` into token ids, longest vocabulary match first, into `out`; returns how many.
pub fn tokenize(vocab: Vocab<'_>, text: &str, out: &mut [u32]) -> Result<usize, DemoError> {
    let (mut at, mut n) = (0, 0);
    while at < text.len() {
        let rest = &text[at..];
        let mut best: Option<(u32, usize)> = None;
        for (id, piece) in vocab.iter().enumerate() {
            if !piece.is_empty()
                && rest.starts_with(piece)
                && best.is_none_or(|(_, len)| piece.len() > len)
            {
                best = Some((id as u32, piece.len()));
            }
        }
        let (id, len) = best.ok_or(DemoError::Prompt(at))?;
        *out.get_mut(n).ok_or(DemoError::TooLong)? = id;
        n += 1;
        at += len;
    }
    Ok(n)
}

/// Runs `demo` on `engine` (a decoder of `model`, over a KV cache of `context` positions):
/// prefill, greedy generation, attribution of the last prediction. Times the prefill and every
/// step with `clock`, and ends with a `cost:` line when the clock counts.
pub fn run<E: Engine>(
    model: &Model<'_>,
    engine: &mut E,
    context: usize,
    demo: &Demo<'_>,
    out: &mut impl Out,
    clock: &mut impl Clock,
) -> Result<Summary, DemoError> {
    let cfg = model.config();
    let vocab = model.vocab().ok_or(DemoError::NoVocab)?;
    let text = |t: u32| vocab.text(t).unwrap_or("?");
    out.emit(&Line::Model {
        name: demo.model,
        format: model.format().name(),
        cfg,
        context,
    });
    let mut buffer = [0u32; MAX_PROMPT];
    let prompt = match demo.tokens {
        Some(tokens) => tokens,
        None => {
            let n = tokenize(vocab, demo.prompt, &mut buffer)?;
            &buffer[..n]
        }
    };
    let n = prompt.len();
    out.emit(&Line::Prompt {
        text: demo.prompt,
        tokens: n,
    });
    if demo.new_tokens == 0 || demo.new_tokens > MAX_NEW {
        return Err(DemoError::TooLong);
    }

    let t0 = clock.now();
    engine.prefill(prompt)?;
    let t1 = clock.now();
    let prompt_instructions = t0.zip(t1).map(|(a, b)| b - a);

    let mut generated = [0u32; MAX_NEW];
    let (mut steps, mut instructions, mut macs) = (0usize, Some(0u64), 0u64);
    let (mut next, mut logit) = engine.best()?;
    for (i, slot) in generated[..demo.new_tokens].iter_mut().enumerate() {
        let pos = n + i;
        *slot = next;
        out.emit(&Line::Next {
            pos,
            id: next,
            text: text(next),
            logit,
        });
        if i + 1 == demo.new_tokens {
            break;
        }
        // The step's work: the new token at `pos`, attending to positions 0..=pos.
        let a = clock.now();
        engine.step(next)?;
        let b = clock.now();
        instructions = instructions
            .zip(a.zip(b))
            .map(|(sum, (a, b))| sum + (b - a));
        macs += macs_at(cfg, pos);
        steps += 1;
        (next, logit) = engine.best()?;
    }
    let generated = &generated[..demo.new_tokens];
    out.emit(&Line::Text {
        prompt: demo.prompt,
        generated,
        vocab,
    });

    // The last prediction was made at the last position the decoder holds.
    let last = generated[demo.new_tokens - 1];
    let count = Term::count(cfg);
    if count > MAX_TERMS {
        return Err(DemoError::TooLong);
    }
    out.emit(&Line::Attribution {
        // `matches!`, not `!=`: comparing `eps` would link float code into integer firmware.
        layer_norm: matches!(cfg.norm, Norm::LayerNorm { .. }),
        pos: n + demo.new_tokens - 2,
        id: last,
        text: text(last),
        logit,
    });
    let mut terms = [Value::Q16(0); MAX_TERMS];
    let terms = &mut terms[..count];
    engine.attribute(last, terms)?;
    for (k, &value) in terms.iter().enumerate() {
        let term = Term::nth(cfg, k).unwrap_or(Term::Const);
        out.emit(&Line::Term { term, value });
    }
    out.emit(&Line::Sum(sum(terms)));

    let mut summary = Summary::default();
    if let (Some(prompt_instructions), Some(instructions)) = (prompt_instructions, instructions) {
        let (prompt_instructions, instructions) = (
            clock.instructions(prompt_instructions),
            clock.instructions(instructions),
        );
        out.emit(&Line::Cost {
            prompt_tokens: n,
            prompt_instructions,
            steps,
            instructions,
            macs,
        });
        summary.instructions_per_token = Some(instructions / steps.max(1) as u64);
    }
    Ok(summary)
}

/// The sum of attribution terms (wrapping, in Q16.16, for the integer path).
fn sum(terms: &[Value]) -> Value {
    match terms.first() {
        #[cfg(feature = "float")]
        Some(Value::F32(_)) => Value::F32(
            terms
                .iter()
                .map(|v| match v {
                    Value::F32(x) => *x,
                    Value::Q16(_) => 0.0,
                })
                .sum(),
        ),
        _ => Value::Q16(terms.iter().fold(0i32, |s, v| match v {
            Value::Q16(x) => s.wrapping_add(*x),
            #[cfg(feature = "float")]
            Value::F32(_) => s,
        })),
    }
}
