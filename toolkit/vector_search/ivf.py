"""IVF, the inverted file (slide "IVF: search a few cells"): k-means cuts the space into ``nlist`` cells; a query
scores the ``nlist`` centroids, opens the ``nprobe`` best cells and scans only the vectors filed there.

    train:  C = kmeans(X, nlist)  (spherical: unit centroids, assignment by inner product, as FAISS's IVF-IP)
    add:    list[c] = { i : argmax_c' x_i·C_c' = c }
    search: P = the nprobe largest q·C_c;  candidates = ∪_{c∈P} list[c];  the k largest q·x over them

Work per query ~ nlist + n·nprobe/nlist scores instead of n; a true neighbour filed in an unprobed cell is missed.
Memory: the vectors (4 d bytes each) plus an id per vector (8 bytes in FAISS) and the centroids.
"""

from __future__ import annotations

import time

import numpy as np

from toolkit.vector_search.maths import assign, kmeans, one_blas_thread, pad, top_k
from toolkit.vector_search.trace import IvfSearch

IVF_NITER = 10  # FAISS's IVF trains its coarse quantiser with 10 k-means iterations


class IvfIndex:
    """IVF-Flat over unit vectors: exact scores inside the probed cells."""

    name = "ivf"

    def __init__(self, nlist: int = 64, nprobe: int = 4, seed: int = 1234) -> None:
        if nlist < 1 or not 1 <= nprobe <= nlist:
            raise ValueError(f"need 1 <= nprobe <= nlist, got nprobe={nprobe}, nlist={nlist}")
        self.nlist, self.nprobe, self.seed = nlist, nprobe, seed
        self.centroids = np.zeros((0, 0), np.float32)
        self.vectors = np.zeros((0, 0), np.float32)
        self.cell = np.zeros(0, np.int64)  # (n,) the cell each vector is filed in
        self.lists: list[np.ndarray] = []
        self.build_seconds = 0.0

    @one_blas_thread
    def build(self, vectors: np.ndarray) -> IvfIndex:
        t0 = time.perf_counter()
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (n, d)
        self.centroids = kmeans(self.vectors, self.nlist, niter=IVF_NITER, seed=self.seed, spherical=True)
        self._file(assign(self.vectors, self.centroids, spherical=True)[0])
        self.build_seconds = time.perf_counter() - t0
        return self

    def _file(self, cell: np.ndarray) -> None:
        self.cell = cell.astype(np.int64)
        order = np.argsort(self.cell, kind="stable")  # ids grouped by cell, ascending inside each
        bounds = np.searchsorted(self.cell[order], np.arange(self.nlist + 1))
        self.lists = [order[bounds[c] : bounds[c + 1]] for c in range(self.nlist)]

    @property
    def n(self) -> int:
        return self.vectors.shape[0]

    @property
    def bytes_per_vector(self) -> float:
        """What one more vector costs: its floats and its id in the cell's list (8 bytes, as FAISS)."""
        return 4.0 * self.vectors.shape[1] + 8.0

    @property
    def fixed_bytes(self) -> float:
        return 4.0 * self.centroids.size  # the nlist centroids

    def params(self) -> dict:
        return {"nlist": self.nlist, "nprobe": self.nprobe}

    def sizes(self) -> np.ndarray:
        return np.array([len(lst) for lst in self.lists], dtype=np.int64)

    @one_blas_thread
    def search(self, q: np.ndarray, k: int = 10, nprobe: int | None = None) -> IvfSearch:
        t0 = time.perf_counter()
        nprobe = min(nprobe or self.nprobe, self.nlist)
        q = np.asarray(q, np.float32)
        probed, probe_scores = top_k(self.centroids @ q, nprobe)  # (nprobe,) the best cells
        cand = np.concatenate([self.lists[c] for c in probed])  # (scanned,) ids in the probed cells
        cand_cell = np.repeat(probed, [len(self.lists[c]) for c in probed])
        scores = self.vectors[cand] @ q  # (scanned,)
        pos, top = top_k(scores, k)
        return IvfSearch(
            ids=cand[pos].astype(np.int64),
            scores=top.astype(np.float32),
            scanned=len(cand),
            seconds=time.perf_counter() - t0,
            nlist=self.nlist,
            probed=probed,
            probe_scores=probe_scores.astype(np.float32),
            candidates=cand.astype(np.int64),
            candidate_cell=cand_cell.astype(np.int64),
        ).check()

    @one_blas_thread
    def search_batch(self, queries: np.ndarray, k: int = 10, nprobe: int | None = None):
        hits = [self.search(q, k, nprobe) for q in queries]
        return pad([h.ids for h in hits], k), pad([h.scores for h in hits], k, np.nan)

    def state(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids, "cell": self.cell, "params": np.array([self.nlist, self.nprobe])}

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], vectors: np.ndarray) -> IvfIndex:
        nlist, nprobe = (int(v) for v in state["params"])
        index = cls(nlist, nprobe)
        index.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index.centroids = state["centroids"]
        index._file(state["cell"])
        return index
