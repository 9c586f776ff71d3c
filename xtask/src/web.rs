//! `cargo xtask web [--check]`: builds the explorer's WebAssembly module (`tinylens-web` for
//! `wasm32-unknown-unknown` with 128-bit SIMD, profile `web`: LTO, stripped) and writes it to
//! `host-cli/assets/explorer.wasm`, which `tinylens explore` embeds, with a note beside it
//! (`explorer.wasm.txt`: the compiler that built it, its size and its exports).
//!
//! `--check` builds it and compares, writing nothing: built by the same compiler the bytes must
//! be the same; by another one (the toolchain channel is `stable`, so a machine may have a
//! newer compiler) the exports must be, and the check says the bytes differ and why.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

const TARGET: &str = "wasm32-unknown-unknown";
/// Flags of the module's build: WebAssembly's 128-bit SIMD, which every current browser runs
/// (Chrome 91, Firefox 89, Safari 16.4 and later).
const RUSTFLAGS: &str = "-C target-feature=+simd128";

/// The committed module and its note.
fn committed(root: &Path) -> (PathBuf, PathBuf) {
    let dir = root.join("host-cli/assets");
    (dir.join("explorer.wasm"), dir.join("explorer.wasm.txt"))
}

/// `cargo xtask web [--check]`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let check = args.iter().any(|a| a == "--check");
    let built = build(root)?;
    let compiler = rustc_version()?;
    let note = note(&compiler, &built)?;
    let (wasm, note_path) = committed(root);
    if !check {
        std::fs::write(&wasm, &built)
            .with_context(|| format!("cannot write {}", wasm.display()))?;
        std::fs::write(&note_path, &note)?;
        println!("wrote {} ({} bytes)", wasm.display(), built.len());
        return Ok(());
    }
    let old = std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let old_note = std::fs::read_to_string(&note_path).unwrap_or_default();
    if old == built {
        println!("{} is current ({} bytes)", wasm.display(), built.len());
        return Ok(());
    }
    let same_compiler = old_note.lines().next() == note.lines().next();
    ensure!(
        !same_compiler,
        "{} is stale: the sources build to other bytes with the same compiler ({compiler}); \
         run `cargo xtask web` and commit it",
        wasm.display()
    );
    let (new_exports, old_exports) = (exports(&built)?, exports(&old)?);
    ensure!(
        new_exports == old_exports,
        "{} is stale: its exports {old_exports:?} differ from the sources' {new_exports:?}; \
         run `cargo xtask web` and commit it",
        wasm.display()
    );
    println!(
        "{}: same exports; the bytes differ because it was built by another compiler ({} here, \
         the note says {:?}); `cargo xtask web` remakes it",
        wasm.display(),
        compiler,
        old_note.lines().next().unwrap_or("")
    );
    Ok(())
}

/// Builds the module and returns its bytes.
fn build(root: &Path) -> Result<Vec<u8>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "-p",
            "tinylens-web",
            "--profile",
            "web",
            "--target",
            TARGET,
        ])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", RUSTFLAGS)
        .status()
        .context("cannot run cargo")?;
    ensure!(
        status.success(),
        "building tinylens-web for {TARGET} failed"
    );
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let path = target_dir.join(TARGET).join("web/tinylens_web.wasm");
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// `rustc --version`.
fn rustc_version() -> Result<String> {
    let o = Command::new("rustc").arg("--version").output()?;
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The note beside the module.
fn note(compiler: &str, wasm: &[u8]) -> Result<String> {
    Ok(format!(
        "{compiler}\n{} bytes\nexports: {}\n",
        wasm.len(),
        exports(wasm)?.join(" ")
    ))
}

/// Reads one unsigned LEB128 number at `*at`.
fn leb(bytes: &[u8], at: &mut usize) -> Result<usize> {
    let (mut value, mut shift) = (0usize, 0);
    loop {
        let Some(&b) = bytes.get(*at) else {
            bail!("truncated module");
        };
        *at += 1;
        value |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return Ok(value);
        }
        shift += 7;
        ensure!(shift < 35, "bad LEB128 number");
    }
}

/// The names in a module's export section, in its order.
pub fn exports(wasm: &[u8]) -> Result<Vec<String>> {
    ensure!(wasm.starts_with(b"\0asm"), "not a WebAssembly module");
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        at += 1;
        let size = leb(wasm, &mut at)?;
        let end = at + size;
        if id == 7 {
            let count = leb(wasm, &mut at)?;
            let mut names = Vec::with_capacity(count);
            for _ in 0..count {
                let len = leb(wasm, &mut at)?;
                let name = wasm.get(at..at + len).context("truncated export name")?;
                names.push(String::from_utf8_lossy(name).into_owned());
                at += len + 1; // the name, then the export's kind
                leb(wasm, &mut at)?; // its index
            }
            return Ok(names);
        }
        at = end;
    }
    Ok(Vec::new())
}
