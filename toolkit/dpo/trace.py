"""DpoTrace: a few DPO steps on one preference pair (made by ``dpo.train``; slides "DPO loss", "implicit reward")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class DpoTrace(Trace):
    """A few DPO steps on one preference pair. Per step (step + 1,), before each step and after the last:
    logp_chosen / logp_rejected = log π(y|x) summed over the answer tokens; reward_* = β·(log π − log π_ref);
    loss = −log σ(reward_chosen − reward_rejected). ref_*: log π_ref(y|x), fixed."""

    kind: ClassVar[str] = "dpo"
    prompt: str
    chosen: str
    rejected: str
    beta: float
    ref_chosen: float
    ref_rejected: float
    logp_chosen: np.ndarray
    logp_rejected: np.ndarray
    reward_chosen: np.ndarray
    reward_rejected: np.ndarray
    loss: np.ndarray
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> DpoTrace:
        n = self.loss.shape[0]
        for name in ("logp_chosen", "logp_rejected", "reward_chosen", "reward_rejected"):
            self._require(getattr(self, name).shape == (n,), f"{name} must have one entry per step")
        rw = self.beta * (self.logp_chosen - self.ref_chosen)
        self._require(bool(np.allclose(rw, self.reward_chosen, atol=1e-4)), "reward must be β·(log π − log π_ref)")
        margin = self.reward_chosen - self.reward_rejected
        self._require(bool(np.allclose(np.logaddexp(0, -margin), self.loss, atol=1e-4)), "loss must be −log σ(margin)")
        return self
