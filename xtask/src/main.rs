//! `cargo xtask <task>`: repository tasks that need more than one cargo command.
//!
//! - `cargo xtask qemu [--bless]`: builds every QEMU firmware example, runs it under QEMU (with
//!   `-icount shift=0`, under a timeout), and compares its transcript with a golden file that
//!   the host kernel makes from the same blob and prompt: the integer path bit for bit, `f32`
//!   and `i8` within [`F32_TOLERANCE`]. Records flash, static RAM and executed instructions
//!   per token against the snapshot `fixtures/firmware/snapshot.txt` and fails on growth past
//!   [`GROWTH`]; writes the figures table `fixtures/firmware/figures.md`.
//!   Then embeds a model of its own with `TINYLENS_BLOB` (see [`own_model`]), and tests
//!   `embed-model`, the examples' build script, on the host.
//! - `cargo xtask web [--check]`: builds the explorer's WebAssembly module into
//!   `host-cli/assets/explorer.wasm`, or checks that the committed one is current (`web.rs`).
//! - `cargo xtask boards [--bless]`: builds the real-board examples (not run) and checks their
//!   sizes against the same snapshot.
//! - `--bless` remakes the examples' blobs from the trained demo checkpoints in `models/` with
//!   `tinylens quantize` (`fixtures/firmware/<model>.<format>.tlb` from
//!   `models/<model>/model.safetensors`), rewrites the golden transcripts from the host kernel,
//!   and records the sizes and counts as the new snapshot. Commit what it changes, and say in
//!   the commit why sizes grew.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use anyhow::{bail, ensure, Context, Result};
use common::models::model_name;
use common::{cost, Demo, DemoError, Float, FmtOut, Format, Int, NoClock, Summary, DEMO};
use tinylens::writer::AlignedBytes;
use tinylens::{Model, NumberFormat};

mod fuzz;
mod web;

/// `f32` and `i8` transcripts: every number within this absolute plus relative difference of
/// the host's (the device and the host run the same operations in the same order, so in
/// practice they agree to the last printed digit).
const F32_TOLERANCE: f64 = 1e-4;
/// Flash and instructions per token may grow by this fraction before a run fails (compiler
/// updates move them a little); static RAM may not grow at all.
const GROWTH: f64 = 0.05;
/// Longest a single QEMU run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The variables that make an example embed another model (`firmware-examples/embed-model`):
/// unset for the golden runs, whatever the caller's shell has.
const MODEL_VARIABLES: [&str; 4] = [
    "TINYLENS_BLOB",
    "TINYLENS_PROMPT",
    "TINYLENS_TOKENS",
    "TINYLENS_NEW_TOKENS",
];
/// The prompt of [`own_model`], as token ids of its vocabulary.
const OWN_MODEL_TOKENS: [u32; 5] = [5, 9, 3, 9, 5];

/// How an example is checked.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// Runs under QEMU; output through semihosting.
    Qemu,
    /// Runs under QEMU; output as defmt frames through semihosting, decoded by `defmt-print`.
    QemuDefmt,
    /// A real board: built and size-checked only.
    Build,
}

struct Example {
    /// Package directory under `firmware-examples/`.
    package: &'static str,
    /// Binary.
    bin: &'static str,
    /// Rust target.
    triple: &'static str,
    /// The core and machine, for the figures.
    core: &'static str,
    /// The blob, in `fixtures/firmware/`: `<model>.<format>.tlb`, quantized from
    /// `models/<model>/model.safetensors` with `--format <format>`.
    blob: &'static str,
    /// Instructions per MAC the example should reach.
    goal: Option<f64>,
    check: Check,
}

const EXAMPLES: &[Example] = &[
    Example {
        package: "qemu-m4f",
        bin: "m4f-f32",
        triple: "thumbv7em-none-eabihf",
        core: "Cortex-M4F (QEMU mps2-an386)",
        blob: "demo-2l.f32.tlb",
        goal: Some(1.5),
        check: Check::Qemu,
    },
    Example {
        package: "qemu-m4f",
        bin: "m4f-i8-heap",
        triple: "thumbv7em-none-eabihf",
        core: "Cortex-M4F (QEMU mps2-an386), heap",
        blob: "demo-2l.i8.tlb",
        goal: Some(1.2),
        check: Check::Qemu,
    },
    Example {
        package: "qemu-m4f",
        bin: "m4f-int",
        triple: "thumbv7em-none-eabihf",
        core: "Cortex-M4F (QEMU mps2-an386)",
        blob: "demo-2l.int.tlb",
        goal: Some(1.2),
        check: Check::Qemu,
    },
    Example {
        package: "qemu-m7-defmt",
        bin: "m7-f32-defmt",
        triple: "thumbv7em-none-eabihf",
        core: "Cortex-M7 (QEMU mps2-an500), defmt",
        blob: "demo-2l.f32.tlb",
        goal: Some(1.5),
        check: Check::QemuDefmt,
    },
    Example {
        package: "qemu-m3",
        bin: "m3-int",
        triple: "thumbv7m-none-eabi",
        core: "Cortex-M3 (QEMU lm3s6965evb)",
        blob: "demo-2l.int.tlb",
        goal: Some(3.0),
        check: Check::Qemu,
    },
    Example {
        package: "qemu-m0",
        bin: "m0-int",
        triple: "thumbv6m-none-eabi",
        core: "Cortex-M0 (QEMU microbit, 16 KB RAM)",
        blob: "demo-2l-micro.int.tlb",
        goal: Some(5.0),
        check: Check::Qemu,
    },
    Example {
        package: "board-nrf52840",
        bin: "board-nrf52840",
        triple: "thumbv7em-none-eabihf",
        core: "nRF52840 (Cortex-M4F), defmt over RTT",
        blob: "demo-2l.f32.tlb",
        goal: None,
        check: Check::Build,
    },
    Example {
        package: "board-rp2040",
        bin: "board-rp2040",
        triple: "thumbv6m-none-eabi",
        core: "RP2040 (Cortex-M0+)",
        blob: "demo-2l.int.tlb",
        goal: None,
        check: Check::Build,
    },
    Example {
        package: "board-stm32f411",
        bin: "board-stm32f411",
        triple: "thumbv7em-none-eabihf",
        core: "STM32F411 (Cortex-M4F)",
        blob: "demo-2l.i8.tlb",
        goal: None,
        check: Check::Build,
    },
    Example {
        package: "board-gd32vf103",
        bin: "board-gd32vf103",
        triple: "riscv32imac-unknown-none-elf",
        core: "GD32VF103 (RISC-V RV32IMAC)",
        blob: "demo-2l.int.tlb",
        goal: None,
        check: Check::Build,
    },
];

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let bless = args.iter().any(|a| a == "--bless");
    match args.first().map(String::as_str) {
        Some("qemu") => firmware(bless, true),
        Some("boards") => firmware(bless, false),
        Some("fuzz") => fuzz::run(&root(), &args[1..]),
        Some("web") => web::run(&root(), &args[1..]),
        _ => {
            eprintln!("usage: cargo xtask qemu [--bless] | cargo xtask boards [--bless]");
            eprintln!("       cargo xtask web [--check]");
            eprintln!("       cargo xtask fuzz [--asan] [--scratch] [--minutes N | --seconds N] [--runs N] [--minimize] [TARGET]");
            std::process::exit(2);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn fixtures() -> PathBuf {
    root().join("fixtures/firmware")
}

/// Runs `cmd`, failing with its name if it fails.
fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(status.success(), "{cmd:?} failed ({status})");
    Ok(())
}

/// The host CLI, `tinylens`, run from the repository root: add its arguments.
fn cli() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["run", "--release", "-q", "-p", "tinylens-cli", "--"])
        .current_dir(root());
    cmd
}

/// What one example measured.
struct Measured {
    flash: u64,
    ram: u64,
    instructions_per_token: Option<u64>,
    macs_per_token: Option<u64>,
    stack: Option<u64>,
}

fn firmware(bless: bool, qemu: bool) -> Result<()> {
    let examples: Vec<&Example> = EXAMPLES
        .iter()
        .filter(|e| (e.check != Check::Build) == qemu)
        .collect();
    if bless {
        make_blobs(&examples)?;
    }
    if qemu {
        println!("==> test firmware-examples/embed-model (on the host)");
        run(Command::new("cargo")
            .args(["test", "-q", "-p", "embed-model"])
            .current_dir(root().join("firmware-examples")))?;
    }
    // One build per package: the firmware workspace shares one target directory, so
    // dependencies compile once per target.
    let mut built = Vec::new();
    for e in &examples {
        if !built.contains(&e.package) {
            println!("==> build firmware-examples/{}", e.package);
            run(Command::new("cargo")
                .args(["build", "--release", "--bins"])
                .current_dir(root().join("firmware-examples").join(e.package)))?;
            built.push(e.package);
        }
    }
    let mut failures = Vec::new();
    let mut measured = BTreeMap::new();
    for e in &examples {
        match check(e, bless) {
            Ok(m) => {
                measured.insert(e.bin, m);
            }
            Err(err) => {
                println!("FAIL {}: {err:#}", e.bin);
                failures.push(e.bin);
            }
        }
    }
    if qemu {
        if let Err(err) = own_model() {
            println!("FAIL own model: {err:#}");
            failures.push("own model (m3-int with TINYLENS_BLOB)");
        }
    }
    let snapshot_failures = snapshot(&examples, &measured, bless)?;
    if qemu {
        let table = figures(&examples, &measured)?;
        println!("\n{table}");
        if bless {
            fs::write(fixtures().join("figures.md"), table)?;
        }
    }
    failures.extend(snapshot_failures);
    if !failures.is_empty() {
        bail!(
            "{} example(s) failed: {} (if a change is intended, `cargo xtask {} --bless` records it)",
            failures.len(),
            failures.join(", "),
            if qemu { "qemu" } else { "boards" }
        );
    }
    println!("all {} firmware examples pass", examples.len());
    Ok(())
}

/// Embeds a model that is none of the shipped demos with `TINYLENS_BLOB`, the way a user puts
/// their own model on a chip: trains one ([`train_own_model`]), builds it into the M3 example
/// with a prompt given as `TINYLENS_TOKENS`, runs it under QEMU and compares its transcript
/// with the host kernel's on the same blob and tokens, bit for bit. Then checks that the build
/// refuses a blob of a format the example does not run, and, pass or fail, rebuilds the example
/// with its demo.
fn own_model() -> Result<()> {
    let m3 = EXAMPLES
        .iter()
        .find(|e| e.bin == "m3-int")
        .context("no m3-int example")?;
    let checked = train_own_model()
        .and_then(|blob| own_model_matches_host(m3, &blob))
        .and_then(|()| refuses_wrong_format(m3));
    let rebuilt = run(Command::new("cargo")
        .args(["build", "--release", "-q"])
        .current_dir(root().join("firmware-examples").join(m3.package)));
    checked.and(rebuilt)
}

/// Trains a model for 300 steps, under a second (1 layer of 2 heads, `d_model` 32, a context
/// of 16, on the skip-trigram task), and quantizes it to `int`: returns the blob.
fn train_own_model() -> Result<PathBuf> {
    let dir = root().join("target/xtask-own-model");
    fs::create_dir_all(&dir)?;
    println!("==> own model: train 1 layer x 2 heads for 300 steps, quantize to int");
    let train = "train --task skip-trigrams --layers 1 --heads 2 --d-model 32 --d-head 8 \
                 --n-ctx 16 --steps 300 --corpus-tokens 20000 -o";
    run(cli().args(train.split_whitespace()).arg(&dir))?;
    let blob = dir.join("skip-trigrams-1l.int.tlb");
    run(cli()
        .arg("quantize")
        .arg(dir.join("model.safetensors"))
        .arg("-o")
        .arg(&blob)
        .args(["--format", "int"]))?;
    Ok(blob)
}

/// Runs `example` with `blob` embedded and [`OWN_MODEL_TOKENS`] as its prompt, and compares
/// its transcript with the host kernel's.
fn own_model_matches_host(example: &Example, blob: &Path) -> Result<()> {
    let bytes = AlignedBytes::new(&fs::read(blob)?);
    let model = Model::from_blob(bytes.as_bytes())?;
    let vocab = model
        .vocab()
        .context("the trained model has no vocabulary")?;
    let text: String = OWN_MODEL_TOKENS
        .iter()
        .map(|&t| {
            vocab
                .text(t)
                .context("a prompt token is outside the vocabulary")
        })
        .collect::<Result<_>>()?;
    let demo = Demo {
        model: "skip-trigrams-1l",
        prompt: &text,
        tokens: Some(&OWN_MODEL_TOKENS),
        new_tokens: DEMO.new_tokens,
    };
    let host = host_transcript(blob, &demo)?;
    let tokens: Vec<String> = OWN_MODEL_TOKENS.iter().map(u32::to_string).collect();
    let tokens = tokens.join(",");
    let vars = [
        ("TINYLENS_BLOB", blob.as_os_str()),
        ("TINYLENS_TOKENS", OsStr::new(&tokens)),
    ];
    let device = run_device(example, &vars)?;
    let (body, device_only) = split_device(&device);
    ensure!(
        device_only.iter().any(|l| l == "done"),
        "the run did not end with `done`:\n{device}"
    );
    ensure!(
        body.starts_with("model: skip-trigrams-1l (int), 1 layers x 2 heads"),
        "the transcript does not name the embedded model:\n{device}"
    );
    compare(&body, &host, true).with_context(|| format!("device transcript:\n{device}"))?;
    println!(
        "ok   own model        {} with TINYLENS_BLOB: transcript matches the host kernel (bit for bit)",
        example.bin
    );
    Ok(())
}

/// Builds `example` (an `int` example) with the `f32` demo blob as `TINYLENS_BLOB`: the build
/// must fail, saying the example runs `int` blobs.
fn refuses_wrong_format(example: &Example) -> Result<()> {
    let blob = fixtures().join("demo-2l.f32.tlb");
    let out = Command::new("cargo")
        .args(["build", "--release", "-q"])
        .env("TINYLENS_BLOB", &blob)
        .current_dir(root().join("firmware-examples").join(example.package))
        .output()
        .context("cannot run cargo")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && stderr.contains("is in format f32, but this example runs int blobs"),
        "building {} with an f32 blob did not fail with the format's message:\n{stderr}",
        example.package
    );
    println!(
        "ok   own model        {} refuses an f32 blob at build time",
        example.package
    );
    Ok(())
}

/// Remakes the examples' blobs with the CLI: `<model>.<format>.tlb` from
/// `models/<model>/model.safetensors` (and its `config.json`) with `--format <format>`.
fn make_blobs(examples: &[&Example]) -> Result<()> {
    let mut made = Vec::new();
    for e in examples {
        if made.contains(&e.blob) {
            continue;
        }
        let (model, format) = e
            .blob
            .strip_suffix(".tlb")
            .and_then(|stem| stem.rsplit_once('.'))
            .with_context(|| format!("blob {} is not <model>.<format>.tlb", e.blob))?;
        println!(
            "==> quantize models/{model} --format {format} -> fixtures/firmware/{}",
            e.blob
        );
        run(cli()
            .arg("quantize")
            .arg(root().join("models").join(model).join("model.safetensors"))
            .arg("-o")
            .arg(fixtures().join(e.blob))
            .args(["--format", format]))?;
        made.push(e.blob);
    }
    Ok(())
}

fn elf(e: &Example) -> PathBuf {
    root()
        .join("firmware-examples/target")
        .join(e.triple)
        .join("release")
        .join(e.bin)
}

fn check(e: &Example, bless: bool) -> Result<Measured> {
    let (flash, ram) = sizes(&elf(e))?;
    let mut m = Measured {
        flash,
        ram,
        instructions_per_token: None,
        macs_per_token: None,
        stack: None,
    };
    if e.check == Check::Build {
        println!(
            "ok   {:<16} built: flash {flash} B, static RAM {ram} B",
            e.bin
        );
        return Ok(m);
    }
    if e.blob.contains(".int.") && e.triple != "thumbv7em-none-eabihf" {
        no_soft_float(&elf(e))?;
    }
    let golden_path = fixtures().join("golden").join(format!("{}.txt", e.bin));
    let demo = Demo {
        model: model_name(e.blob),
        ..DEMO
    };
    let host = host_transcript(&fixtures().join(e.blob), &demo)?;
    if bless {
        fs::create_dir_all(golden_path.parent().unwrap())?;
        fs::write(&golden_path, &host)?;
    }
    let golden = fs::read_to_string(&golden_path)
        .with_context(|| format!("no golden transcript {}", golden_path.display()))?;
    ensure!(
        golden == host,
        "the host kernel's transcript differs from {} (the kernel's output changed)",
        golden_path.display()
    );
    let device = run_device(e, &[])?;
    let int = e.blob.contains(".int.");
    let (body, device_only) = split_device(&device);
    ensure!(
        device_only.iter().any(|l| l.trim() == "done"),
        "the run did not end with `done`:\n{device}"
    );
    compare(&body, &golden, int).with_context(|| format!("device transcript:\n{device}"))?;
    for line in &device_only {
        if let Some(rest) = line.strip_prefix("cost: ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            m.instructions_per_token = words.first().and_then(|w| w.parse().ok());
            m.macs_per_token = words
                .iter()
                .position(|&w| w == "MACs")
                .and_then(|i| words[i - 1].parse().ok());
        }
        if let Some(rest) = line.strip_prefix("stack: ") {
            m.stack = rest.split_whitespace().next().and_then(|w| w.parse().ok());
        }
    }
    ensure!(
        m.instructions_per_token.is_some(),
        "no cost line:\n{device}"
    );
    println!(
        "ok   {:<16} transcript matches the host kernel ({}); {} instructions per token",
        e.bin,
        if int { "bit for bit" } else { "within 1e-4" },
        m.instructions_per_token.unwrap_or(0)
    );
    Ok(m)
}

/// The integer path on a core without an FPU must not link a soft-float routine
/// (`__aeabi_f*`, `__aeabi_d*`, `__addsf3`, ...): no float at run time.
fn no_soft_float(elf: &Path) -> Result<()> {
    let out = Command::new("nm")
        .arg(elf)
        .output()
        .context("cannot run `nm` (binutils)")?;
    ensure!(out.status.success(), "nm {} failed", elf.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let float: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| {
            s.starts_with("__aeabi_f")
                || s.starts_with("__aeabi_d")
                || s.ends_with("sf3")
                || s.ends_with("df3")
        })
        .collect();
    ensure!(
        float.is_empty(),
        "the integer firmware links soft-float routines: {float:?}"
    );
    Ok(())
}

/// The transcript of the host kernel running `demo` on `blob`: what the firmware must print,
/// less its device-only lines.
fn host_transcript(blob: &Path, demo: &Demo<'_>) -> Result<String> {
    let bytes = fs::read(blob).with_context(|| format!("cannot read {}", blob.display()))?;
    let bytes = AlignedBytes::new(&bytes);
    let model = Model::from_blob(bytes.as_bytes())?;
    let cfg = *model.config();
    let mut out = FmtOut(String::new());
    let result = match model.format() {
        NumberFormat::Int => {
            host_run::<Int>(&model, &mut vec![0; cfg.int_state_len()], demo, &mut out)
        }
        _ => host_run::<Float>(&model, &mut vec![0.0; cfg.state_len()], demo, &mut out),
    };
    result.map_err(|e| anyhow::anyhow!("host run of {}: {e}", blob.display()))?;
    Ok(out.0)
}

/// The demo on the host kernel's decoder of format `F`, over `state`.
fn host_run<F: Format>(
    model: &Model<'_>,
    state: &mut [F::Word],
    demo: &Demo<'_>,
    out: &mut FmtOut<String>,
) -> Result<Summary, DemoError> {
    let mut decoder = F::decoder(model, state)?;
    common::run(
        model,
        &mut decoder,
        model.config().n_ctx,
        demo,
        out,
        &mut NoClock,
    )
}

/// Runs the example with `cargo run` (its `.cargo/config.toml` runner: QEMU, and
/// `defmt-print` for defmt) under a timeout, and returns its stdout.
fn run_device(e: &Example, vars: &[(&str, &OsStr)]) -> Result<String> {
    if e.check == Check::QemuDefmt
        && Command::new("defmt-print")
            .arg("--version")
            .output()
            .is_err()
    {
        bail!("defmt-print is missing: cargo install defmt-print");
    }
    let mut cargo = Command::new("cargo");
    for name in MODEL_VARIABLES {
        cargo.env_remove(name);
    }
    let mut child = cargo
        .envs(vars.iter().copied())
        .args(["run", "--release", "-q", "--bin", e.bin])
        .current_dir(root().join("firmware-examples").join(e.package))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run cargo")?;
    let out = read_all(child.stdout.take().context("no stdout")?);
    let err = read_all(child.stderr.take().context("no stderr")?);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        None => bail!("timed out after {RUN_TIMEOUT:?}:\n{out}{err}"),
        Some(s) if !s.success() => bail!("exited with {s}:\n{out}{err}"),
        Some(_) => Ok(out),
    }
}

/// Reads `pipe` to its end on a thread of its own, so that a full pipe never stalls the child.
fn read_all(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

/// Splits a device transcript into what the host also prints and the device-only lines
/// (`target:`, `cost:`, `stack:`, `done`).
fn split_device(device: &str) -> (String, Vec<String>) {
    let mut body = String::new();
    let mut only = Vec::new();
    for line in device.lines() {
        let t = line.trim();
        if ["target:", "cost:", "stack:"]
            .iter()
            .any(|p| t.starts_with(p))
            || t == "done"
        {
            only.push(t.to_string());
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    (body, only)
}

/// Compares transcripts line by line and word by word: words equal, or (unless `exact`) both
/// numbers within [`F32_TOLERANCE`].
fn compare(device: &str, golden: &str, exact: bool) -> Result<()> {
    let (d, g): (Vec<&str>, Vec<&str>) = (device.lines().collect(), golden.lines().collect());
    ensure!(
        d.len() == g.len(),
        "{} lines, the golden transcript has {}",
        d.len(),
        g.len()
    );
    for (i, (dl, gl)) in d.iter().zip(&g).enumerate() {
        let (dw, gw): (Vec<&str>, Vec<&str>) = (
            dl.split_whitespace().collect(),
            gl.split_whitespace().collect(),
        );
        let same = dw.len() == gw.len()
            && dw
                .iter()
                .zip(&gw)
                .all(|(a, b)| a == b || (!exact && numbers_close(a, b)));
        ensure!(same, "line {}:\n  device: {dl}\n  golden: {gl}", i + 1);
    }
    Ok(())
}

fn numbers_close(a: &str, b: &str) -> bool {
    let num = |w: &str| w.trim_end_matches([',', ':']).parse::<f64>().ok();
    match (num(a), num(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= F32_TOLERANCE * (1.0 + y.abs()),
        _ => false,
    }
}

/// (flash, static RAM) of an ELF from its sections (`size -A`): flash holds code, read-only
/// data and the initial values of `.data`; static RAM is `.data`, `.bss` and `.uninit*`
/// (defmt-rtt's buffer). The stack is not static RAM (riscv-rt's `.stack` reserves the rest).
fn sizes(elf: &Path) -> Result<(u64, u64)> {
    let out = Command::new("size")
        .args(["-A", "-d"])
        .arg(elf)
        .output()
        .context("cannot run `size` (binutils)")?;
    ensure!(out.status.success(), "size {} failed", elf.display());
    let (mut flash, mut ram) = (0, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, size, addr] = words[..] else {
            continue;
        };
        let (Ok(size), Ok(addr)) = (size.parse::<u64>(), addr.parse::<u64>()) else {
            continue;
        };
        if addr == 0 && !name.starts_with(".vector_table") && !name.starts_with(".text") {
            continue; // debug info, defmt's table, comments
        }
        match name {
            ".data" | ".sdata" => {
                flash += size;
                ram += size;
            }
            ".bss" | ".sbss" => ram += size,
            _ if name.starts_with(".uninit") => ram += size,
            ".vector_table" | ".text" | ".rodata" | ".srodata" | ".eh_frame" | ".init"
            | ".trap" | ".boot2" => flash += size,
            _ => {}
        }
    }
    Ok((flash, ram))
}

/// Compares sizes and instruction counts with `fixtures/firmware/snapshot.txt` (or records
/// them, blessing). Returns the examples that grew.
fn snapshot(
    examples: &[&Example],
    measured: &BTreeMap<&str, Measured>,
    bless: bool,
) -> Result<Vec<&'static str>> {
    let path = fixtures().join("snapshot.txt");
    let old = fs::read_to_string(&path).unwrap_or_default();
    let mut rows: BTreeMap<String, [Option<u64>; 3]> = BTreeMap::new();
    for line in old
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let [bin, flash, ram, instr] = w[..] {
            rows.insert(
                bin.to_string(),
                [flash.parse().ok(), ram.parse().ok(), instr.parse().ok()],
            );
        }
    }
    let mut failed = Vec::new();
    for e in examples {
        let Some(m) = measured.get(e.bin) else {
            continue;
        };
        let new = [Some(m.flash), Some(m.ram), m.instructions_per_token];
        match rows.get(e.bin) {
            Some(old) if !bless => {
                let grew = |i: usize, slack: f64| match (old[i], new[i]) {
                    (Some(o), Some(n)) => n as f64 > o as f64 * (1.0 + slack),
                    _ => false,
                };
                for (i, what, slack) in [
                    (0, "flash", GROWTH),
                    (1, "static RAM", 0.0),
                    (2, "instructions per token", GROWTH),
                ] {
                    if grew(i, slack) {
                        println!(
                            "FAIL {}: {what} grew from {} to {} (snapshot {})",
                            e.bin,
                            old[i].unwrap_or(0),
                            new[i].unwrap_or(0),
                            path.display()
                        );
                        failed.push(e.bin);
                    }
                }
            }
            None if !bless => {
                println!("FAIL {}: not in the snapshot {}", e.bin, path.display());
                failed.push(e.bin);
            }
            _ => {
                rows.insert(e.bin.to_string(), new);
            }
        }
    }
    if bless {
        let mut text = String::from(
            "# Firmware sizes and costs, checked by `cargo xtask qemu` and `cargo xtask boards`\n\
             # (rewritten by --bless). Bytes; instructions per generated token under QEMU\n\
             # -icount shift=0 (executed instructions, not cycles); `-` for boards.\n\
             # bin flash static_ram instructions_per_token\n",
        );
        for (bin, [f, r, i]) in &rows {
            let s = |v: &Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            writeln!(text, "{bin} {} {} {}", s(f), s(r), s(i))?;
        }
        fs::write(&path, text)?;
    }
    Ok(failed)
}

/// The README's figures table.
fn figures(examples: &[&Example], measured: &BTreeMap<&str, Measured>) -> Result<String> {
    let mut t = String::from(
        "| target | model, format | flash | static RAM | RAM minimum | stack | instructions per token | MACs per token | instructions per MAC (goal) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for e in examples {
        let Some(m) = measured.get(e.bin) else {
            continue;
        };
        let bytes = fs::read(fixtures().join(e.blob))?;
        let bytes = AlignedBytes::new(&bytes);
        let model = Model::from_blob(bytes.as_bytes())?;
        let cfg = model.config();
        let int = model.format() == NumberFormat::Int;
        let min = cost::min_ram_bytes(cfg, cfg.n_ctx, int) as u64;
        let per_mac = match (m.instructions_per_token, m.macs_per_token) {
            (Some(i), Some(macs)) => format!("{:.2}", i as f64 / macs as f64),
            _ => "-".into(),
        };
        let goal = e.goal.map_or(String::new(), |g| format!(" ({g})"));
        let or_dash = |v: Option<u64>, unit: &str| v.map_or("-".into(), |v| format!("{v}{unit}"));
        writeln!(
            t,
            "| {} | {} {} | {} B | {} B ({:.2}x) | {} B | {} | {} | {} | {}{} |",
            e.core,
            model_name(e.blob),
            model.format().name(),
            m.flash,
            m.ram,
            m.ram as f64 / min as f64,
            min,
            or_dash(m.stack, " B"),
            or_dash(m.instructions_per_token, ""),
            or_dash(m.macs_per_token, ""),
            per_mac,
            goal,
        )?;
    }
    Ok(t)
}
