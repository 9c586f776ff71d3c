#!/usr/bin/env python3
"""Copy a model directory written by `tinylens train` with its context cut to N positions.

The model is the same for every sequence of at most N tokens (positions are absolute: only
the first N rows of ``pos_embed.W_pos`` are ever read), and its KV cache, the bulk of the
decoding state, shrinks in proportion. This is how ``models/demo-2l-micro`` is made from
``models/demo-2l``:

    scripts/.venv/bin/python scripts/cut_context.py models/demo-2l models/demo-2l-micro 32
"""

import json
import os
import shutil
import sys

from safetensors.torch import load_file, save_file


def main() -> int:
    src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(dst, exist_ok=True)
    tensors = load_file(os.path.join(src, "model.safetensors"))
    tensors["pos_embed.W_pos"] = tensors["pos_embed.W_pos"][:n].contiguous()
    save_file(tensors, os.path.join(dst, "model.safetensors"))
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config["n_ctx"] = n
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copy(os.path.join(src, "vocab.json"), os.path.join(dst, "vocab.json"))
    print(f"wrote {dst}: {src} with n_ctx {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
