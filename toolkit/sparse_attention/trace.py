"""Sparse-attention traces (slide "Sparse attention and attention sinks"): one masked run of a text
(``SparseTrace``, made by ``sparse_attention.capture``) and the recorded window sweep (``SparseCurveTrace``, made by
``sparse_attention.record``; committed as assets/sparse_attention/curves.npz)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.sparse_attention.maths import perplexity
from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class SparseTrace(Trace):
    """One text scored under one mask. ids: (pos,) tokens; nll: (pos - 1,) loss of each next token; first, oldest:
    (layer,) attention on token 0 and on the oldest key in view past the sinks, averaged over heads and over the
    queries from ``since(window)`` on. density: share of causal (query, key) pairs kept. config: SparseConfig."""

    kind: ClassVar[str] = "sparse_attention"
    ids: np.ndarray
    nll: np.ndarray
    first: np.ndarray
    oldest: np.ndarray
    density: float
    config: dict[str, Any]
    source: str
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ppl(self) -> float:
        return perplexity(self.nll)

    def check(self) -> SparseTrace:
        self._require(self.nll.shape == (len(self.ids) - 1,), "one loss per next token")
        self._require(self.first.shape == self.oldest.shape and self.first.ndim == 1, "first, oldest: (layer,)")
        self._require(bool(np.isfinite(self.nll).all() and (self.nll >= 0).all()), "losses must be finite, >= 0")
        self._require(0 < self.density <= 1, "density must be in (0, 1]")
        shares = np.concatenate([self.first, self.oldest])
        self._require(bool(((shares >= 0) & (shares <= 1 + 1e-5)).all()), "attention shares must be in [0, 1]")
        return self


@register
@dataclass(frozen=True)
class SparseCurveTrace(Trace):
    """The window sweep on one text. windows: (window,); sinks: (sink,) sink counts. Per (sink, window): nll
    (sink, window, pos - 1); first, oldest (sink, window, layer) as in SparseTrace. The full model: full_nll
    (pos - 1,), full_first (layer, query) attention on token 0 per query, averaged over heads."""

    kind: ClassVar[str] = "sparse_attention_curves"
    text: str
    ids: np.ndarray
    windows: np.ndarray
    sinks: np.ndarray
    nll: np.ndarray
    first: np.ndarray
    oldest: np.ndarray
    full_nll: np.ndarray
    full_first: np.ndarray
    source: str
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ppl(self) -> np.ndarray:
        """(sink, window) perplexity."""
        return np.exp(self.nll.astype(np.float64).mean(-1))

    @property
    def full_ppl(self) -> float:
        return perplexity(self.full_nll)

    def at(self, window: int) -> int:
        """Index of the recorded window nearest to ``window`` (on a log scale)."""
        return int(np.argmin(np.abs(np.log(self.windows) - np.log(max(int(window), 1)))))

    def check(self) -> SparseCurveTrace:
        n, s, w = len(self.ids), len(self.sinks), len(self.windows)
        self._require(self.nll.shape == (s, w, n - 1), "nll must be (sink, window, pos - 1)")
        self._require(
            self.first.shape == self.oldest.shape == (s, w, self.full_first.shape[0]), "(sink, window, layer)"
        )
        self._require(self.full_nll.shape == (n - 1,) and self.full_first.shape[1] == n, "full model: per position")
        self._require(bool(np.all(np.diff(self.windows) > 0)), "windows must increase")
        for a in range(s):
            for b in range(w):
                if self.windows[b] >= n:
                    self._require(np.array_equal(self.nll[a, b], self.full_nll), "a text-long window is the full model")
        return self
