"""The KV-cache memory formula (slide "KV cache: why generation is fast"), from the sizes in ``toolkit.arch``.

For a batch of one, the cache holds

    bytes = 2 (K and V) x layers x kv_heads x head_dim x length x bytes per number,

where kv_heads counts key/value heads (3 for SmolLM2: grouped-query attention shares each among 3 query heads,
a third of the memory multi-head attention would need).
"""

from __future__ import annotations

from toolkit.arch import Arch


def dims(a: Arch) -> dict[str, int]:
    """The sizes the formula reads, as a KvCacheTrace stores them."""
    return {"layers": a.layers, "kv_heads": a.kv_heads, "heads": a.heads, "head_dim": a.head_dim}


def formula_bytes(a: Arch, length: int, bytes_per_number: int = 4, batch: int = 1) -> int:
    """Bytes of keys and values for ``length`` tokens of ``batch`` sequences."""
    return a.kv_bytes_per_token(bytes_per_number) * length * batch
