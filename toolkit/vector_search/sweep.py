"""Recall / latency / memory of every index, ours beside FAISS (and hnswlib), in one run (slide "Recall, latency,
memory: measured"; benchmarks/bench_vectors.py; the demo's trade-off view replays the recorded sweep).

Same vectors, same parameters, same held-out queries for everyone: the last ``n_queries`` passages of the
(shuffled) corpus are the queries, the rest the database. Recall@k is measured against exact search; latency is
one query at a time (FAISS and hnswlib on one thread), the way a demo or an API call asks; memory is bytes per
vector (ours: what the index stores, shared tables spread over n; the libraries: their serialised index / n).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.trace import make_meta
from toolkit.vector_search.exact import ExactIndex
from toolkit.vector_search.hnsw import HnswIndex
from toolkit.vector_search.ivf import IvfIndex
from toolkit.vector_search.maths import recall_at_k
from toolkit.vector_search.pq import IvfPqIndex, PqIndex, Sq8Index
from toolkit.vector_search.trace import TradeoffTrace

NPROBES = (1, 2, 4, 8, 16, 32)
EF_SEARCHES = (10, 16, 32, 64, 128)
LIBRARIES = ("ours", "faiss", "hnswlib")


def split(vectors: np.ndarray, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(database, queries): the last n_queries rows are held out as queries."""
    if not 1 <= n_queries < len(vectors) // 2:
        raise ValueError(f"n_queries must be between 1 and half the {len(vectors)} vectors, got {n_queries}")
    return vectors[:-n_queries], vectors[-n_queries:]


def _timed(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[np.ndarray, float]:
    """Ids (nq, k) of one query at a time, and the mean milliseconds per query."""
    t0 = time.perf_counter()
    ids = np.stack([np.asarray(search(q)).reshape(-1) for q in queries])
    return ids, 1e3 * (time.perf_counter() - t0) / len(queries)


def _total(index) -> float:
    """Bytes per vector with the shared tables (centroids, codebooks) spread over the n vectors, as a library's
    serialised index divided by n counts them."""
    return float(index.bytes_per_vector + index.fixed_bytes / max(index.n, 1))


def _serialised_bytes(index: Any, n: int) -> float:
    import faiss

    return float(faiss.serialize_index(index).nbytes) / n


def tradeoff(
    vectors: np.ndarray,
    n_queries: int = 500,
    k: int = 10,
    nlist: int = 64,
    M: int = 16,
    ef_construction: int = 40,
    pq_m: int = 48,
    nprobes: Iterable[int] = NPROBES,
    efs: Iterable[int] = EF_SEARCHES,
    libraries: Iterable[str] = LIBRARIES,
    progress: Callable[[str], None] | None = None,
) -> TradeoffTrace:
    """Every index at every setting, ours and the libraries', on the same split; one row per point."""
    base, queries = split(np.ascontiguousarray(vectors, dtype=np.float32), n_queries)
    n, d = base.shape
    libraries = tuple(libraries)
    nprobes = [p for p in nprobes if p <= nlist]
    say = progress or (lambda _: None)
    rows: list[tuple] = []
    truth = ExactIndex(base).search_batch(queries, k)[0]

    def add(lib, method, param, value, ids, ms, nbytes, build):
        rows.append((lib, method, param, float(value), recall_at_k(ids, truth), ms, nbytes, build))

    # ours
    if "ours" in libraries:
        say("ours: exact")
        ex = ExactIndex(base)
        ids, ms = _timed(lambda q: ex.search(q, k).ids, queries)
        add("ours", "exact", "-", 0, ids, ms, _total(ex), ex.build_seconds)
        say("ours: IVF")
        ivf = IvfIndex(nlist).build(base)
        for p in nprobes:
            ids, ms = _timed(lambda q, p=p: ivf.search(q, k, p).ids, queries)
            add("ours", "ivf", "nprobe", p, ids, ms, _total(ivf), ivf.build_seconds)
        say(f"ours: HNSW (building {n:,} nodes in Python)")
        hnsw = HnswIndex(M, ef_construction).build(base)
        for ef in efs:
            ids, ms = _timed(lambda q, ef=ef: hnsw.search(q, k, ef).ids, queries)
            add("ours", "hnsw", "ef_search", ef, ids, ms, _total(hnsw), hnsw.build_seconds)
        say("ours: PQ, IVF-PQ, SQ8")
        pq = PqIndex(pq_m).build(base)
        ids, ms = _timed(lambda q: pq.search(q, k).ids, queries)
        add("ours", "pq", "m", pq_m, ids, ms, _total(pq), pq.build_seconds)
        ivfpq = IvfPqIndex(nlist, 1, pq_m).build(base)
        for p in nprobes:
            ids, ms = _timed(lambda q, p=p: ivfpq.search(q, k, p).ids, queries)
            add("ours", "ivfpq", "nprobe", p, ids, ms, _total(ivfpq), ivfpq.build_seconds)
        sq = Sq8Index().build(base)
        ids, ms = _timed(lambda q: sq.search(q, k).ids, queries)
        add("ours", "sq8", "bits", 8, ids, ms, _total(sq), sq.build_seconds)
    if "faiss" in libraries:
        rows += _faiss_rows(base, queries, truth, k, nlist, M, ef_construction, pq_m, nprobes, efs, say)
    if "hnswlib" in libraries:
        rows += _hnswlib_rows(base, queries, truth, k, M, ef_construction, efs, say)
    cols = list(zip(*rows))
    return TradeoffTrace(
        library=list(cols[0]),
        method=list(cols[1]),
        param=list(cols[2]),
        value=np.array(cols[3], np.float32),
        recall=np.array(cols[4], np.float32),
        ms_per_query=np.array(cols[5], np.float32),
        bytes_per_vector=np.array(cols[6], np.float32),
        build_seconds=np.array(cols[7], np.float32),
        n_vectors=n,
        n_queries=len(queries),
        k=k,
        dim=d,
        meta=make_meta(
            "", nlist=nlist, M=M, ef_construction=ef_construction, pq_m=pq_m, load_average=list(os.getloadavg())
        ),
    ).check()


def _faiss_rows(base, queries, truth, k, nlist, M, ef_construction, pq_m, nprobes, efs, say) -> list[tuple]:
    import faiss

    faiss.omp_set_num_threads(1)
    n, d = base.shape
    ip = faiss.METRIC_INNER_PRODUCT
    rows = []

    def run(method, index, param, values, setter):
        for cp in (getattr(index, "cp", None), getattr(getattr(index, "pq", None), "cp", None)):
            if cp is not None:  # only the threshold of a warning ("provide at least 39 points per centroid")
                cp.min_points_per_centroid = 1
        t0 = time.perf_counter()
        if not index.is_trained:
            index.train(base)
        index.add(base)
        build = time.perf_counter() - t0
        nbytes = _serialised_bytes(index, n)
        for v in values:
            setter(index, v)
            ids, ms = _timed(lambda q: index.search(q[None, :], k)[1], queries)
            rows.append(("faiss", method, param, float(v), recall_at_k(ids, truth), ms, nbytes, build))

    say("faiss: Flat, IVFFlat, HNSWFlat, PQ, IVFPQ, SQ8")
    run("exact", faiss.IndexFlatIP(d), "-", [0], lambda i, v: None)
    run("ivf", faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, ip), "nprobe", nprobes, _set_nprobe)
    hnsw = faiss.IndexHNSWFlat(d, M, ip)
    hnsw.hnsw.efConstruction = ef_construction
    run("hnsw", hnsw, "ef_search", efs, _set_ef)
    run("pq", faiss.IndexPQ(d, pq_m, 8, ip), "m", [pq_m], lambda i, v: None)
    run("ivfpq", faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, pq_m, 8, ip), "nprobe", nprobes, _set_nprobe)
    run("sq8", faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, ip), "bits", [8], lambda i, v: None)
    return rows


def _set_nprobe(index, v) -> None:
    index.nprobe = int(v)


def _set_ef(index, v) -> None:
    index.hnsw.efSearch = int(v)


def _hnswlib_rows(base, queries, truth, k, M, ef_construction, efs, say) -> list[tuple]:
    import hnswlib

    say("hnswlib: HNSW")
    n, d = base.shape
    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=d)
    index.init_index(max_elements=n, M=M, ef_construction=ef_construction, random_seed=100)
    index.set_num_threads(1)
    index.add_items(base, np.arange(n))
    build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hnsw.bin"
        index.save_index(str(path))
        nbytes = path.stat().st_size / n
    rows = []
    for ef in efs:
        index.set_ef(max(int(ef), k))
        ids, ms = _timed(lambda q: index.knn_query(q[None, :], k=k, num_threads=1)[0].astype(np.int64), queries)
        rows.append(("hnswlib", "hnsw", "ef_search", float(ef), recall_at_k(ids, truth), ms, nbytes, build))
    return rows
