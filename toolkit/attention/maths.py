"""The attention maths the slides show, on plain arrays and traces (no model).

Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V,    M = 0 where allowed, −∞ above the diagonal (causal)
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from toolkit.attention.trace import AttentionTrace


def causal_mask(n: int, window: int | None = None) -> np.ndarray:
    """(query, key) additive mask: 0 on and below the diagonal, −∞ above (a token never sees the future). With a
    sliding window w (Mistral), query q also sees only keys k > q − w: itself and the w − 1 before it."""
    q, k = np.arange(n)[:, None], np.arange(n)[None, :]
    allowed = k <= q if window is None else (k <= q) & (k > q - window)
    return np.where(allowed, 0.0, -np.inf)


def attention_steps(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, scaling: float | None = None, window: int | None = None
) -> dict[str, np.ndarray]:
    """The deck's "Self-Attention Computation" for one head, step by step, in float64.

    q, k, v: (pos, head_dim). Returns scores = QKᵀ, scaled = scores·scaling (1/√d_k), masked = scaled + M,
    weights = softmax(masked) row-wise, output = weights·V (pos, head_dim).
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    scaling = 1.0 / math.sqrt(q.shape[-1]) if scaling is None else scaling
    scores = q @ k.T  # (query, key)
    scaled = scores * scaling
    masked = scaled + causal_mask(len(q), window) if causal else scaled
    shifted = masked - masked.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    weights = e / e.sum(axis=-1, keepdims=True)
    return {"scores": scores, "scaled": scaled, "masked": masked, "weights": weights, "output": weights @ v}


def recompute(trace: AttentionTrace) -> np.ndarray:
    """(layer, head, query, key) softmax(QKᵀ·scaling + M) from the captured Q and K (needs q and k)."""
    if trace.q is None or trace.k is None:
        raise ValueError("this trace has no Q and K (capture with with_qkv=True)")
    scaling = trace.meta.get("scaling") or trace.q.shape[-1] ** -0.5
    scores = np.einsum("lhqd,lhkd->lhqk", trace.q.astype(np.float64), trace.k.astype(np.float64)) * scaling
    if trace.causal:
        scores = scores + causal_mask(scores.shape[-1], trace.meta.get("sliding_window"))
    scores -= scores.max(-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(-1, keepdims=True)


def head_stats(trace: AttentionTrace) -> dict[str, np.ndarray]:
    """Per (layer, head): mean entropy of a row (bits), and the mean share of attention a token gives to the
    previous token, to the first token (the "attention sink") and to itself. Row 0 is left out of the shares
    (for a causal model it can only attend to itself)."""
    w = trace.weights  # (layer, head, query, key), float32: no copy of a trace that can hold 280 MB
    n = w.shape[-1]
    entropy = np.empty(w.shape[:2])
    for layer in range(w.shape[0]):  # one layer at a time keeps the temporaries to ~10 MB
        wl = w[layer].astype(np.float64)  # (head, query, key)
        entropy[layer] = -(wl * np.log2(np.where(wl > 0, wl, 1.0))).sum(-1).mean(-1)
    rows = np.arange(1, n)
    if n < 2:
        zero = np.zeros(w.shape[:2])
        return {"entropy": entropy, "previous": zero, "first": zero, "self": w[..., 0, 0].astype(np.float64)}
    return {
        "entropy": entropy,
        "previous": w[..., rows, rows - 1].mean(-1),
        "first": w[..., rows, 0].mean(-1),
        "self": w[..., rows, rows].mean(-1),
    }


def _norm(token: str) -> str:
    return re.sub(r"^(##|Ġ|▁)", "", token.strip()).lower()


def find_token(trace: AttentionTrace, word: str, after: int = -1) -> int:
    """Position of the first token after position ``after`` that spells ``word`` (case and spaces ignored)."""
    target = _norm(word)
    for i, tok in enumerate(trace.tokens):
        if i > after and _norm(tok) == target:
            return i
    raise ValueError(f"no token {word!r} in: {' | '.join(trace.tokens[:60])}")


def pair_attention(trace: AttentionTrace, query: str, keys: list[str]) -> dict[str, Any]:
    """How much the token ``query`` attends to each word in ``keys``, per (layer, head), and the top heads.

    Returns {"query": position, "keys": [positions], "weights": (key, layer, head), "top": {key word: [(layer,
    head, weight), ...] best first}}. The deck's example: query "it", keys ["animal", "tired"].
    """
    qi = find_token(trace, query)
    kis = [find_token(trace, k) for k in keys]
    w = trace.weights[:, :, qi, kis].transpose(2, 0, 1)  # (key, layer, head)
    top = {}
    for word, wk in zip(keys, w):
        order = np.argsort(wk, axis=None)[::-1][:5]
        top[word] = [(int(i // wk.shape[1]), int(i % wk.shape[1]), float(wk.flat[i])) for i in order]
    return {"query": qi, "keys": kis, "weights": w, "top": top}


def total_variation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How far two attention patterns over the same tokens are, per layer and head: the total variation distance
    ½ Σ_k |A[q, k] − B[q, k]| of each query's row (0: the same weights, 1: no key in common), averaged over the
    queries. a, b: (layer, head, query, key) -> (layer, head). Side-by-side views of two models."""
    if a.shape != b.shape:
        raise ValueError(f"the two patterns differ in shape: {a.shape} vs {b.shape}")
    return 0.5 * np.abs(a.astype(np.float64) - b.astype(np.float64)).sum(-1).mean(-1)  # (L, H, Q, K) -> (L, H)
