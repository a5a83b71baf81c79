"""PagedAttention (slide "PagedAttention: the KV cache in pages"): a paged KV cache SmolLM2 decodes with, prefix
sharing with copy-on-write, and a scheduler simulation of contiguous against paged KV memory.

    from toolkit import paged_attention
    run = paged_attention.generate("smollm2-135m")          # PagedRunTrace: same tokens as the default cache
    sim = paged_attention.simulate("smollm2-135m")          # PagingTrace: memory wasted, requests at once

maths: block allocator, request stream, scheduler; cache: BlockPool and PagedCache (a transformers Cache);
capture: simulate and generate; trace: PagingTrace, PagedRunTrace; figures: block map, block tables, waste, sharing.
"""

from toolkit.paged_attention import figures
from toolkit.paged_attention.cache import BlockPool, PagedCache, PagedLayer
from toolkit.paged_attention.capture import (
    DEFAULT_SYSTEM,
    DEFAULT_USERS,
    PRESETS,
    PagedConfig,
    SimConfig,
    bytes_per_token,
    common_prefix,
    generate,
    greedy,
    prompt_ids,
    simulate,
)
from toolkit.paged_attention.maths import POLICIES, BlockAllocator, OutOfBlocks, Request, blocks_for, workload
from toolkit.paged_attention.trace import PagedRunTrace, PagingTrace

__all__ = [
    "generate",
    "simulate",
    "PagedConfig",
    "SimConfig",
    "PRESETS",
    "PagedRunTrace",
    "PagingTrace",
    "BlockPool",
    "PagedCache",
    "PagedLayer",
    "BlockAllocator",
    "OutOfBlocks",
    "Request",
    "POLICIES",
    "DEFAULT_SYSTEM",
    "DEFAULT_USERS",
    "blocks_for",
    "bytes_per_token",
    "common_prefix",
    "greedy",
    "prompt_ids",
    "workload",
    "figures",
]
