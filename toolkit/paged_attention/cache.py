"""A paged KV cache that a transformers model really decodes with (slide "PagedAttention: the KV cache in pages").

``BlockPool`` is the physical memory: keys and values of every layer in blocks of ``block_size`` token slots,
(layer, block, kv_head, slot, head_dim), shared by all requests. ``PagedCache`` is one request's view of it: a
transformers ``Cache`` whose block table maps the request's logical blocks to physical ones. At each layer the model
hands it the new keys and values; it writes them into their slots (allocating a block when the last is full,
copying a shared block before writing into it) and gives attention the request's keys and values read back through
the block table, which is what a PagedAttention kernel does inside its loop.

    pool = BlockPool.for_model(model, n_blocks=64, block_size=16)
    cache = PagedCache(pool)
    model.generate(ids, cache=cache, max_new_tokens=8)     # same tokens as the default DynamicCache
    other = cache.fork()                                    # shares every block (copy-on-write)
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from toolkit import arch
from toolkit.paged_attention.maths import BlockAllocator, blocks_for


class BlockPool:
    """Keys and values of every layer in ``n_blocks`` blocks of ``block_size`` slots, with reference counts."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, n_blocks: int, block_size: int, dtype=torch.float32):
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = block_size
        self.keys = torch.zeros(layers, n_blocks, kv_heads, block_size, head_dim, dtype=dtype)
        self.values = torch.zeros_like(self.keys)  # (layer, block, kv_head, slot, head_dim)
        self.blocks = BlockAllocator(n_blocks)
        self.copies = 0  # copy-on-write copies made so far

    @classmethod
    def for_model(cls, model: Any, n_blocks: int, block_size: int) -> BlockPool:
        a = arch.of(model)
        dtype = next(model.parameters()).dtype
        return cls(a.layers, a.kv_heads, a.head_dim, n_blocks, block_size, dtype)

    @property
    def layers(self) -> int:
        return self.keys.shape[0]

    @property
    def bytes_per_block(self) -> int:
        """Keys and values of ``block_size`` tokens in every layer."""
        return 2 * self.keys[:, 0].numel() * self.keys.element_size()

    def copy(self, block: int) -> int:
        """Copy-on-write: a private copy of a shared ``block`` (every layer); the caller drops its share of the old."""
        new = self.blocks.alloc()
        self.keys[:, new] = self.keys[:, block]
        self.values[:, new] = self.values[:, block]
        self.blocks.release(block)
        self.copies += 1
        return new


class PagedLayer(CacheLayerMixin):
    """One layer of a PagedCache: its length, and reads and writes through the request's block table."""

    is_compileable = False
    is_croppable = False

    def __init__(self, cache: PagedCache, index: int):
        super().__init__()
        self.cache, self.index, self.length = cache, index, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Write the new keys and values (1, kv_head, new, head_dim) into their slots; return this request's keys
        and values so far (1, kv_head, length, head_dim), gathered through the block table."""
        if key_states.shape[0] != 1:
            raise ValueError(f"a PagedCache holds one request; got a batch of {key_states.shape[0]}")
        self.is_initialized = True
        pool, start = self.cache.pool, self.length
        end = start + key_states.shape[2]
        self.cache.reserve(start, end)
        table = torch.tensor(self.cache.table)
        pos = torch.arange(start, end)
        block, slot = table[pos // pool.block_size], pos % pool.block_size  # (new,) physical block and slot
        pool.keys[self.index, block, :, slot] = key_states[0].transpose(0, 1)  # (new, kv_head, head_dim)
        pool.values[self.index, block, :, slot] = value_states[0].transpose(0, 1)
        self.length = end
        return self._gather(pool.keys, table, end), self._gather(pool.values, table, end)

    def _gather(self, store: torch.Tensor, table: torch.Tensor, length: int) -> torch.Tensor:
        blocks = store[self.index, table]  # (n_blocks, kv_head, slot, head_dim)
        kv, d = blocks.shape[1], blocks.shape[3]
        return blocks.transpose(0, 1).reshape(kv, -1, d)[None, :, :length]  # (1, kv_head, length, head_dim)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.length = 0


class PagedCache(Cache):
    """One request's KV cache as a block table into a shared BlockPool (a transformers ``Cache``)."""

    def __init__(self, pool: BlockPool, name: str = ""):
        self.pool, self.name = pool, name
        self.table: list[int] = []
        self.copied: list[int] = []  # logical blocks this request copied on write
        super().__init__(layers=[PagedLayer(self, i) for i in range(pool.layers)])

    def __repr__(self) -> str:
        return f"PagedCache({self.name!r}, {self.get_seq_length()} tokens, blocks {self.table})"

    def reserve(self, start: int, end: int) -> None:
        """Make slots start..end-1 writable: private copies of shared blocks in that range, new blocks beyond."""
        bs = self.pool.block_size
        for logical in range(start // bs, min(len(self.table), blocks_for(end, bs))):
            if self.pool.blocks.shared(self.table[logical]):
                self.table[logical] = self.pool.copy(self.table[logical])
                self.copied.append(logical)
        while len(self.table) < blocks_for(end, bs):
            self.table.append(self.pool.blocks.alloc())

    def fork(self, name: str = "") -> PagedCache:
        """A second request that starts from this one's tokens: same block table, every block shared (refcount + 1)."""
        other = PagedCache(self.pool, name)
        other.table = list(self.table)
        for block in self.table:
            self.pool.blocks.share(block)
        for mine, theirs in zip(self.layers, other.layers):
            theirs.length = mine.length
            theirs.is_initialized = mine.is_initialized
        return other

    def release(self) -> None:
        """The request is done: drop its share of every block (a block nobody else shares becomes free)."""
        for block in self.table:
            self.pool.blocks.release(block)
        self.table = []
        for layer in self.layers:
            layer.reset()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a PagedCache does not roll back (no assisted decoding)")
