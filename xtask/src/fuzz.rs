//! `cargo xtask fuzz`: runs every fuzz target of `fuzz/` (cargo-fuzz, libFuzzer) for a set
//! time or number of executions, starting from the committed seeds (`fuzz/seeds/<target>`,
//! hand-made valid inputs) and corpus (`fuzz/corpus/<target>`, what earlier runs found,
//! minimized), and prints each target's executions.
//!
//! ```text
//! cargo xtask fuzz --runs 10000000 blob       # the long run of a loader: 10M executions
//! cargo xtask fuzz --minutes 10               # 10 minutes per target
//! cargo xtask fuzz --minimize                 # then shrink fuzz/corpus/ to what adds coverage
//! cargo xtask fuzz --seconds 5 --scratch      # the test command's smoke run
//! cargo xtask fuzz --asan --minutes 5 blob    # with AddressSanitizer
//! ```
//!
//! New inputs go to `fuzz/corpus/<target>` (to be minimized and committed), or with
//! `--scratch` to `target/fuzz-scratch/<target>`, which leaves the checkout untouched. Every
//! committed input is replayed first, so the smoke run is also the regression test of the
//! corpus; crashes once found are kept as named tests in `tests/tests/hardening.rs`.
//!
//! Needs the nightly toolchain (`cargo +nightly`); installs cargo-fuzz when it is missing.
//! Without `--asan` the targets are built with no sanitizer: the kernel and the importer are
//! safe Rust (`forbid(unsafe_code)` in the kernel), so what the fuzzer looks for is a panic, a
//! hang or a runaway allocation, and that runs about five times faster than under ASan.
//! A crash, a hang (a single input past 10 s) or a resident size past 1 GiB (512 MiB for one
//! allocation under ASan) fails the run and leaves the input in `fuzz/artifacts/<target>/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};

/// The targets, in the order they run.
pub const TARGETS: [&str; 3] = ["blob", "checkpoint", "decode"];

/// What the command line asks for.
struct Options {
    seconds: Option<u64>,
    runs: Option<u64>,
    asan: bool,
    scratch: bool,
    minimize: bool,
    targets: Vec<&'static str>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        seconds: None,
        runs: None,
        asan: false,
        scratch: false,
        minimize: false,
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |unit: u64| -> Result<u64> {
            let v = it.next().with_context(|| format!("{arg} needs a number"))?;
            Ok(v.parse::<u64>()
                .with_context(|| format!("{v:?} is not a number"))?
                * unit)
        };
        match arg.as_str() {
            "--minutes" => o.seconds = Some(number(60)?),
            "--seconds" => o.seconds = Some(number(1)?),
            "--runs" => o.runs = Some(number(1)?),
            "--asan" => o.asan = true,
            "--scratch" => o.scratch = true,
            "--minimize" => o.minimize = true,
            t => match TARGETS.iter().find(|x| **x == t) {
                Some(&known) => o.targets.push(known),
                None => bail!(
                    "unknown argument {t:?}: usage: cargo xtask fuzz [--asan] [--scratch] \
                     [--minutes N | --seconds N] [--runs N] [--minimize] [{}]",
                    TARGETS.join(" | ")
                ),
            },
        }
    }
    if o.targets.is_empty() {
        o.targets = TARGETS.to_vec();
    }
    Ok(o)
}

/// `args`: what follows `fuzz` on the command line.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let o = parse(args)?;
    ensure_cargo_fuzz()?;
    let fuzz = root.join("fuzz");
    if o.minimize && o.seconds.is_none() && o.runs.is_none() {
        for target in &o.targets {
            minimize(&fuzz, target, o.asan)?;
        }
        return Ok(());
    }
    // With neither a time nor a number of runs, a minute per target.
    let seconds = match (o.seconds, o.runs) {
        (None, None) => Some(60),
        (s, _) => s,
    };
    let mut limits: Vec<String> = seconds
        .map(|s| format!("-max_total_time={s}"))
        .into_iter()
        .collect();
    limits.extend(o.runs.map(|n| format!("-runs={n}")));
    let budget: Vec<String> = [
        o.runs.map(|n| format!("{n} executions")),
        seconds.map(|s| format!("{s} s")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let budget = budget.join(" or ");
    let (sanitizer, memory) = sanitizer(o.asan);
    let mut summary = Vec::new();
    for target in &o.targets {
        let corpus = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let seeds = fuzz.join("seeds").join(target);
        // libFuzzer writes what it finds into the first directory and only reads the others.
        let mut dirs: Vec<PathBuf> = Vec::new();
        if o.scratch {
            let scratch = root.join("target").join("fuzz-scratch").join(target);
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch)?;
            dirs.push(scratch);
        }
        dirs.extend([corpus.clone(), seeds]);
        println!("==> fuzz {target} for {budget} (sanitizer: {sanitizer})");
        let started = Instant::now();
        let out = Command::new("cargo")
            .current_dir(&fuzz)
            .args(["+nightly", "fuzz", "run", "-s", sanitizer, target])
            .args(&dirs)
            .arg("--")
            .args(&limits)
            .args(["-timeout=10", memory, "-print_final_stats=1"])
            .output()
            .context("cannot run cargo +nightly fuzz")?;
        let log = String::from_utf8_lossy(&out.stderr);
        let stat = |name: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| "?".into())
        };
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
            bail!(
                "fuzz target {target} failed ({}): the input is in fuzz/artifacts/{target}/",
                out.status
            );
        }
        let found = std::fs::read_dir(&dirs[0]).map_or(0, |d| d.count());
        let line = format!(
            "{target:<11} {:>12} executions in {:>6.0} s ({} per second), {found} inputs in {}, peak RSS {} MB",
            stat("number_of_executed_units"),
            started.elapsed().as_secs_f64(),
            stat("average_exec_per_sec"),
            dirs[0].strip_prefix(root).unwrap_or(&dirs[0]).display(),
            stat("peak_rss_mb"),
        );
        println!("ok   {line}");
        summary.push(line);
        if o.minimize && !o.scratch {
            minimize(&fuzz, target, o.asan)?;
        }
    }
    println!("\nfuzz summary (no crash, hang or runaway allocation):");
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

/// cargo-fuzz's sanitizer flag and libFuzzer's memory limit for it.
fn sanitizer(asan: bool) -> (&'static str, &'static str) {
    if asan {
        ("address", "-malloc_limit_mb=512")
    } else {
        ("none", "-rss_limit_mb=1024")
    }
}

/// Shrinks `fuzz/corpus/<target>` to the inputs that add coverage (`cargo fuzz cmin`).
fn minimize(fuzz: &Path, target: &str, asan: bool) -> Result<()> {
    let corpus = fuzz.join("corpus").join(target);
    let before = std::fs::read_dir(&corpus).map_or(0, |d| d.count());
    let out = Command::new("cargo")
        .current_dir(fuzz)
        .args(["+nightly", "fuzz", "cmin", "-s", sanitizer(asan).0, target])
        .arg(&corpus)
        .output()
        .context("cannot run cargo +nightly fuzz cmin")?;
    ensure!(
        out.status.success(),
        "cargo fuzz cmin {target} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = std::fs::read_dir(&corpus).map_or(0, |d| d.count());
    println!("minimized fuzz/corpus/{target}: {before} -> {after} inputs");
    Ok(())
}

/// Installs cargo-fuzz when `cargo +nightly fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let status = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .context("cannot run cargo install")?;
        ensure!(status.success(), "cargo install cargo-fuzz failed");
    }
    Ok(())
}
