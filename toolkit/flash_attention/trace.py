"""FlashTrace: one head's real Q, K, V and every tile of a tiled, online-softmax run over them (made by
``flash_attention.capture``; slide "FlashAttention: attention in tiles")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from toolkit.flash_attention.maths import ORDERS, allowed, io_tiles
from toolkit.trace import Trace, register

PARITY = 1e-4  # a trace whose tiled output is further than this from eager attention is refused


class Extent(NamedTuple):
    i: int
    j: int
    r0: int
    r1: int
    c0: int
    c1: int
    skipped: bool


@register
@dataclass(frozen=True)
class FlashTrace(Trace):
    """One head of one layer, attention computed in tiles.

    q, k, v: (pos, head_dim) what the model's attention multiplied (q and k after RoPE; k and v of the head's
    key/value head). weights: (query, key) the model's own eager attention weights; reference: (query, head_dim)
    weights @ v, the head's attention output. output: (query, head_dim) the tiled result.
    Per tile in loop order (tile,): tile_i, tile_j (block indices), skipped (fully masked, never computed);
    m, l, rescale: (tile, block_q) the running max, running sum and the factor exp(m_old - m_new) the partial output
    was multiplied by (NaN past the last query of a short final block); partial: (tile, block_q, head_dim) the
    unnormalised running output O after the tile.
    """

    kind: ClassVar[str] = "flash_attention"
    tokens: list[str]
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    weights: np.ndarray
    reference: np.ndarray
    output: np.ndarray
    tile_i: np.ndarray
    tile_j: np.ndarray
    skipped: np.ndarray
    m: np.ndarray
    l: np.ndarray
    rescale: np.ndarray
    partial: np.ndarray
    block_q: int
    block_k: int
    order: str
    causal: bool
    layer: int
    head: int
    kv_head: int
    scale: float
    window: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.tokens)

    @property
    def n_tiles(self) -> int:
        return len(self.tile_i)

    @property
    def error(self) -> float:
        """Largest difference between the tiled output and the model's eager attention output."""
        return float(np.abs(self.output - self.reference).max())

    def mask(self) -> np.ndarray:
        """(query, key) bool: the cells the model may attend to."""
        return allowed(self.n, self.n, self.causal, self.window)

    def check(self) -> FlashTrace:
        n, d, t = self.n, self.q.shape[-1], self.n_tiles
        for name in ("q", "k", "v", "reference", "output"):
            self._require(getattr(self, name).shape == (n, d), f"{name} must be (pos, head_dim) = ({n}, {d})")
        self._require(self.weights.shape == (n, n), "weights must be (query, key)")
        self._require(self.order in ORDERS, f"unknown loop order {self.order!r}")
        self._require(self.block_q >= 1 and self.block_k >= 1, "block sizes must be >= 1")
        rows, cols = -(-n // self.block_q), -(-n // self.block_k)
        self._require(t == rows * cols, f"{rows} x {cols} blocks make {rows * cols} tiles, not {t}")
        self._require(self.tile_j.shape == self.tile_i.shape == self.skipped.shape == (t,), "one entry per tile")
        for name in ("m", "l", "rescale"):
            self._require(getattr(self, name).shape == (t, self.block_q), f"{name} must be (tile, block_q)")
        self._require(self.partial.shape == (t, self.block_q, d), "partial must be (tile, block_q, head_dim)")
        self._require(bool(np.isfinite(self.output).all()), "the tiled output has NaN or inf")
        self._require(self.error <= PARITY, f"tiled output differs from eager attention by {self.error:.2e}")
        return self

    def rows(self, i: int) -> slice:
        """Query positions of row block i."""
        return slice(i * self.block_q, min(self.n, (i + 1) * self.block_q))

    def cols(self, j: int) -> slice:
        return slice(j * self.block_k, min(self.n, (j + 1) * self.block_k))

    def state(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(m, l, O) per query row after the first ``step`` tiles: (pos,), (pos,), (pos, head_dim); rows not reached
        yet have m = -inf, l = 0, O = 0."""
        m, l = np.full(self.n, -np.inf), np.zeros(self.n)
        o = np.zeros((self.n, self.q.shape[-1]))
        for s in range(min(max(step, 0), self.n_tiles)):
            rows = self.rows(int(self.tile_i[s]))
            k = rows.stop - rows.start
            m[rows], l[rows], o[rows] = self.m[s, :k], self.l[s, :k], self.partial[s, :k]
        return m, l, o

    def extents(self) -> list[Extent]:
        """Each tile's block indices, rows, columns and whether it was skipped, in loop order."""
        out = []
        for i, j, s in zip(self.tile_i.tolist(), self.tile_j.tolist(), self.skipped.tolist()):
            r, c = self.rows(i), self.cols(j)
            out.append(Extent(i, j, r.start, r.stop, c.start, c.stop, bool(s)))
        return out

    def moved(self) -> int:
        """Numbers this run moved between slow and on-chip memory (``maths.io_tiles``)."""
        return io_tiles(self.extents(), self.q.shape[-1], self.order)

    def row_steps(self, row: int) -> np.ndarray:
        """Indices (in loop order) of the tiles that update query ``row``."""
        return np.flatnonzero(self.tile_i == row // self.block_q)
