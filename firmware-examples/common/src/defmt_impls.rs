//! Transcript lines as defmt frames: the same words as `Display`, formatted on the host by
//! `defmt-print`, so the runner compares them the same way; and [`DefmtBoard`], the report of
//! a board that logs with defmt.

use core::fmt::Display;

use defmt::{write, Format, Formatter};
use tinylens::Term;

use crate::report::Report;
use crate::transcript::{attribution_kind, q16_parts, Line, Out, Value};

impl Format for Value {
    fn format(&self, f: Formatter<'_>) {
        match *self {
            #[cfg(feature = "float")]
            Value::F32(v) => write!(f, "{=f32}", v),
            Value::Q16(v) => {
                let (neg, int, frac) = q16_parts(v);
                let mut digits = [b'0'; 5];
                let mut rest = frac;
                for d in digits.iter_mut().rev() {
                    *d = b'0' + (rest % 10) as u8;
                    rest /= 10;
                }
                let digits = core::str::from_utf8(&digits).unwrap_or("?????");
                let sign = if neg { "-" } else { "" };
                write!(f, "{=str}{=u32}.{=str} (q16 {=i32})", sign, int, digits, v)
            }
        }
    }
}

fn term(f: Formatter<'_>, t: Term) {
    match t {
        Term::Embed => write!(f, "embed"),
        Term::Pos => write!(f, "pos"),
        Term::Head { layer, head } => write!(f, "L{=usize}H{=usize}", layer, head),
        Term::BiasO { layer } => write!(f, "b_O.{=usize}", layer),
        Term::Const => write!(f, "const"),
    }
}

impl Format for Line<'_> {
    fn format(&self, f: Formatter<'_>) {
        match *self {
            Line::Target(name) => write!(f, "target: {=str}", name),
            Line::Model { name, format, cfg, context } => write!(
                f,
                "model: {=str} ({=str}), {=usize} layers x {=usize} heads, d_model {=usize}, d_head {=usize}, d_vocab {=usize}, context {=usize} of {=usize}",
                name, format, cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab, context, cfg.n_ctx
            ),
            Line::Prompt { text, tokens } => {
                write!(f, "prompt: \"{=str}\" ({=usize} tokens)", text, tokens)
            }
            Line::Next { pos, id, text, logit } => write!(
                f,
                "next at {=usize}: \"{=str}\" (id {=u32}) logit {}",
                pos, text, id, logit
            ),
            Line::Text { prompt, generated, vocab } => {
                write!(f, "text: \"{=str}\" + \"", prompt);
                for &t in generated {
                    write!(f, "{=str}", vocab.text(t).unwrap_or("?"));
                }
                write!(f, "\"")
            }
            Line::Attribution { layer_norm, pos, id, text, logit } => write!(
                f,
                "attribution of \"{=str}\" (id {=u32}) at {=usize}, logit {}, {=str}:",
                text, id, pos, logit, attribution_kind(layer_norm)
            ),
            Line::Term { term: t, value } => {
                write!(f, "  ");
                term(f, t);
                write!(f, " {}", value)
            }
            Line::Sum(value) => write!(f, "  sum {}", value),
            Line::Cost { prompt_tokens, prompt_instructions, steps, instructions, macs } => {
                let per_token = instructions / steps.max(1) as u64;
                let per_mac_x100 = (instructions * 100 + macs / 2) / macs.max(1);
                write!(
                    f,
                    "cost: {=u64} instructions per token ({=usize} generated tokens, {=u64} MACs per token, {=u64}.{=u64}{=u64} instructions per MAC), {=u64} per prompt token ({=usize} tokens); executed instructions under QEMU -icount shift=0, not cycles",
                    per_token,
                    steps,
                    macs / steps.max(1) as u64,
                    per_mac_x100 / 100,
                    per_mac_x100 % 100 / 10,
                    per_mac_x100 % 10,
                    prompt_instructions / prompt_tokens.max(1) as u64,
                    prompt_tokens
                )
            }
            Line::Stack(bytes) => write!(f, "stack: {=usize} bytes at most", bytes),
            Line::Done => write!(f, "done"),
        }
    }
}

/// The transcript as defmt frames on a board (over whichever transport the firmware links,
/// e.g. `defmt-rtt`): a failure panics with its reason, a success prints `done` and then idles
/// in `idle` (`cortex_m::asm::wfi`, `riscv::asm::wfi`) for ever.
pub struct DefmtBoard {
    idle: fn(),
}

impl DefmtBoard {
    /// Prints the `target:` line naming the board; `idle` is what the core does once done.
    pub fn start(target: &str, idle: fn()) -> Self {
        let mut out = DefmtBoard { idle };
        out.emit(&Line::Target(target));
        out
    }
}

impl Out for DefmtBoard {
    fn emit(&mut self, line: &Line<'_>) {
        defmt::println!("{}", line);
    }
}

impl Report for DefmtBoard {
    fn finish(&mut self) -> ! {
        self.emit(&Line::Done);
        loop {
            (self.idle)();
        }
    }
    fn fail(&mut self, what: &dyn Display) -> ! {
        defmt::panic!("{}", defmt::Display2Format(what))
    }
}
