"""Mixture of experts: a small instrumented MoE transformer, its routing maths, training, and HF MoE capture.

Serves the MoE slides: "the MoE layer replaces the FFN", "a router picks k experts per token",
"experts specialise", "load balancing" (Switch/Mixtral loss L = N * sum_i f_i * P_i), "shared experts",
"total vs active parameters". Modules: config (dataclass + presets), maths (pure routing functions),
model (the transformer), corpus (offline training text), train (training + replay), capture (MoeTrace from
our model or from a transformers MoE model), params (total vs active parameter counts).
"""
from toolkit.moe.config import PRESETS, MoeConfig

__all__ = ["MoeConfig", "PRESETS"]
