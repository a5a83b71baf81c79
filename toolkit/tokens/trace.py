"""Tokens and embeddings traces (made by ``tokens.compare``, ``tokens.embed`` and ``tokens.analogy``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class TokenizationTrace(Trace):
    """One text through several tokenizers, side by side.

    views: per tokenizer {"model", "ids", "raw", "pieces", "partial" (byte fallback), "unknown", "word"
    (index into words, -1 for none), "truncated"}, each list one entry per token.
    """

    kind: ClassVar[str] = "tokenization"
    text: str
    words: list[str]
    views: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> TokenizationTrace:
        for v in self.views:
            n = len(v["ids"])
            for key in ("raw", "pieces", "partial", "unknown", "word"):
                self._require(len(v[key]) == n, f"{v['model']}: {key} has {len(v[key])} entries for {n} tokens")
            self._require(all(-1 <= w < len(self.words) for w in v["word"]), "word index out of range")
        return self


@register
@dataclass(frozen=True)
class EmbeddingTrace(Trace):
    """Embeddings of a few words. vectors: (word, hidden); similarity: (word, word) cosine; coords: (word, 3)
    PCA coordinates; explained: (3,) variance ratio of each axis. source: "input" or "sentence"."""

    kind: ClassVar[str] = "embedding"
    words: list[str]
    source: str
    vectors: np.ndarray
    similarity: np.ndarray
    coords: np.ndarray
    explained: np.ndarray
    n_tokens: list[int]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> EmbeddingTrace:
        n = len(self.words)
        self._require(self.similarity.shape == (n, n), "similarity must be (word, word)")
        self._require(self.coords.shape == (n, 3) and self.vectors.shape[0] == n, "coords (word, 3), vectors (word, d)")
        self._require(bool(np.allclose(np.diag(self.similarity), 1.0, atol=1e-3)), "cos(u, u) must be 1")
        self._require(bool(np.allclose(self.similarity, self.similarity.T, atol=1e-5)), "similarity must be symmetric")
        self._require(float(self.explained.sum()) <= 1.0 + 1e-4, "explained variance ratios exceed 1")
        return self


@register
@dataclass(frozen=True)
class AnalogyTrace(Trace):
    """a - b + c ranked against the vocabulary. ids, scores: (k,) nearest rows by cosine, inputs kept (flagged in
    is_input). expected_rank: 1-based rank of the expected word among all rows (-1 when it is not one token)."""

    kind: ClassVar[str] = "analogy"
    a: str
    b: str
    c: str
    expected: str
    neighbours: list[str]
    ids: np.ndarray
    scores: np.ndarray
    is_input: list[bool]
    expected_rank: int
    expected_rank_without_inputs: int
    expected_score: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> AnalogyTrace:
        k = len(self.neighbours)
        self._require(self.ids.shape == (k,) and self.scores.shape == (k,) and len(self.is_input) == k, "k mismatch")
        self._require(bool(np.all(np.diff(self.scores) <= 1e-6)), "neighbours must be sorted by similarity")
        return self
