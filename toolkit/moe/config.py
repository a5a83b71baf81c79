"""MoeConfig: the MoE transformer and its training run in one frozen, self-documenting config, with presets.

Serves "the MoE layer replaces the FFN", "a router picks k experts per token", "load balancing" and "shared
experts": every knob on those slides is a field here, with its help text and its range (``toolkit.config``).
The committed runs in ``assets/moe/<run>/config.json`` were recorded from ``PRESETS["lecture"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.config import Config, param

MAX_EXPERTS = 256  # DeepSeek-V3 routes among 256 experts per layer: the largest family the lecture shows
SCORES = ("softmax", "sigmoid")


@dataclass(frozen=True)
class MoeConfig(Config):
    # model
    vocab_size: int = param(
        256, "token ids the embedding holds; the text is byte-level, so at least 256", lo=256, hi=65_536
    )
    block_size: int = param(
        256, "context length in byte tokens (learned positions); a longer text is cut", lo=2, hi=4096, label="context"
    )
    d_model: int = param(64, "width of the residual stream", lo=1, hi=4096)
    n_layers: int = param(4, "transformer blocks, each with one MoE layer", lo=1, hi=64, label="layers")
    n_heads: int = param(4, "attention heads (d_model must divide by it)", lo=1, hi=64, label="heads")
    n_experts: int = param(8, "routed experts per MoE layer", lo=1, hi=MAX_EXPERTS, label="experts")
    top_k: int = param(2, "experts chosen per token", lo=1, hi=MAX_EXPERTS, label="top-k")
    expert_hidden: int = param(96, "SwiGLU hidden size of one expert", lo=1, hi=65_536)
    shared_experts: int = param(1, "always-on experts (DeepSeek / LLaMA 4); 0 turns them off", lo=0, hi=16)
    score: str = param("softmax", "router scores: softmax (Mixtral) or sigmoid (DeepSeek-V3)", choices=SCORES)
    renormalize: bool = param(True, "divide the k chosen gates by their sum")
    # balancing
    balance_coef: float = param(0.01, "Switch/Mixtral load-balancing loss weight (0 = off)", lo=0.0, hi=1.0, step=0.001)
    z_coef: float = param(0.001, "router z-loss weight (ST-MoE)", lo=0.0, hi=1.0, step=0.0001)
    aux_free_rate: float = param(
        0.0, "DeepSeek-V3 selection-bias update speed gamma (0 = off)", lo=0.0, hi=1.0, step=0.0001
    )
    # training
    seed: int = param(0, "seed of the weights and of the training batches", lo=0, hi=2**32 - 1)
    steps: int = param(240, "optimizer steps", lo=1, hi=100_000)
    batch_size: int = param(8, "windows of block_size bytes per step", lo=1, hi=1024)
    lr: float = param(3e-3, "AdamW peak learning rate", lo=0.0, hi=1.0, open_lo=True)
    snapshot_every: int = param(10, "record routing for the replay every N steps", lo=1, hi=100_000)

    def problems(self) -> list[str]:
        out = []
        if self.top_k > self.n_experts:
            out.append(
                f"top-k (top_k) must be between 1 and n_experts={self.n_experts} (the number of experts), "
                f"got {self.top_k}"
            )
        if self.d_model % self.n_heads:
            out.append(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        return out


PRESETS: dict[str, MoeConfig] = {
    "lecture": MoeConfig(),
    "tiny": MoeConfig(
        block_size=32,
        d_model=32,
        n_layers=2,
        n_heads=2,
        n_experts=4,
        top_k=2,
        expert_hidden=32,
        steps=4,
        batch_size=4,
        snapshot_every=2,
    ),
}
