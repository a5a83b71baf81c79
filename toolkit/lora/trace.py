"""LoraTrace and QuantTrace: a few LoRA steps, and one weight quantised (made by ``lora.finetune`` and
``lora.quant_trace``; slides "LoRA" and "QLoRA")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class LoraTrace(Trace):
    """A few LoRA steps. losses: (step + 1,) training loss before each step, then after the last. sv_delta:
    (min(out, in),) singular values of the learnt (alpha / r) B A of ``module``; sv_weight: those of its frozen W.
    merge_max_diff: max |logits merged - logits unmerged|."""

    kind: ClassVar[str] = "lora"
    r: int
    alpha: float
    targets: list[str]
    module: str
    losses: np.ndarray
    sv_delta: np.ndarray
    sv_weight: np.ndarray
    trainable: int
    frozen: int
    merge_max_diff: float
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        """Numerical rank of the delta: singular values above 1e-5 of the largest."""
        return int((self.sv_delta > 1e-5 * max(float(self.sv_delta.max(initial=0.0)), 1e-30)).sum())

    def check(self) -> LoraTrace:
        self._require(self.r >= 1 and self.trainable > 0, "rank and trainable parameters must be positive")
        self._require(self.rank <= self.r, f"the delta has rank {self.rank} > r = {self.r}")
        self._require(bool(np.isfinite(self.losses).all()), "loss is not finite")
        return self


@register
@dataclass(frozen=True)
class QuantTrace(Trace):
    """One weight matrix quantised and dequantised. counts, edges: histogram of w_hat - w (bins, bins + 1).
    bytes: codes plus one fp32 scale per block; fp32_bytes: the original."""

    kind: ClassVar[str] = "quant"
    module: str
    scheme: str
    block: int
    shape: list[int]
    counts: np.ndarray
    edges: np.ndarray
    fp32_bytes: int
    bytes: int
    max_abs_error: float
    rel_error: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> QuantTrace:
        self._require(self.edges.shape == (self.counts.shape[0] + 1,), "edges must have one more entry than counts")
        self._require(int(self.counts.sum()) == int(np.prod(self.shape)), "histogram must count every weight")
        self._require(0 < self.bytes < self.fp32_bytes, "quantised storage must be smaller than fp32")
        return self
