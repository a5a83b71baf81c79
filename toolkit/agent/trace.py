"""AgentTrace: ReAct episodes on the bundled questions, with and without tools (made by ``agent.evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.reasoning.maths import wilson
from toolkit.trace import Trace, register

STEP_KINDS = ("question", "thought", "action", "error", "observation", "answer", "gave_up")


@register
@dataclass(frozen=True)
class AgentTrace(Trace):
    """questions: [{"id", "kind", "question", "answer"}] (question). conditions: "tools", "no_tools" (condition).
    episodes: {condition: [{"steps": [{"kind", "text", ...}], "final", "correct", "calls", "parse_failures"}]}.
    correct: (condition, question) bool. system: the system message of each condition.
    """

    kind: ClassVar[str] = "agent"
    questions: list[dict]
    conditions: list[str]
    episodes: dict[str, list[dict]]
    correct: np.ndarray
    system: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> AgentTrace:
        n = len(self.questions)
        self._require(self.correct.shape == (len(self.conditions), n), "correct must be (condition, question)")
        for c, cond in enumerate(self.conditions):
            eps = self.episodes.get(cond, [])
            self._require(len(eps) == n, f"{cond}: one episode per question")
            self._require([bool(e["correct"]) for e in eps] == self.correct[c].tolist(), f"{cond}: correct differs")
            for e in eps:
                kinds = [s["kind"] for s in e["steps"]]
                self._require(kinds[:1] == ["question"], "an episode starts with its question")
                self._require(set(kinds) <= set(STEP_KINDS), f"unknown step kind in {kinds}")
        return self

    def accuracy(self, condition: str, kind: str | None = None) -> tuple[float, float, float, int, int]:
        """(accuracy, CI low, CI high, right, total) of one condition over all questions or one kind."""
        row = self.correct[self.conditions.index(condition)]
        if kind is not None:
            row = row[[q["kind"] == kind for q in self.questions]]
        k, n = int(row.sum()), int(row.size)
        lo, hi = wilson(k, n)
        return (k / n if n else float("nan")), lo, hi, k, n

    def kinds(self) -> list[str]:
        return list(dict.fromkeys(q["kind"] for q in self.questions))

    def calls(self, condition: str = "tools") -> tuple[int, int]:
        """(tool calls made, calls that did not parse) over every episode of a condition."""
        eps = self.episodes[condition]
        return sum(e["calls"] for e in eps), sum(e["parse_failures"] for e in eps)
