"""Tiny random models of several architectures for parity tests (as penzai's consistency tests do): every capture
must equal the reference on each, not only on the two embedded models.

    llama-gqa   Llama, 4 query heads sharing 2 key/value heads (grouped-query attention, as SmolLM2)
    llama-mha   Llama, multi-head attention (as many key/value heads as query heads)
    llama-mqa   Llama, multi-query attention (one key/value head)
    qwen2-bias  Qwen2: biases on the q/k/v projections
    mistral-sw  Mistral with a sliding window of 4 tokens (a token sees itself and the 3 before it)

Each uses SmolLM2's real tokenizer (vocabulary 49,152), so texts go in as they do for the real model.
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
