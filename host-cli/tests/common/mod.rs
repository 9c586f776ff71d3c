//! What every test of the `tinylens` binary needs: run it, read what it printed, find the
//! fixtures, and a scratch directory per test binary.

#![allow(dead_code)] // each test file uses some of these

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `tinylens args`.
pub fn tinylens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinylens"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// What a run printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a run printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs, expects success, and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = tinylens(args);
    assert!(o.status.success(), "{args:?} failed:\n{}", stderr(&o));
    stdout(&o)
}

/// Runs and expects a failure whose message contains `needle`, without a panic.
pub fn fails_with(args: &[&str], needle: &str) {
    let o = tinylens(args);
    assert!(
        !o.status.success(),
        "{args:?} should fail; stdout:\n{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(needle),
        "{args:?}: expected {needle:?} in:\n{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("panicked"),
        "{args:?} panicked:\n{}",
        stderr(&o)
    );
}

/// A TransformerLens fixture's directory (`fixtures/tl/NAME`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/tl")
        .join(name)
}

/// A path in this test binary's scratch directory.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tinylens-{}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Splits a command line into words as a shell would for these pages: spaces separate, single
/// and double quotes group (`\` escapes inside double quotes), a `#` that starts a word begins
/// a comment, and a trailing `\` continues the line.
pub fn words(line: &str) -> Vec<String> {
    let line = line.replace("\\\n", " ");
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => break,
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}
