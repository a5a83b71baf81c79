"""Tokens and embeddings maths on plain arrays (slides "Embeddings" and "Tokenization: the real input to LLMs").

Cosine: cos(u, v) = u.v / (|u| |v|). PCA: centre, SVD, project onto the top-k right singular vectors.
Word index: which whitespace-separated word each token's character span falls in.
Byte labels: a byte-fallback piece written as its UTF-8 bytes (GPT-2's byte alphabet, or SentencePiece's <0xF0>).
"""

from __future__ import annotations

import re
import unicodedata
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


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: the printable character that stands for each of the 256 bytes."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars)}


BYTE_OF = _byte_alphabet()
_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def byte_label(raw: str) -> str:
    """A byte piece as its bytes: 'ĠðŁ' (GPT-2 alphabet) -> '␣<F0 9F>', '<0xF0>' (SentencePiece) -> '<F0>';
    '' when ``raw`` is neither."""
    if _SP_BYTE.fullmatch(raw or "") or (raw and _SP_BYTE.sub("", raw) == ""):
        data = [int(h, 16) for h in _SP_BYTE.findall(raw)]
    elif raw and all(ch in BYTE_OF for ch in raw):
        data = [BYTE_OF[ch] for ch in raw]
    else:
        return ""
    space = "␣" if data and data[0] == 0x20 else ""
    rest = data[1:] if space else data
    return space + ("<" + " ".join(f"{b:02X}" for b in rest) + ">" if rest else "")


def cells(text: str) -> int:
    """Monospace cells ``text`` takes: wide characters (CJK, emoji) take two, combining marks none."""
    n = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        n += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return n
