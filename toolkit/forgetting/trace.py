"""ForgettingTrace: task loss and general perplexity at every step of several fine-tuning methods, and what the
model says to general prompts before and after (made by ``forgetting.train`` / ``forgetting.record``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class ForgettingTrace(Trace):
    """methods: run names (method). task_loss, general_ppl: (method, step) with step 0 before any update and step s
    after s updates: the held-out task's answer loss and the perplexity of held-out general text. train_loss:
    (method, step - 1) the loss of each update (task loss plus any penalty). prompts: general prompts; before:
    the base model's answers; after: {method: answers}. configs: {method: config dict}; seconds: {method: s}.
    """

    kind: ClassVar[str] = "forgetting"
    methods: list[str]
    task_loss: np.ndarray
    general_ppl: np.ndarray
    train_loss: np.ndarray
    prompts: list[str]
    before: list[str]
    after: dict[str, list[str]]
    configs: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> ForgettingTrace:
        m = len(self.methods)
        self._require(self.task_loss.ndim == 2 and self.task_loss.shape[0] == m, "task_loss must be (method, step)")
        self._require(self.general_ppl.shape == self.task_loss.shape, "general_ppl must be (method, step)")
        self._require(self.train_loss.shape == (m, self.task_loss.shape[1] - 1), "train_loss must be (method, step-1)")
        for a in (self.task_loss, self.general_ppl, self.train_loss):
            self._require(bool(np.isfinite(a).all()), "curves must be finite")
        self._require(bool((self.general_ppl >= 1).all()), "a perplexity is at least 1")
        # every method starts from the same model: step 0 agrees across runs
        self._require(bool(np.allclose(self.task_loss[:, 0], self.task_loss[0, 0], rtol=1e-3)), "step 0 differs")
        self._require(bool(np.allclose(self.general_ppl[:, 0], self.general_ppl[0, 0], rtol=1e-3)), "step 0 differs")
        self._require(len(self.before) == len(self.prompts), "one answer per prompt before")
        for method in self.methods:
            self._require(len(self.after.get(method, [])) == len(self.prompts), f"{method}: one answer per prompt")
        return self

    @property
    def steps(self) -> int:
        return self.task_loss.shape[1] - 1

    def row(self, method: str) -> int:
        return self.methods.index(method)

    def summary(self, method: str) -> dict:
        """Task loss and general perplexity before and after, and the perplexity's rise in %."""
        i = self.row(method)
        ppl0, ppl1 = float(self.general_ppl[i, 0]), float(self.general_ppl[i, -1])
        return {
            "task_before": float(self.task_loss[i, 0]),
            "task_after": float(self.task_loss[i, -1]),
            "ppl_before": ppl0,
            "ppl_after": ppl1,
            "ppl_rise_pct": 100 * (ppl1 / ppl0 - 1),
        }
