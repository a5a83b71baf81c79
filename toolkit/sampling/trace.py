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
