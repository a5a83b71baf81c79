"""AttentionTrace: the attention weights (and Q, K, V) of every layer and head for one text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register, rows_sum_to_one


@register
@dataclass(frozen=True)
class AttentionTrace(Trace):
    """Attention weights of one text.

    weights: (layer, head, query, key) float32, each row a softmax distribution.
    kv_head: (head,) int, the key/value head each query head reads (grouped-query attention; identity for MHA).
    q, k, v: (layer, head, pos, head_dim) float32 per query head (k, v repeated per their kv head), or None.
        For RoPE models q and k are after the rotation: exactly what the dot product QKᵀ sees.
    truncated: the text had more tokens than the capture limit; only the first len(tokens) were run.
    n_prompt: for a generation trace, how many tokens were the prompt; row t >= n_prompt is the attention of
        generated token t over everything before it, recorded during generation. None for a plain trace.
    """

    kind: ClassVar[str] = "attention"
    tokens: list[str]
    weights: np.ndarray
    kv_head: np.ndarray
    causal: bool
    meta: dict[str, Any] = field(default_factory=dict)
    q: np.ndarray | None = None
    k: np.ndarray | None = None
    v: np.ndarray | None = None
    truncated: bool = False
    n_prompt: int | None = None

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]

    def check(self) -> AttentionTrace:
        w = self.weights
        self._require(
            w.ndim == 4 and w.shape[2] == w.shape[3], f"weights must be (layer, head, query, key), got {w.shape}"
        )
        self._require(w.shape[2] == len(self.tokens), f"{len(self.tokens)} tokens but {w.shape[2]} positions")
        self._require(self.kv_head.shape == (w.shape[1],), "kv_head must have one entry per query head")
        self._require(int(self.kv_head.min(initial=0)) >= 0, "kv_head entries must be non-negative")
        if self.n_prompt is not None:
            self._require(self.causal and 0 < self.n_prompt <= len(self.tokens), "n_prompt needs a causal trace")
        self._require(bool(np.isfinite(w).all()), "weights contain NaN or inf")
        self._require(rows_sum_to_one(w), "attention rows must sum to 1")
        if self.causal:
            self._require(float(np.triu(w, k=1).max(initial=0.0)) < 1e-6, "causal trace attends to future tokens")
        for name in ("q", "k", "v"):
            x = getattr(self, name)
            if x is not None:
                self._require(x.shape[:3] == w.shape[:3], f"{name} must be (layer, head, pos, head_dim)")
        return self
