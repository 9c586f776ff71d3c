#!/usr/bin/env python3
"""Load models saved by `tinylens train` into TransformerLens and compare its logits with tinylens'.

For each model directory (model.safetensors + config.json + vocab.json, as `tinylens train`
writes them) this script

1. builds ``HookedTransformer(HookedTransformerConfig(**config.json))`` and loads the
   safetensors state dict into it (every parameter must be present and of the right shape; only
   TransformerLens' non-parameter buffers ``attn.mask`` / ``attn.IGNORE`` may be missing);
2. runs it on a prompt (encoded with vocab.json, greedy longest match as tinylens does) and on
   a repeated random token sequence, with ``run_with_cache``;
3. runs ``tinylens run DIR/model.safetensors --tokens ... --out hooks.safetensors`` and
   compares logits, attention patterns and the direct path attribution.

It prints one line per model and check, and exits non-zero past the tolerances. Usage:

    scripts/.venv/bin/python scripts/check_trained.py models/demo-1l models/demo-2l models/demo-2l-micro

(build tinylens first: ``cargo build --release -p tinylens-cli``; ``--tinylens PATH`` picks
another binary). The output for the shipped models is kept in ``models/transformerlens-check.txt``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

LOGIT_TOL = 1e-4
PATTERN_TOL = 1e-5

PROMPTS = {
    "demo-1l": " we keep the old map in mind . they keep the wolves at",
    "demo-2l": "Mr and Mrs Durasoli, of number 4, Pivet Drive, were proud to say that they were "
    "perfectly normal. Mr Dura",
}


def load(directory: str) -> tuple[HookedTransformer, list[str]]:
    with open(os.path.join(directory, "config.json")) as f:
        cfg = HookedTransformerConfig(**json.load(f))
    with open(os.path.join(directory, "vocab.json")) as f:
        vocab = json.load(f)
    model = HookedTransformer(cfg)
    state = load_file(os.path.join(directory, "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith((".attn.mask", ".attn.IGNORE"))]
    if missing or unexpected:
        raise SystemExit(f"{directory}: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model, vocab


def encode(vocab: list[str], text: str) -> list[int]:
    ids, rest = [], text
    while rest:
        best = max(
            (i for i, t in enumerate(vocab) if t and rest.startswith(t)),
            key=lambda i: (len(vocab[i]), -i),
        )
        ids.append(best)
        rest = rest[len(vocab[best]) :]
    return ids


def tinylens_hooks(binary: str, checkpoint: str, tokens: list[int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "hooks.safetensors")
        subprocess.run(
            [binary, "run", checkpoint, "--tokens", ",".join(map(str, tokens)), "--out", out],
            check=True,
            capture_output=True,
        )
        return load_file(out)


def check(directory: str, binary: str) -> bool:
    model, vocab = load(directory)
    cfg = model.cfg
    name = os.path.basename(os.path.normpath(directory))
    prompt = next((p for k, p in PROMPTS.items() if name.startswith(k)), None)
    gen = torch.Generator().manual_seed(0)
    half = (cfg.n_ctx - 1) // 2
    rand = torch.randint(0, cfg.d_vocab, (half,), generator=gen).tolist()
    sequences = [("repeated random", rand + rand)]
    if prompt is not None:
        sequences.insert(0, (repr(prompt[:40] + "..."), encode(vocab, prompt)[: cfg.n_ctx]))
    ok = True
    for label, tokens in sequences:
        with torch.no_grad():
            logits, cache = model.run_with_cache(torch.tensor([tokens]))
        ours = tinylens_hooks(binary, os.path.join(directory, "model.safetensors"), tokens)
        d_logit = (ours["logits"] - logits[0]).abs().max().item()
        d_pattern = max(
            (ours[f"blocks.{l}.attn.hook_pattern"] - cache[f"blocks.{l}.attn.hook_pattern"][0])
            .abs()
            .max()
            .item()
            for l in range(cfg.n_layers)
        )
        top_tl = logits[0, -1].argmax().item()
        top_ours = ours["logits"][-1].argmax().item()
        passed = d_logit <= LOGIT_TOL and d_pattern <= PATTERN_TOL and top_tl == top_ours
        ok &= passed
        print(
            f"{name}: {label} ({len(tokens)} tokens): max |d logit| {d_logit:.1e}, "
            f"max |d pattern| {d_pattern:.1e}, next token {vocab[top_tl]!r} in both: "
            f"{'PASS' if passed else 'FAIL'}"
        )
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", help="model directories written by tinylens train")
    ap.add_argument("--tinylens", default="target/release/tinylens", help="the tinylens binary")
    args = ap.parse_args()
    ok = all([check(d, args.tinylens) for d in args.dirs])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
