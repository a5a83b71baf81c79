"""FlashAttention's maths on plain arrays (slide "FlashAttention: attention in tiles").

Tiled attention with the online softmax (Dao et al. 2022, Algorithm 1; FlashAttention-2's loop order as an option):
queries in blocks of B_r rows, keys and values in blocks of B_c, and per query row a running max m, a running sum
l and an unnormalised output O. A tile (i, j) computes S = Q_i K_jᵀ · scale (+ mask), then

    m_new = max(m, rowmax(S))          rescale = exp(m - m_new)          P = exp(S - m_new)
    l_new = rescale · l + rowsum(P)     O_new = rescale · O + P V_j

and once every tile of a row is done, the row's output is O / l: exactly softmax(QKᵀ · scale + M) V, without the
N × N matrix ever existing. The memory-traffic counts are the paper's (Theorem 2): standard attention reads and
writes Θ(N d + N²) elements of slow memory (HBM), FlashAttention Θ(N² d² / M) for an on-chip memory of M elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ORDERS = ("kv-outer", "q-outer")  # FlashAttention (Algorithm 1): key blocks outside; FlashAttention-2: query blocks


def allowed(n_q: int, n_k: int, causal: bool, window: int | None = None, q0: int = 0, k0: int = 0) -> np.ndarray:
    """(query, key) bool for queries q0 .. q0+n_q and keys k0 .. k0+n_k: which keys each query may see. Causal:
    j <= i; a sliding window keeps the ``window`` nearest keys (causal: the last ``window``, itself included)."""
    i, j = np.arange(q0, q0 + n_q)[:, None], np.arange(k0, k0 + n_k)[None, :]
    ok = np.ones((n_q, n_k), dtype=bool)
    if causal:
        ok &= j <= i
    if window is not None:
        ok &= (i - j < window) if causal else (np.abs(i - j) < window)
    return ok


def reference(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, scale: float | None = None, window: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Eager attention on one head: (output (query, d), weights (query, key)), the N × N matrix materialised."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q.astype(np.float64) @ k.astype(np.float64).T) * scale  # (query, key)
    s = np.where(allowed(len(q), len(k), causal, window), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return p @ v.astype(np.float64), p


@dataclass(frozen=True)
class Tile:
    """One tile (i, j) after it ran: rows [r0, r1) of the queries, keys [c0, c1). ``skipped``: fully masked, never
    computed (causal tiles above the diagonal). m, l, rescale: (rows,); out: (rows, d) the unnormalised O."""

    i: int
    j: int
    r0: int
    r1: int
    c0: int
    c1: int
    skipped: bool
    m: np.ndarray
    l: np.ndarray
    rescale: np.ndarray
    out: np.ndarray


def tile_order(n_row_blocks: int, n_col_blocks: int, order: str = "kv-outer") -> list[tuple[int, int]]:
    """(i, j) in the order the loops visit them: key blocks outside (Algorithm 1) or query blocks outside (FA-2)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if order == "kv-outer":
        return [(i, j) for j in range(n_col_blocks) for i in range(n_row_blocks)]
    return [(i, j) for i in range(n_row_blocks) for j in range(n_col_blocks)]


def tiled(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    block_q: int,
    block_k: int,
    causal: bool,
    scale: float | None = None,
    window: int | None = None,
    order: str = "kv-outer",
) -> tuple[np.ndarray, list[Tile]]:
    """Attention of one head, tile by tile with the online softmax: (output (query, d), the tiles in loop order).

    q: (query, d), k and v: (key, d). Only one B_r × B_c block of scores exists at any time."""
    if block_q < 1 or block_k < 1:
        raise ValueError(f"block sizes must be >= 1, got B_r={block_q}, B_c={block_k}")
    n, nk, d = len(q), len(k), q.shape[-1]
    scale = d**-0.5 if scale is None else scale
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    m = np.full(n, -np.inf)  # running max per query row
    l = np.zeros(n)  # running sum of exp(s - m)
    acc = np.zeros((n, d))  # running unnormalised output
    tiles = []
    for i, j in tile_order(math.ceil(n / block_q), math.ceil(nk / block_k), order):
        r0, r1, c0, c1 = i * block_q, min(n, (i + 1) * block_q), j * block_k, min(nk, (j + 1) * block_k)
        ok = allowed(r1 - r0, c1 - c0, causal, window, r0, c0)  # (B_r, B_c) this tile's mask, from indices
        if not ok.any():  # fully masked: the kernel never loads it
            rows = slice(r0, r1)
            skip = Tile(i, j, r0, r1, c0, c1, True, m[rows].copy(), l[rows].copy(), np.ones(r1 - r0), acc[rows].copy())
            tiles.append(skip)
            continue
        s = np.where(ok, q[r0:r1] @ k[c0:c1].T * scale, -np.inf)  # (B_r, B_c): the only scores that exist
        m_new = np.maximum(m[r0:r1], s.max(-1))
        safe = np.where(np.isfinite(m_new), m_new, 0.0)  # a row with nothing visible yet stays at -inf
        rescale = np.where(np.isfinite(m[r0:r1]), np.exp(m[r0:r1] - safe), 0.0)
        p = np.exp(s - safe[:, None])  # (B_r, B_c), 0 where masked
        l[r0:r1] = rescale * l[r0:r1] + p.sum(-1)
        acc[r0:r1] = rescale[:, None] * acc[r0:r1] + p @ v[c0:c1]
        m[r0:r1] = m_new
        tiles.append(Tile(i, j, r0, r1, c0, c1, False, m_new.copy(), l[r0:r1].copy(), rescale, acc[r0:r1].copy()))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(l[:, None] > 0, acc / l[:, None], 0.0)
    return out, tiles


# ---- memory traffic (FlashAttention paper, Section 3.2 and Theorem 2) ------------------------------------------


def io_standard(n: int, d: int) -> int:
    """Elements read from and written to HBM by standard attention (the paper's Algorithm 0): read Q, K (2Nd),
    write S (N²); read S, write P (2N²); read P and V (N² + Nd), write O (Nd). Total 4N² + 4Nd."""
    return 4 * n * n + 4 * n * d


BYTES_PER_NUMBER = 2  # fp16 / bf16, as in the paper's count


def on_chip(kb: float, bytes_per_number: int = BYTES_PER_NUMBER) -> int:
    """Numbers an on-chip memory of ``kb`` KB holds (the M of Algorithm 1)."""
    return int(float(kb) * 1024 / bytes_per_number)


def block_sizes(d: int, sram: int) -> tuple[int, int]:
    """(B_r, B_c) of Algorithm 1 for an on-chip memory of ``sram`` elements: B_c = ⌈M / 4d⌉, B_r = min(B_c, d)."""
    if sram < 4 * d:
        raise ValueError(f"on-chip memory of {sram} elements cannot hold one row of Q, K, V and O (4d = {4 * d})")
    b_c = math.ceil(sram / (4 * d))
    return min(b_c, d), b_c


def io_flash(n: int, d: int, sram: int) -> int:
    """Elements read from and written to HBM by Algorithm 1: initialise O, l, m (Nd + 2N); each of the T_c key/value
    blocks is read once (2Nd in all); for each of them every query block reads Q_i, O_i, l_i, m_i and writes O_i, l_i,
    m_i back: T_c × N (3d + 4). With T_c = ⌈N / B_c⌉ ≈ 4Nd / M this is Θ(N² d² / M)."""
    _, b_c = block_sizes(d, sram)
    t_c = math.ceil(n / b_c)
    return n * d + 2 * n + 2 * n * d + t_c * n * (3 * d + 4)


def io_tiles(tiles: list[Tile], d: int, order: str = "kv-outer") -> int:
    """Elements a tiled run as given moves between slow and fast memory (skipped tiles cost nothing).

    kv-outer (Algorithm 1): K_j, V_j once per key block; per computed tile Q_i, O_i, l_i, m_i in and O_i, l_i, m_i out.
    q-outer (FlashAttention-2): Q_i once and O_i, l_i written once per query block; K_j, V_j per computed tile.
    ``tiles`` need only i, j, r0, r1, c0, c1 and skipped (``Tile`` or ``FlashTrace.extents()``)."""
    done = [t for t in tiles if not t.skipped]
    if order == "kv-outer":
        kv = sum(2 * (t.c1 - t.c0) * d for t in {t.j: t for t in done}.values())
        return kv + sum((t.r1 - t.r0) * (3 * d + 4) for t in done)
    rows = {t.i: t for t in done}.values()
    return sum((t.r1 - t.r0) * (2 * d + 1) for t in rows) + sum(2 * (t.c1 - t.c0) * d for t in done)
