//! `tinylens inspect`: what a blob or checkpoint holds: config, tensors, sizes, format,
//! checksum, and the config as the Rust literal a firmware sizes its state with.

use anyhow::Result;
use tinylens::blob::{NumberFormat, TensorKind, ALIGN};
use tinylens::Config;

use crate::report::describe;
use crate::trace::{longest_trace, trace_bytes, MAX_TRACE_BYTES};

/// Show what a blob or checkpoint holds: config, tensors, sizes, format, checksum.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: super::ModelArgs,
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
pub fn run(args: Args) -> Result<()> {
    let path = args.model.model.as_path();
    let loaded = args.model.load()?;
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
    println!("{}", host_memory(&cfg));
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

/// What `run` needs on the host for a full context, with and without `--out`, against
/// [`MAX_TRACE_BYTES`]; past it, the longest prompt `--out` takes.
fn host_memory(cfg: &Config) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let run = trace_bytes(cfg, cfg.n_ctx, 0);
    let out = trace_bytes(cfg, cfg.n_ctx, cfg.n_ctx);
    let mut line = format!(
        "host:      run over n_ctx tokens records {:.1} MiB, run --out {:.1} MiB (limit {} MiB)",
        mib(run),
        mib(out),
        MAX_TRACE_BYTES >> 20
    );
    if out > MAX_TRACE_BYTES {
        let longest = longest_trace(cfg, true);
        line += &format!(": --out takes prompts of up to {longest} tokens");
    }
    line
}
