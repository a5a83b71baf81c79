"""PagedAttention's bookkeeping on plain numbers (slides "PagedAttention: the KV cache in pages").

The KV cache lives in fixed-size blocks of ``block_size`` token slots; a request's block table maps its logical
blocks (token t is in logical block t // block_size) to physical ones anywhere in memory (Kwon et al. 2023, vLLM).
A block can be shared by several requests (reference counts), and is copied before a shared one is written
(copy-on-write). ``simulate`` serves a stream of requests with continuous batching under a fixed KV memory, either
contiguously (each request reserves ``max_len`` slots in one piece, as systems before vLLM did) or paged (a block
at a time), and counts the memory that holds no token.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from toolkit import turns

POLICIES = ("contiguous", "paged")


class OutOfBlocks(RuntimeError):
    """Every physical block is in use."""


class BlockAllocator:
    """Physical blocks 0 .. n_blocks-1 with reference counts; the lowest free block is handed out first."""

    def __init__(self, n_blocks: int):
        if n_blocks < 1:
            raise ValueError(f"need at least one block, got {n_blocks}")
        self.n_blocks = n_blocks
        self.refs = [0] * n_blocks
        self._free = list(range(n_blocks))  # a heap

    @property
    def n_free(self) -> int:
        return len(self._free)

    @property
    def n_used(self) -> int:
        return self.n_blocks - len(self._free)

    def alloc(self) -> int:
        if not self._free:
            raise OutOfBlocks(f"all {self.n_blocks} blocks are in use")
        block = heapq.heappop(self._free)
        self.refs[block] = 1
        return block

    def share(self, block: int) -> None:
        """One more request points at ``block`` (prefix sharing, a forked request)."""
        if self.refs[block] < 1:
            raise ValueError(f"block {block} is free: nothing to share")
        self.refs[block] += 1

    def release(self, block: int) -> None:
        if self.refs[block] < 1:
            raise ValueError(f"block {block} is already free")
        self.refs[block] -= 1
        if self.refs[block] == 0:
            heapq.heappush(self._free, block)

    def shared(self, block: int) -> bool:
        return self.refs[block] > 1


def blocks_for(tokens: int, block_size: int) -> int:
    """Blocks a request of ``tokens`` tokens holds: ⌈tokens / block_size⌉."""
    return math.ceil(tokens / block_size)


# ---- a stream of requests and a scheduler that serves it ------------------------------------------------------


@dataclass(frozen=True)
class Request:
    id: int
    arrival: int  # step it arrives at
    prompt: int  # prompt tokens
    output: int  # tokens it will generate (unknown to the scheduler)

    @property
    def total(self) -> int:
        return self.prompt + self.output


def workload(
    n: int, mean_prompt: float, mean_output: float, max_len: int, rate: float, seed: int = 0, spread: float = 0.8
) -> list[Request]:
    """``n`` requests with log-normal prompt and output lengths of the given means (heavy-tailed, as chat logs such
    as ShareGPT are), prompt + output <= max_len, arriving as a Poisson process of ``rate`` requests per step."""
    rng = np.random.default_rng(seed)

    def lengths(mean: float) -> np.ndarray:
        return np.maximum(1, np.round(rng.lognormal(math.log(mean) - spread**2 / 2, spread, n))).astype(int)

    prompt, output = lengths(mean_prompt), lengths(mean_output)
    prompt = np.minimum(prompt, max_len - 1)
    output = np.minimum(output, max_len - prompt)
    arrival = np.floor(np.cumsum(rng.exponential(1 / rate, n))).astype(int) if rate > 0 else np.zeros(n, int)
    return [Request(i, int(a), int(p), int(o)) for i, (a, p, o) in enumerate(zip(arrival, prompt, output))]


@dataclass(eq=False)  # compared by identity: `r in running`
class _Running:
    req: Request
    length: int  # tokens in its KV cache now
    start: int = -1  # contiguous: first slot of its reserved region
    table: list[int] = field(default_factory=list)  # paged: its block table


@dataclass
class Frame:
    """What memory looks like after one step. paged: owner (n_blocks,) request id or -1, fill (n_blocks,) tokens in
    the block, tables {request: block table}. contiguous: regions [(request, start, length, final length)]."""

    step: int
    owner: np.ndarray | None = None
    fill: np.ndarray | None = None
    tables: dict[int, list[int]] = field(default_factory=dict)
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)


@dataclass
class Simulation:
    """Per step (step,): allocated and used token slots, requests running and waiting; frames every few steps."""

    policy: str
    allocated: list[int] = field(default_factory=list)
    used: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    finished: int = 0
    preempted: int = 0
    frames: list[Frame] = field(default_factory=list)

    @property
    def waste(self) -> float:
        """Share of the allocated KV memory, summed over the run, that held no token."""
        alloc = sum(self.allocated)
        return 1 - sum(self.used) / alloc if alloc else 0.0

    @property
    def mean_running(self) -> float:
        """Requests served at once, averaged over the steps where any ran."""
        busy = [r for r in self.running if r]
        return sum(busy) / len(busy) if busy else 0.0


def _first_fit(regions: list[_Running], size: int, capacity: int) -> int | None:
    """Lowest start of a free stretch of ``size`` slots between the reserved regions, or None."""
    at = 0
    for r in sorted(regions, key=lambda r: r.start):
        if r.start - at >= size:
            return at
        at = r.start + size
    return at if capacity - at >= size else None


def simulate(
    requests: list[Request],
    capacity: int,
    block_size: int,
    max_len: int,
    policy: str,
    frame_every: int = 0,
    watermark: float = 0.01,
    max_steps: int = 200_000,
) -> Simulation:
    """Serve ``requests`` with continuous batching: every step, admit waiting requests first come first served while
    memory allows, then every running request generates one token; a finished request frees its memory at once.

    contiguous: a request reserves ``max_len`` slots in one piece (first fit) when admitted.
    paged: it takes the blocks its prompt needs (admitted only if a ``watermark`` share of all blocks stays free),
    then one block each time its last is full; when none is free the most recently admitted request is preempted
    (its blocks freed, it goes back to the front of the queue and recomputes later), as vLLM does.
    ``capacity`` is in token slots; a Frame is kept every ``frame_every`` steps (0: none).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if capacity < max_len or capacity < block_size:
        raise ValueError(f"a KV memory of {capacity} token slots cannot hold one request of {max_len} tokens")
    if any(r.total > max_len for r in requests):
        raise ValueError(f"a request is longer than max_len = {max_len}")
    n_blocks = capacity // block_size
    blocks = BlockAllocator(n_blocks)
    sim = Simulation(policy)
    pending = deque(sorted(requests, key=lambda r: (r.arrival, r.id)))
    waiting: deque[Request] = deque()
    running: list[_Running] = []
    step = 0
    while pending or waiting or running:
        turns.turn()  # a long simulation (a hostile workload: 30 s of Python) lends a server's slot here
        if step >= max_steps:
            raise RuntimeError(f"the simulation did not finish in {max_steps} steps")
        while pending and pending[0].arrival <= step:
            waiting.append(pending.popleft())
        while waiting:  # admit, first come first served
            req = waiting[0]
            if policy == "contiguous":
                start = _first_fit(running, max_len, capacity)
                if start is None:
                    break
                running.append(_Running(req, req.prompt, start=start))
            else:
                if blocks.n_free - blocks_for(req.prompt + 1, block_size) < watermark * n_blocks:
                    break
                table = [blocks.alloc() for _ in range(blocks_for(req.prompt, block_size))]
                running.append(_Running(req, req.prompt, table=table))
            waiting.popleft()
        for r in list(running):  # one decoding step: every running request adds one token
            if r not in running:  # preempted during this step
                continue
            if policy == "paged" and r.length == len(r.table) * block_size:
                while not blocks.n_free:
                    victim = running.pop()
                    for b in victim.table:
                        blocks.release(b)
                    waiting.appendleft(victim.req)
                    sim.preempted += 1
                    if victim is r:
                        break
                if r not in running:
                    continue
                r.table.append(blocks.alloc())
            r.length += 1
        used = sum(r.length for r in running)
        alloc = len(running) * max_len if policy == "contiguous" else blocks.n_used * block_size
        sim.allocated.append(alloc)
        sim.used.append(used)
        sim.running.append(len(running))
        sim.waiting.append(len(waiting))
        if frame_every and step % frame_every == 0:
            sim.frames.append(_frame(step, running, n_blocks, block_size, policy))
        for r in [r for r in running if r.length >= r.req.total]:
            running.remove(r)
            for b in r.table:
                blocks.release(b)
            sim.finished += 1
        step += 1
    return sim


def _frame(step: int, running: list[_Running], n_blocks: int, block_size: int, policy: str) -> Frame:
    if policy == "contiguous":
        return Frame(step, regions=[(r.req.id, r.start, r.length, r.req.total) for r in running])
    owner, fill = np.full(n_blocks, -1, dtype=np.int32), np.zeros(n_blocks, dtype=np.int16)
    for r in running:
        for logical, b in enumerate(r.table):
            owner[b] = r.req.id
            fill[b] = min(block_size, r.length - logical * block_size)
    return Frame(step, owner=owner, fill=fill, tables={r.req.id: list(r.table) for r in running})
