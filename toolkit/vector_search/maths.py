"""Vector search maths on plain arrays (slides "k-NN vs ANN", "IVF", "Product quantisation").

Scores are inner products: on unit vectors s(q, x) = q·x = cos(q, x) = 1 - |q - x|^2 / 2, so the largest inner
product is the nearest neighbour. Ties are broken by the smaller id, as a stable sort does.

k-means (Lloyd): assign each point to its best centroid, move each centroid to the mean of its points, repeat.
``spherical`` re-normalises the centroids after each step and assigns by inner product (what FAISS does for an
inner-product IVF); otherwise assignment is by squared L2 distance (PQ codebooks). As in FAISS: the centroids
start at distinct random training points, at most ``max_points_per_centroid`` points per centroid are sampled,
and an empty cluster takes half of a large one (split with a tiny symmetric perturbation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

try:  # OpenBLAS's threads make the small products of these indexes 10-80x dearer on two busy cores
    from threadpoolctl import ThreadpoolController

    _BLAS = ThreadpoolController()
except ImportError:  # optional: without it numpy keeps its default threads
    _BLAS = None

SPLIT_EPS = 1.0 / 1024.0  # FAISS's perturbation when an empty centroid takes half of another cluster


def one_blas_thread(fn: Callable) -> Callable:
    """Run ``fn`` with numpy's BLAS on one thread. Its products here are small (a 40 x 384 Gram matrix, a k-means
    step on 16-dim sub-vectors): on 2 cores that other work keeps busy, OpenBLAS's second thread waits and spins,
    measured at 80x the CPU time of one thread for the Gram matrix. The thread count is process-wide and restored
    on exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _BLAS is None:
            return fn(*args, **kwargs)
        with _BLAS.limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest scores of a (n,) array, best first, ties by smaller index: (ids (k,), scores (k,))."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, scores.dtype)
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]  # the k best, unordered (ties at the edge: see below)
        edge = scores[part].min()
        part = np.flatnonzero(scores >= edge)  # every score tied with the k-th one, so ties go to small ids
    else:
        part = np.arange(n)
    order = np.lexsort((part, -scores[part]))[:k]  # by score descending, then id ascending
    ids = part[order]
    return ids.astype(np.int64), scores[ids]


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``top_k`` of each row of a (nq, n) array: ids (nq, k), scores (nq, k)."""
    out = [top_k(row, k) for row in scores]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def pad(rows: list[np.ndarray], k: int, fill: float = -1) -> np.ndarray:
    """Rows of up to k entries as one (nq, k) array, short rows filled (an index may find fewer than k)."""
    is_float = isinstance(fill, float) or any(r.dtype.kind == "f" for r in rows)
    out = np.full((len(rows), k), fill, dtype=np.float32 if is_float else np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """|found ∩ truth| / |truth| averaged over queries; found, truth: (nq, k) ids (-1 = nothing found)."""
    found, truth = np.atleast_2d(found), np.atleast_2d(truth)
    hits = [len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth)]
    return float(np.sum(hits) / truth.size) if truth.size else 0.0


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows left at zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def assign(x: np.ndarray, centroids: np.ndarray, spherical: bool) -> tuple[np.ndarray, np.ndarray]:
    """Best centroid of each row: (labels (n,), score (n,)); score = inner product, or -squared distance."""
    ip = x @ centroids.T  # (n, k)
    if spherical:
        best = ip.argmax(1)
        return best, ip[np.arange(len(x)), best]
    d2 = (centroids * centroids).sum(1)[None, :] - 2 * ip  # (n, k): |c|^2 - 2 x.c (|x|^2 is the same per row)
    best = d2.argmin(1)
    return best, -(d2[np.arange(len(x)), best] + (x * x).sum(1))


@one_blas_thread
def kmeans(
    x: np.ndarray,
    k: int,
    niter: int = 25,
    seed: int = 1234,
    spherical: bool = False,
    max_points_per_centroid: int = 256,
) -> np.ndarray:
    """Lloyd's k-means: (n, d) points -> (k, d) float32 centroids. Needs n >= k."""
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    if k < 1 or n < k:
        raise ValueError(f"k-means needs at least as many points as centroids: {n} points, {k} centroids")
    rng = np.random.default_rng(seed)
    if n > k * max_points_per_centroid:  # FAISS samples the training set down to this size
        x = x[np.sort(rng.choice(n, k * max_points_per_centroid, replace=False))]
        n = x.shape[0]
    c = x[rng.choice(n, k, replace=False)].copy()  # (k, d) distinct random points
    for _ in range(niter):
        labels, _ = assign(x, c, spherical)
        sums = np.zeros_like(c)
        np.add.at(sums, labels, x)
        counts = np.bincount(labels, minlength=k).astype(np.float32)
        filled = counts > 0
        c[filled] = sums[filled] / counts[filled, None]
        _split_empty(c, counts, rng)
        if spherical:
            c = normalize(c)
    return c.astype(np.float32)


def _split_empty(c: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> None:
    """An empty centroid copies a cluster chosen with probability ~ (size - 1), both nudged apart (in place)."""
    for empty in np.flatnonzero(counts == 0):
        weights = np.maximum(counts - 1, 0)
        if weights.sum() == 0:
            return
        big = rng.choice(len(c), p=weights / weights.sum())
        c[empty] = c[big]
        sign = np.where(np.arange(c.shape[1]) % 2 == 0, 1.0, -1.0).astype(np.float32)
        c[empty] *= 1 + SPLIT_EPS * sign
        c[big] *= 1 - SPLIT_EPS * sign
        counts[empty] = counts[big] / 2
        counts[big] -= counts[empty]


@one_blas_thread
def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two directions of largest spread (PCA): (mean (d,), unit axes (2, d), share of the variance (2,))."""
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)  # vt: (min(n, d), d)
    var = s**2
    return mean.astype(np.float32), vt[:2].astype(np.float32), (var[:2] / max(var.sum(), 1e-12)).astype(np.float32)


@one_blas_thread
def lda_2d(x: np.ndarray, labels: np.ndarray, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two directions that best separate the labelled groups (Fisher's LDA): maximise between-group over
    within-group spread, w = argmax (wᵀ S_b w) / (wᵀ S_w w). Returns (mean (d,), unit axes (2, d), the share of
    the total variance along each axis (2,)). A 2-D shadow of 384 dimensions: it shows cells apart that PCA's
    largest-spread axes draw on top of each other. Needs at least 3 groups."""
    mean = x.mean(0)
    groups = np.unique(labels)
    centres = np.stack([x[labels == g].mean(0) for g in groups])  # (group, d)
    within = sum((x[labels == g] - c).T @ (x[labels == g] - c) for g, c in zip(groups, centres)) / len(x)  # (d, d)
    weights = np.array([(labels == g).mean() for g in groups])
    between = ((centres - mean).T * weights) @ (centres - mean)  # (d, d)
    L = np.linalg.cholesky(within + ridge * np.eye(x.shape[1]))  # S_w = L Lᵀ: whiten, then an ordinary eigenproblem
    Li = np.linalg.inv(L)
    _, vecs = np.linalg.eigh(Li @ between @ Li.T)
    axes = (Li.T @ vecs[:, ::-1][:, :2]).T  # (2, d) the two largest
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    spread = ((x - mean) @ axes.T).var(0) / max(float(((x - mean) ** 2).sum(1).mean()), 1e-12)
    return mean.astype(np.float32), axes.astype(np.float32), spread.astype(np.float32)


def project(x: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, 2) coordinates on the principal axes."""
    return ((np.atleast_2d(x) - mean) @ axes.T).astype(np.float32)
