"""Context traces: one prompt's token budget (``BudgetTrace``) and zero-shot vs few-shot accuracy
(``FewShotTrace``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.reasoning.maths import wilson
from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class BudgetTrace(Trace):
    """parts: [{"name", "kind", "tokens", "kept", "order"}] (part), tokens in the real tokenizer: a kept part's count
    is from the final prompt, a dropped part's from the prompt with every part in; order: when it was dropped
    (0 first, -1 kept). template: tokens of the chat template itself in the final prompt; total: the final
    prompt's tokens (kept parts + template); window, reserve: the model's budget and the room for the answer.
    """

    kind: ClassVar[str] = "context_budget"
    parts: list[dict]
    template: int
    total: int
    window: int
    reserve: int
    fits: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> BudgetTrace:
        kept = sum(p["tokens"] for p in self.parts if p["kept"])
        self._require(kept + self.template == self.total, "kept parts + template must equal the prompt's tokens")
        self._require(self.fits == (self.total + self.reserve <= self.window), "fits: total + reserve <= window")
        self._require(all(p["tokens"] >= 0 for p in self.parts), "token counts are not negative")
        orders = sorted(p["order"] for p in self.parts if not p["kept"])
        self._require(orders == list(range(len(orders))), "dropped parts are numbered 0..k-1 in dropping order")
        return self

    @property
    def budget(self) -> int:
        return self.window - self.reserve

    def dropped(self) -> list[dict]:
        return sorted((p for p in self.parts if not p["kept"]), key=lambda p: p["order"])


@register
@dataclass(frozen=True)
class FewShotTrace(Trace):
    """shots: (shot,) examples in the prompt. texts, labels: the test reviews (review). margin: (shot, review)
    log p(" positive") - log p(" negative") of the answer's first token; correct: (shot, review) bool."""

    kind: ClassVar[str] = "context_fewshot"
    shots: list[int]
    texts: list[str]
    labels: list[str]
    margin: np.ndarray
    correct: np.ndarray
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> FewShotTrace:
        shape = (len(self.shots), len(self.texts))
        self._require(self.margin.shape == shape and self.correct.shape == shape, "arrays must be (shot, review)")
        self._require(len(self.labels) == len(self.texts), "one label per review")
        positive = np.array([label == "positive" for label in self.labels])
        self._require(bool((self.correct == ((self.margin > 0) == positive[None, :])).all()), "correct disagrees")
        return self

    def accuracy(self, k: int) -> tuple[float, float, float, int, int]:
        row = self.correct[self.shots.index(k)]
        right, n = int(row.sum()), int(row.size)
        lo, hi = wilson(right, n)
        return right / n, lo, hi, right, n

    def positive_rate(self, k: int) -> float:
        """How often the model says "positive" (0.5 when unbiased on this balanced set)."""
        return float((self.margin[self.shots.index(k)] > 0).mean())
