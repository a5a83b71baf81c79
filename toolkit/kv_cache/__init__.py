"""KV cache (slide "KV cache: why generation is fast"): time per token with and without it, memory vs formula.

    from toolkit import kv_cache
    trace = kv_cache.capture("smollm2-135m", "The capital of France is", steps=16)   # KvCacheTrace
    kv_cache.figures.memory(trace)

maths: the memory formula from ``toolkit.arch`` sizes; capture: greedy generation both ways on a real model;
trace: KvCacheTrace; figures: one plotly figure per view.
"""

from toolkit.kv_cache import figures
from toolkit.kv_cache.capture import MAX_NEW_TOKENS, KvCacheConfig, capture, measured_bytes
from toolkit.kv_cache.maths import dims, formula_bytes
from toolkit.kv_cache.trace import KvCacheTrace

__all__ = [
    "capture",
    "KvCacheConfig",
    "KvCacheTrace",
    "figures",
    "dims",
    "formula_bytes",
    "measured_bytes",
    "MAX_NEW_TOKENS",
]
