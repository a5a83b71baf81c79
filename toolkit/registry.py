"""Every concept the toolkit teaches, in deck order: one line each.

A concept has one name everywhere: its folder ``toolkit/<name>/`` (maths, capture, trace, figures), its demo
``demos/<name>.py``, its slide's ``<Demo name="<name>">``, its test ``tests/test_<name>.py``. The server mounts
the demos listed here; ``Trace.load`` finds trace kinds through here. Adding a concept: copy a folder that looks
like yours (``toolkit/rope/`` is a small complete one), write its demo, its slide and its test, add its line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Concept:
    name: str
    title: str
    has_trace: bool = True  # False: the concept shows facts, not a trace (the model card)

    @property
    def module(self) -> str:
        return f"toolkit.{self.name}"

    @property
    def trace_module(self) -> str | None:
        return f"toolkit.{self.name}.trace" if self.has_trace else None

    @property
    def demo(self) -> str:
        return f"demos.{self.name}"


CONCEPTS: dict[str, Concept] = {
    c.name: c
    for c in [
        Concept("model_card", "Model card", has_trace=False),
        Concept("tokens", "Tokens and embeddings"),
        Concept("rope", "RoPE rotations"),
        Concept("attention", "Attention maps"),
        Concept("moe", "Mixture of experts"),
        Concept("sampling", "Next-token sampling"),
        Concept("kv_cache", "KV cache"),
        Concept("sft", "SFT loss masking"),
        Concept("lora", "LoRA and QLoRA"),
        Concept("dpo", "Reward model and DPO"),
        Concept("grpo", "GRPO"),
        # Part 4: efficient inference (attention systems; smaller and faster)
        Concept("flash_attention", "FlashAttention"),
        Concept("paged_attention", "PagedAttention"),
        Concept("sparse_attention", "Sparse attention and attention sinks"),
        Concept("quantization", "Quantising the whole model"),
        Concept("speculative", "Speculative decoding and distillation"),
        # Part 5: vector search and RAG
        Concept("vector_search", "Vector search"),
        Concept("rag", "Retrieval-augmented generation"),
        # Part 6: reasoning, tools and agents
        Concept("forgetting", "Catastrophic forgetting"),
        Concept("reasoning", "Reasoning: chain of thought, process rewards, tree of thought"),
        Concept("agent", "Tool use and agents"),
        Concept("context", "Prompt and context engineering"),
    ]
}


def get(name: str) -> Concept:
    if name not in CONCEPTS:
        raise KeyError(f"unknown concept {name!r}; known: {', '.join(CONCEPTS)}")
    return CONCEPTS[name]
