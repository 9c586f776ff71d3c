//! The subcommands of `tinylens`, one function each. `main.rs` parses arguments and prints
//! errors; everything else is here.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tinylens::blob::{NumberFormat, TensorKind, ALIGN};
use tinylens::{Config, Model};

use crate::blobio::{load_model, LoadedModel};
use crate::report::{describe, print_attribution, print_top_k, top_k};
use crate::tokenize::{decode, encode, parse_ids, show};
use crate::trace::{trace, write_safetensors};

/// Where the tokens of a run come from.
pub enum Input {
    /// Token ids.
    Tokens(String),
    /// Text, encoded with the model's vocabulary.
    Prompt(String),
}

/// The vocabulary of a loaded model, as owned strings.
pub fn vocab_of(model: &Model<'_>) -> Option<Vec<String>> {
    model
        .vocab()
        .map(|v| v.iter().map(str::to_string).collect())
}

/// `tinylens quantize`: a checkpoint to a blob of any number format. `calibrate` (token
/// sequences, one per line) sets the activation ranges of the `int` format.
pub fn quantize(
    input: &Path,
    output: &Path,
    format: &str,
    config: Option<&Path>,
    calibrate: Option<&Path>,
) -> Result<()> {
    let Some(number_format) = NumberFormat::from_name(format) else {
        let names: Vec<&str> = NumberFormat::ALL.iter().map(|f| f.name()).collect();
        bail!(
            "unsupported --format {format:?}: expected one of {}",
            names.join(", ")
        );
    };
    if calibrate.is_some() && number_format != NumberFormat::Int {
        bail!(
            "--calibrate sets activation ranges of the int format only (this is --format {format})"
        );
    }
    let params = crate::import::load_checkpoint(input, config)
        .with_context(|| format!("cannot import {}", input.display()))?;
    let calibration = match calibrate {
        Some(path) => Some(read_tokens_file(&path.to_path_buf())?),
        None => None,
    };
    let bytes = crate::quantize::quantize_params(&params, number_format, calibration.as_deref())
        .with_context(|| format!("cannot quantize {} to {format}", input.display()))?;
    std::fs::write(output, &bytes).with_context(|| format!("cannot write {}", output.display()))?;
    println!(
        "wrote {} ({} bytes, {}): {}",
        output.display(),
        bytes.len(),
        format,
        describe(&params.config)
    );
    Ok(())
}

/// `tinylens run`: the kernel over a prompt; top-k, attribution, and optionally every hook.
pub fn run(
    model_path: &Path,
    config: Option<&Path>,
    input: &Input,
    top: usize,
    out: Option<&Path>,
) -> Result<()> {
    let loaded = load_model(model_path, config)?;
    let model = loaded.model()?;
    run_model(&model, input, top, out)
}

/// [`run`] on a loaded model.
pub fn run_model(model: &Model<'_>, input: &Input, top: usize, out: Option<&Path>) -> Result<()> {
    let cfg = *model.config();
    let vocab = vocab_of(model);
    let tokens = match input {
        Input::Tokens(list) => parse_ids(list)?,
        Input::Prompt(text) => match &vocab {
            Some(v) => encode(v, text)?,
            None => bail!("this model has no vocabulary: give --tokens instead of --prompt"),
        },
    };
    if tokens.len() > cfg.n_ctx {
        bail!(
            "the prompt is {} tokens long, longer than the model's context n_ctx = {}",
            tokens.len(),
            cfg.n_ctx
        );
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= cfg.d_vocab) {
        bail!(
            "token {bad} is out of range: the model has d_vocab = {}",
            cfg.d_vocab
        );
    }
    println!("model: {} ({})", describe(&cfg), model.format().name());
    match &vocab {
        Some(v) => println!("prompt: {:?} ({} tokens)", decode(v, &tokens), tokens.len()),
        None => println!("prompt: {} tokens {:?}", tokens.len(), tokens),
    }
    let t = trace(model, &tokens)?;
    let last = &t.logits[(t.seq - 1) * cfg.d_vocab..];
    print_top_k(last, vocab.as_deref(), top.min(cfg.d_vocab));
    let best = top_k(last, 1)[0];
    println!();
    print_attribution(&t, &cfg, vocab.as_deref(), best);
    if let Some(path) = out {
        write_safetensors(&t, &cfg, path)?;
        println!(
            "\nwrote every hook and the attribution of every position to {}",
            path.display()
        );
    }
    Ok(())
}

/// The shape of a tensor under `cfg`, as TransformerLens has it.
pub fn shape(kind: TensorKind, cfg: &Config) -> Vec<usize> {
    let (h, m, d, v) = (cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab);
    match kind {
        TensorKind::WE => vec![v, m],
        TensorKind::WPos => vec![cfg.n_ctx, m],
        TensorKind::WQ | TensorKind::WK | TensorKind::WV => vec![h, m, d],
        TensorKind::WO => vec![h, d, m],
        TensorKind::BQ | TensorKind::BK | TensorKind::BV => vec![h, d],
        TensorKind::WU => vec![m, v],
        TensorKind::BU => vec![v],
        _ => vec![m],
    }
}

/// `tinylens inspect`: what a blob or checkpoint holds.
pub fn inspect(path: &Path, config: Option<&Path>) -> Result<()> {
    let loaded: LoadedModel = load_model(path, config)?;
    let model = loaded.model()?;
    let cfg = *model.config();
    let blob = model.blob();
    let is_blob = loaded.params.is_none();
    println!("file:      {}", path.display());
    if is_blob {
        println!(
            "blob:      format version {}, {} bytes, CRC32 {:#010x} (verified)",
            tinylens::blob::VERSION,
            blob.len,
            blob.crc
        );
    } else {
        println!("checkpoint: TransformerLens safetensors (shown as the f32 blob it becomes)");
    }
    println!("format:    {}", model.format().name());
    println!("config:    {}", describe(&cfg));
    println!(
        "params:    {} ({} bytes as f32)",
        cfg.n_params(),
        cfg.n_params() * 4
    );
    if is_blob {
        // int8 parameter bytes: one byte per parameter, the floor of any 8-bit format.
        println!(
            "size:      blob {} bytes = {:.3}x the int8 parameter bytes ({}), {:.3}x the f32 ones",
            blob.len,
            blob.len as f64 / cfg.n_params() as f64,
            cfg.n_params(),
            blob.len as f64 / (4 * cfg.n_params()) as f64
        );
    }
    if model.format() == NumberFormat::Int {
        println!(
            "state:     {} bytes to decode the full context (Config::int_state_bytes; f32 would take {})",
            cfg.int_state_bytes(),
            cfg.state_bytes()
        );
    } else {
        println!(
            "state:     {} bytes to decode the full context (Config::state_bytes)",
            cfg.state_bytes()
        );
    }
    println!(
        "as Rust:   const CONFIG: tinylens::Config = {};",
        rust_literal(&cfg)
    );
    match model.vocab() {
        Some(v) => {
            let head: Vec<String> = v.iter().take(12).map(|t| format!("{t:?}")).collect();
            println!("vocab:     {} tokens: {} ...", v.len(), head.join(" "));
        }
        None => println!("vocab:     none (token ids only)"),
    }
    println!(
        "tensors:   data section {} bytes, each tensor {ALIGN}-byte aligned",
        blob.data.len()
    );
    println!(
        "  {:<24} {:<16} {:>5} {:>10} {:>10}",
        "name", "shape", "dtype", "elements", "offset"
    );
    for (id, entry) in blob.entries() {
        let dtype = match entry.dtype {
            0 => "f32",
            1 => "i8",
            2 => "i32",
            _ => "?",
        };
        let shape = match id.kind {
            TensorKind::Quant | TensorKind::LayerQuant => vec![entry.len as usize],
            kind => shape(kind, &cfg),
        };
        println!(
            "  {:<24} {:<16} {:>5} {:>10} {:>10}",
            id.to_string(),
            format!("{shape:?}"),
            dtype,
            entry.len,
            entry.offset
        );
    }
    Ok(())
}

/// The config as a Rust expression, for a firmware's `const CONFIG` (to size its state).
pub fn rust_literal(cfg: &Config) -> String {
    let norm = match cfg.norm {
        tinylens::Norm::None => "tinylens::Norm::None".to_string(),
        tinylens::Norm::LayerNorm { eps } => {
            format!("tinylens::Norm::LayerNorm {{ eps: {eps:e} }}")
        }
    };
    format!(
        "tinylens::Config {{ n_layers: {}, n_heads: {}, d_model: {}, d_head: {}, d_vocab: {}, \
         n_ctx: {}, norm: {norm}, pos: tinylens::PosEmbed::{:?} }}",
        cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab, cfg.n_ctx, cfg.pos
    )
}

/// The demo model, embedded in the binary: `models/demo-2l` as an f32 blob.
pub const DEMO_BLOB: &[u8] = include_bytes!("../assets/demo.tlb");
/// The demo prompt: a story opening in which an invented name comes back, cut inside it.
pub const DEMO_PROMPT: &str = "Mr and Mrs Durasoli, of number 4, Pivet Drive, were proud to say \
                               that they were perfectly normal. Mr Dura";

/// `tinylens demo`: the embedded model on the default prompt.
pub fn demo(prompt: Option<&str>) -> Result<()> {
    let blob = tinylens::writer::AlignedBytes::new(DEMO_BLOB);
    let model = Model::from_blob(blob.as_bytes())?;
    let prompt = prompt.unwrap_or(DEMO_PROMPT);
    println!("tinylens demo: an attention-only transformer, run by the no_std kernel");
    println!(
        "(the embedded model is models/demo-2l: 2 layers trained by `tinylens train` on \
         generated stories whose invented names recur, new in every story: only an earlier \
         mention can tell how \"Dura...\" goes on)\n"
    );
    crate::demo::story_demo(&model, prompt, &crate::demo::attention_page_path())
}

/// Greedy generation through the KV cache: prefill once, then one `step` per new token.
pub fn generate(model: &Model<'_>, prompt: &str, n: usize) -> Result<()> {
    let vocab = vocab_of(model).unwrap_or_default();
    let tokens = encode(&vocab, prompt)?;
    let mut arena = vec![0.0f32; model.config().state_len()];
    let mut decoder = tinylens::Decoder::new(model, &mut arena)?;
    let mut next = tinylens::argmax(decoder.prefill(&tokens)?);
    let mut out = Vec::new();
    for _ in 0..n.min(model.config().n_ctx.saturating_sub(tokens.len())) {
        out.push(next);
        next = tinylens::argmax(decoder.step(next)?);
    }
    println!(
        "\ngreedy continuation ({} steps on the KV cache): {:?} + {:?}",
        out.len(),
        prompt,
        decode(&vocab, &out)
    );
    Ok(())
}

/// Reads token sequences for `validate`: one sequence per line, ids separated by commas or
/// spaces.
pub fn read_tokens_file(path: &PathBuf) -> Result<Vec<Vec<u32>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let ids = parse_ids(&line.replace(char::is_whitespace, ","))
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        out.push(ids);
    }
    if out.is_empty() {
        bail!("{} has no token sequences", path.display());
    }
    Ok(out)
}

/// Shows a token for messages.
pub fn token_label(model: &Model<'_>, id: u32) -> String {
    show(vocab_of(model).as_deref(), id)
}
