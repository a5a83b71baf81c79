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


# ---- real MoE checkpoints: what loading one through models.load(folder) costs in memory -----------------------
# The published config.json values of each family's flagship (hidden sizes, layers, experts), built on the meta
# device: parameters counted from the module tree, memory = parameters x 4 bytes (the toolkit loads fp32).


def _qwen2_moe():  # Qwen/Qwen1.5-MoE-A2.7B
    from transformers import Qwen2MoeConfig

    return Qwen2MoeConfig(
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=24,
        num_attention_heads=16,
        num_key_value_heads=16,
        num_experts=60,
        num_experts_per_tok=4,
        moe_intermediate_size=1408,
        shared_expert_intermediate_size=5632,
        tie_word_embeddings=False,
    )


def _qwen3_moe():  # Qwen/Qwen3-30B-A3B
    from transformers import Qwen3MoeConfig

    return Qwen3MoeConfig(
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=48,
        num_attention_heads=32,
        num_key_value_heads=4,
        head_dim=128,
        num_experts=128,
        num_experts_per_tok=8,
        moe_intermediate_size=768,
        tie_word_embeddings=False,
    )


def _olmoe():  # allenai/OLMoE-1B-7B-0924
    from transformers import OlmoeConfig

    return OlmoeConfig(
        vocab_size=50304,
        hidden_size=2048,
        intermediate_size=1024,
        num_hidden_layers=16,
        num_attention_heads=16,
        num_key_value_heads=16,
        num_experts=64,
        num_experts_per_tok=8,
        tie_word_embeddings=False,
    )


def _deepseek_v3():  # deepseek-ai/DeepSeek-V3 (without its multi-token-prediction layer, which transformers skips)
    from transformers import DeepseekV3Config

    return DeepseekV3Config(
        vocab_size=129280,
        hidden_size=7168,
        intermediate_size=18432,
        moe_intermediate_size=2048,
        num_hidden_layers=61,
        num_attention_heads=128,
        num_key_value_heads=128,
        n_shared_experts=1,
        n_routed_experts=256,
        num_experts_per_tok=8,
        first_k_dense_replace=3,
        n_group=8,
        topk_group=4,
        q_lora_rank=1536,
        kv_lora_rank=512,
        qk_rope_head_dim=64,
        qk_nope_head_dim=128,
        v_head_dim=128,
        tie_word_embeddings=False,
    )


CHECKPOINTS = {  # name -> its published config
    "Mixtral 8x7B": mixtral_8x7b_config,
    "Qwen1.5-MoE-A2.7B": _qwen2_moe,
    "Qwen3-30B-A3B": _qwen3_moe,
    "OLMoE-1B-7B": _olmoe,
    "DeepSeek-V3": _deepseek_v3,
}
BYTES_FP32 = 4


def memory_table(names: list[str] | None = None) -> list[dict]:
    """Rows {name, model_type, total, active, gib_fp32}: each checkpoint counted on the meta device."""
    rows = []
    for name in names or list(CHECKPOINTS):
        config = CHECKPOINTS[name]()
        c = count_hf(config, name)
        rows.append(
            {
                "name": name,
                "model_type": config.model_type,
                "total": c.total,
                "active": c.active,
                "gib_fp32": c.total * BYTES_FP32 / 2**30,
            }
        )
    return rows
