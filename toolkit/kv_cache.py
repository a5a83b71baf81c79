"""KV cache: notes "KV cache" and "its memory growth".

Without a cache, generating token t runs the model on all t tokens again; with one, it runs on the new token
only and reads every earlier key and value from memory. The memory that costs, for a batch of one, is

    bytes = 2 (K and V) x layers x kv_heads x head_dim x length x bytes per number,

where kv_heads counts key/value heads (3 for SmolLM2: grouped-query attention shares each among 3 query
heads, a third of the memory multi-head attention would need). ``measured_bytes`` reads the real cache.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from toolkit.models import Loaded
from toolkit.traces import KvCacheTrace, make_meta

MAX_NEW_TOKENS = 64
MAX_PROMPT_TOKENS = 512


def dims(config) -> dict[str, int]:
    heads = config.num_attention_heads
    return {"layers": config.num_hidden_layers, "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
            "heads": heads, "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads}


def formula_bytes(config, length: int, bytes_per_number: int = 4, batch: int = 1) -> int:
    d = dims(config)
    return 2 * d["layers"] * d["kv_heads"] * d["head_dim"] * length * bytes_per_number * batch


def measured_bytes(cache) -> int:
    """Bytes held by the keys and values of a transformers Cache (every layer)."""
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def _step_times(loaded: Loaded, ids: torch.Tensor, steps: int, cached: bool):
    """Greedy generation, one token at a time: new ids, wall seconds and CPU seconds per token, cache bytes."""
    model = loaded.model
    seq, past, out_ids, seconds, cpu, memory = ids, None, [], [], [], []
    with torch.no_grad():
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            if cached:
                feed = seq if past is None else seq[:, -1:]  # (1, T) first, then (1, 1)
                out = model(feed, past_key_values=past, use_cache=True)
                past = out.past_key_values
            else:
                out = model(seq, use_cache=False)  # (1, T): recompute every key and value
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
            seconds.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)  # this process's CPU time: robust to other processes' load
            memory.append(measured_bytes(past) if cached else 0)
            seq = torch.cat([seq, nxt], dim=1)
            out_ids.append(int(nxt))
    return out_ids, seconds, cpu, memory


def compare(loaded: Loaded, prompt: str, steps: int = 16) -> KvCacheTrace:
    """Generate ``steps`` tokens greedily with and without the cache, timing every token."""
    ids = loaded.tokenizer(prompt, return_tensors="pt")["input_ids"][:, -MAX_PROMPT_TOKENS:]  # (1, T)
    with_ids, with_s, with_cpu, with_mem = _step_times(loaded, ids, steps, cached=True)
    without_ids, without_s, without_cpu, _ = _step_times(loaded, ids, steps, cached=False)
    lengths = ids.shape[1] + np.arange(steps)  # tokens in the cache after each step's forward
    dtype_bytes = next(loaded.model.parameters()).element_size()
    tok = loaded.tokenizer
    return KvCacheTrace(
        prompt=prompt, tokens=[tok.decode([i]) for i in with_ids], same_tokens=with_ids == without_ids,
        n_prompt=int(ids.shape[1]), lengths=lengths, seconds_cached=np.array(with_s), seconds_uncached=np.array(without_s),
        measured_bytes=np.array(with_mem), formula_bytes=np.array([formula_bytes(loaded.config, int(n), dtype_bytes)
                                                                   for n in lengths]),
        cpu_cached=np.array(with_cpu), cpu_uncached=np.array(without_cpu), dims=dims(loaded.config), bytes_per_number=dtype_bytes, max_positions=int(loaded.config.max_position_embeddings),
        meta=make_meta(loaded.name)).check()
