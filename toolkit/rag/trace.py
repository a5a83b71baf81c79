"""RagTrace: one question answered with and without retrieved passages (made by ``rag.capture``).

Dimensions: cand (passages the index retrieved, best first), k (passages put in the prompt), seg (the prompt's
token segments: template, system, passage 1..k, question)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class RagTrace(Trace):
    """cand_ids, cand_scores (cand,): what the index returned, best first; rerank_scores (cand,) the second signal
    (NaN without reranking); order (cand,) the candidates' positions after reranking. passage_ids (k,): the
    passages the prompt holds (the top of the reranked list, or unrelated ones when ``wrong``). segments /
    segment_tokens (seg,): where the prompt's tokens went; answer_*: the model's greedy answers."""

    kind: ClassVar[str] = "rag"
    question: str
    corpus: str
    index: str
    rerank: str
    wrong: bool
    cand_ids: np.ndarray
    cand_scores: np.ndarray
    rerank_scores: np.ndarray
    order: np.ndarray
    titles: dict[str, str]
    passage_ids: np.ndarray
    passage_texts: list[str]
    prompt_with: str
    prompt_without: str
    answer_with: str
    answer_without: str
    segments: list[str]
    segment_tokens: np.ndarray
    answer_tokens: list[int]
    budget: int
    context_window: int
    dropped: int
    seconds: dict[str, float]
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> RagTrace:
        c = len(self.cand_ids)
        self._require(self.cand_scores.shape == self.rerank_scores.shape == self.order.shape == (c,), "(cand,)")
        self._require(sorted(self.order.tolist()) == list(range(c)), "order must be a permutation of the candidates")
        self._require(bool(np.all(np.diff(self.cand_scores) <= 1e-6)), "candidates are retrieved best first")
        self._require(len(self.passage_ids) == len(self.passage_texts), "one text per passage in the prompt")
        if not self.wrong:
            top = self.cand_ids[self.order][: len(self.passage_ids)]
            self._require(np.array_equal(top, self.passage_ids), "the prompt holds the top of the reranked list")
        for i in self.passage_ids.tolist() + self.cand_ids.tolist():
            self._require(str(i) in self.titles, f"no title for passage {i}")
        self._require(len(self.segments) == len(self.segment_tokens), "one token count per segment")
        self._require(int(self.segment_tokens.sum()) <= self.budget, "the prompt exceeds its token budget")
        self._require(len(self.answer_tokens) == 2, "answer_tokens: [with passages, without]")
        return self

    @property
    def prompt_tokens(self) -> int:
        return int(self.segment_tokens.sum())

    def moved(self) -> list[tuple[int, int, int]]:
        """(passage id, rank before, rank after) of every candidate, ranks from 1."""
        after = {int(p): r for r, p in enumerate(self.order.tolist())}
        return [(int(i), b + 1, after[b] + 1) for b, i in enumerate(self.cand_ids.tolist())]
