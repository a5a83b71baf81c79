"""Sparse attention masks and perplexity on plain arrays (slide "Sparse attention and attention sinks").

A mask is (query, key) bool: True where the query may attend. Every pattern here is causal (a decoder):
  sliding       the last ``window`` keys, the query itself included (Longformer's local attention)
  dilated       ``window`` keys spread ``dilation`` apart: distances 0, d, 2d, ... (Longformer's dilated window)
  global+local  a sliding window, the first ``sinks`` tokens seen by every query (global tokens), and ``random``
                random earlier keys per query (BigBird)
and ``sinks`` > 0 adds the first tokens to sliding or dilated too: StreamingLLM's attention sinks. In a decoder a
global token at the start is the same thing as a sink. The additive form of a mask is 0 where allowed and the
dtype's most negative number elsewhere, which is what transformers' eager attention adds to QKᵀ/√d.
"""

from __future__ import annotations

import math

import numpy as np

PATTERNS = ("full", "sliding", "dilated", "global+local")


def mask(
    n: int,
    pattern: str = "sliding",
    window: int = 64,
    dilation: int = 2,
    sinks: int = 0,
    random: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """(query, key) bool mask of ``n`` tokens for one of PATTERNS (see the module docstring)."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    if window < 1 or dilation < 1 or sinks < 0 or random < 0:
        raise ValueError("window and dilation must be >= 1, sinks and random >= 0")
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    dist = i - j  # (query, key): how far back the key is
    ok = dist >= 0
    if pattern == "sliding" or pattern == "global+local":
        ok = ok & (dist < window)
    elif pattern == "dilated":
        ok = ok & (dist % dilation == 0) & (dist < window * dilation)
    if pattern != "full":
        ok = ok | ((j < sinks) & (dist >= 0))
    if pattern == "global+local" and random:
        rng = np.random.default_rng(seed)
        for q in range(window, n):  # keys older than the window: pick `random` of them
            far = np.flatnonzero(~ok[q, : q + 1])
            ok[q, rng.choice(far, size=min(random, len(far)), replace=False)] = True
    return ok


def additive(allowed: np.ndarray, dtype=np.float32) -> np.ndarray:
    """0 where allowed, the dtype's most negative finite number elsewhere (transformers' eager mask values)."""
    return np.where(allowed, 0, np.finfo(dtype).min).astype(dtype)


def density(allowed: np.ndarray) -> float:
    """Share of the causal (query, key) pairs the mask keeps."""
    n = allowed.shape[0]
    return float(allowed.sum() / (n * (n + 1) / 2))


def oldest_visible(allowed: np.ndarray, skip: int = 0) -> np.ndarray:
    """(query,) the earliest key each query sees at or after position ``skip`` (past the sinks), -1 if none."""
    part = allowed[:, skip:]
    first = part.argmax(1) + skip
    return np.where(part.any(1), first, -1)


def since(window: int, n: int) -> int:
    """First query that attention shares are averaged from: the window's length (the first query whose window has
    slid past token 0), at most half the text."""
    return min(window, n // 2)


def nll(log_probs: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(pos - 1,) negative log-likelihood of each next token: log_probs (pos, vocab) of ids (pos,)."""
    return -log_probs[np.arange(len(ids) - 1), ids[1:]]


def perplexity(losses: np.ndarray) -> float:
    """exp(mean negative log-likelihood)."""
    return float(math.exp(float(np.mean(losses))))


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average over ``width`` positions (shorter at the start), for per-position loss curves."""
    c = np.cumsum(np.insert(np.asarray(x, dtype=np.float64), 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - width, 0)
    return (c[idx] - c[lo]) / (idx - lo)
