"""Tiny random models of several architectures for parity tests (as penzai's consistency tests do): every capture
must equal the reference on each, not only on the two embedded models.

    llama-gqa   Llama, 4 query heads sharing 2 key/value heads (grouped-query attention, as SmolLM2)
    llama-mha   Llama, multi-head attention (as many key/value heads as query heads)
    llama-mqa   Llama, multi-query attention (one key/value head)
    qwen2-bias  Qwen2: biases on the q/k/v projections
    mistral-sw  Mistral with a sliding window of 4 tokens (a token sees itself and the 3 before it)

Each uses SmolLM2's real tokenizer (vocabulary 49,152), so texts go in as they do for the real model.

``tiny_moe(family)``: a tiny random checkpoint of each transformers MoE family in MOE_FAMILIES (4 experts, 2 per
token), for the MoE captures and the model-folder tests.
"""

from __future__ import annotations

import functools

import torch

ARCHITECTURES = ["llama-gqa", "llama-mha", "llama-mqa", "qwen2-bias", "mistral-sw"]
COMMON = dict(
    vocab_size=49152,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=256,
    tie_word_embeddings=True,
    attn_implementation="eager",
)


@functools.cache
def tiny(name: str):
    """A models.Loaded of a tiny random model (seeded: the same weights every time)."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    from toolkit import models

    torch.manual_seed(0)
    if name == "llama-gqa":
        model = LlamaForCausalLM(LlamaConfig(**COMMON, num_key_value_heads=2, rope_theta=100_000.0))
    elif name == "llama-mha":
        model = LlamaForCausalLM(LlamaConfig(**COMMON, num_key_value_heads=4))
    elif name == "llama-mqa":
        model = LlamaForCausalLM(LlamaConfig(**COMMON, num_key_value_heads=1))
    elif name == "qwen2-bias":
        model = Qwen2ForCausalLM(Qwen2Config(**COMMON, num_key_value_heads=2))
    elif name == "mistral-sw":
        model = MistralForCausalLM(MistralConfig(**COMMON, num_key_value_heads=2, sliding_window=4))
    else:
        raise KeyError(name)
    model.eval()
    return models.Loaded(f"tiny-{name}", model, models.load("smollm2-135m").tokenizer, "causal")


# family -> (its transformers config class, the MoE arguments that make it tiny)
MOE_FAMILIES = {
    "mixtral": ("MixtralConfig", dict(num_local_experts=4, num_experts_per_tok=2)),
    "qwen2_moe": (
        "Qwen2MoeConfig",
        dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, shared_expert_intermediate_size=32),
    ),
    "qwen3_moe": ("Qwen3MoeConfig", dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, head_dim=8)),
    "olmoe": ("OlmoeConfig", dict(num_experts=4, num_experts_per_tok=2)),
    "deepseek_v3": (
        "DeepseekV3Config",
        dict(
            n_routed_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=16,
            n_shared_experts=1,
            first_k_dense_replace=0,
            n_group=1,
            topk_group=1,
            kv_lora_rank=16,
            q_lora_rank=None,
            qk_rope_head_dim=8,
            qk_nope_head_dim=8,
            v_head_dim=8,
            num_key_value_heads=4,
        ),
    ),
}


def tiny_moe(family: str, vocab_size: int = 64):
    """A tiny random model of a transformers MoE family (seeded; every weight random: some routers start at zero)."""
    import transformers as tf

    name, kw = MOE_FAMILIES[family]
    common = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(getattr(tf, name)(**{**common, **kw})).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return model
