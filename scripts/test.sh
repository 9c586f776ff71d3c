#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what it needs (Rust targets and components),
# then: formatting, clippy, the host tests (kernel, CLI, conformance to TransformerLens),
# the kernel built for the embedded targets, and the docs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

EMBEDDED_TARGETS=(thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf riscv32imac-unknown-none-elf)
# The explorer's WebAssembly module (web/, `cargo xtask web`).
WEB_TARGET=wasm32-unknown-unknown

step "toolchain: targets and components"
installed=$(rustup target list --installed)
for t in "${EMBEDDED_TARGETS[@]}" "$WEB_TARGET"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings (workspace, all targets)"
cargo clippy --workspace --all-targets -- -D warnings

step "kernel: no_std builds for the embedded targets"
for t in "${EMBEDDED_TARGETS[@]}"; do
  cargo build -p tinylens --release --target "$t"
  # The kernel has no std and no allocator in its dependency tree on these targets.
  cargo clippy -p tinylens --target "$t" -- -D warnings
done
# A firmware that runs only the integer path drops the f32 and i8 formats.
cargo clippy -p tinylens --target thumbv6m-none-eabi --no-default-features --features int -- -D warnings

step "docs (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib
# ... and the kernel's docs with one format only (no link may point at a format left out).
for f in f32 i8 int; do
  RUSTDOCFLAGS="-D warnings" cargo doc -p tinylens --no-deps --lib --no-default-features --features "$f"
done

# --- attention page in a browser (host-cli/tests/analysis.rs) ------------------------------
step "headless Chromium: the attention page renders every head"
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
# With this set, the browser test fails (instead of skipping) when Chromium is missing.
export TINYLENS_BROWSER_TEST=1
cargo test -p tinylens-cli --test analysis the_attention_page_renders_every_head_in_chromium
# --- end attention page --------------------------------------------------------------------

# --- the explorer (web/, host-cli/tests/explore.rs) ----------------------------------------
step "explorer: the committed WebAssembly module is current; the page in headless Chromium"
cargo clippy -p tinylens-web --target "$WEB_TARGET" -- -D warnings
cargo xtask web --check
# Types, hovers and ablates through the DevTools protocol, against run --out and ablate;
# prints the keystroke-to-redraw time (not asserted).
cargo test -p tinylens-cli --test explore -- --nocapture
# --- end explorer --------------------------------------------------------------------------

step "tests (kernel, CLI, conformance to TransformerLens, benches' sanity checks)"
cargo test --workspace
# A kernel built without a format refuses its blobs by name (kernel/tests/features.rs).
cargo test -p tinylens --no-default-features --features f32 --test features

# --- firmware (firmware-examples/, xtask/) -------------------------------------------------
step "firmware: QEMU examples vs golden transcripts and size snapshots; boards built"
command -v qemu-system-arm >/dev/null || (apt-get update && apt-get install -y qemu-system-arm)
command -v defmt-print >/dev/null || cargo install defmt-print --locked
cargo fmt --manifest-path firmware-examples/Cargo.toml --all --check
cargo xtask qemu
cargo xtask boards
# --- end firmware --------------------------------------------------------------------------

# --- fuzzing (fuzz/, xtask/src/fuzz.rs) ----------------------------------------------------
step "fuzz smoke run: every target replays its committed seeds and corpus, then fuzzes for 5 s (cargo xtask fuzz --runs N for a long run)"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo fmt --manifest-path fuzz/Cargo.toml --all --check
cargo xtask fuzz --seconds 5 --scratch
# --- end fuzzing ---------------------------------------------------------------------------
