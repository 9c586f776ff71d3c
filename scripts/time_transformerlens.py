#!/usr/bin/env python3
"""TransformerLens' own times on a demo model, one thread, for the comparison in
docs/performance.md: `HookedTransformer.run_with_cache` (every hook, what `tinylens run --out
--no-attribution` records; criterion's `trace_64_hooks`) and the plain forward (`prefill_64`),
on 64 random tokens. Run it beside `cargo bench -p tinylens-benches --bench patching`:

    scripts/.venv/bin/python scripts/time_transformerlens.py models/demo-2l
"""

import json
import os
import sys
import time

import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig


def median_ms(f, repeats=7, inner=50):
    for _ in range(20):
        f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            f()
        times.append((time.perf_counter() - t) / inner)
    return sorted(times)[repeats // 2] * 1e3


def main() -> int:
    directory = sys.argv[1] if len(sys.argv) > 1 else "models/demo-2l"
    torch.set_num_threads(1)
    with open(os.path.join(directory, "config.json")) as f:
        cfg = HookedTransformerConfig(**json.load(f))
    model = HookedTransformer(cfg)
    model.load_state_dict(load_file(os.path.join(directory, "model.safetensors")), strict=False)
    model.eval()
    tokens = torch.randint(0, cfg.d_vocab, (1, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        print(f"run_with_cache, 64 tokens: {median_ms(lambda: model.run_with_cache(tokens)):.3f} ms")
        print(f"forward, 64 tokens:        {median_ms(lambda: model(tokens)):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
