"""PagedAttention traces (slide "PagedAttention: the KV cache in pages"): a scheduler simulation under a fixed KV
memory (``PagingTrace``, made by ``paged_attention.simulate``) and a real SmolLM2 run on a paged cache with a shared
prefix (``PagedRunTrace``, made by ``paged_attention.generate``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.paged_attention.maths import POLICIES, blocks_for
from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class PagingTrace(Trace):
    """One stream of requests served twice under the same KV memory: contiguous (index 0) and paged (index 1).

    requests: (request, 3) arrival step, prompt tokens, output tokens. Per policy and step (policy, step):
    allocated and used token slots, running and waiting requests (zeros once a policy has served everything).
    Frames every ``frame_every`` steps (frame,): frame_steps; paged: owner (frame, block) request id or -1, fill
    (frame, block) tokens in the block, table_req (frame, slot) the running requests (-1 pads), tables
    (frame, slot, logical block) their block tables (-1 pads); contiguous: region_req, region_used, region_final
    (frame, region) the request in each max_len region, its tokens now and at the end.
    """

    kind: ClassVar[str] = "paged_attention_sim"
    requests: np.ndarray
    allocated: np.ndarray
    used: np.ndarray
    running: np.ndarray
    waiting: np.ndarray
    frame_steps: np.ndarray
    owner: np.ndarray
    fill: np.ndarray
    table_req: np.ndarray
    tables: np.ndarray
    region_req: np.ndarray
    region_used: np.ndarray
    region_final: np.ndarray
    block_size: int
    max_len: int
    capacity: int
    bytes_per_token: int
    preempted: list[int]
    steps: list[int]
    frame_every: int = 1
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def waste(self) -> np.ndarray:
        """(policy,) share of allocated memory, summed over the run, that held no token."""
        return 1 - self.used.sum(1) / np.maximum(self.allocated.sum(1), 1)

    @property
    def mean_running(self) -> np.ndarray:
        """(policy,) requests served at once, averaged over the steps where any ran."""
        busy = self.running > 0
        return (self.running * busy).sum(1) / np.maximum(busy.sum(1), 1)

    @property
    def n_blocks(self) -> int:
        return self.capacity // self.block_size

    def check(self) -> PagingTrace:
        shape = self.allocated.shape
        self._require(len(shape) == 2 and shape[0] == len(POLICIES), "series must be (policy, step)")
        for name in ("used", "running", "waiting"):
            self._require(getattr(self, name).shape == shape, f"{name} must be (policy, step) like allocated")
        self._require(bool((self.used <= self.allocated).all()), "a policy used more slots than it allocated")
        self._require(bool((self.allocated <= self.capacity).all()), "a policy allocated more than the memory")
        slack = self.allocated[1] - self.used[1]
        self._require(
            bool((slack < np.maximum(self.running[1], 1) * self.block_size).all()),
            "paging wastes at most the unfilled part of each request's last block",
        )
        self._require(bool((self.allocated[0] == self.running[0] * self.max_len).all()), "contiguous reserves max_len")
        f, b = len(self.frame_steps), self.n_blocks
        self._require(self.owner.shape == self.fill.shape == (f, b), "owner and fill must be (frame, block)")
        self._require(bool((self.fill <= self.block_size).all()), "a block holds at most block_size tokens")
        self._require(self.tables.shape[:2] == self.table_req.shape and self.tables.shape[0] == f, "tables per frame")
        regions = self.capacity // self.max_len
        for name in ("region_req", "region_used", "region_final"):
            self._require(getattr(self, name).shape == (f, regions), f"{name} must be (frame, region)")
        self._require(self.requests.ndim == 2 and self.requests.shape[1] == 3, "requests must be (request, 3)")
        return self

    def frame(self, step: int) -> int:
        """Index of the frame nearest to ``step`` (clamped)."""
        return int(np.clip(np.searchsorted(self.frame_steps, step, side="right") - 1, 0, len(self.frame_steps) - 1))


@register
@dataclass(frozen=True)
class PagedRunTrace(Trace):
    """Requests with a common prefix (the system prompt) decoded greedily by a real model on one paged KV cache.

    prompts: each request's token ids; prefix: how many leading tokens they share (prefilled once, its blocks
    shared). generated: tokens each request produced on the paged cache; reference: the same requests on the default
    transformers cache. tables: each request's block table at the end; copied: the logical blocks each request
    copied on write (a shared block it was about to write into).
    """

    kind: ClassVar[str] = "paged_attention_run"
    system: str
    users: list[str]
    prompts: list[list[int]]
    prefix: int
    generated: list[list[int]]
    reference: list[list[int]]
    texts: list[str]
    tables: list[list[int]]
    copied: list[list[int]]
    block_size: int
    n_blocks: int
    blocks_used: int
    bytes_per_block: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def copies(self) -> int:
        return sum(len(c) for c in self.copied)

    @property
    def same(self) -> bool:
        """Every request produced the same tokens as on the default cache."""
        return self.generated == self.reference

    @property
    def lengths(self) -> list[int]:
        """Tokens each request holds in the cache: its prompt and what it generated (the last token is not fed)."""
        return [len(p) + max(len(g) - 1, 0) for p, g in zip(self.prompts, self.generated)]

    @property
    def blocks_alone(self) -> int:
        """Blocks the requests would hold without sharing: ⌈length / block_size⌉ each."""
        return sum(blocks_for(n, self.block_size) for n in self.lengths)

    @property
    def shared(self) -> list[int]:
        """Physical blocks in every request's table."""
        common = set(self.tables[0]).intersection(*map(set, self.tables[1:]))
        return sorted(common)

    def check(self) -> PagedRunTrace:
        n = len(self.users)
        for name in ("prompts", "generated", "reference", "texts", "tables", "copied"):
            self._require(len(getattr(self, name)) == n, f"one {name} entry per request")
        self._require(self.same, "the paged cache generated other tokens than the default cache")
        for table, length in zip(self.tables, self.lengths):
            self._require(len(table) == blocks_for(length, self.block_size), "a block table has the wrong length")
        self._require(0 <= self.prefix <= min(len(p) for p in self.prompts), "the prefix is longer than a prompt")
        self._require(all(p[: self.prefix] == self.prompts[0][: self.prefix] for p in self.prompts), "prefix differs")
        self._require(self.blocks_used == len({b for t in self.tables for b in t}), "blocks_used must count tables")
        return self
