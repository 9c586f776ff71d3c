#![deny(missing_docs)]
//! The build script of every tinylens firmware example: it embeds a model, so that putting
//! one's own model on a chip is an environment variable, not an edit.
//!
//! ```text
//! TINYLENS_BLOB=path/to/model.int.tlb TINYLENS_PROMPT="text" cargo run --release -p qemu-m3
//! ```
//!
//! [`build`] reads the blob (`TINYLENS_BLOB`, or the example's demo blob when it is unset) with
//! the kernel, checks it against the example (its number format, the chip's flash and RAM
//! from `memory.x`, the prompt against its vocabulary and context), and writes
//! `OUT_DIR/model.rs`: `CONFIG` as read from the blob, `static MODEL` (the blob, its name,
//! the prompt's token ids) and the `State` arena type, which the main includes with
//! `common::embed_model!()`. A model it refuses stops the build with one message giving both
//! figures. It also puts the package's `memory.x` where the linker finds it.
//!
//! Variables (each rebuilds the firmware when it changes):
//! - `TINYLENS_BLOB`: the blob, absolute or relative to the current directory or to
//!   `firmware-examples/`. Its name in the transcript is the file name less `.<format>.tlb`.
//! - `TINYLENS_PROMPT`: the prompt's text, tokenized with the blob's vocabulary;
//!   `TINYLENS_TOKENS`: its token ids instead (`"1,2,3"`). Without either, the demo's prompt.
//! - `TINYLENS_NEW_TOKENS`: tokens to generate (8 unless set).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use tinylens::writer::AlignedBytes;
use tinylens::Model;

pub mod fit;
pub mod memory;
pub mod prompt;
pub mod refusal;
pub mod source;

pub use memory::Memory;
pub use prompt::Prompt;
pub use refusal::Refusal;
pub use tinylens::NumberFormat;

/// The environment variables [`build`] reads.
pub const VARIABLES: [&str; 4] = [
    "TINYLENS_BLOB",
    "TINYLENS_PROMPT",
    "TINYLENS_TOKENS",
    "TINYLENS_NEW_TOKENS",
];

/// One model a package embeds: one per binary that runs a different format.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// The file written in `OUT_DIR`, which the binary includes.
    pub file: &'static str,
    /// The number formats the binary runs; `TINYLENS_BLOB` goes to the slot that runs its
    /// format.
    pub formats: &'static [NumberFormat],
    /// The blob in `fixtures/firmware/` it embeds by default.
    pub demo: &'static str,
}

impl Slot {
    /// The single model of a package: `model.rs`, included by `common::embed_model!()`.
    pub const fn model(formats: &'static [NumberFormat], demo: &'static str) -> Slot {
        Slot {
            file: "model.rs",
            formats,
            demo,
        }
    }
}

/// What the variables ask for.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `TINYLENS_BLOB`, resolved.
    pub blob: Option<PathBuf>,
    /// `TINYLENS_PROMPT` or `TINYLENS_TOKENS`, if either is set.
    pub prompt: Option<Prompt>,
    /// `TINYLENS_NEW_TOKENS`, or the demo's.
    pub new_tokens: usize,
}

/// A blob read from a file, aligned for the kernel.
pub struct Blob {
    /// The file, absolute.
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: AlignedBytes,
}

impl Blob {
    /// Reads `path` and checks that the kernel reads it.
    pub fn read(path: &Path) -> Result<Blob, Refusal> {
        let path = fs::canonicalize(path).map_err(|e| Refusal::Read(path.into(), e.to_string()))?;
        let bytes = fs::read(&path).map_err(|e| Refusal::Read(path.clone(), e.to_string()))?;
        let blob = Blob {
            bytes: AlignedBytes::new(&bytes),
            path,
        };
        blob.model()?;
        Ok(blob)
    }

    /// The model in it.
    pub fn model(&self) -> Result<Model<'_>, Refusal> {
        Model::from_blob(self.bytes.as_bytes()).map_err(|e| Refusal::Blob(self.path.clone(), e))
    }

    /// The model's name: the file name less `.<format>.tlb`.
    pub fn name(&self) -> String {
        let file = self.path.file_name().unwrap_or_default().to_string_lossy();
        common::models::model_name(&file).to_string()
    }
}

/// The build script: embeds the model of every slot, or stops the build with the reason.
pub fn build(slots: &[Slot]) {
    if let Err(refusal) = try_build(slots) {
        let message = format!("tinylens: {refusal}");
        println!("cargo:warning={message}");
        panic!("{message}");
    }
}

/// [`build`], returning the refusal.
fn try_build(slots: &[Slot]) -> Result<(), Refusal> {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let package = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let memory = link_memory_x(&package, &out)?;
    for name in VARIABLES {
        println!("cargo:rerun-if-env-changed={name}");
    }
    let examples = package.parent().unwrap_or(&package).to_path_buf();
    let request = request_from_env(&examples)?;
    let user = request.blob.as_deref().map(Blob::read).transpose()?;
    if let Some(blob) = &user {
        println!("cargo:rerun-if-changed={}", blob.path.display());
        check_format(blob, slots)?;
    }
    for slot in slots {
        let source = match &user {
            Some(blob) if slot.formats.contains(&blob.model()?.format()) => {
                embed(blob, &request, &memory)?
            }
            _ => {
                let demo = Blob::read(&examples.join("../fixtures/firmware").join(slot.demo))?;
                println!("cargo:rerun-if-changed={}", demo.path.display());
                // A prompt given for a user's blob is that model's, not the demo's.
                let request = Request {
                    prompt: request.prompt.clone().filter(|_| user.is_none()),
                    ..request.clone()
                };
                embed(&demo, &request, &memory)?
            }
        };
        let path = out.join(slot.file);
        fs::write(&path, source).map_err(|e| Refusal::Read(path, e.to_string()))?;
    }
    Ok(())
}

/// Checks `blob` against the chip and the prompt, and writes its Rust.
pub fn embed(blob: &Blob, request: &Request, memory: &Memory) -> Result<String, Refusal> {
    let model = blob.model()?;
    let cfg = *model.config();
    let int = model.format() == NumberFormat::Int;
    fit::check(blob.bytes.as_bytes().len(), &cfg, int, memory)?;
    let checked = match &request.prompt {
        Some(asked) => prompt::check(asked, request.new_tokens, &cfg, model.vocab())?,
        None => {
            let demo = Prompt::Text(common::PROMPT.to_string());
            prompt::check(&demo, request.new_tokens, &cfg, model.vocab())
                .map_err(|why| Refusal::DemoPrompt(Box::new(why)))?
        }
    };
    let name = blob.name();
    Ok(source::rust(&source::Embedded {
        path: &blob.path,
        len: blob.bytes.as_bytes().len(),
        config: cfg,
        format: model.format().name(),
        int,
        name: &name,
        prompt: &checked.text,
        tokens: &checked.tokens,
        new_tokens: request.new_tokens,
    }))
}

/// Checks that one of `slots` runs the format of `blob`.
pub fn check_format(blob: &Blob, slots: &[Slot]) -> Result<(), Refusal> {
    let format = blob.model()?.format();
    if slots.iter().any(|s| s.formats.contains(&format)) {
        return Ok(());
    }
    let mut runs: Vec<&'static str> = Vec::new();
    for f in slots.iter().flat_map(|s| s.formats) {
        if !runs.contains(&f.name()) {
            runs.push(f.name());
        }
    }
    Err(Refusal::Format {
        blob: blob.path.clone(),
        found: format.name(),
        runs,
    })
}

/// Copies the package's `memory.x` where cortex-m-rt's and riscv-rt's `link.x` find it, and
/// reads its flash and RAM.
fn link_memory_x(package: &Path, out: &Path) -> Result<Memory, Refusal> {
    let script = package.join("memory.x");
    let text =
        fs::read_to_string(&script).map_err(|e| Refusal::Read(script.clone(), e.to_string()))?;
    fs::write(out.join("memory.x"), &text)
        .map_err(|e| Refusal::Read(out.join("memory.x"), e.to_string()))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    Memory::parse(&text)
}

/// The variables, with `TINYLENS_BLOB` resolved against the current directory and then
/// `examples` (`firmware-examples/`).
fn request_from_env(examples: &Path) -> Result<Request, Refusal> {
    let var = |name: &str| env::var(name).ok().filter(|v| !v.trim().is_empty());
    let blob = var("TINYLENS_BLOB")
        .map(|b| resolve(Path::new(&b), examples))
        .transpose()?;
    let prompt = match (var("TINYLENS_PROMPT"), var("TINYLENS_TOKENS")) {
        (Some(_), Some(_)) => {
            return Err(Refusal::Variable(
                "TINYLENS_TOKENS",
                "set TINYLENS_PROMPT or TINYLENS_TOKENS, not both".into(),
            ))
        }
        (Some(text), None) => Some(Prompt::Text(text)),
        (None, Some(list)) => Some(Prompt::Tokens(prompt::parse_tokens(&list)?)),
        (None, None) => None,
    };
    let new_tokens = match var("TINYLENS_NEW_TOKENS") {
        Some(n) => n.trim().parse().map_err(|_| {
            Refusal::Variable("TINYLENS_NEW_TOKENS", format!("{n:?} is not a number"))
        })?,
        None => common::DEMO.new_tokens,
    };
    Ok(Request {
        blob,
        prompt,
        new_tokens,
    })
}

/// `path` if absolute; if relative, `path` in the shell's current directory (`PWD`: a build
/// script runs in the package's), else in `examples`.
fn resolve(path: &Path, examples: &Path) -> Result<PathBuf, Refusal> {
    let tried = if path.is_absolute() {
        vec![path.to_path_buf()]
    } else {
        let pwd = env::var_os("PWD").map(|pwd| PathBuf::from(pwd).join(path));
        pwd.into_iter().chain([examples.join(path)]).collect()
    };
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or(Refusal::NoFile(tried))
}
