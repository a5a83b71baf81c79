"""Traces of speculative decoding and distillation (slides "Speculative decoding", "Small models and
distillation"): one decoding run step by step, a sweep over k, a distillation run, and the soft targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class SpeculativeTrace(Trace):
    """One speculative decoding run. step: one target forward pass each.

    drafted: (step, k) token ids proposed (-1 where fewer than k were); accepted: (step,) how many passed;
    appended: (step,) the target's own token after them (the correction, or a bonus when all passed); new_ids:
    (new,) the output. tokens: the output tokens as text; drafted_text: (step, k) the drafts as text ("" for -1).
    same_as_greedy: the output equals plain greedy decoding (None: not checked, or sampling).
    """

    kind: ClassVar[str] = "speculative"
    prompt: str
    draft: str
    k: int
    mode: str  # greedy | sample
    temperature: float
    drafted: np.ndarray
    accepted: np.ndarray
    appended: np.ndarray
    new_ids: np.ndarray
    tokens: list[str]
    drafted_text: list[list[str]]
    seconds: float
    draft_seconds: float
    target_seconds: float
    same_as_greedy: bool | None = None
    greedy_seconds: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> SpeculativeTrace:
        n = len(self.accepted)
        self._require(n > 0, "no steps")
        self._require(self.drafted.shape == (n, self.k), "drafted must be (step, k)")
        self._require(self.appended.shape == (n,), "one appended token per step")
        proposed = self.n_drafted
        self._require(bool(((self.accepted >= 0) & (self.accepted <= proposed)).all()), "accepted beyond the draft")
        produced = int((self.accepted + 1).sum())
        self._require(len(self.new_ids) <= produced, "more output than the steps produced")
        self._require(len(self.new_ids) > produced - int(self.accepted[-1]) - 1, "output shorter than the steps")
        self._require(len(self.tokens) == len(self.new_ids), "one text per output token")
        self._require(len(self.drafted_text) == n, "one row of draft text per step")
        self._require(self.mode in ("greedy", "sample"), f"unknown mode {self.mode!r}")
        return self

    @property
    def n_drafted(self) -> np.ndarray:
        return (self.drafted >= 0).sum(1)

    @property
    def acceptance(self) -> float:
        """Accepted draft tokens over drafted ones (0 when nothing was drafted)."""
        total = int(self.n_drafted.sum())
        return float(self.accepted.sum()) / total if total else 0.0

    @property
    def tokens_per_pass(self) -> float:
        return len(self.new_ids) / len(self.accepted)


@register
@dataclass(frozen=True)
class SweepTrace(Trace):
    """Acceptance against k for several drafts on the bundled prompts (greedy, so every run's output is checked
    against plain greedy decoding).

    drafts: names; ks: (k,); acceptance: (draft, k) accepted / drafted; tokens_per_pass: (draft, k) output tokens
    per target forward pass; seconds: (draft, k) wall time of all prompts; greedy_seconds: (draft, k) plain greedy
    decoding of the same prompts, timed right after each; same: (draft, k) every output equal to plain greedy
    decoding. new_tokens: tokens produced.
    """

    kind: ClassVar[str] = "speculative-sweep"
    drafts: list[str]
    ks: np.ndarray
    acceptance: np.ndarray
    tokens_per_pass: np.ndarray
    seconds: np.ndarray
    same: np.ndarray
    greedy_seconds: np.ndarray
    new_tokens: int
    prompts: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> SweepTrace:
        shape = (len(self.drafts), len(self.ks))
        for name in ("acceptance", "tokens_per_pass", "seconds", "greedy_seconds", "same"):
            self._require(getattr(self, name).shape == shape, f"{name} must be (draft, k)")
        self._require(bool(((self.acceptance >= 0) & (self.acceptance <= 1)).all()), "acceptance is a rate")
        self._require(bool((self.tokens_per_pass >= 1).all()), "a target pass makes at least one token")
        self._require(bool((self.tokens_per_pass <= self.ks[None, :] + 1 + 1e-9).all()), "at most k + 1 per pass")
        return self

    def speedup(self) -> np.ndarray:
        """(draft, k) plain greedy time over speculative time."""
        return self.greedy_seconds / self.seconds


@register
@dataclass(frozen=True)
class DistillationTrace(Trace):
    """Distilling the truncated draft toward the full model.

    losses: (step,) the distillation loss T^2 KL(teacher || student) of each training batch; eval_loss: (2,)
    on held-out text before and after; acceptance, tokens_per_pass, speedup: (2,) greedy speculative decoding of
    the bundled prompts with the draft before and after (speed-up: plain greedy time / speculative time).
    """

    kind: ClassVar[str] = "distillation"
    layers: int
    rank: int
    temperature: float
    lr: float
    batch: int
    seq_len: int
    losses: np.ndarray
    eval_loss: np.ndarray
    acceptance: np.ndarray
    tokens_per_pass: np.ndarray
    speedup: np.ndarray
    k: int
    trainable: int
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> DistillationTrace:
        self._require(self.losses.ndim == 1 and len(self.losses) > 0, "losses must be (step,)")
        self._require(bool(np.isfinite(self.losses).all()), "a loss is not finite")
        for name in ("eval_loss", "acceptance", "tokens_per_pass", "speedup"):
            self._require(getattr(self, name).shape == (2,), f"{name} must be (before, after)")
        self._require(bool(((self.acceptance >= 0) & (self.acceptance <= 1)).all()), "acceptance is a rate")
        return self


@register
@dataclass(frozen=True)
class TargetsTrace(Trace):
    """Soft targets at one position of a text: the teacher's and the student's distributions at temperature T
    over the teacher's top tokens, the one-hot label, and the losses.

    top_ids: (top,) token ids; top_tokens: their text; teacher, student: (top,) probabilities at T; teacher_1:
    (top,) the teacher at T = 1; label: the id of the token that actually came next; kl: T^2 KL(teacher ||
    student) at T; ce_label: the student's cross-entropy to the label; ce_teacher: to the teacher's distribution.
    """

    kind: ClassVar[str] = "soft-targets"
    context: list[str]
    position: int
    top_ids: np.ndarray
    top_tokens: list[str]
    teacher: np.ndarray
    student: np.ndarray
    teacher_1: np.ndarray
    label: int
    label_token: str
    temperature: float
    kl: float
    ce_label: float
    ce_teacher: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> TargetsTrace:
        top = len(self.top_ids)
        for name in ("teacher", "student", "teacher_1"):
            values = getattr(self, name)
            self._require(values.shape == (top,), f"{name} must be (top,)")
            self._require(bool(((values >= 0) & (values <= 1)).all()), f"{name} must be probabilities")
        self._require(len(self.top_tokens) == top, "one text per top token")
        self._require(self.kl >= -1e-6 and self.temperature > 0, "KL is never negative; T > 0")
        return self
