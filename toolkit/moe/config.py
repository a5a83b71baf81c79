"""Configuration of the MoE transformer and of its training run, as one typed dataclass with presets."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MoeConfig:
    # model
    vocab_size: int = 256  # byte-level tokens
    block_size: int = 256  # context length (learned positions)
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    n_experts: int = 8  # routed experts per MoE layer
    top_k: int = 2  # experts chosen per token
    expert_hidden: int = 96  # SwiGLU hidden size of one expert
    shared_experts: int = 1  # always-on experts (DeepSeek / LLaMA 4); 0 turns them off
    score: str = "softmax"  # router scores: "softmax" (Mixtral) or "sigmoid" (DeepSeek-V3)
    renormalize: bool = True  # divide the k chosen gates by their sum
    # balancing
    balance_coef: float = 0.01  # Switch/Mixtral load-balancing loss weight (0 = off)
    z_coef: float = 0.001  # router z-loss weight (ST-MoE)
    aux_free_rate: float = 0.0  # DeepSeek-V3 bias update speed gamma (0 = off)
    # training
    seed: int = 0
    steps: int = 240
    batch_size: int = 8
    lr: float = 3e-3
    snapshot_every: int = 10  # record routing for the replay every N steps

    def __post_init__(self) -> None:
        if self.n_experts < 1:
            raise ValueError(f"n_experts must be at least 1, got {self.n_experts}")
        if not 1 <= self.top_k <= self.n_experts:
            raise ValueError(f"top_k must be between 1 and n_experts={self.n_experts}, got {self.top_k}")
        if self.score not in ("softmax", "sigmoid"):
            raise ValueError(f"score must be 'softmax' or 'sigmoid', got {self.score!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")

    def replace(self, **changes: Any) -> "MoeConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MoeConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


PRESETS: dict[str, MoeConfig] = {
    "lecture": MoeConfig(),
    "tiny": MoeConfig(block_size=32, d_model=32, n_layers=2, n_heads=2, n_experts=4, top_k=2, expert_hidden=32,
                      steps=4, batch_size=4, snapshot_every=2),
}
