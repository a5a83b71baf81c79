"""KV-cache capture: slide "KV cache: why generation is fast", measured on a real model.

Without a cache, generating token t runs the model on all t tokens again; with one, it runs on the new token
only and reads every earlier key and value from memory. ``capture`` generates greedily both ways, timing every
token, and reads the real cache's size after each step against ``kv_cache.maths.formula_bytes``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, text, turns
from toolkit.config import Config, check_budget, param
from toolkit.kv_cache.maths import dims, formula_bytes
from toolkit.kv_cache.trace import KvCacheTrace
from toolkit.trace import make_meta

MAX_NEW_TOKENS = 32  # both runs cost a forward per token: 2 x 32 forwards stay within a few seconds


@dataclass(frozen=True)
class KvCacheConfig(Config):
    steps: int = param(
        8,
        "tokens to generate, with and without the cache",
        lo=2,
        hi=MAX_NEW_TOKENS,
        step=1,
        label="tokens to generate",
    )
    max_tokens: int = param(
        text.MAX_TOKENS,
        "prompt tokens run; a longer prompt is cut (the trace says so)",
        lo=1,
        hi=text.MAX_TOKENS,
        label="token limit",
    )
    budget: int = param(
        4096,
        "token forwards the uncached run may take: it re-reads the whole text at every step, so its cost is "
        "about steps x (prompt + steps / 2); a longer prompt leaves room for fewer steps",
        lo=1,
        hi=1_000_000,
    )


def work(n_prompt: int, steps: int) -> int:
    """Token forwards of the uncached run: n_prompt + (n_prompt + 1) + ... (the cached run adds steps)."""
    return steps * n_prompt + steps * (steps - 1) // 2 + steps


def measured_bytes(cache: Any) -> int:
    """Bytes held by the keys and values of a transformers Cache (every layer)."""
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def _step_times(loaded: models.Loaded, ids: torch.Tensor, steps: int, cached: bool):
    """Greedy generation, one token at a time: new ids, wall seconds and CPU seconds per token, cache bytes."""
    model, last = loaded.model, arch.last_logits_only(loaded.model)  # as generate() asks: no logits for the prompt
    seq, past, out_ids, seconds, cpu, memory = ids, None, [], [], [], []
    with torch.no_grad():
        for _ in range(steps):
            with turns.held():  # a timed step: no pause inside
                t0, c0 = time.perf_counter(), time.process_time()
                if cached:
                    feed = seq if past is None else seq[:, -1:]  # (1, T) first, then (1, 1)
                    out = model(feed, cache=past, use_cache=True, **last)
                    past = out.cache
                else:
                    out = model(seq, use_cache=False, **last)  # (1, T): recompute every key and value
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
                seconds.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)  # this process's CPU time: robust to other processes' load
            memory.append(measured_bytes(past) if cached else 0)
            seq = torch.cat([seq, nxt], dim=1)
            out_ids.append(int(nxt))
            turns.turn()  # between steps, outside the timed forward
    return out_ids, seconds, cpu, memory


def capture(
    model: models.Loaded | str, prompt: str, config: KvCacheConfig | None = None, **options: Any
) -> KvCacheTrace:
    """Generate ``steps`` tokens greedily with and without the cache, timing every token."""
    loaded = models.resolve(model)
    cfg = KvCacheConfig.make(config, **options)
    a = arch.of(loaded)
    enc = text.encode(loaded.tokenizer, prompt, cfg.max_tokens)
    check_budget(
        work(len(enc.ids), cfg.steps),
        cfg.budget,
        "token forwards",
        f"The prompt is {len(enc.ids)} tokens: generate fewer tokens or shorten the prompt.",
    )
    ids = torch.tensor([enc.ids])  # (1, T)
    with_ids, with_s, with_cpu, with_mem = _step_times(loaded, ids, cfg.steps, cached=True)
    without_ids, without_s, without_cpu, _ = _step_times(loaded, ids, cfg.steps, cached=False)
    lengths = ids.shape[1] + np.arange(cfg.steps)  # (step,) tokens in the cache after each step's forward
    dtype_bytes = next(loaded.model.parameters()).element_size()
    return KvCacheTrace(
        prompt=prompt,
        tokens=text.display(loaded.tokenizer, with_ids),
        same_tokens=with_ids == without_ids,
        n_prompt=int(ids.shape[1]),
        lengths=lengths,
        seconds_cached=np.array(with_s),
        seconds_uncached=np.array(without_s),
        measured_bytes=np.array(with_mem),
        formula_bytes=np.array([formula_bytes(a, int(n), dtype_bytes) for n in lengths]),
        cpu_cached=np.array(with_cpu),
        cpu_uncached=np.array(without_cpu),
        dims=dims(a),
        bytes_per_number=dtype_bytes,
        max_positions=a.max_positions,
        meta=make_meta(loaded.name, n_tokens_in_text=enc.n_total, truncated=enc.truncated),
    ).check()
