"""KvCacheTrace: greedy generation with and without the KV cache, timed per token (made by ``kv_cache.capture``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class KvCacheTrace(Trace):
    """Greedy generation with and without the KV cache. Per step (step,): lengths (tokens cached after the
    step's forward), seconds_cached / seconds_uncached (wall time of that token; step 0 is the prefill of the
    prompt in both), measured_bytes (keys + values in the real cache), formula_bytes (2 x layers x kv_heads x
    head_dim x length x bytes). dims: layers, kv_heads, heads, head_dim."""

    kind: ClassVar[str] = "kv_cache"
    prompt: str
    tokens: list[str]
    same_tokens: bool
    n_prompt: int
    lengths: np.ndarray
    seconds_cached: np.ndarray
    seconds_uncached: np.ndarray
    measured_bytes: np.ndarray
    formula_bytes: np.ndarray
    dims: dict[str, int]
    bytes_per_number: int
    max_positions: int
    meta: dict[str, Any] = field(default_factory=dict)
    cpu_cached: np.ndarray | None = None  # (step,) CPU seconds of this process, robust to a busy machine
    cpu_uncached: np.ndarray | None = None

    @property
    def bytes_per_token(self) -> int:
        """Cache bytes per token: the formula is linear in the length."""
        return int(self.formula_bytes[-1]) // int(self.lengths[-1])

    def check(self) -> KvCacheTrace:
        n = len(self.tokens)
        for name in ("lengths", "seconds_cached", "seconds_uncached", "measured_bytes", "formula_bytes"):
            self._require(getattr(self, name).shape == (n,), f"{name} must have one entry per generated token")
        self._require(bool(np.all(self.measured_bytes == self.formula_bytes)), "the cache does not match the formula")
        self._require(
            bool(np.all(self.formula_bytes == self.lengths * self.bytes_per_token)) if n else True,
            "formula_bytes must grow linearly with the length",
        )
        self._require(self.same_tokens, "greedy tokens with and without the cache differ")
        return self
