"""SftTrace: one chat exchange under the SFT loss (made by ``sft.capture``; slide "SFT loss masking (-100)")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.sft.maths import IGNORE
from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class SftTrace(Trace):
    """One chat exchange under the SFT loss. ids, labels: (T,) with labels -100 on the prompt; token_loss,
    token_prob: (T,) -log p and p of token t given tokens < t (0 at t = 0); predicted: the model's top-1 for
    each position t (aligned with the token it predicts). loss: mean token_loss over labelled t; reference_loss:
    transformers' loss with the same labels; unmasked_loss: with labels = ids."""

    kind: ClassVar[str] = "sft"
    text: str
    tokens: list[str]
    ids: np.ndarray
    labels: np.ndarray
    token_loss: np.ndarray
    token_prob: np.ndarray
    predicted: list[str]
    loss: float
    reference_loss: float
    unmasked_loss: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> np.ndarray:
        """(T,) bool: the positions whose loss counts."""
        mask = self.labels != IGNORE
        mask[0] = False
        return mask

    def check(self) -> SftTrace:
        n = len(self.tokens)
        for name in ("ids", "labels", "token_loss", "token_prob"):
            self._require(getattr(self, name).shape == (n,), f"{name} must have one entry per token")
        lab = self.labels != IGNORE
        self._require(bool(np.all(self.labels[lab] == self.ids[lab])), "labels must copy the ids where not -100")
        self._require(bool(self.answer.any()), "no labelled token")
        self._require(abs(float(self.token_loss[self.answer].mean()) - self.loss) < 1e-4, "loss is not the mean")
        return self
