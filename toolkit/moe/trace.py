"""MoeTrace: the router's decisions in every MoE layer for one text (made by ``moe.capture``).

Serves "a router picks k experts per token", "load balancing" and "shared experts": the figures in
``toolkit.moe.figures`` read only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register, rows_sum_to_one


@register
@dataclass(frozen=True)
class MoeTrace(Trace):
    """Router decisions of a mixture-of-experts model on one text.

    router_logits, probs: (layer, token, expert); probs are the router scores (softmax rows sum to 1, sigmoid
    scores each lie in (0, 1)). experts, gates: (layer, token, k), chosen experts (int, distinct per token) and
    their gate weights. expert_load: (layer, expert) the fraction of routed (token, slot) pairs per expert (sums to 1;
    Mixtral's f_i = k * load). importance: (layer, expert) P_i, the mean router probability per expert (sums to 1).
    balance_loss: (layer,) the Switch/Mixtral auxiliary loss N * sum_i f_i * P_i per layer (k when balanced).
    shared_norm, routed_norm: (layer, token) norms of the shared and routed expert outputs, or None.
    (The field is not called `load`: that name would shadow Trace.load and break the dataclass.)
    bias: (layer, expert) the aux-loss-free selection bias (DeepSeek-V3), or None.
    """

    kind: ClassVar[str] = "moe"
    tokens: list[str]
    router_logits: np.ndarray
    probs: np.ndarray
    experts: np.ndarray
    gates: np.ndarray
    expert_load: np.ndarray
    importance: np.ndarray
    balance_loss: np.ndarray
    top_k: int
    score: str = "softmax"
    meta: dict[str, Any] = field(default_factory=dict)
    shared_norm: np.ndarray | None = None
    routed_norm: np.ndarray | None = None
    bias: np.ndarray | None = None

    @property
    def n_layers(self) -> int:
        return self.probs.shape[0]

    @property
    def n_experts(self) -> int:
        return self.probs.shape[2]

    def check(self) -> MoeTrace:
        self._require(self.probs.ndim == 3, f"probs must be (layer, token, expert), got {self.probs.shape}")
        n_layers, n_tokens, n_experts = self.probs.shape
        self._require(n_tokens == len(self.tokens), f"{len(self.tokens)} tokens but {n_tokens} routed positions")
        self._require(self.router_logits.shape == self.probs.shape, "router_logits and probs differ in shape")
        self._require(1 <= self.top_k <= n_experts, f"top_k={self.top_k} must lie in 1..{n_experts}")
        self._require(self.experts.shape == (n_layers, n_tokens, self.top_k), "experts must be (layer, token, k)")
        self._require(self.gates.shape == self.experts.shape, "gates must be (layer, token, k)")
        self._require(
            int(self.experts.min(initial=0)) >= 0 and int(self.experts.max(initial=0)) < n_experts,
            "chosen expert out of range",
        )
        srt = np.sort(self.experts, axis=-1)
        self._require(bool((np.diff(srt, axis=-1) != 0).all()), "a token chose the same expert twice")
        for name in ("router_logits", "probs", "gates", "expert_load", "importance", "balance_loss"):
            self._require(bool(np.isfinite(getattr(self, name)).all()), f"{name} contains NaN or inf")
        if self.score == "softmax":
            self._require(rows_sum_to_one(self.probs), "router probabilities must sum to 1")
        else:
            self._require(bool(((self.probs >= 0) & (self.probs <= 1)).all()), "sigmoid scores must lie in [0, 1]")
        self._require(self.expert_load.shape == (n_layers, n_experts), "expert_load must be (layer, expert)")
        self._require(self.importance.shape == (n_layers, n_experts), "importance must be (layer, expert)")
        self._require(self.balance_loss.shape == (n_layers,), "balance_loss must be (layer,)")
        self._require(
            bool(np.allclose(self.expert_load.sum(-1), 1.0, atol=1e-4)), "expert load fractions must sum to 1"
        )
        self._require(bool(np.allclose(self.importance.sum(-1), 1.0, atol=1e-3)), "importance P_i must sum to 1")
        if n_tokens:
            counts = np.stack([np.bincount(e.ravel(), minlength=n_experts) for e in self.experts])
            self._require(
                bool(np.allclose(counts / (n_tokens * self.top_k), self.expert_load, atol=1e-4)),
                "expert_load does not match the chosen experts",
            )
        for name in ("shared_norm", "routed_norm"):
            x = getattr(self, name)
            if x is not None:
                self._require(x.shape == (n_layers, n_tokens), f"{name} must be (layer, token)")
        if self.bias is not None:
            self._require(self.bias.shape == (n_layers, n_experts), "bias must be (layer, expert)")
        return self

    @property
    def truncated(self) -> bool:
        """The text had more tokens than were routed (``meta["n_tokens_in_text"]``; False when not recorded)."""
        return int(self.meta.get("n_tokens_in_text", len(self.tokens))) > len(self.tokens)
