#!/usr/bin/env python3
"""How often a model barely decides, and how much int8 weights move its decisions.

Top-1 agreement between a quantized model and its float reference can only be as good as the
reference's own margins allow: where its two best logits are nearly equal, any perturbation
may swap them. For each model directory (model.safetensors + config.json + vocab.json +
heldout.txt, as in ``models/``) this script, in TransformerLens and float64,

1. tokenizes ``heldout.txt`` (greedy longest match, as tinylens does) into windows of n_ctx
   and prints the share of positions whose top-2 logit gap is below a fraction of the logit
   range (max - min over every position, as ``tinylens validate`` measures it);
2. rounds every weight matrix to int8 as ``tinylens quantize --format i8`` does (symmetric,
   ``max |w| / 127``, one scale per output column; per (head, column) for W_Q/W_K/W_V, per
   residual dimension for W_O) and prints how far that moves the reference's top-2 difference,
   and the resulting top-1 agreement (which ``tinylens validate --text`` reproduces with the
   kernel).

Usage:

    scripts/.venv/bin/python scripts/near_ties.py models/demo-1l models/demo-2l
"""

import copy
import sys

import torch

from check_trained import encode, load

GAPS = [1e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2]

# Which dimensions share one scale (are reduced by the max), per weight name suffix.
SHARED = {
    "embed.W_E": (0,),
    "pos_embed.W_pos": (0,),
    "attn.W_Q": (1,),
    "attn.W_K": (1,),
    "attn.W_V": (1,),
    "attn.W_O": (0, 1),
    "unembed.W_U": (0,),
}


def int8(w, shared):
    scale = w.abs().amax(dim=shared, keepdim=True).clamp_min(1e-30) / 127
    return (w / scale).round().clamp(-127, 127) * scale


def main(directory):
    model, vocab = load(directory)
    cfg = model.cfg
    ids = encode(vocab, open(f"{directory}/heldout.txt").read())
    n = len(ids) // cfg.n_ctx * cfg.n_ctx
    tokens = torch.tensor(ids[:n]).view(-1, cfg.n_ctx)
    rounded = copy.deepcopy(model)
    rounded.load_state_dict(
        {
            k: int8(v.float(), s)
            for k, v in model.state_dict().items()
            for suffix, s in SHARED.items()
            if k.endswith(suffix)
        },
        strict=False,
    )
    with torch.no_grad():
        ref = model.double()(tokens)
        out = rounded.double()(tokens)
    span = (ref.max() - ref.min()).item()
    top2 = ref.topk(2, -1)
    gap = (top2.values[..., 0] - top2.values[..., 1]) / span
    print(f"{directory}: {tokens.numel()} held-out positions, logit range {span:.2f}")
    for g in GAPS:
        share = (gap < g).double().mean().item()
        print(f"  top-2 gap < {g:g} of the range: {100 * share:5.2f}% of positions")
    i1, i2 = top2.indices[..., :1], top2.indices[..., 1:]
    moved = ((out.gather(-1, i1) - out.gather(-1, i2)) - (ref.gather(-1, i1) - ref.gather(-1, i2)))
    moved = moved.abs().flatten() / span
    print(
        f"  int8 weights move the top-2 difference by {moved.median().item():.2g} of the range "
        f"(median), {moved.quantile(0.9).item():.2g} (90th percentile)"
    )
    agree = (out.argmax(-1) == ref.argmax(-1)).double().mean().item()
    print(f"  top-1 agreement with int8 weights: {agree:.4f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for d in sys.argv[1:]:
        main(d)
