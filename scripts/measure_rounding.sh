#!/usr/bin/env bash
# The rounding ablation of docs/accuracy.md: every fixture and demo model, quantized to i8 and
# int with round-to-nearest and with GPTQ (`quantize --rounding`), each blob validated against
# the f64 reference on 16 random sequences of n_ctx tokens, 16 repeated random sequences
# (a random half repeated: what induction heads see) and, for the demo models, their held-out
# text. Prints one markdown row per model, format and input.
#   scripts/measure_rounding.sh            (builds target/release/tinylens first)
#   TINYLENS=path/to/tinylens scripts/measure_rounding.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TINYLENS:-}" ]; then
  cargo build --release -q -p tinylens-cli
  TINYLENS=target/release/tinylens
fi
T=$TINYLENS
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
field() { awk -v pat="$1" -v col="$2" 'index($0, pat) {print $col}'; }
echo "| model | format | input | clear top-1, nearest | gptq | mean KL, nearest | gptq | max \|Δ logit\| / range, nearest | gptq |"
echo "|---|---|---|---|---|---|---|---|---|"
for dir in fixtures/tl/*/ models/demo-1l/ models/demo-2l/; do
  fx=$(basename "$dir")
  read -r ctx vocab < <(python3 -c "import json; c = json.load(open('$dir/config.json')); print(min(c['n_ctx'], 512), c['d_vocab'])")
  # 16 repeated random sequences, seeded: a random half, then the same half again.
  python3 - "$ctx" "$vocab" >"$OUT/$fx.repeated" <<'PY'
import random, sys
n, vocab = int(sys.argv[1]) // 2, int(sys.argv[2])
r = random.Random(7)
for _ in range(16):
    half = [r.randrange(vocab) for _ in range(n)]
    print(",".join(map(str, half + half)))
PY
  inputs=("random|--random 16" "repeated|--tokens-file $OUT/$fx.repeated")
  [ -f "$dir/heldout.txt" ] && inputs+=("held-out text|--text $dir/heldout.txt")
  for f in i8 int; do
    for r in nearest gptq; do
      $T quantize "$dir/model.safetensors" -o "$OUT/$fx.$f.$r.tlb" --format "$f" --rounding "$r" >/dev/null
    done
    for inp in "${inputs[@]}"; do
      name=${inp%%|*}; read -r -a args <<<"${inp#*|}"
      declare -A got=()
      for r in nearest gptq; do
        v=$($T validate "$dir/model.safetensors" "$OUT/$fx.$f.$r.tlb" "${args[@]}" 2>/dev/null || true)
        got[clear.$r]=$(field "top-1 at clear positions" 5 <<<"$v")
        got[kl.$r]=$(field "mean KL" 5 <<<"$v")
        got[logit.$r]=$(field "max |d logit|" 7 <<<"$v")
      done
      row="| $fx | $f | $name"
      for what in clear kl logit; do
        row="$row | ${got[$what.nearest]} | ${got[$what.gptq]}"
      done
      echo "$row |"
    done
  done
done
