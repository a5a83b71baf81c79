"""FlashAttention capture: one head's real Q, K, V from a model, run through tiled attention with the online softmax
(slide "FlashAttention: attention in tiles").

One forward pass through ``toolkit.qkv`` gives every layer's post-RoPE q and k, v and the eager weights; the chosen
head's q, k, v go through ``maths.tiled`` and its output is held against the model's own weights @ v.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, qkv, text
from toolkit.config import Config, param
from toolkit.flash_attention.maths import ORDERS, tiled
from toolkit.flash_attention.trace import FlashTrace
from toolkit.trace import make_meta

MAX_TOKENS = 256  # tiles of 2 x 2 at 256 tokens are 16,384 tiles: the most a trace keeps


@dataclass(frozen=True)
class FlashConfig(Config):
    layer: int = param(3, "layer whose Q, K, V are tiled (clamped to the model's layers)", lo=0, hi=255)
    head: int = param(0, "query head (under GQA it reads key/value head head // group)", lo=0, hi=255)
    block_q: int = param(16, "B_r: query rows per tile", lo=2, hi=128, step=1, label="B_r (query rows)")
    block_k: int = param(16, "B_c: keys per tile", lo=2, hi=128, step=1, label="B_c (keys)")
    order: str = param(
        "kv-outer",
        "loop order: key blocks outside (FlashAttention, Algorithm 1) or query blocks outside (FlashAttention-2)",
        choices=ORDERS,
    )
    max_tokens: int = param(64, "tokens run; a longer text is cut (the trace says so)", lo=2, hi=MAX_TOKENS)


def capture(model: models.Loaded | str, prompt: str, config: FlashConfig | None = None, **options: Any) -> FlashTrace:
    """Tile one head of ``prompt``'s attention; layer and head beyond the model's are clamped to its last."""
    loaded = models.resolve(model)
    cfg = FlashConfig.make(config, **options)
    enc = text.encode(loaded.tokenizer, prompt, cfg.max_tokens)
    ids = torch.tensor([enc.ids])  # (1, T)
    with torch.no_grad(), qkv.QkvTap(loaded.model) as tap:
        loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids), **arch.last_logits_only(loaded.model))
    a = tap.arch
    layer, head = min(cfg.layer, a.layers - 1), min(cfg.head, a.heads - 1)
    arrays = tap.arrays()
    kv_head = int(a.kv_head()[head])
    q, k, v = arrays["q"][layer, head], arrays["k"][layer, kv_head], arrays["v"][layer, kv_head]  # (T, d) each
    weights = arrays["weights"][layer, head]  # (query, key), the model's eager softmax
    window = a.sliding_window if a.causal else None
    scale = tap.scaling()
    out, tiles = tiled(q, k, v, cfg.block_q, cfg.block_k, a.causal, scale, window, cfg.order)
    t, br, d = len(tiles), cfg.block_q, q.shape[-1]
    m, l, rescale = (np.full((t, br), np.nan, dtype=np.float32) for _ in range(3))
    partial = np.zeros((t, br, d), dtype=np.float32)
    for s, tile in enumerate(tiles):
        rows = tile.r1 - tile.r0
        m[s, :rows], l[s, :rows], rescale[s, :rows], partial[s, :rows] = tile.m, tile.l, tile.rescale, tile.out
    return FlashTrace(
        tokens=text.display(loaded.tokenizer, enc.ids),
        q=q,
        k=k,
        v=v,
        weights=weights,
        reference=(weights.astype(np.float64) @ v.astype(np.float64)).astype(np.float32),
        output=out.astype(np.float32),
        tile_i=np.array([tile.i for tile in tiles]),
        tile_j=np.array([tile.j for tile in tiles]),
        skipped=np.array([tile.skipped for tile in tiles]),
        m=m,
        l=l,
        rescale=rescale,
        partial=partial,
        block_q=cfg.block_q,
        block_k=cfg.block_k,
        order=cfg.order,
        causal=a.causal,
        layer=layer,
        head=head,
        kv_head=kv_head,
        scale=scale,
        window=window,
        meta=make_meta(
            loaded.name,
            n_tokens_in_text=enc.n_total,
            truncated=enc.truncated,
            architecture=a.architecture,
            layers=a.layers,
            heads=a.heads,
            kv_heads=a.kv_heads,
        ),
    ).check()
