"""Compressed vectors (slide "Scalar and product quantisation"): SQ8, PQ and IVF-PQ, as FAISS defines them.

SQ8 (scalar quantisation, 1 byte per dimension): per dimension, the training minimum v_min and range v_diff;
    code = floor(255 · clip((x - v_min) / v_diff, 0, 1)),   x̂ = v_min + (code + 0.5) / 255 · v_diff.

PQ (product quantisation, m bytes per vector): cut x into m sub-vectors of d/m dimensions; for each position j a
codebook C_j of 2^nbits centroids (k-means on the training sub-vectors); x is stored as the m ids
    code_j = argmin_c |x_j - C_j[c]|^2,   x̂ = [C_1[code_1], ..., C_m[code_m]].
Asymmetric distance (ADC): the query stays exact. One table per query, T[j, c] = q_j · C_j[c], then each vector's
score is m look-ups and a sum: q·x̂ = Σ_j T[j, code_j]. No vector is ever decompressed.

IVF-PQ: an IVF whose cells store the PQ code of the residual r = x - centroid (finer codes, since residuals are
small); score = q·c + Σ_j T[j, code_j(r)], only in the nprobe probed cells.

The indexes keep a reference to the float vectors only to report the exact score and the reconstruction error in
the trace; memory is counted for what a real index stores (codes, ids, codebooks, centroids).
"""

from __future__ import annotations

import time

import numpy as np

from toolkit.vector_search.maths import assign, kmeans, one_blas_thread, pad, top_k
from toolkit.vector_search.trace import PqSearch

PQ_NITER = 25  # FAISS's product quantiser trains each codebook with 25 k-means iterations
IVF_NITER = 10


class ProductQuantizer:
    """m codebooks of 2^nbits centroids over sub-vectors of d/m dimensions."""

    def __init__(self, m: int, nbits: int = 8, seed: int = 1234) -> None:
        if m < 1 or not 1 <= nbits <= 8:
            raise ValueError(f"need m >= 1 and 1 <= nbits <= 8, got m={m}, nbits={nbits}")
        self.m, self.nbits, self.seed = m, nbits, seed
        self.codebooks = np.zeros((0, 0, 0), np.float32)  # (sub, code, d/m)

    @property
    def ksub(self) -> int:
        return 2**self.nbits

    def train(self, x: np.ndarray) -> ProductQuantizer:
        n, d = x.shape
        if d % self.m:
            raise ValueError(f"PQ needs m to divide the dimension: {d} is not a multiple of m={self.m}")
        if n < self.ksub:
            raise ValueError(f"PQ with {self.ksub} centroids per sub-vector needs >= {self.ksub} vectors, got {n}")
        subs = x.reshape(n, self.m, d // self.m)  # (n, sub, d/m)
        self.codebooks = np.stack(
            [kmeans(subs[:, j], self.ksub, niter=PQ_NITER, seed=self.seed) for j in range(self.m)]
        )  # (sub, code, d/m); one seed for every codebook, as FAISS: each starts from the same training rows
        # (a seed per codebook decorrelates their errors: recall@10 about 0.02 higher on our corpus)
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, d) -> (n, sub) uint8: the nearest centroid of each sub-vector."""
        subs = x.reshape(len(x), self.m, -1)  # (n, sub, d/m)
        return np.stack([assign(subs[:, j], self.codebooks[j], spherical=False)[0] for j in range(self.m)], 1).astype(
            np.uint8
        )

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, sub) -> (n, d): each code replaced by its centroid."""
        parts = self.codebooks[np.arange(self.m)[None, :], codes.astype(np.int64)]  # (n, sub, d/m)
        return parts.reshape(len(codes), -1)

    def tables(self, q: np.ndarray) -> np.ndarray:
        """(sub, code): T[j, c] = q_j · C_j[c]."""
        return np.einsum("jcs,js->jc", self.codebooks, q.reshape(self.m, -1))

    def adc(self, tables: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(n,) scores Σ_j T[j, code_j] by table look-up."""
        return tables[np.arange(self.m)[None, :], codes.astype(np.int64)].sum(1)  # (n, sub) looked up, summed


class PqIndex:
    name = "pq"

    def __init__(self, m: int = 48, nbits: int = 8, seed: int = 1234) -> None:
        self.pq = ProductQuantizer(m, nbits, seed)
        self.codes = np.zeros((0, m), np.uint8)
        self.vectors = np.zeros((0, 0), np.float32)  # reference only: true scores and errors in the trace
        self.build_seconds = 0.0

    @one_blas_thread
    def build(self, vectors: np.ndarray) -> PqIndex:
        t0 = time.perf_counter()
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.codes = self.pq.train(self.vectors).encode(self.vectors)
        self.build_seconds = time.perf_counter() - t0
        return self

    @property
    def n(self) -> int:
        return len(self.codes)

    @property
    def bytes_per_vector(self) -> float:
        """What one more vector costs: its m codes (ids are row numbers)."""
        return self.pq.m * self.pq.nbits / 8

    @property
    def fixed_bytes(self) -> float:
        return 4.0 * self.pq.codebooks.size  # m x 256 centroids of d/m floats

    def params(self) -> dict:
        return {"m": self.pq.m, "nbits": self.pq.nbits}

    @one_blas_thread
    def search(self, q: np.ndarray, k: int = 10) -> PqSearch:
        t0 = time.perf_counter()
        q = np.asarray(q, np.float32)
        tables = self.pq.tables(q)
        ids, scores = top_k(self.pq.adc(tables, self.codes), k)
        seconds = time.perf_counter() - t0
        recon = self.pq.decode(self.codes[ids])
        return _trace("pq", self.pq, ids, scores, self.codes[ids], tables, q, self.vectors, recon, seconds, self.n)

    @one_blas_thread
    def search_batch(self, queries: np.ndarray, k: int = 10):
        hits = [self.search(q, k) for q in queries]
        return pad([h.ids for h in hits], k), pad([h.scores for h in hits], k, np.nan)

    def state(self) -> dict[str, np.ndarray]:
        return {"codebooks": self.pq.codebooks, "codes": self.codes, "params": np.array([self.pq.m, self.pq.nbits])}

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], vectors: np.ndarray) -> PqIndex:
        m, nbits = (int(v) for v in state["params"])
        index = cls(m, nbits)
        index.pq.codebooks, index.codes = state["codebooks"], state["codes"]
        index.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return index


class IvfPqIndex:
    name = "ivfpq"

    def __init__(self, nlist: int = 64, nprobe: int = 4, m: int = 48, nbits: int = 8, seed: int = 1234) -> None:
        if nlist < 1 or not 1 <= nprobe <= nlist:
            raise ValueError(f"need 1 <= nprobe <= nlist, got nprobe={nprobe}, nlist={nlist}")
        self.nlist, self.nprobe, self.seed = nlist, nprobe, seed
        self.pq = ProductQuantizer(m, nbits, seed)
        self.centroids = np.zeros((0, 0), np.float32)
        self.cell = np.zeros(0, np.int64)
        self.codes = np.zeros((0, m), np.uint8)
        self.lists: list[np.ndarray] = []
        self.vectors = np.zeros((0, 0), np.float32)
        self.build_seconds = 0.0

    @one_blas_thread
    def build(self, vectors: np.ndarray) -> IvfPqIndex:
        t0 = time.perf_counter()
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.centroids = kmeans(self.vectors, self.nlist, niter=IVF_NITER, seed=self.seed, spherical=True)
        cell = assign(self.vectors, self.centroids, spherical=True)[0]
        residuals = self.vectors - self.centroids[cell]  # (n, d)
        self.codes = self.pq.train(residuals).encode(residuals)
        self._file(cell)
        self.build_seconds = time.perf_counter() - t0
        return self

    def _file(self, cell: np.ndarray) -> None:
        self.cell = cell.astype(np.int64)
        order = np.argsort(self.cell, kind="stable")
        bounds = np.searchsorted(self.cell[order], np.arange(self.nlist + 1))
        self.lists = [order[bounds[c] : bounds[c + 1]] for c in range(self.nlist)]

    @property
    def n(self) -> int:
        return len(self.codes)

    @property
    def bytes_per_vector(self) -> float:
        """What one more vector costs: its m codes and its id in the cell's list."""
        return self.pq.m * self.pq.nbits / 8 + 8.0

    @property
    def fixed_bytes(self) -> float:
        return 4.0 * (self.pq.codebooks.size + self.centroids.size)

    def params(self) -> dict:
        return {"nlist": self.nlist, "nprobe": self.nprobe, "m": self.pq.m, "nbits": self.pq.nbits}

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return self.centroids[self.cell[ids]] + self.pq.decode(self.codes[ids])

    @one_blas_thread
    def search(self, q: np.ndarray, k: int = 10, nprobe: int | None = None) -> PqSearch:
        t0 = time.perf_counter()
        q = np.asarray(q, np.float32)
        probed, probe_scores = top_k(self.centroids @ q, min(nprobe or self.nprobe, self.nlist))
        tables = self.pq.tables(q)  # the same for every cell: q·(c + r̂) = q·c + q·r̂
        cand = np.concatenate([self.lists[c] for c in probed])  # (scanned,)
        base = np.repeat(probe_scores, [len(self.lists[c]) for c in probed])  # (scanned,) q·c of each one's cell
        pos, scores = top_k(base + self.pq.adc(tables, self.codes[cand]), k)
        ids = cand[pos].astype(np.int64)
        seconds = time.perf_counter() - t0
        recon = self.reconstruct(ids)
        args = (self.codes[ids], tables, q, self.vectors, recon, seconds, len(cand))
        return _trace("ivfpq", self.pq, ids, scores, *args, probed=probed)

    @one_blas_thread
    def search_batch(self, queries: np.ndarray, k: int = 10, nprobe: int | None = None):
        hits = [self.search(q, k, nprobe) for q in queries]
        return pad([h.ids for h in hits], k), pad([h.scores for h in hits], k, np.nan)

    def state(self) -> dict[str, np.ndarray]:
        return {
            "centroids": self.centroids,
            "cell": self.cell,
            "codebooks": self.pq.codebooks,
            "codes": self.codes,
            "params": np.array([self.nlist, self.nprobe, self.pq.m, self.pq.nbits]),
        }

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], vectors: np.ndarray) -> IvfPqIndex:
        nlist, nprobe, m, nbits = (int(v) for v in state["params"])
        index = cls(nlist, nprobe, m, nbits)
        index.centroids, index.codes = state["centroids"], state["codes"]
        index.pq.codebooks = state["codebooks"]
        index.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index._file(state["cell"])
        return index


class Sq8Index:
    name = "sq8"

    def __init__(self) -> None:
        self.vmin = np.zeros(0, np.float32)
        self.vdiff = np.zeros(0, np.float32)
        self.codes = np.zeros((0, 0), np.uint8)
        self.vectors = np.zeros((0, 0), np.float32)
        self.build_seconds = 0.0

    def train(self, x: np.ndarray) -> Sq8Index:
        self.vmin = x.min(0).astype(np.float32)
        self.vdiff = (x.max(0) - self.vmin).astype(np.float32)
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        safe = np.where(self.vdiff > 0, self.vdiff, 1).astype(np.float32)
        unit = np.clip((x - self.vmin) / safe, 0, 1)  # (n, d) in [0, 1]
        return np.floor(255 * unit).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.vmin + (codes.astype(np.float32) + 0.5) / 255 * self.vdiff

    @one_blas_thread
    def build(self, vectors: np.ndarray) -> Sq8Index:
        t0 = time.perf_counter()
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.codes = self.train(self.vectors).encode(self.vectors)
        self.build_seconds = time.perf_counter() - t0
        return self

    @property
    def n(self) -> int:
        return len(self.codes)

    @property
    def bytes_per_vector(self) -> float:
        """One byte per dimension."""
        return float(self.codes.shape[1])

    @property
    def fixed_bytes(self) -> float:
        return 8.0 * self.codes.shape[1]  # v_min and v_diff per dimension

    def params(self) -> dict:
        return {"bits": 8}

    @one_blas_thread
    def search(self, q: np.ndarray, k: int = 10) -> PqSearch:
        t0 = time.perf_counter()
        q = np.asarray(q, np.float32)
        w = q * self.vdiff / 255  # q·x̂ = Σ_i q_i v_min,i + Σ_i q_i v_diff,i (code_i + 0.5) / 255
        scores = self.codes.astype(np.float32) @ w + float(q @ self.vmin + 0.5 * w.sum())  # (n,)
        ids, top = top_k(scores, k)
        seconds = time.perf_counter() - t0
        true = self.vectors[ids] @ q
        recon = self.decode(self.codes[ids])
        return PqSearch(
            ids=ids,
            scores=top.astype(np.float32),
            scanned=self.n,
            seconds=seconds,
            method="sq8",
            m=self.codes.shape[1],
            nbits=8,
            codes=self.codes[ids],
            tables=np.zeros((0, 0), np.float32),
            true_scores=true.astype(np.float32),
            recon_error=((self.vectors[ids] - recon) ** 2).sum(1).astype(np.float32),
            hit_vector=self.vectors[ids[0]] if len(ids) else np.zeros(0, np.float32),
            hit_recon=recon[0].astype(np.float32) if len(ids) else np.zeros(0, np.float32),
        ).check()

    @one_blas_thread
    def search_batch(self, queries: np.ndarray, k: int = 10):
        hits = [self.search(q, k) for q in queries]
        return pad([h.ids for h in hits], k), pad([h.scores for h in hits], k, np.nan)

    def state(self) -> dict[str, np.ndarray]:
        return {"vmin": self.vmin, "vdiff": self.vdiff, "codes": self.codes}

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], vectors: np.ndarray) -> Sq8Index:
        index = cls()
        index.vmin, index.vdiff, index.codes = state["vmin"], state["vdiff"], state["codes"]
        index.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return index


def _trace(method, pq, ids, scores, codes, tables, q, vectors, recon, seconds, scanned, probed=None) -> PqSearch:
    """The trace of a PQ / IVF-PQ search: hits, their codes, the query's tables, exact scores, errors |x - x̂|^2."""
    return PqSearch(
        ids=ids.astype(np.int64),
        scores=scores.astype(np.float32),
        scanned=int(scanned),
        seconds=seconds,
        method=method,
        m=pq.m,
        nbits=pq.nbits,
        codes=codes,
        tables=tables.astype(np.float32),
        true_scores=(vectors[ids] @ q).astype(np.float32),
        recon_error=((vectors[ids] - recon) ** 2).sum(1).astype(np.float32),
        probed=np.zeros(0, np.int64) if probed is None else probed.astype(np.int64),
        hit_vector=vectors[ids[0]] if len(ids) else np.zeros(0, np.float32),
        hit_recon=recon[0].astype(np.float32) if len(ids) else np.zeros(0, np.float32),
    ).check()
