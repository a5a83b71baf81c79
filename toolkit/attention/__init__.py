"""Attention maps (slides "Self-attention computation", "Multi-head attention", "Encoder and decoder").

    from toolkit import attention
    trace = attention.capture("smollm2-135m", "The animal didn't cross the street because it was too tired")
    attention.figures.layer_heads(trace, layer=3)

maths: softmax(QKᵀ/√d + M)V and head statistics on arrays; capture: weights, Q, K, V of a real model; trace:
AttentionTrace; figures: one plotly figure per view; bertviz: offline bertviz pages from a trace.
"""

from toolkit.attention import figures
from toolkit.attention.capture import AttentionConfig, capture, check_comparable, compare, generate
from toolkit.attention.maths import (
    attention_steps,
    causal_mask,
    find_token,
    head_stats,
    pair_attention,
    recompute,
    total_variation,
)
from toolkit.attention.trace import AttentionTrace

__all__ = [
    "capture",
    "generate",
    "compare",
    "check_comparable",
    "AttentionConfig",
    "AttentionTrace",
    "figures",
    "attention_steps",
    "causal_mask",
    "find_token",
    "head_stats",
    "pair_attention",
    "recompute",
    "total_variation",
]
