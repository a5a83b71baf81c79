"""Total vs active parameters (slide "Mixtral 8x7B: about 47B parameters, about 13B used per token").

Active = everything outside the routed experts + k / n_experts of the routed experts (shared experts count as
active: every token uses them). Hugging Face configs are counted by building the model on the meta device
(no memory), so the numbers come from the real module tree, not a hand formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from toolkit import arch


@dataclass(frozen=True)
class ParamCount:
    name: str
    total: int
    routed: int  # parameters in routed experts
    n_experts: int
    top_k: int

    @property
    def active(self) -> int:
        return self.total - self.routed + self.routed * self.top_k // self.n_experts

    @property
    def active_share(self) -> float:
        return self.active / self.total


def _is_routed(name: str) -> bool:
    parts = name.split(".")
    return "experts" in parts and "shared" not in parts  # HF: mlp.experts.*; ours: moe.experts.*


def count_module(model: torch.nn.Module, name: str, n_experts: int, top_k: int) -> ParamCount:
    total = routed = 0
    for pname, p in model.named_parameters():
        total += p.numel()
        if _is_routed(pname):
            routed += p.numel()
    return ParamCount(name, total, routed, n_experts, top_k)


def count_ours(cfg) -> ParamCount:
    from toolkit.moe.model import MoeTransformer

    with torch.device("meta"):
        model = MoeTransformer(cfg)
    return count_module(model, "this model", cfg.n_experts, cfg.top_k)


def count_hf(config, name: str = "") -> ParamCount:
    """Any transformers MoE config (Mixtral, Qwen-MoE, OLMoE, DeepSeek-V3), built on the meta device."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    found = arch.experts(config)
    if found is None:
        raise ValueError(f"{config.model_type} is not a mixture-of-experts model (no expert count in its config)")
    return count_module(model, name or config.model_type, *found)


def mixtral_8x7b_config():
    """Mixtral-8x7B-v0.1's published config.json values (hidden 4096, 32 layers, 8 experts of 14336, top-2)."""
    from transformers import MixtralConfig

    return MixtralConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        num_local_experts=8,
        num_experts_per_tok=2,
        max_position_embeddings=32768,
        rope_theta=1e6,
        tie_word_embeddings=False,
    )
