//! `cargo xtask fuzz`: runs every fuzz target of `fuzz/` (cargo-fuzz, libFuzzer) for a set
//! time or number of executions, starting from the committed seeds (`fuzz/seeds/<target>`)
//! and corpus (`fuzz/corpus/<target>`, which the run extends), and prints each target's
//! executions.
//!
//! ```text
//! cargo xtask fuzz --minutes 10               # 10 minutes per target
//! cargo xtask fuzz --runs 10000000 blob       # the long run of a loader: 10M executions
//! cargo xtask fuzz --seconds 5                # the smoke run of the test command
//! cargo xtask fuzz --asan --minutes 5 blob    # with AddressSanitizer
//! ```
//!
//! Needs the nightly toolchain (`cargo +nightly`); installs cargo-fuzz when it is missing.
//! Without `--asan` the targets are built with no sanitizer: the kernel and the importer are
//! safe Rust (`forbid(unsafe_code)` in the kernel), so what the fuzzer looks for is a panic, a
//! hang or a runaway allocation, and that runs about 40 times faster than under ASan.
//! A crash, a hang (a single input past 10 s) or a resident size past 1 GiB (512 MiB for one
//! allocation under ASan) fails the run and leaves the input in `fuzz/artifacts/<target>/`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};

/// The targets, in the order they run.
pub const TARGETS: [&str; 3] = ["blob", "checkpoint", "decode"];

/// `args`: what follows `fuzz` on the command line.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut seconds = None;
    let mut runs = None;
    let mut asan = false;
    let mut targets: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |unit: u64| -> Result<u64> {
            let v = it.next().context("--minutes/--seconds needs a number")?;
            Ok(v.parse::<u64>()
                .with_context(|| format!("{v:?} is not a number"))?
                * unit)
        };
        match arg.as_str() {
            "--minutes" => seconds = Some(number(60)?),
            "--seconds" => seconds = Some(number(1)?),
            "--runs" => runs = Some(number(1)?),
            "--asan" => asan = true,
            t => match TARGETS.iter().find(|x| **x == t) {
                Some(&known) => targets.push(known),
                None => bail!("unknown argument {t:?}: usage: cargo xtask fuzz [--asan] [--minutes N | --seconds N] [--runs N] [{}]", TARGETS.join(" | ")),
            },
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    // With neither a time nor a number of runs, a minute per target.
    if runs.is_none() {
        seconds = seconds.or(Some(60));
    }
    let mut limits = Vec::new();
    if let Some(s) = seconds {
        limits.push(format!("-max_total_time={s}"));
    }
    if let Some(n) = runs {
        limits.push(format!("-runs={n}"));
    }
    let (sanitizer, memory) = if asan {
        ("address", "-malloc_limit_mb=512")
    } else {
        ("none", "-rss_limit_mb=1024")
    };
    let budget = match (seconds, runs) {
        (Some(s), Some(n)) => format!("{n} executions or {s} s"),
        (None, Some(n)) => format!("{n} executions"),
        (s, None) => format!("{} s", s.unwrap_or(60)),
    };
    ensure_cargo_fuzz()?;
    let fuzz = root.join("fuzz");
    let mut summary = Vec::new();
    for target in targets {
        let corpus = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let seeds = fuzz.join("seeds").join(target);
        println!("==> fuzz {target} for {budget} (sanitizer: {sanitizer})");
        let started = Instant::now();
        let out = Command::new("cargo")
            .current_dir(&fuzz)
            .args(["+nightly", "fuzz", "run", "-s", sanitizer, target])
            .arg(&corpus)
            .arg(&seeds)
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
        let line = format!(
            "{target:<11} {:>12} executions in {:>6.0} s ({} per second), corpus {} inputs, peak RSS {} MB",
            stat("number_of_executed_units"),
            started.elapsed().as_secs_f64(),
            stat("average_exec_per_sec"),
            std::fs::read_dir(&corpus).map_or(0, |d| d.count()),
            stat("peak_rss_mb"),
        );
        println!("ok   {line}");
        summary.push(line);
    }
    println!("\nfuzz summary (no crash, hang or runaway allocation):");
    for line in summary {
        println!("  {line}");
    }
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
