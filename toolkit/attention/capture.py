"""Attention capture: the real weights, Q, K and V of every layer and head of a Hugging Face model.

Serves the deck's self-attention slides ("Self-attention computation", multi-head attention, causal masking,
the "it -> animal / tired" example, encoder vs decoder). One forward pass through ``toolkit.qkv``: hooks on each
attention module (its weight matrix; eager attention only) and its q/k/v projections, always removed, recording
only this thread's forward passes (the model is shared by every request). Q and K are post-RoPE for RoPE models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, qkv, text
from toolkit.attention.trace import AttentionTrace
from toolkit.config import Config, param
from toolkit.trace import make_meta

MAX_NEW_TOKENS = 32


@dataclass(frozen=True)
class AttentionConfig(Config):
    max_tokens: int = param(
        text.DEFAULT_TOKENS,
        "tokens run; a longer text is cut (the trace says so)",
        lo=2,
        hi=text.MAX_TOKENS,
        label="token limit",
    )
    qkv: bool = param(True, "keep Q, K and V per head (the step-by-step view needs them)")
    new_tokens: int = param(
        8, "tokens to generate (generation view)", lo=1, hi=MAX_NEW_TOKENS, step=1, label="new tokens"
    )


def _per_head(arrays: dict[str, np.ndarray], group: int) -> dict[str, np.ndarray]:
    """q (layer, head, pos, d) as is; k and v repeated from their key/value head to every query head."""
    return {"q": arrays["q"], "k": qkv.repeat_kv(arrays["k"], group), "v": qkv.repeat_kv(arrays["v"], group)}


def capture(
    model: models.Loaded | str, prompt: str, config: AttentionConfig | None = None, **options: Any
) -> AttentionTrace:
    """Run ``prompt`` once and return every layer's and head's attention (and Q, K, V) as a checked trace."""
    loaded = models.resolve(model)
    cfg = AttentionConfig.make(config, **options)
    enc = text.encode(loaded.tokenizer, prompt, cfg.max_tokens)
    ids = torch.tensor([enc.ids])
    with torch.no_grad(), qkv.QkvTap(loaded.model, qkv=cfg.qkv) as tap:
        loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids), **arch.last_logits_only(loaded.model))
    arrays = tap.arrays()
    a = tap.arch
    return AttentionTrace(
        tokens=text.display(loaded.tokenizer, enc.ids),
        weights=arrays["weights"],
        kv_head=a.kv_head(),
        causal=a.causal,
        meta=_meta(loaded, tap, enc.ids, enc.n_total),
        truncated=enc.truncated,
        **(_per_head(arrays, a.group) if cfg.qkv else {}),
    ).check()


def generate(
    model: models.Loaded | str, prompt: str, config: AttentionConfig | None = None, **options: Any
) -> AttentionTrace:
    """Greedy generation with a KV cache, recording at each step how the new token attends to everything before.

    The prompt's rows come from the first forward pass; row n_prompt + s from step s, where only the newest
    token is fed (its query against the cached keys). Stops early at the end-of-sequence token.
    """
    loaded = models.resolve(model)
    cfg = AttentionConfig.make(config, **{"qkv": False, **options})
    if not arch.is_causal(loaded.model):
        raise ValueError(f"{loaded.name} is an encoder: it does not generate; choose a causal model")
    enc = text.encode(loaded.tokenizer, prompt, max(1, cfg.max_tokens - cfg.new_tokens))
    ids, n_prompt = list(enc.ids), len(enc.ids)
    eos = getattr(loaded.tokenizer, "eos_token_id", None)
    with torch.no_grad(), qkv.QkvTap(loaded.model, qkv=cfg.qkv) as tap:
        out = loaded.model(input_ids=torch.tensor([ids]), use_cache=True)
        for _ in range(cfg.new_tokens):
            nxt = int(out.logits[0, -1].argmax())
            ids.append(nxt)
            out = loaded.model(input_ids=torch.tensor([[nxt]]), cache=out.cache, use_cache=True)
            if nxt == eos:
                break
    n = len(ids)
    weights, parts, start = None, [], 0
    for call in range(tap.calls):  # one forward pass per step; each step's arrays are released once copied
        step = tap.arrays(call)
        w = step.pop("weights")  # (layer, head, new queries, keys so far)
        if weights is None:
            weights = np.zeros((*w.shape[:2], n, n), dtype=np.float32)  # (layer, head, query, key)
        weights[:, :, start : start + w.shape[2], : w.shape[3]] = w
        start += w.shape[2]
        if cfg.qkv:
            parts.append(step)
    per_head = {}
    if cfg.qkv:
        joined = {key: np.concatenate([p[key] for p in parts], axis=2) for key in "qkv"}  # along pos
        per_head = _per_head(joined, tap.arch.group)
    meta = _meta(loaded, tap, ids, enc.n_total)
    meta["generated"] = text.display(loaded.tokenizer, ids[n_prompt:])
    return AttentionTrace(
        tokens=text.display(loaded.tokenizer, ids),
        weights=weights,
        kv_head=tap.arch.kv_head(),
        causal=True,
        meta=meta,
        truncated=enc.truncated,
        n_prompt=n_prompt,
        **per_head,
    ).check()


def _meta(loaded: models.Loaded, tap: qkv.QkvTap, ids: list[int], n_total: int) -> dict[str, Any]:
    return make_meta(
        model=loaded.name,
        ids=list(ids),
        n_tokens_in_text=n_total,
        head_dim=tap.arch.head_dim,
        scaling=tap.scaling(),
        qk="post-rope" if tap.uses_rope() else "projections",
        architecture=tap.arch.architecture,
        sliding_window=tap.arch.sliding_window if tap.arch.causal else None,
    )


def compare(
    model: models.Loaded | str,
    other: models.Loaded | str,
    prompt: str,
    config: AttentionConfig | None = None,
    **options: Any,
) -> tuple[AttentionTrace, AttentionTrace]:
    """The same text through two models (two models, a model before and after a LoRA fine-tune, unquantised vs
    quantised) -> (trace of ``model``, trace of ``other``), checked comparable: the same tokens and the same
    layers and heads, so their difference per head means something."""
    cfg = AttentionConfig.make(config, **options)
    return check_comparable(capture(model, prompt, cfg), capture(other, prompt, cfg))


def check_comparable(a: AttentionTrace, b: AttentionTrace) -> tuple[AttentionTrace, AttentionTrace]:
    """(a, b) when a per-head difference means something (the same tokens, layers and heads), else ValueError."""
    names = f"{a.meta['model']} and {b.meta['model']}"
    if a.meta["ids"] != b.meta["ids"]:
        raise ValueError(f"{names} split the text into different tokens: compare models that share a tokenizer")
    if a.weights.shape != b.weights.shape:
        raise ValueError(
            f"{names} differ in layers or heads ({a.n_layers}x{a.n_heads} vs {b.n_layers}x{b.n_heads}): "
            "a per-head difference needs the same architecture"
        )
    return a, b
