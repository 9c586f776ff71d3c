//! `docs/walkthrough.md` stays true: every ```sh block's command is run with this build of
//! `tinylens` (in a scratch directory that links the repository's files) and its standard
//! output must be the ```text block that follows it, up to trailing whitespace and the system
//! temp directory (written `$TMP`).

mod common;

use common::words;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The (command, expected output) pairs of the page, in order.
fn examples(page: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = page.lines().collect();
    let mut i = 0;
    let block = |start: usize| -> (String, usize) {
        let mut j = start;
        let mut text = Vec::new();
        while j < lines.len() && lines[j].trim_end() != "```" {
            text.push(lines[j]);
            j += 1;
        }
        (text.join("\n"), j + 1)
    };
    while i < lines.len() {
        if lines[i].trim_end() == "```sh" {
            let (cmd, next) = block(i + 1);
            let mut k = next;
            while k < lines.len() && lines[k].trim().is_empty() {
                k += 1;
            }
            assert!(
                k < lines.len() && lines[k].trim_end() == "```text",
                "the ```sh block at line {} is not followed by a ```text block",
                i + 1
            );
            let (expected, after) = block(k + 1);
            out.push((cmd, expected));
            i = after;
        } else {
            i += 1;
        }
    }
    out
}

fn normalise(text: &str) -> String {
    let tmp = std::env::temp_dir();
    let tmp = tmp.to_string_lossy();
    let tmp = tmp.trim_end_matches('/');
    text.replace(tmp, "$TMP")
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

/// A directory where the page's relative paths reach the repository's files (each top-level
/// entry linked) and what its commands write stays out of the repository.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root()).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

#[test]
fn every_command_of_the_walkthrough_prints_what_the_page_shows() {
    let page = std::fs::read_to_string(root().join("docs/walkthrough.md")).unwrap();
    let examples = examples(&page);
    assert!(examples.len() >= 7, "the walkthrough lost its examples");
    let mut failures = Vec::new();
    let scratch = scratch();
    for (cmd, expected) in &examples {
        let argv = words(cmd);
        assert_eq!(
            argv[0], "tinylens",
            "walkthrough commands run tinylens: {cmd}"
        );
        let o = Command::new(env!("CARGO_BIN_EXE_tinylens"))
            .args(&argv[1..])
            .current_dir(scratch.path())
            .output()
            .expect("binary runs");
        assert!(
            o.status.success(),
            "{cmd} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = normalise(&String::from_utf8_lossy(&o.stdout));
        if got != normalise(expected) {
            failures.push(format!(
                "$ {cmd}\n--- the page shows:\n{expected}\n--- it prints:\n{got}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn command_lines_split_like_a_shell() {
    assert_eq!(
        words("tinylens run m.tlb \\\n  --prompt \"a \\\"b\\\" c\""),
        ["tinylens", "run", "m.tlb", "--prompt", "a \"b\" c"]
    );
}
