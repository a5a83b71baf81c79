"""Tokens and embeddings maths on plain arrays (slides "Embeddings" and "Tokenization: the real input to LLMs").

Cosine: cos(u, v) = u.v / (|u| |v|). PCA: centre, SVD, project onto the top-k right singular vectors.
Word index: which whitespace-separated word each token's character span falls in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, n) cosine similarities."""
    u = x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)  # (n, d) unit rows
    return u @ u.T


def pca(x: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Project (n, d) onto its top-k principal axes: coords (n, k), explained variance ratio (k,)."""
    xc = x - x.mean(0, keepdims=True)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)  # vt: (min(n, d), d)
    k_eff = min(k, vt.shape[0])
    coords = np.zeros((x.shape[0], k))
    coords[:, :k_eff] = xc @ vt[:k_eff].T  # (n, k_eff)
    var = s**2
    ratio = np.zeros(k)
    ratio[:k_eff] = var[:k_eff] / max(var.sum(), 1e-12)
    return coords, ratio


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character span [start, end) of each whitespace-separated word of ``text``."""
    spans, pos = [], 0
    for w in text.split():
        pos = text.index(w, pos)
        spans.append((pos, pos + len(w)))
        pos += len(w)
    return spans


def word_index(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """For each token's character span, the first word it overlaps (-1 for none: a lone space)."""
    out = []
    for a, b in offsets:
        hit = [i for i, (s, e) in enumerate(spans) if a < e and b > s]
        out.append(hit[0] if hit else -1)
    return out


def tokens_per_word(view: dict[str, Any], n_words: int) -> list[int]:
    """How many tokens of one tokenizer's view fall in each word."""
    counts = [0] * n_words
    for w in view["word"]:
        if w >= 0:
            counts[w] += 1
    return counts
