"""Prefix caching, as vLLM and SGLang do it: the keys and values of a prompt's beginning, kept and reused by the
next prompt that starts with the same tokens.

A class asking its own variants of the RAG slide's question retrieves the same passages, so their prompts share
everything before the question (about 275 of 310 tokens: 0.8 s of a core each time). ``prefilled`` hands out a
copy of the kept cache when the ids match exactly, else runs the prefix and keeps a copy. Entries are bounded by
bytes (least recently used first out) and tied to the model object itself, so a model loaded again, or another
model, never gets them. Reading the prefix in one pass and the rest in another is what a cached run does anyway:
the tokens generated equal ``generate()`` on the whole prompt (tests/test_prefix.py).
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict
from typing import Any

import torch
from transformers import DynamicCache

MAX_BYTES = 16 * 2**20  # SmolLM2-135M keeps 45 KiB a token: the RAG slide's prefix of 275 tokens is 12 MiB


def nbytes(cache: Any) -> int:
    """Bytes of the tensors a transformers cache holds (keys, values, and any recurrent state)."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        for value in vars(layer).values():
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
    return total


class PrefixCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, tuple[int, ...]], tuple[weakref.ref, DynamicCache, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    def get(self, model: torch.nn.Module, ids: list[int]) -> DynamicCache | None:
        """A copy of the cache kept for exactly these ids on this model, or None."""
        key = (id(model), tuple(ids))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0]() is not model:  # a new model at a dead one's address: not ours
                return None
            self._entries.move_to_end(key)
            kept = entry[1]
        return copy.deepcopy(kept)

    def put(self, model: torch.nn.Module, ids: list[int], cache: DynamicCache) -> None:
        """Keep a copy of ``cache`` (which holds ``ids``), dropping the least recently used entries past the bound."""
        size = nbytes(cache)
        if size > self.max_bytes:
            return
        kept = copy.deepcopy(cache)
        key = (id(model), tuple(ids))
        with self._lock:
            old = self._entries.pop(key, None)
            self.bytes -= old[2] if old else 0
            self._entries[key] = (weakref.ref(model), kept, size)
            self.bytes += size
            while self.bytes > self.max_bytes or any(ref() is None for ref, _, _ in self._entries.values()):
                dead = next((k for k, (ref, _, _) in self._entries.items() if ref() is None), None)
                _, _, freed = self._entries.pop(dead if dead is not None else next(iter(self._entries)))
                self.bytes -= freed

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0


SHARED = PrefixCache()


def supported(model: torch.nn.Module) -> bool:
    """A model whose generate() takes a DynamicCache it is given: not one that builds its own kind (Gemma's hybrid
    cache, a static cache) or cannot use a dynamic one."""
    dynamic = getattr(type(model), "_supports_default_dynamic_cache", lambda: True)()
    wanted = getattr(getattr(model, "generation_config", None), "cache_implementation", None)
    return bool(dynamic) and wanted is None


def prefilled(model: torch.nn.Module, ids: list[int], store: PrefixCache = SHARED) -> tuple[DynamicCache, bool]:
    """A cache holding ``ids`` (the prompt's shared beginning), and whether it came from ``store``."""
    cache = store.get(model, ids)
    if cache is not None:
        return cache, True
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True, logits_to_keep=1)
    store.put(model, ids, cache)
    return cache, False
