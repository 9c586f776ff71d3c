#!/usr/bin/env bash
# Accuracy and size of every number format on the TransformerLens fixtures and the demo
# models: quantizes each checkpoint to each format, validates the blob against the f64
# reference (fixtures: 16 random sequences of length n_ctx; demo models: their held-out text,
# models/<name>/heldout.txt), and prints the "Number formats" table of docs/accuracy.md, with
# validate's verdict against the format's tolerances.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p tinylens-cli
T=target/release/tinylens
OUT=$(mktemp -d)
echo "| model | format | blob bytes | x int8 params | max \|Δ logit\| / range | max \|Δ head attr.\| / range | top-1 | top-1, no near-tie | positions with no near-tie | mean KL | validate |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for dir in fixtures/tl/*/ models/demo-1l/ models/demo-2l/; do
  fx=$(basename "$dir")
  if [ -f "$dir/heldout.txt" ]; then
    inputs=(--text "$dir/heldout.txt")
  elif [ -f "$dir/reference.safetensors" ]; then
    inputs=(--random 16)
  else
    continue
  fi
  for f in f32 i8 i8-block32 int; do
    blob="$OUT/$fx.$f.tlb"
    $T quantize "$dir/model.safetensors" -o "$blob" --format "$f" >/dev/null
    bytes=$(stat -c %s "$blob")
    ratio=$($T inspect "$blob" | awk '/^size:/ {print $6}')
    v=$($T validate "$dir/model.safetensors" "$blob" "${inputs[@]}" 2>/dev/null || true)
    dl=$(awk '/max \|d logit\|/ {print $7}' <<<"$v")
    dh=$(awk '/max \|d head attr/ {print $8}' <<<"$v")
    if [ "$f" = f32 ]; then
      # f32 prints per-tensor rows: relative errors from the logits and dla.heads rows.
      dl=$(awk '/^  logits / {print $2}' <<<"$v"); dh=$(awk '/^  dla.heads / {print $2}' <<<"$v")
      dl="$dl (abs)"; dh="$dh (abs)"
    fi
    # Quantized: "top-1 agreement, every position  V"; f32: "top-1 agreement  V  >= ...".
    top1=$(awk '/top-1 agreement/ {print ($2 == "agreement,") ? $5 : $3}' <<<"$v")
    clear=$(awk '/top-1 at clear positions/ {print $5}' <<<"$v")
    share=$(awk '/clear positions:/ {gsub(/,/, "", $5); print $3 "/" $5}' <<<"$v")
    kl=$(awk '/mean KL/ {print $5}' <<<"$v")
    verdict=$(tail -n 1 <<<"$v")
    echo "| $fx | $f | $bytes | ${ratio%x} | $dl | $dh | $top1 | ${clear:--} | ${share:--} | $kl | $verdict |"
  done
done
rm -rf "$OUT"
