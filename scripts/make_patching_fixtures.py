#!/usr/bin/env python3
"""TransformerLens' own activation patching and path patching on the fixture models.

For each fixture model in ``fixtures/tl`` with two or more layers, this script picks a clean
and a corrupted prompt (seeded random tokens; the corrupted one differs in a few positions), an
answer and a wrong token, and writes beside the model:

``patching.safetensors`` (F32)
    ``attn_head_out_all_pos`` ``[n_layers, n_heads]``, ``attn_head_out_by_pos``
    ``[n_layers, seq, n_heads]`` and ``resid_pre`` ``[n_layers, seq]``: exactly what
    ``transformer_lens.patching.get_act_patch_attn_head_out_all_pos``, ``..._by_pos`` and
    ``get_act_patch_resid_pre`` return for the metric
    ``(logit_diff(patched) - logit_diff(corrupted)) / (logit_diff(clean) - logit_diff(corrupted))``
    with ``logit_diff = logits[-1, answer] - logits[-1, wrong]``;
    ``path_patch`` ``[3, n_layers, n_heads, n_layers, n_heads]``: path patching from a sender
    head to a receiver head's ``hook_q``, ``hook_k`` or ``hook_v`` (axis 0 in that order), NaN
    where the sender's layer is not before the receiver's, computed with TransformerLens
    hooks (see ``path_patch``); ``clean_metric`` and ``corrupted_metric`` (scalars).
``patching.json``
    the prompts (token ids), the answer and wrong tokens, the package versions.

``host-cli/tests/patch.rs`` runs ``tinylens patch`` on the same models and prompts and checks
every value within 1e-4.

How to rerun (the venv of scripts/make_fixtures.py)::

    scripts/.venv/bin/python scripts/make_patching_fixtures.py --fixtures fixtures/tl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformer_lens import HookedTransformer, HookedTransformerConfig, patching  # noqa: E402

SEQ = 12
CHANGED = (3, 7)


def load(directory: str) -> HookedTransformer:
    with open(os.path.join(directory, "config.json")) as f:
        d = json.load(f)
    if isinstance(d.get("dtype"), str):
        d["dtype"] = getattr(torch, d["dtype"].removeprefix("torch."))
    d["dtype"] = torch.float32
    model = HookedTransformer(HookedTransformerConfig.from_dict(d))
    state = {k: (v.float() if v.is_floating_point() else v)
             for k, v in load_file(os.path.join(directory, "model.safetensors")).items()}
    model.load_state_dict(state, strict=False)
    model.eval()
    return model


def prompts(d_vocab: int, seed: int) -> tuple[list[int], list[int]]:
    """A random clean prompt that repeats its first half (so induction has work to do), and
    a corrupted one with the tokens at CHANGED replaced."""
    gen = torch.Generator().manual_seed(seed)
    half = torch.randint(0, d_vocab, (SEQ // 2,), generator=gen).tolist()
    clean = half + half
    corrupted = list(clean)
    for p in CHANGED:
        corrupted[p] = (clean[p] + 1 + int(torch.randint(0, d_vocab - 1, (1,), generator=gen))) % d_vocab
    return clean, corrupted


def path_patch(model, corrupted, clean_cache, corrupted_cache, metric, sender, receiver, which):
    """Path patching, sender -> receiver's `which` input: (1) run the corrupted prompt with
    the sender's z from the clean run and every head of the layers between the two frozen at
    its corrupted z, and record the receiver's q, k or v; (2) run the corrupted prompt with
    only that q, k or v replaced."""
    (sl, sh), (rl, rh) = sender, receiver
    recorded = {}

    def freeze(z, hook):
        layer = hook.layer()
        if layer == sl:
            z[:, :, sh] = clean_cache[hook.name][:, :, sh]
        elif sl < layer < rl:
            z[:, :, :] = corrupted_cache[hook.name]
        return z

    def record(x, hook):
        recorded["x"] = x[:, :, rh].clone()
        return x

    def replace(x, hook):
        x[:, :, rh] = recorded["x"]
        return x

    name = f"blocks.{rl}.attn.hook_{which}"
    hooks = [(f"blocks.{l}.attn.hook_z", freeze) for l in range(sl, rl)] + [(name, record)]
    model.run_with_hooks(corrupted, fwd_hooks=hooks)
    return metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, replace)]))


def make_one(directory: str, seed: int, versions: dict) -> None:
    model = load(directory)
    cfg = model.cfg
    clean_ids, corrupted_ids = prompts(cfg.d_vocab, seed)
    clean = torch.tensor([clean_ids])
    corrupted = torch.tensor([corrupted_ids])
    with torch.no_grad():
        a, b = model(clean)[0, -1], model(corrupted)[0, -1]
    # The answer is the clean run's top token, the wrong one the token the corruption favours
    # most over it: the two runs' metrics lie far apart, so the normalized results are stable.
    answer = int(a.argmax())
    gain = (b - a) - (b[answer] - a[answer])
    gain[answer] = float("-inf")
    wrong = int(gain.argmax())

    def logit_diff(logits):
        return logits[0, -1, answer] - logits[0, -1, wrong]

    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean)
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted)
        c, k = logit_diff(clean_logits).item(), logit_diff(corrupted_logits).item()

        def metric(logits):
            return (logit_diff(logits) - k) / (c - k)

        out = {
            "attn_head_out_all_pos": patching.get_act_patch_attn_head_out_all_pos(
                model, corrupted, clean_cache, metric),
            "attn_head_out_by_pos": patching.get_act_patch_attn_head_out_by_pos(
                model, corrupted, clean_cache, metric),
            "resid_pre": patching.get_act_patch_resid_pre(model, corrupted, clean_cache, metric),
        }
        L, H = cfg.n_layers, cfg.n_heads
        path = torch.full((3, L, H, L, H), float("nan"))
        for i, which in enumerate("qkv"):
            for sl in range(L):
                for sh in range(H):
                    for rl in range(sl + 1, L):
                        for rh in range(H):
                            path[i, sl, sh, rl, rh] = path_patch(
                                model, corrupted, clean_cache, corrupted_cache, metric,
                                (sl, sh), (rl, rh), which)
        out["path_patch"] = path
        out["clean_metric"] = torch.tensor(c)
        out["corrupted_metric"] = torch.tensor(k)
    tensors = {n: t.detach().float().contiguous().clone() for n, t in out.items()}
    save_file(tensors, os.path.join(directory, "patching.safetensors"), metadata={"format": "pt"})
    meta = {
        "clean_tokens": clean_ids,
        "corrupted_tokens": corrupted_ids,
        "answer": answer,
        "wrong": wrong,
        "metric": "logit-diff",
        "versions": versions,
    }
    with open(os.path.join(directory, "patching.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"{directory}: clean {c:.4f}, corrupted {k:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", default="fixtures/tl")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    versions = {p: metadata.version(p) for p in ("transformer_lens", "torch")}
    for seed, name in enumerate(sorted(os.listdir(args.fixtures))):
        directory = os.path.join(args.fixtures, name)
        with open(os.path.join(directory, "config.json")) as f:
            if json.load(f)["n_layers"] < 2:
                continue
        make_one(directory, seed, versions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
