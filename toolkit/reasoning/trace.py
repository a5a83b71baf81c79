"""Reasoning traces: direct vs chain of thought vs self-consistency over the bundled problems (``ReasoningTrace``)
and one tree-of-thought search (``TreeTrace``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.reasoning.maths import wilson
from toolkit.trace import Trace, register

METHODS = ("direct", "cot", "self_consistency")
METHOD_TITLES = {
    "direct": "direct answer",
    "cot": "chain of thought",
    "self_consistency": "self-consistency",
}


@register
@dataclass(frozen=True)
class ReasoningTrace(Trace):
    """Every method's completions on every problem, the answers read from them and whether each is right.

    problems: [{"id", "kind", "question", "answer"}] (problem). methods: names (method).
    completions: {method: [[text per sample] per problem]}: direct and cot 1 sample, self_consistency n.
    finals: {method: [[the text after "The answer is" per sample] per problem]}.
    predicted: (method, problem) float, NaN where no answer was found; correct: (method, problem) bool.
    config: the ReasoningConfig that ran; seconds: {method: wall seconds}.
    """

    kind: ClassVar[str] = "reasoning"
    problems: list[dict]
    methods: list[str]
    completions: dict[str, list[list[str]]]
    finals: dict[str, list[list[str]]]
    predicted: np.ndarray
    correct: np.ndarray
    config: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> ReasoningTrace:
        m, n = len(self.methods), len(self.problems)
        self._require(self.predicted.shape == (m, n), "predicted must be (method, problem)")
        self._require(self.correct.shape == (m, n) and self.correct.dtype == bool, "correct must be (method, problem)")
        truth = np.array([float(p["answer"]) for p in self.problems])
        self._require(bool((self.correct == (self.predicted == truth[None, :])).all()), "correct disagrees")
        for method in self.methods:
            self._require(len(self.completions.get(method, [])) == n, f"{method}: one entry per problem")
            self._require(len(self.finals.get(method, [])) == n, f"{method}: one final per problem")
        return self

    @property
    def n(self) -> int:
        return len(self.problems)

    def accuracy(self, method: str, kind: str | None = None) -> tuple[float, float, float, int, int]:
        """(accuracy, CI low, CI high, right, total) of one method, over all problems or one kind."""
        row = self.correct[self.methods.index(method)]
        if kind is not None:
            row = row[[p["kind"] == kind for p in self.problems]]
        k, n = int(row.sum()), int(row.size)
        lo, hi = wilson(k, n)
        return (k / n if n else math.nan), lo, hi, k, n


@register
@dataclass(frozen=True)
class TreeTrace(Trace):
    """A tree-of-thought search: every proposed step, its checker score, and which were kept.

    nodes: [{"id", "parent" (-1 for the root), "depth", "text", "score", "verdict", "kept", "chosen",
    "answer"}] (node); the root is the question. beam, proposals: the search's width; answer: the truth;
    final: the answer of the chosen path (None when the model gave no number).
    """

    kind: ClassVar[str] = "reasoning_tree"
    question: str
    answer: float
    nodes: list[dict]
    beam: int
    proposals: int
    final: float | None = None  # the answer the chosen path gives
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> TreeTrace:
        ids = [n["id"] for n in self.nodes]
        self._require(ids == list(range(len(ids))), "node ids must be 0..n-1 in order")
        self._require(bool(self.nodes) and self.nodes[0]["parent"] == -1, "node 0 is the root")
        for node in self.nodes[1:]:
            self._require(0 <= node["parent"] < node["id"], "a node's parent comes before it")
            self._require(node["depth"] == self.nodes[node["parent"]]["depth"] + 1, "depth = parent's depth + 1")
        chosen = [n for n in self.nodes if n["chosen"]]
        for node in chosen[1:]:
            self._require(self.nodes[node["parent"]]["chosen"], "the chosen nodes form one path from the root")
        return self

    def path(self) -> list[dict]:
        """The chosen path, root first."""
        return [n for n in self.nodes if n["chosen"]]
