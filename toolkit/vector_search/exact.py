"""Exact k-NN (slide "k-NN vs ANN"): score every vector, keep the k best. The reference every index is held to.

    s = X q  (n,)   ids = the k largest s, ties by smaller id

It scans all n vectors per query: O(n d) work, 4 d bytes per vector (float32), nothing to train.
"""

from __future__ import annotations

import time

import numpy as np

from toolkit.vector_search.maths import one_blas_thread, top_k, top_k_rows
from toolkit.vector_search.trace import ExactSearch


class ExactIndex:
    """Brute force over unit vectors; inner product = cosine."""

    name = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        t0 = time.perf_counter()
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (n, d)
        self.build_seconds = time.perf_counter() - t0

    @property
    def n(self) -> int:
        return self.vectors.shape[0]

    @property
    def bytes_per_vector(self) -> float:
        """What one more vector costs: its d floats (ids are implicit: row numbers)."""
        return 4.0 * self.vectors.shape[1]

    @property
    def fixed_bytes(self) -> float:
        return 0.0

    def params(self) -> dict:
        return {}

    @one_blas_thread
    def search(self, q: np.ndarray, k: int = 10) -> ExactSearch:
        t0 = time.perf_counter()
        scores = self.vectors @ np.asarray(q, np.float32)  # (n,)
        ids, top = top_k(scores, k)
        return ExactSearch(
            ids=ids, scores=top.astype(np.float32), scanned=self.n, seconds=time.perf_counter() - t0
        ).check()

    @one_blas_thread
    def search_batch(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(nq, d) -> ids (nq, k), scores (nq, k): one matrix product, then each row's top k."""
        return top_k_rows(np.asarray(queries, np.float32) @ self.vectors.T, k)  # (nq, n) scores
