//! The docs stay true to the CLI. Every `tinylens` command shown in a shell block of
//! `README.md` or `docs/*.md` must name a subcommand this build has, with flags that its
//! `--help` lists (a flag missing from the help means the page is stale); the quick ones of
//! the README and `docs/cli.md` are run for real from the repository root. The README stays a
//! front page, `docs/cli.md` shows every subcommand, and every relative link of the README
//! and `docs/` points at a file (and heading) that exists.

mod common;

use common::words;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The README is a front page: about 8 KB, with a little slack.
const README_MAX_BYTES: usize = 9000;

/// Subcommands quick enough (well under a second on the repository's models) to run for real.
const QUICK: &[&str] = &["demo", "inspect", "run", "circuits", "heads", "ablate"];

/// Flags that make a command write a file: such commands are only parsed, never run.
const WRITES: &[&str] = &["-o", "--output", "--out", "--svg-dir", "--write-corpus"];

/// The pages whose quick commands are run, not only parsed.
const RUN_PAGES: &[&str] = &["README.md", "docs/cli.md"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `README.md` and every `docs/*.md`, as paths relative to the repository root.
fn pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ at the repository root")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

// ------------------------------------------------------------------------------------------
// Shell lines and the CLI invocations in them
// ------------------------------------------------------------------------------------------

/// The command lines of a page's ```sh, ```bash and ```console blocks, with their line
/// numbers: continuation lines (a trailing `\`) joined, and in console blocks only the lines
/// after a `$ ` prompt.
fn shell_lines(page: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut block: Option<&str> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in page.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(fence.trim()),
            };
            continue;
        }
        let command = match block {
            Some("sh" | "bash") => trimmed,
            Some("console") => match trimmed.strip_prefix("$ ") {
                Some(rest) => rest,
                None if pending.is_some() => trimmed,
                None => continue,
            },
            _ => continue,
        };
        let (number, mut text) = pending.take().unwrap_or((i + 1, String::new()));
        match command.strip_suffix('\\') {
            Some(head) => {
                text.push_str(head);
                text.push(' ');
                pending = Some((number, text));
            }
            None => {
                text.push_str(command);
                out.push((number, text));
            }
        }
    }
    out
}

/// The arguments given to the CLI by each command of a line (commands split at `&&`, `||`,
/// `|` and `;`): after `tinylens` or `.../tinylens`, possibly behind `time`, or after the `--`
/// of `cargo run ... -p tinylens-cli -- ...`.
fn cli_invocations(words: &[String]) -> Vec<Vec<String>> {
    words
        .split(|w| matches!(w.as_str(), "&&" | "||" | "|" | ";"))
        .filter_map(cli_arguments)
        .collect()
}

/// The CLI arguments of one command, if the command runs the CLI.
fn cli_arguments(command: &[String]) -> Option<Vec<String>> {
    let mut command = command;
    if command
        .first()
        .is_some_and(|w| w == "time" || w.ends_with("/time"))
    {
        let flags = command[1..]
            .iter()
            .take_while(|w| w.starts_with('-'))
            .count();
        command = &command[1 + flags..];
    }
    let first = command.first()?;
    if first == "tinylens" || first.ends_with("/tinylens") {
        return Some(command[1..].to_vec());
    }
    let runs_the_cli = first == "cargo"
        && command.get(1).is_some_and(|w| w == "run")
        && command.windows(2).any(|pair| {
            matches!(pair[0].as_str(), "-p" | "--package") && pair[1] == "tinylens-cli"
        });
    if !runs_the_cli {
        return None;
    }
    let separator = command.iter().position(|w| w == "--")?;
    Some(command[separator + 1..].to_vec())
}

/// The `--long` and `-s` flags among the arguments, without `=value`; everything after a bare
/// `--` is positional.
fn flags(args: &[String]) -> Vec<String> {
    args.iter()
        .take_while(|a| a.as_str() != "--")
        .filter(|a| a.len() > 1 && a.starts_with('-'))
        .filter(|a| !a[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.'))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect()
}

// ------------------------------------------------------------------------------------------
// The CLI's own help
// ------------------------------------------------------------------------------------------

/// `--help` output per subcommand path, each run once.
#[derive(Default)]
struct Helps(BTreeMap<Vec<String>, String>);

impl Helps {
    /// `tinylens <path> --help`, which must succeed: a path that is not a subcommand fails.
    fn get(&mut self, path: &[String]) -> &str {
        self.0.entry(path.to_vec()).or_insert_with(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_tinylens"))
                .args(path)
                .arg("--help")
                .output()
                .expect("run tinylens");
            assert!(
                out.status.success(),
                "`tinylens {} --help` failed: {}",
                path.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).expect("help is UTF-8")
        })
    }
}

/// The names listed under `Commands:` in a help text (`help` included, as clap lists it).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The subcommand path at the start of the arguments (`plot attention`), read from the help.
fn subcommand_path(args: &[String], helps: &mut Helps) -> Vec<String> {
    let mut path = Vec::new();
    for arg in args {
        if !subcommands(helps.get(&path)).contains(arg) {
            break;
        }
        path.push(arg.clone());
    }
    path
}

/// The word after a subcommand path that should be a subcommand and is not: where the help
/// lists subcommands, the next argument that is not a flag must be one of them.
fn unknown_subcommand<'a>(help: &str, rest: &'a [String]) -> Option<&'a str> {
    let next = rest.first()?;
    (!subcommands(help).is_empty() && !next.starts_with('-')).then_some(next.as_str())
}

/// A subcommand path as a user types it: `tinylens plot attention`.
fn shown(path: &[String]) -> String {
    std::iter::once("tinylens")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a help text lists a flag: `--name` not followed by more of a name, or `-s` followed
/// by `,` or a space, after whitespace.
fn help_lists(help: &str, flag: &str) -> bool {
    let long = flag.starts_with("--");
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        let starts = before.is_none_or(|c| c.is_whitespace() || c == '[' || c == '<');
        let ends = if long {
            after.is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_'))
        } else {
            matches!(after, Some(',' | ' '))
        };
        starts && ends
    })
}

// ------------------------------------------------------------------------------------------
// Running the quick commands
// ------------------------------------------------------------------------------------------

/// Whether a command is quick and self-contained: a quick subcommand, no file written, and
/// every argument that names a file names one in the repository.
fn runs_for_real(path: &[String], args: &[String]) -> bool {
    let quick = path.first().is_some_and(|p| QUICK.contains(&p.as_str()));
    let writes = flags(args).iter().any(|f| WRITES.contains(&f.as_str()));
    let files_exist = args
        .iter()
        .filter(|a| !a.starts_with('-') && names_a_file(a))
        .all(|a| root().join(a).is_file());
    quick && !writes && files_exist
}

fn names_a_file(arg: &str) -> bool {
    let extensions = [".tlb", ".safetensors", ".txt", ".json", ".csv"];
    !arg.contains(' ') && (arg.contains('/') || extensions.iter().any(|e| arg.ends_with(e)))
}

/// Runs the CLI with these arguments from the repository root; returns the failure, if any.
fn run(args: &[String]) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_tinylens"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run tinylens");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

// ------------------------------------------------------------------------------------------
// Links
// ------------------------------------------------------------------------------------------

/// The prose of a page: fenced code blocks dropped, inline code spans blanked.
fn prose(page: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut in_span = false;
        for c in line.chars() {
            if c == '`' {
                in_span = !in_span;
            }
            out.push(if in_span || c == '`' { ' ' } else { c });
        }
        out.push('\n');
    }
    out
}

/// The targets of the page's Markdown links and images, `[text](target)`.
fn link_targets(page: &str) -> Vec<String> {
    let text = prose(page);
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            let end = rest.find(')')?;
            Some(
                rest[..end]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

/// The anchors of a page's headings, as GitHub makes them: lower case, punctuation dropped,
/// spaces to hyphens.
fn anchors(page: &str) -> BTreeSet<String> {
    let mut in_code = false;
    page.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            !in_code && line.starts_with('#')
        })
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// What is wrong with a relative link from the page `from` (relative to the root), if anything.
fn broken(from: &str, target: &str) -> Option<String> {
    if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let dir = Path::new(from).parent().unwrap_or(Path::new(""));
    let path = if file.is_empty() {
        root().join(from)
    } else {
        root().join(dir).join(file)
    };
    if !path.exists() {
        return Some(format!("{target}: no file {}", path.display()));
    }
    let anchor = anchor.filter(|_| path.extension().is_some_and(|e| e == "md"))?;
    let page = std::fs::read_to_string(&path).ok()?;
    (!anchors(&page).contains(anchor)).then(|| format!("{target}: no heading #{anchor}"))
}

// ------------------------------------------------------------------------------------------
// The tests
// ------------------------------------------------------------------------------------------

#[test]
fn every_documented_command_parses_with_flags_the_cli_has() {
    let mut helps = Helps::default();
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut ran = 0;
    for page in pages() {
        for (line, text) in shell_lines(&read(&page)) {
            for args in cli_invocations(&words(&text)) {
                checked += 1;
                let path = subcommand_path(&args, &mut helps);
                let help = helps.get(&path).to_string();
                if let Some(unknown) = unknown_subcommand(&help, &args[path.len()..]) {
                    problems.push(format!(
                        "{page}:{line}: `{}` has no subcommand {unknown}: {text}",
                        shown(&path)
                    ));
                }
                for flag in flags(&args) {
                    if !help_lists(&help, &flag) {
                        problems.push(format!(
                            "{page}:{line}: `{}` has no flag {flag}: {text}",
                            shown(&path)
                        ));
                    }
                }
                if RUN_PAGES.contains(&page.as_str()) && runs_for_real(&path, &args) {
                    ran += 1;
                    if let Err(stderr) = run(&args) {
                        problems.push(format!("{page}:{line}: `{text}` failed: {stderr}"));
                    }
                }
            }
        }
    }
    eprintln!("{checked} documented commands parsed, {ran} of them run");
    assert!(
        problems.is_empty(),
        "stale commands in the docs:\n{}",
        problems.join("\n")
    );
    assert!(checked >= 30, "only {checked} documented commands found");
    assert!(ran >= 8, "only {ran} documented commands were run");
}

#[test]
fn the_cli_page_shows_every_subcommand() {
    let mut helps = Helps::default();
    let mut shown = BTreeSet::new();
    for (_, text) in shell_lines(&read("docs/cli.md")) {
        for args in cli_invocations(&words(&text)) {
            shown.extend(subcommand_path(&args, &mut helps));
        }
    }
    let missing: Vec<String> = subcommands(helps.get(&[]))
        .into_iter()
        .filter(|c| c != "help" && !shown.contains(c))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/cli.md shows no example of: {missing:?}"
    );
}

#[test]
fn the_readme_is_a_front_page_with_the_two_commands() {
    let readme = read("README.md");
    assert!(
        readme.len() <= README_MAX_BYTES,
        "README.md is {} bytes; the front page stays under {README_MAX_BYTES}: move detail to docs/",
        readme.len()
    );
    for command in [
        "cargo run --release -p tinylens-cli -- demo",
        "./scripts/test.sh",
    ] {
        assert!(readme.contains(command), "README.md lost `{command}`");
    }
}

#[test]
fn every_relative_link_points_at_a_file_that_exists() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        for target in link_targets(&read(&page)) {
            checked += 1;
            if let Some(problem) = broken(&page, &target) {
                problems.push(format!("{page}: {problem}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    assert!(checked >= 40, "only {checked} links found");
}

#[test]
fn the_parsers_read_what_the_pages_write() {
    let line = r#"tinylens run m.tlb --prompt "a \"b\" # c" --top=3 # a comment"#;
    assert_eq!(
        words(line),
        [
            "tinylens",
            "run",
            "m.tlb",
            "--prompt",
            "a \"b\" # c",
            "--top=3"
        ]
    );
    let cargo = words("cargo run --release -p tinylens-cli -- plot heads m.tlb -o h.svg && ls");
    assert_eq!(
        cli_invocations(&cargo),
        [vec!["plot", "heads", "m.tlb", "-o", "h.svg"]]
    );
    assert!(cli_invocations(&words("cargo test -p tinylens --test docs")).is_empty());
    assert!(cli_invocations(&words("cargo build --release -p tinylens-cli")).is_empty());
    assert_eq!(
        flags(&words("run --top=3 -o x -- --not-a-flag")),
        ["--top", "-o"]
    );
    let top = "Commands:\n  run   Run a model\n  help  Print this message\n\nOptions:\n";
    assert_eq!(subcommands(top), ["run", "help"]);
    assert_eq!(unknown_subcommand(top, &words("runn m.tlb")), Some("runn"));
    assert_eq!(unknown_subcommand(top, &words("--help")), None);
    assert_eq!(unknown_subcommand("Options:\n", &words("m.tlb")), None);
    let help = "  -o, --output <OUTPUT>  The blob\n      --format <FORMAT>  [default: f32]\n";
    assert!(help_lists(help, "--output") && help_lists(help, "-o") && help_lists(help, "--format"));
    assert!(!help_lists(help, "--form") && !help_lists(help, "--out") && !help_lists(help, "-f"));
    let block =
        "```console\n$ tinylens demo \\\n  --prompt x\nout\n```\n```sh\ntinylens inspect a\n```\n";
    assert_eq!(
        shell_lines(block),
        [
            (2, "tinylens demo  --prompt x".to_string()),
            (7, "tinylens inspect a".to_string())
        ]
    );
    assert_eq!(
        anchors("# A `tinylens` page\n## Host decode latency\n```\n# not a heading\n```\n"),
        BTreeSet::from([
            "a-tinylens-page".to_string(),
            "host-decode-latency".to_string()
        ])
    );
}
