"""Next-token sampling traces (made by ``sampling.next_token``, ``sampling.decode``,
``sampling.greedy_and_sampled``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class NextTokenTrace(Trace):
    """The next-token distribution through the sampling filters. probs: (stage, shown) renormalised probability
    of the shown tokens (the most likely ones, ids/tokens) after each stage; survivors: (stage,) tokens left."""

    kind: ClassVar[str] = "next_token"
    prompt: str
    stages: list[str]
    ids: np.ndarray
    tokens: list[str]
    probs: np.ndarray
    survivors: np.ndarray
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> NextTokenTrace:
        self._require(self.probs.shape == (len(self.stages), len(self.tokens)), "probs must be (stage, shown)")
        self._require(bool(np.all(self.probs.sum(-1) <= 1 + 1e-4)), "shown probabilities exceed 1")
        self._require(bool(np.all(np.diff(self.survivors) <= 0)), "a filter cannot add tokens back")
        return self


@register
@dataclass(frozen=True)
class DecodeTrace(Trace):
    """A greedy or seeded sampled continuation. ids: (step,) chosen tokens; step_ids, step_probs: (step, shown)
    the most likely tokens of the distribution each step drew from; chosen_prob: (step,) p of the chosen one."""

    kind: ClassVar[str] = "decode"
    prompt: str
    mode: str
    seed: int | None
    ids: np.ndarray
    tokens: list[str]
    step_ids: np.ndarray
    step_tokens: list[list[str]]
    step_probs: np.ndarray
    chosen_prob: np.ndarray
    survivors: np.ndarray
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> DecodeTrace:
        n = len(self.tokens)
        self._require(self.ids.shape == (n,) and self.chosen_prob.shape == (n,), "one chosen token per step")
        self._require(self.step_probs.shape[0] == n and self.step_ids.shape == self.step_probs.shape, "step arrays")
        self._require(self.mode in ("greedy", "sample"), f"unknown mode {self.mode!r}")
        self._require(bool(np.all(self.chosen_prob > 0)), "a chosen token must have probability > 0")
        return self


@register
@dataclass(frozen=True)
class NextTokenCompareTrace(Trace):
    """Two models' next-token distributions on the same prompt (compare mode), at T = 1 with no filter.

    models: (A, B) names; ids/tokens: the shown tokens (the most likely of either model, by their larger
    probability); probs: (2, shown) each model's probability of them; kl: (KL(A‖B), KL(B‖A)) in nats over the whole
    vocabulary; total_variation: ½ Σ |p_A − p_B| over the whole vocabulary; top: each model's most likely token."""

    kind: ClassVar[str] = "next_token_compare"
    prompt: str
    models: list[str]
    ids: np.ndarray
    tokens: list[str]
    probs: np.ndarray
    kl: list[float]
    total_variation: float
    top: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> NextTokenCompareTrace:
        self._require(len(self.models) == 2 and len(self.top) == 2, "two models")
        self._require(self.probs.shape == (2, len(self.tokens)) == (2, len(self.ids)), "probs must be (2, shown)")
        self._require(bool(np.all(self.probs.sum(-1) <= 1 + 1e-4)), "shown probabilities exceed 1")
        self._require(all(k >= -1e-6 for k in self.kl), "a KL divergence is never negative")
        self._require(-1e-6 <= self.total_variation <= 1 + 1e-6, "total variation lies in [0, 1]")
        return self
