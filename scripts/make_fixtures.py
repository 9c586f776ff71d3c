#!/usr/bin/env python3
"""Generate TransformerLens conformance fixtures for tinylens.

What it makes
=============
For each of a handful of small, randomly initialised attention-only
``HookedTransformer`` models (see ``MODELS`` below) this script writes a
directory ``<out>/<name>/`` containing:

``model.safetensors``
    ``model.state_dict()`` with TransformerLens parameter names exactly
    (``embed.W_E``, ``pos_embed.W_pos``, ``blocks.{l}.ln1.w``, ``blocks.{l}.attn.W_Q``,
    ..., ``unembed.b_U``), *including* the non-parameter buffers that the
    state dict carries (``blocks.{l}.attn.mask`` -- an empty BOOL tensor -- and
    ``blocks.{l}.attn.IGNORE`` -- a 0-d tensor holding -inf). Float tensors are
    F32, except for the ``*_f16`` / ``*_bf16`` models whose float tensors are
    stored as F16 / BF16. For those, the model that produced the reference
    outputs is the float32 model whose weights are exactly the rounded values
    stored in the file.

``config.json``
    ``model.cfg.to_dict()`` made JSON-serialisable (torch dtypes become strings
    such as ``"torch.float32"``, numpy scalars become plain numbers, anything
    else that is not JSON becomes its ``str()``).

``vocab.json``
    JSON array of ``d_vocab`` strings: token id -> text, each a distinct single
    character (the first ``d_vocab`` characters of ``CHARSET``).

``reference.safetensors``
    Outputs of ``logits, cache = model.run_with_cache(tokens)`` (after
    ``model.set_use_attn_result(True)``) for a batch of B=3 sequences of length
    ``n_ctx`` (row 0: random tokens; row 1: a random sequence of length
    ``n_ctx // 2`` repeated twice; row 2: random tokens). ``tokens`` is I64,
    every other tensor is F32:

    * ``tokens`` [B, seq], ``logits`` [B, seq, d_vocab]
    * ``blocks.{l}.attn.hook_pattern`` [B, n_heads, seq, seq]
    * ``blocks.{l}.attn.hook_q`` / ``hook_k`` / ``hook_v`` / ``hook_z`` [B, seq, n_heads, d_head]
    * ``blocks.{l}.attn.hook_result`` [B, seq, n_heads, d_model]
    * ``blocks.{l}.hook_resid_post`` [B, seq, d_model]
    * ``ln_final.hook_scale`` [B, seq, 1] (LayerNorm models only)
    * Direct logit attribution (DLA) for every position, with
      ``f(c) = c`` for models without LayerNorm and, for LN models, the exact
      linear split through the frozen final LayerNorm
      ``f(c) = (c - c.mean(-1, keepdim=True)) / ln_final.hook_scale * ln_final.w``:

      - ``dla.direct_embed`` [B, seq, d_vocab] = f(hook_embed) @ W_U
      - ``dla.direct_pos`` [B, seq, d_vocab] = f(hook_pos_embed) @ W_U for
        standard positional embeddings; all zeros for shortformer models
        (positions never enter the residual stream there)
      - ``dla.direct`` = ``dla.direct_embed + dla.direct_pos``
      - ``dla.heads`` [L*H, B, seq, d_vocab], index ``l*n_heads + h``:
        f(hook_result[l][:, :, h]) @ W_U
      - ``dla.bias_b_O`` [L, B, seq, d_vocab] = f(b_O[l] at every position) @ W_U
      - ``dla.bias_const`` [B, seq, d_vocab] = b_U (no LN) or
        ``ln_final.b @ W_U + b_U`` (LN)
      - ``dla.heads_tl`` [L*H, B, seq, d_vocab] (LN models only): the
        TransformerLens convention,
        ``cache.stack_head_results(layer=-1, apply_ln=True) @ model.W_U``,
        i.e. centred and divided by the frozen final-LN scale, *without*
        ``ln_final.w`` / ``ln_final.b``.

      ``dla.direct + dla.heads.sum(0) + dla.bias_b_O.sum(0) + dla.bias_const``
      equals ``logits``; the script asserts this to within 1e-4. The DLA terms
      are computed in float64 from the float32 cache, then stored as F32.

``reference.json``
    Small metadata: model name, config summary, package versions, the maximum
    attribution-sum error, the list of reference tensors with shapes/dtypes.

After writing, every model is reloaded from ``config.json`` +
``model.safetensors`` into a fresh ``HookedTransformer`` and checked to
reproduce the stored logits bit-for-bit.

How to rerun
============
::

    python3 -m venv scripts/.venv
    scripts/.venv/bin/pip install -r scripts/requirements-fixtures.txt
    scripts/.venv/bin/python scripts/make_fixtures.py --out fixtures/tl

Everything runs on CPU in float32 with fixed seeds and
``torch.use_deterministic_algorithms(True)``; rerunning with the pinned
versions reproduces the committed files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Dict, List

import numpy as np
import torch
from safetensors.torch import load_file, save_file

warnings.filterwarnings("ignore", category=DeprecationWarning)

from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402

CHARSET = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?0123456789"
BATCH = 3
ATTRIBUTION_TOL = 1e-4


@dataclass
class ModelSpec:
    name: str
    seed: int
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    n_ctx: int
    normalization_type: Any  # None or "LN"
    positional_embedding_type: str = "standard"
    store_dtype: torch.dtype = torch.float32
    extra: Dict[str, Any] = field(default_factory=dict)
    # > 0: trained for this many steps on repeated random sequences (see ``train_induction``)
    # instead of perturbed random weights.
    train_steps: int = 0


MODELS: List[ModelSpec] = [
    ModelSpec("l1_nonorm", 101, 1, 4, 32, 8, 40, 24, None),
    ModelSpec("l2_ln", 102, 2, 4, 32, 8, 40, 24, "LN"),
    ModelSpec("l2_nonorm", 103, 2, 2, 24, 12, 30, 16, None),
    ModelSpec("l2_shortformer_ln", 104, 2, 3, 24, 8, 36, 20, "LN", "shortformer"),
    ModelSpec("l3_ln_f16", 105, 3, 2, 16, 8, 32, 16, "LN", store_dtype=torch.float16),
    ModelSpec("l2_ln_bf16", 106, 2, 4, 32, 8, 40, 24, "LN", store_dtype=torch.bfloat16),
    ModelSpec(
        "l2_induction", 107, 2, 4, 64, 16, 48, 32, "LN", "shortformer", train_steps=3000
    ),
]


# --------------------------------------------------------------------------
# model construction
# --------------------------------------------------------------------------


def build_model(spec: ModelSpec) -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=spec.n_layers,
        n_heads=spec.n_heads,
        d_model=spec.d_model,
        d_head=spec.d_head,
        d_vocab=spec.d_vocab,
        n_ctx=spec.n_ctx,
        attn_only=True,
        act_fn=None,
        d_mlp=None,
        normalization_type=spec.normalization_type,
        positional_embedding_type=spec.positional_embedding_type,
        device="cpu",
        dtype=torch.float32,
        seed=spec.seed,
        **spec.extra,
    )
    torch.manual_seed(spec.seed)
    model = HookedTransformer(cfg)
    model.eval()
    if spec.train_steps > 0:
        train_induction(model, spec)
        return model

    # Perturb the default init so that every term is exercised: nonzero biases,
    # non-trivial LayerNorm affine parameters and clearly non-uniform attention.
    gen = torch.Generator().manual_seed(spec.seed * 7919 + 1)

    def randn(shape, scale):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * scale

    with torch.no_grad():
        if spec.normalization_type is None:
            # Without LN the residual is just the (small) embeddings, so make
            # them larger for the attention scores to be far from uniform.
            model.embed.W_E.mul_(5.0)
            model.pos_embed.W_pos.mul_(5.0)
        else:
            # A larger W_pos makes the positional signal visible through LN.
            model.pos_embed.W_pos.mul_(3.0)
        for name, p in model.named_parameters():
            leaf = name.split(".")[-1]
            if leaf in ("W_Q", "W_K"):
                p.mul_(3.0)
            elif leaf in ("b_Q", "b_K", "b_V"):
                p.copy_(randn(p.shape, 0.3))
            elif leaf == "b_O":
                p.copy_(randn(p.shape, 0.2))
            elif leaf == "b_U":
                p.copy_(randn(p.shape, 0.5))
            elif leaf == "w" and (".ln" in name or name.startswith("ln")):
                p.copy_(1.0 + randn(p.shape, 0.2))
            elif leaf == "b" and (".ln" in name or name.startswith("ln")):
                p.copy_(randn(p.shape, 0.1))

        if spec.store_dtype != torch.float32:
            # The reference model's weights are exactly the stored low-precision values.
            for p in model.parameters():
                p.copy_(p.to(spec.store_dtype).to(torch.float32))
    return model


def make_tokens(spec: ModelSpec) -> torch.Tensor:
    gen = torch.Generator().manual_seed(spec.seed * 31 + 5)
    n, v = spec.n_ctx, spec.d_vocab
    row0 = torch.randint(0, v, (n,), generator=gen)
    half = torch.randint(0, v, (n // 2,), generator=gen)
    row1 = torch.cat([half, half, half[: n - 2 * (n // 2)]])
    row2 = torch.randint(0, v, (n,), generator=gen)
    return torch.stack([row0, row1, row2]).to(torch.int64)


# --------------------------------------------------------------------------
# serialisation helpers
# --------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.dtype):
        return str(value)  # e.g. "torch.float32"
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def config_to_json(cfg: HookedTransformerConfig) -> Dict[str, Any]:
    # cfg.to_dict() returns cfg.__dict__ itself: copy before converting.
    return {k: jsonable(v) for k, v in dict(cfg.to_dict()).items()}


def config_from_json(d: Dict[str, Any]) -> HookedTransformerConfig:
    d = dict(d)
    if isinstance(d.get("dtype"), str):
        d["dtype"] = getattr(torch, d["dtype"].removeprefix("torch."))
    return HookedTransformerConfig.from_dict(d)


def write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def save_tensors(path: str, tensors: Dict[str, torch.Tensor]) -> None:
    # A single metadata entry: safetensors writes multi-key metadata in hash order,
    # which would make the files differ from run to run.
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, path, metadata={"format": "pt"})


# --------------------------------------------------------------------------
# reference computation
# --------------------------------------------------------------------------


def compute_reference(model: HookedTransformer, tokens: torch.Tensor):
    cfg = model.cfg
    L, H = cfg.n_layers, cfg.n_heads
    has_ln = cfg.normalization_type == "LN"
    shortformer = cfg.positional_embedding_type == "shortformer"

    model.set_use_attn_result(True)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)

    ref: Dict[str, torch.Tensor] = {"tokens": tokens.clone(), "logits": logits}
    for l in range(L):
        for hook in ("hook_pattern", "hook_z", "hook_result", "hook_q", "hook_k", "hook_v"):
            key = f"blocks.{l}.attn.{hook}"
            ref[key] = cache[key]
        ref[f"blocks.{l}.hook_resid_post"] = cache[f"blocks.{l}.hook_resid_post"]
    if has_ln:
        ref["ln_final.hook_scale"] = cache["ln_final.hook_scale"]

    # ---- direct logit attribution (float64) ----
    d64 = torch.float64
    W_U = model.W_U.detach().to(d64)
    b_U = model.b_U.detach().to(d64)
    if has_ln:
        scale = cache["ln_final.hook_scale"].to(d64)  # [B, seq, 1]
        ln_w = model.ln_final.w.detach().to(d64)
        ln_b = model.ln_final.b.detach().to(d64)

        def f(c: torch.Tensor) -> torch.Tensor:
            c = c.to(d64)
            return (c - c.mean(-1, keepdim=True)) / scale * ln_w

    else:

        def f(c: torch.Tensor) -> torch.Tensor:
            return c.to(d64)

    B, seq = tokens.shape
    direct_embed = f(cache["hook_embed"]) @ W_U
    if shortformer:
        direct_pos = torch.zeros_like(direct_embed)
    else:
        direct_pos = f(cache["hook_pos_embed"]) @ W_U
    direct = direct_embed + direct_pos

    heads = []
    bias_b_O = []
    for l in range(L):
        result = cache[f"blocks.{l}.attn.hook_result"]  # [B, seq, H, d_model]
        for h in range(H):
            heads.append(f(result[:, :, h]) @ W_U)
        b_O = model.blocks[l].attn.b_O.detach().to(d64)
        bias_b_O.append(f(b_O.expand(B, seq, cfg.d_model)) @ W_U)
    heads_t = torch.stack(heads)  # [L*H, B, seq, V]
    bias_b_O_t = torch.stack(bias_b_O)  # [L, B, seq, V]
    if has_ln:
        bias_const = (ln_b @ W_U + b_U).expand(B, seq, -1).clone()
    else:
        bias_const = b_U.expand(B, seq, -1).clone()

    total = direct + heads_t.sum(0) + bias_b_O_t.sum(0) + bias_const
    max_err = (total - logits.to(d64)).abs().max().item()

    f32 = torch.float32
    ref["dla.direct_embed"] = direct_embed.to(f32)
    ref["dla.direct_pos"] = direct_pos.to(f32)
    ref["dla.direct"] = direct.to(f32)
    ref["dla.heads"] = heads_t.to(f32)
    ref["dla.bias_b_O"] = bias_b_O_t.to(f32)
    ref["dla.bias_const"] = bias_const.to(f32)

    if has_ln:
        # compute_head_results() logs a warning when hook_result is already cached.
        logging.disable(logging.WARNING)
        with torch.no_grad():
            stack, labels = cache.stack_head_results(
                layer=-1, return_labels=True, pos_slice=None, apply_ln=True
            )
            assert labels == [f"L{l}H{h}" for l in range(L) for h in range(H)], labels
            ref["dla.heads_tl"] = (stack @ model.W_U).to(f32)
        logging.disable(logging.NOTSET)

    return ref, max_err


# --------------------------------------------------------------------------
# a trained model with real induction heads
# --------------------------------------------------------------------------


def repeated_random_batch(gen: torch.Generator, batch: int, n_ctx: int, d_vocab: int) -> torch.Tensor:
    """``batch`` rows of ``n_ctx`` tokens, each a random prefix of ``period`` tokens repeated
    until the row is full; ``period`` is drawn per row from ``[4, n_ctx // 2]`` so that only
    looking back one period (not a fixed distance) predicts the repeats."""
    rows = []
    for _ in range(batch):
        period = int(torch.randint(4, n_ctx // 2 + 1, (1,), generator=gen))
        prefix = torch.randint(0, d_vocab, (period,), generator=gen)
        rows.append(prefix.repeat(n_ctx // period + 1)[:n_ctx])
    return torch.stack(rows)


def train_induction(model: HookedTransformer, spec: ModelSpec) -> None:
    """Train ``model`` (attention-only, 2 layers) for ``spec.train_steps`` Adam steps on
    repeated random sequences. The second half is predictable only by looking back one period:
    the model learns previous-token heads in layer 0 and induction heads in layer 1.
    Shortformer positions (in queries and keys only, as in the framework paper's small models)
    keep the previous-token heads' output free of positions."""
    gen = torch.Generator().manual_seed(spec.seed * 13 + 7)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    model.train()
    for step in range(spec.train_steps):
        tokens = repeated_random_batch(gen, 64, spec.n_ctx, spec.d_vocab)
        loss = model(tokens, return_type="loss")
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == spec.train_steps - 1:
            print(f"[{spec.name}] step {step:4d} loss {loss.item():.3f}")
    model.eval()


# --------------------------------------------------------------------------
# circuit analysis references (analysis.safetensors)
# --------------------------------------------------------------------------

HEAD_SEQS = 4


def head_detector_tokens(spec: ModelSpec) -> torch.Tensor:
    """``HEAD_SEQS`` repeated random sequences, each shorter than ``n_ctx`` as ``detect_head``
    requires: ``half`` random tokens twice, ``2 * half < n_ctx``."""
    gen = torch.Generator().manual_seed(spec.seed * 17 + 3)
    half = (spec.n_ctx - 1) // 2
    rows = torch.randint(0, spec.d_vocab, (HEAD_SEQS, half), generator=gen)
    return torch.cat([rows, rows], dim=1).to(torch.int64)


def detector_scores(model: HookedTransformer, tokens: torch.Tensor, name: str) -> torch.Tensor:
    """``head_detector.detect_head`` (error measure "mul", the default) over the rows of
    ``tokens``, averaged over rows as ``detect_head`` averages a list of prompts. These models
    have no tokenizer, so ``to_tokens`` is pointed at the stored rows: the detector sees exactly
    the token ids the Rust side reads from the fixture (no BOS)."""
    from transformer_lens.head_detector import detect_head

    by_key = {f"seq{i}": tokens[i : i + 1] for i in range(tokens.shape[0])}
    def to_tokens(seq, *args, **kwargs):
        if isinstance(seq, list):
            return torch.cat([by_key[s] for s in seq])
        return by_key[seq]

    model.to_tokens = to_tokens  # type: ignore[method-assign]
    try:
        return detect_head(model, list(by_key), name)
    finally:
        del model.to_tokens


def ablation_reference(model: HookedTransformer, tokens: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Mean next-token loss of one sequence, clean and with each head (its ``hook_z``, hence
    its ``hook_result``) zero- or mean-ablated (mean over positions of this sequence), and with
    the direct path (the embedding's own way to the unembedding) removed from the final
    residual stream, zeroed or replaced by its mean over positions."""
    cfg = model.cfg
    L, H = cfg.n_layers, cfg.n_heads
    toks = tokens[None]
    with torch.no_grad():
        clean, cache = model.run_with_cache(toks, return_type="loss")
        zero = torch.zeros(L, H)
        mean = torch.zeros(L, H)
        for l in range(L):
            for h in range(H):
                def zero_z(z, hook, h=h):
                    z[:, :, h] = 0.0
                    return z

                def mean_z(z, hook, h=h):
                    z[:, :, h] = z[:, :, h].mean(1, keepdim=True)
                    return z

                name = f"blocks.{l}.attn.hook_z"
                zero[l, h] = model.run_with_hooks(toks, return_type="loss", fwd_hooks=[(name, zero_z)])
                mean[l, h] = model.run_with_hooks(toks, return_type="loss", fwd_hooks=[(name, mean_z)])
        x0 = cache["hook_embed"]
        if cfg.positional_embedding_type == "standard":
            x0 = x0 + cache["hook_pos_embed"]
        last = f"blocks.{L - 1}.hook_resid_post"

        def direct_zero(resid, hook):
            return resid - x0

        def direct_mean(resid, hook):
            return resid - x0 + x0.mean(1, keepdim=True)

        dz = model.run_with_hooks(toks, return_type="loss", fwd_hooks=[(last, direct_zero)])
        dm = model.run_with_hooks(toks, return_type="loss", fwd_hooks=[(last, direct_mean)])
    return {
        "ablate.tokens": tokens.clone(),
        "ablate.loss_clean": clean.reshape(1),
        "ablate.zero": zero,
        "ablate.mean": mean,
        "ablate.direct_zero": dz.reshape(1),
        "ablate.direct_mean": dm.reshape(1),
    }


def compute_analysis(model: HookedTransformer, spec: ModelSpec) -> Dict[str, torch.Tensor]:
    """The framework's circuits and scores, each with TransformerLens' own function:

    * ``direct_path`` [d_vocab, d_vocab] = ``W_E @ W_U`` (row = current token, col = next)
    * ``full_OV`` [L, H, d_vocab, d_vocab] = ``(W_E @ model.OV @ W_U).AB`` (row = source token)
    * ``full_QK`` [L, H, d_vocab, d_vocab] = ``(W_E @ model.QK @ W_E.T).AB`` (row = destination)
    * ``copying_score`` [L, H]: eigenvalues of the full OV circuit as
      ``FactoredMatrix.eigenvalues`` computes them (the d_head x d_head matrix ``BA``),
      ``(sum(lambda) / sum(|lambda|)).real``; ``full_OV.eigenvalues.real/.imag`` [L, H, d_head]
    * ``composition_scores.Q/.K/.V`` [L, H, L, H] = ``model.all_composition_scores(mode)``
    * ``head_tokens`` [HEAD_SEQS, seq] and ``prev_token_score``, ``duplicate_token_score``,
      ``induction_score`` [L, H] = ``detect_head`` on those rows
    * ``ablate.*``: see ``ablation_reference``.
    """
    out: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        W_E, W_U = model.W_E, model.W_U
        out["direct_path"] = W_E @ W_U
        full_ov = W_E @ model.OV @ W_U
        full_qk = W_E @ model.QK @ W_E.T
        out["full_OV"] = full_ov.AB
        out["full_QK"] = full_qk.AB
        eig = full_ov.eigenvalues
        out["full_OV.eigenvalues.real"] = eig.real.float()
        out["full_OV.eigenvalues.imag"] = eig.imag.float()
        out["copying_score"] = (eig.sum(-1) / eig.abs().sum(-1)).real.float()
        for mode in ("Q", "K", "V"):
            out[f"composition_scores.{mode}"] = model.all_composition_scores(mode)
    tokens = head_detector_tokens(spec)
    out["head_tokens"] = tokens
    for key, name in (
        ("prev_token_score", "previous_token_head"),
        ("duplicate_token_score", "duplicate_token_head"),
        ("induction_score", "induction_head"),
    ):
        out[key] = detector_scores(model, tokens, name).float()
    out.update(ablation_reference(model, tokens[0]))
    return out


def write_analysis(model: HookedTransformer, spec: ModelSpec, d: str) -> Dict[str, Any]:
    logging.disable(logging.WARNING)
    out = compute_analysis(model, spec)
    logging.disable(logging.NOTSET)
    save_tensors(os.path.join(d, "analysis.safetensors"), out)
    return {
        "copying_score": [[round(x, 4) for x in row] for row in out["copying_score"].tolist()],
        "prev_token_score": [[round(x, 4) for x in r] for r in out["prev_token_score"].tolist()],
        "induction_score": [[round(x, 4) for x in r] for r in out["induction_score"].tolist()],
        "loss_clean": round(out["ablate.loss_clean"].item(), 4),
    }


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def attention_stats(ref: Dict[str, torch.Tensor], n_layers: int) -> Dict[str, float]:
    """Mean over rows (query position >= 4) of the largest attention weight."""
    out = {}
    for l in range(n_layers):
        p = ref[f"blocks.{l}.attn.hook_pattern"][:, :, 4:, :]
        out[f"layer{l}_mean_row_max"] = round(p.max(-1).values.mean().item(), 4)
    return out


def make_one(spec: ModelSpec, out_dir: str, versions: Dict[str, str]) -> Dict[str, Any]:
    d = os.path.join(out_dir, spec.name)
    os.makedirs(d, exist_ok=True)

    model = build_model(spec)
    # Config as built (before set_use_attn_result(True) flips use_attn_result).
    cfg_json = config_to_json(model.cfg)
    tokens = make_tokens(spec)
    ref, max_err = compute_reference(model, tokens)
    print(f"[{spec.name}] max |sum(DLA terms) - logits| = {max_err:.3e}")
    assert max_err < ATTRIBUTION_TOL, f"{spec.name}: attribution sum error {max_err}"

    # ---- model.safetensors ----
    state = {}
    for k, v in model.state_dict().items():
        if v.is_floating_point() and spec.store_dtype != torch.float32:
            lo = v.to(spec.store_dtype)
            assert torch.equal(lo.to(v.dtype), v) or not torch.isfinite(v).all(), k
            v = lo
        state[k] = v
    save_tensors(os.path.join(d, "model.safetensors"), state)

    # ---- config.json / vocab.json ----
    write_json(os.path.join(d, "config.json"), cfg_json)
    vocab = list(CHARSET[: spec.d_vocab])
    assert len(vocab) == spec.d_vocab and len(set(vocab)) == spec.d_vocab
    write_json(os.path.join(d, "vocab.json"), vocab)

    # ---- reference.safetensors ----
    save_tensors(os.path.join(d, "reference.safetensors"), ref)

    # ---- round-trip check: reload the files into a fresh HookedTransformer ----
    cfg2 = config_from_json(json.load(open(os.path.join(d, "config.json"))))
    model2 = HookedTransformer(cfg2)
    loaded = {k: (v.float() if v.is_floating_point() else v)
              for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    model2.load_state_dict(loaded, strict=True)
    model2.eval()
    model2.set_use_attn_result(True)  # same code path as the reference run
    with torch.no_grad():
        logits2 = model2(load_file(os.path.join(d, "reference.safetensors"))["tokens"])
    assert torch.equal(logits2, ref["logits"]), f"{spec.name}: reload mismatch"

    cfg = model.cfg
    meta = {
        "model": spec.name,
        "description": (
            f"Attention-only HookedTransformer trained {spec.train_steps} steps on repeated "
            "random sequences"
            if spec.train_steps
            else "Random attention-only HookedTransformer"
        )
        + "; reference activations from model.run_with_cache(tokens) with use_attn_result=True.",
        "config": {
            "n_layers": cfg.n_layers,
            "n_heads": cfg.n_heads,
            "d_model": cfg.d_model,
            "d_head": cfg.d_head,
            "d_vocab": cfg.d_vocab,
            "n_ctx": cfg.n_ctx,
            "normalization_type": cfg.normalization_type,
            "positional_embedding_type": cfg.positional_embedding_type,
            "eps": cfg.eps,
            "attn_scale": float(cfg.attn_scale),
            "attn_only": cfg.attn_only,
        },
        "seed": spec.seed,
        "weights_dtype": str(spec.store_dtype).removeprefix("torch."),
        "model_tensors_dtype": {
            "float": {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[
                spec.store_dtype
            ],
            "blocks.{l}.attn.mask": "BOOL (shape [0, 0], unused buffer)",
            "blocks.{l}.attn.IGNORE": "float scalar -inf (unused buffer)",
        },
        "batch": BATCH,
        "seq_len": int(tokens.shape[1]),
        "tokens_dtype": "int64",
        "reference_dtype": "float32 (except tokens)",
        "max_attribution_sum_error": max_err,
        "attribution_tolerance": ATTRIBUTION_TOL,
        "attention_stats": attention_stats(ref, cfg.n_layers),
        "reference_tensors": {
            k: f"{str(v.dtype).removeprefix('torch.')} {list(v.shape)}" for k, v in ref.items()
        },
        "versions": versions,
    }
    write_json(os.path.join(d, "reference.json"), meta)
    analysis = write_analysis(model, spec, d)
    print(f"[{spec.name}] analysis: {analysis}")
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="fixtures/tl", help="output directory (default fixtures/tl)")
    ap.add_argument("--only", nargs="*", help="only these model names")
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    versions = {
        "transformer_lens": metadata.version("transformer_lens"),
        "torch": metadata.version("torch"),
        "safetensors": metadata.version("safetensors"),
        "numpy": np.__version__,
    }
    os.makedirs(args.out, exist_ok=True)
    for spec in MODELS:
        if args.only and spec.name not in args.only:
            continue
        meta = make_one(spec, args.out, versions)
        print(f"[{spec.name}] attention: {meta['attention_stats']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
