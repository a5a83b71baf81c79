"""PagedAttention captures (slide "PagedAttention: the KV cache in pages").

``simulate``: a stream of requests served under a KV memory of ``memory_mib`` with the model's real bytes per token
(2 x layers x kv_heads x head_dim x bytes, ``toolkit.arch``), contiguously and paged. ``generate``: requests that
share a system prompt decoded greedily by the real model on one paged cache (the prefix prefilled once, its blocks
shared, copy-on-write on the last partial one), and again on transformers' default cache for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.cache_utils import DynamicCache

from toolkit import arch, models, text
from toolkit.config import Config, ConfigError, check_budget, param
from toolkit.paged_attention import maths
from toolkit.paged_attention.cache import BlockPool, PagedCache
from toolkit.paged_attention.trace import PagedRunTrace, PagingTrace
from toolkit.trace import make_meta

MAX_FRAMES = 120  # frames a simulation keeps for the block-map views
SIM_TOKENS = 200_000  # prompt + output tokens one simulation may serve (the ShareGPT preset: ~145,000, ~10 s)
SIM_SPAN = 100_000  # steps over which the requests may arrive
MAP_BLOCKS = 16_384  # blocks the block map draws per frame
MAP_TABLE = 50_000  # block-table cells per frame (running requests x blocks of the longest request)
DEFAULT_SYSTEM = (
    "You are a patient teacher for a class of curious students. Answer every question in two short sentences and "
    "give one concrete, everyday example."
)
DEFAULT_USERS = ("Why is the sky blue?", "How do vaccines work?")


@dataclass(frozen=True)
class SimConfig(Config):
    memory_mib: float = param(48.0, "KV-cache memory (MiB)", lo=1, hi=65_536, label="KV memory (MiB)")
    block_size: int = param(16, "token slots per block", lo=1, hi=256, step=1, label="block size")
    max_len: int = param(256, "longest request (prompt + output); contiguous reserves this much", lo=8, hi=32_768)
    mean_prompt: float = param(32.0, "mean prompt length (tokens, log-normal)", lo=1, hi=8192)
    mean_output: float = param(64.0, "mean output length (tokens, log-normal)", lo=1, hi=8192)
    requests: int = param(40, "requests in the stream", lo=1, hi=2000, step=1)
    rate: float = param(0.3, "arrivals per step (Poisson)", lo=0.01, hi=100)
    seed: int = param(0, "seed of the request stream", lo=0, hi=2**31 - 1)

    def problems(self) -> list[str]:
        if self.block_size > self.max_len:
            return [f"block size {self.block_size} is longer than the longest request ({self.max_len})"]
        return []


PRESETS = {
    "lecture": SimConfig(),  # small enough to see every block
    "sharegpt": SimConfig(  # ShareGPT-like lengths (vLLM paper: mean input 161, output 338 tokens), 2,048 max
        memory_mib=2048.0, max_len=2048, mean_prompt=161.0, mean_output=338.0, requests=300, rate=2.0
    ),
}


@dataclass(frozen=True)
class PagedConfig(Config):
    block_size: int = param(8, "token slots per block", lo=1, hi=64, step=1, label="block size")
    n_blocks: int = param(64, "physical blocks in the pool", lo=2, hi=4096, step=1, label="blocks")
    new_tokens: int = param(8, "tokens each request generates (greedy)", lo=1, hi=64, step=1, label="new tokens")
    max_tokens: int = param(128, "tokens per prompt; a longer one is refused", lo=2, hi=text.MAX_TOKENS)


def bytes_per_token(model: Any) -> int:
    """2 x layers x kv_heads x head_dim x bytes per number of the model as loaded."""
    model = getattr(model, "model", model)
    return arch.of(model).kv_bytes_per_token(next(model.parameters()).element_size())


def simulate(model: models.Loaded | str, config: SimConfig | None = None, **options: Any) -> PagingTrace:
    """Serve one seeded request stream contiguously and paged under the same memory; keep up to MAX_FRAMES frames."""
    loaded = models.resolve(model)
    cfg = SimConfig.make(config, **options)
    per_token = bytes_per_token(loaded)
    capacity = int(cfg.memory_mib * 2**20 // per_token)
    if capacity < cfg.max_len:
        need = cfg.max_len * per_token / 2**20
        raise ConfigError(
            f"{cfg.memory_mib:g} MiB holds {capacity} tokens: not one request of {cfg.max_len} ({need:.1f} MiB)"
        )
    blocks, depth = capacity // cfg.block_size, maths.blocks_for(cfg.max_len, cfg.block_size)
    check_budget(blocks, MAP_BLOCKS, "blocks in the block map", "Use larger blocks or less KV memory.")
    check_budget(
        min(cfg.requests, blocks) * depth,
        MAP_TABLE,
        "block-table cells",
        "Use larger blocks, fewer requests or a shorter longest request.",
    )
    reqs = maths.workload(cfg.requests, cfg.mean_prompt, cfg.mean_output, cfg.max_len, cfg.rate, cfg.seed)
    tokens, span = sum(r.total for r in reqs), max(r.arrival for r in reqs)
    check_budget(tokens, SIM_TOKENS, "prompt and output tokens", "Use fewer requests or shorter prompts and outputs.")
    check_budget(span, SIM_SPAN, "steps of arrivals", "Use fewer requests or a higher arrival rate.")
    limit = span + 4 * tokens + 1000  # preemption recomputes a request: a generous bound on the steps

    def run(policy: str, every: int = 0) -> maths.Simulation:
        return maths.simulate(reqs, capacity, cfg.block_size, cfg.max_len, policy, frame_every=every, max_steps=limit)

    runs = [run(p) for p in maths.POLICIES]
    every = max(1, math.ceil(max(len(r.used) for r in runs) / MAX_FRAMES))
    runs = [run(p, every) for p in maths.POLICIES]
    steps = max(len(r.used) for r in runs)

    def series(name: str) -> np.ndarray:  # (policy, step), zero after a policy is done
        out = np.zeros((len(runs), steps), dtype=np.int64)
        for i, r in enumerate(runs):
            values = getattr(r, name)
            out[i, : len(values)] = values
        return out

    return PagingTrace(
        requests=np.array([[r.arrival, r.prompt, r.output] for r in reqs], dtype=np.int64),
        allocated=series("allocated"),
        used=series("used"),
        running=series("running"),
        waiting=series("waiting"),
        **_frames(runs, every, steps, capacity, cfg),
        block_size=cfg.block_size,
        max_len=cfg.max_len,
        capacity=capacity,
        bytes_per_token=per_token,
        preempted=[r.preempted for r in runs],
        steps=[len(r.used) for r in runs],
        frame_every=every,
        meta=make_meta(loaded.name, seed=cfg.seed, config=cfg.to_dict()),
    ).check()


def _frames(runs: list[maths.Simulation], every: int, steps: int, capacity: int, cfg: SimConfig) -> dict:
    """The two runs' frames on one timeline (a run that finished early shows empty memory)."""
    contiguous, paged = runs
    n_frames = math.ceil(steps / every)
    n_blocks, regions = capacity // cfg.block_size, capacity // cfg.max_len
    width = max([len(f.tables) for f in paged.frames] + [1])
    depth = maths.blocks_for(cfg.max_len, cfg.block_size)
    out = {
        "frame_steps": np.arange(n_frames) * every,
        "owner": np.full((n_frames, n_blocks), -1, dtype=np.int32),
        "fill": np.zeros((n_frames, n_blocks), dtype=np.int16),
        "table_req": np.full((n_frames, width), -1, dtype=np.int32),
        "tables": np.full((n_frames, width, depth), -1, dtype=np.int32),
        "region_req": np.full((n_frames, regions), -1, dtype=np.int32),
        "region_used": np.zeros((n_frames, regions), dtype=np.int32),
        "region_final": np.zeros((n_frames, regions), dtype=np.int32),
    }
    for i, f in enumerate(paged.frames):
        out["owner"][i], out["fill"][i] = f.owner, f.fill
        for slot, (req, table) in enumerate(sorted(f.tables.items())):
            out["table_req"][i, slot] = req
            out["tables"][i, slot, : len(table)] = table
    for i, f in enumerate(contiguous.frames):
        for req, start, length, final in f.regions:
            region = start // cfg.max_len
            out["region_req"][i, region] = req
            out["region_used"][i, region], out["region_final"][i, region] = length, final
    return out


# ---- the real model on a paged cache -------------------------------------------------------------------------


def prompt_ids(tokenizer: Any, system: str, user: str) -> list[int]:
    """The chat-formatted prompt (system and user turns, then the assistant's turn opened)."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        return [int(i) for i in ids]
    return list(tokenizer(f"{system}\n\n{user}\n\n")["input_ids"])


def common_prefix(prompts: list[list[int]]) -> int:
    """Leading tokens every prompt shares, leaving each at least one token of its own to feed."""
    n = 0
    while all(n < len(p) - 1 for p in prompts) and len({p[n] for p in prompts}) == 1:
        n += 1
    return n


def greedy(model: Any, chunks: list[list[int]], cache: Any, new_tokens: int, eos: int | None) -> list[int]:
    """Feed ``chunks`` of prompt tokens into ``cache`` in turn, then generate greedily, one token per forward."""
    out = None
    with torch.no_grad():
        for chunk in chunks:
            if chunk:
                out = model(input_ids=torch.tensor([chunk]), cache=cache, use_cache=True)
        made = []
        for k in range(new_tokens):
            nxt = int(out.logits[0, -1].argmax())
            made.append(nxt)
            if nxt == eos or k == new_tokens - 1:
                break
            out = model(input_ids=torch.tensor([[nxt]]), cache=cache, use_cache=True)
    return made


def generate(
    model: models.Loaded | str,
    users: list[str] | tuple[str, ...] = DEFAULT_USERS,
    config: PagedConfig | None = None,
    system: str = DEFAULT_SYSTEM,
    **options: Any,
) -> PagedRunTrace:
    """Prefill the shared prefix once into a paged cache, fork it per request (its blocks shared), decode each request
    greedily on its fork; then decode the same requests on the default cache and record both."""
    loaded = models.resolve(model)
    cfg = PagedConfig.make(config, **options)
    if not arch.is_causal(loaded.model):
        raise ValueError(f"{loaded.name} is an encoder: it has no KV cache to page")
    if not users or any(not isinstance(u, str) or not u.strip() for u in users):
        raise ValueError("every request needs a non-empty user message")
    prompts = [prompt_ids(loaded.tokenizer, system, u) for u in users]
    for p in prompts:
        if len(p) > cfg.max_tokens:
            raise ValueError(f"a prompt has {len(p)} tokens; the limit is {cfg.max_tokens}")
    prefix = common_prefix(prompts)
    eos = getattr(loaded.tokenizer, "eos_token_id", None)
    pool = BlockPool.for_model(loaded.model, cfg.n_blocks, cfg.block_size)
    try:
        root = PagedCache(pool, "prefix")
        if prefix:
            greedy(loaded.model, [prompts[0][:prefix]], root, 0, eos)  # prefill only: the shared prefix, once
        caches = [root.fork(f"request {i}") for i in range(len(prompts))]
        root.release()
        made = [greedy(loaded.model, [p[prefix:]], c, cfg.new_tokens, eos) for p, c in zip(prompts, caches)]
    except maths.OutOfBlocks as err:
        raise ValueError(f"the pool of {cfg.n_blocks} blocks is too small for these requests ({err})") from None
    reference = [
        greedy(loaded.model, [p[:prefix], p[prefix:]], DynamicCache(config=loaded.model.config), cfg.new_tokens, eos)
        for p in prompts
    ]
    return PagedRunTrace(
        system=system,
        users=list(users),
        prompts=prompts,
        prefix=prefix,
        generated=made,
        reference=reference,
        texts=[loaded.tokenizer.decode(m, skip_special_tokens=True) for m in made],
        tables=[list(c.table) for c in caches],
        copied=[list(c.copied) for c in caches],
        block_size=cfg.block_size,
        n_blocks=cfg.n_blocks,
        blocks_used=pool.blocks.n_used,
        bytes_per_block=pool.bytes_per_block,
        meta=make_meta(loaded.name, bytes_per_token=bytes_per_token(loaded), config=cfg.to_dict()),
    ).check()
