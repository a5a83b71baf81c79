"""Vector search capture (slides "k-NN vs ANN" to "The search flow"): one query through every index of a corpus.

    flow: embed the query with the corpus's own encoder -> each index finds its k ids -> fetch the passages
    recall@k of each index = |its ids ∩ exact ids| / k

Indexes are built once per (corpus, build settings), saved under the corpus's cache folder
($LECTURE_CACHE/vectors/<corpus>/indexes/) and kept in memory for at most MAX_OPEN sets, so a query costs an
embedding and the searches, never a build.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import models
from toolkit.config import Config, param
from toolkit.trace import make_meta
from toolkit.vector_search import corpus as corpora
from toolkit.vector_search.exact import ExactIndex
from toolkit.vector_search.hnsw import HnswIndex
from toolkit.vector_search.ivf import IvfIndex
from toolkit.vector_search.maths import lda_2d, pca_2d, project
from toolkit.vector_search.pq import IvfPqIndex, PqIndex, Sq8Index
from toolkit.vector_search.trace import METHODS, CorpusMap, QueryTrace

INDEX_RECIPE = 1  # bump when an index's training or layout changes: saved indexes of older recipes are not read
MAX_OPEN = 2  # index sets kept in memory (a set of the 7,341-passage corpus is about 40 MB)
MAX_QUERY_CHARS = 2_000
PQ_M_CHOICES = (8, 12, 16, 24, 32, 48, 64, 96)  # divisors of MiniLM's 384 dimensions


@dataclass(frozen=True)
class VectorConfig(Config):
    corpus: str = param("stdlib", "stdlib (Python's docs), sample (3,000 of them, committed) or an indexed folder")
    k: int = param(10, "results per index (recall is measured at this k)", lo=1, hi=50, step=1)
    nlist: int = param(64, "IVF cells (k-means centroids)", lo=4, hi=1024, step=1)
    nprobe: int = param(4, "IVF cells opened per query", lo=1, hi=1024, step=1)
    M: int = param(16, "HNSW links per node (2M on layer 0)", lo=4, hi=64, step=1)
    ef_construction: int = param(40, "HNSW candidate list while inserting", lo=8, hi=400, step=1, label="ef build")
    ef_search: int = param(16, "HNSW candidate list at query time (at least k)", lo=1, hi=512, step=1, label="ef")
    pq_m: int = param(48, "PQ sub-vectors (bytes per vector at 8 bits)", choices=PQ_M_CHOICES, label="PQ m")
    methods: tuple[str, ...] = param(METHODS, "indexes to query (exact is always run)", choices=METHODS)

    def problems(self) -> list[str]:
        if self.nprobe > self.nlist:
            return [f"nprobe ({self.nprobe}) cannot exceed nlist ({self.nlist}): lower nprobe or raise nlist"]
        return []

    def build_key(self) -> tuple:
        return (self.nlist, self.M, self.ef_construction, self.pq_m)


class Indexes:
    """Every index over one corpus, built with one config's build settings (search settings come per query)."""

    def __init__(self, corpus: corpora.Corpus, cfg: VectorConfig, progress: bool = False) -> None:
        self.corpus, self.cfg = corpus, cfg
        if len(corpus) < 256:
            raise ValueError(f"{corpus.name} has {len(corpus)} passages; PQ's 256 centroids need at least 256")
        if cfg.nlist > len(corpus):
            raise ValueError(f"nlist ({cfg.nlist}) exceeds the corpus's {len(corpus)} passages: lower nlist")
        x = corpus.vectors
        folder = _folder(corpus)
        self.exact = ExactIndex(x)
        self.ivf = _cached(folder, f"ivf-{cfg.nlist}", IvfIndex, x, lambda: IvfIndex(cfg.nlist, cfg.nprobe).build(x))
        self.hnsw = _cached(
            folder, f"hnsw-{cfg.M}-{cfg.ef_construction}", HnswIndex, x, lambda: _build_hnsw(x, cfg, progress)
        )
        self.pq = _cached(folder, f"pq-{cfg.pq_m}", PqIndex, x, lambda: PqIndex(cfg.pq_m).build(x))
        self.ivfpq = _cached(
            folder, f"ivfpq-{cfg.nlist}-{cfg.pq_m}", IvfPqIndex, x, lambda: IvfPqIndex(cfg.nlist, 1, cfg.pq_m).build(x)
        )
        self.sq8 = _cached(folder, "sq8", Sq8Index, x, lambda: Sq8Index().build(x))

    def __getitem__(self, method: str):
        return getattr(self, method)

    def bytes_per_vector(self) -> dict[str, float]:
        return {m: float(self[m].bytes_per_vector) for m in METHODS}

    def fixed_bytes(self) -> dict[str, float]:
        return {m: float(self[m].fixed_bytes) for m in METHODS}


def _digest(c: corpora.Corpus) -> str:
    return hashlib.sha1(np.ascontiguousarray(c.vectors).tobytes()).hexdigest()[:12]


def _folder(c: corpora.Corpus) -> Path:
    """Where a corpus's indexes are saved: named by the corpus and a digest of its vectors."""
    stem = corpora.key_for(c.name) if c.name not in ("sample",) else "sample"
    return corpora.cache_root() / "indexes" / f"{stem}-{_digest(c)}-r{INDEX_RECIPE}"


def _cached(folder: Path, stem: str, cls, vectors: np.ndarray, make):
    """Load ``folder/stem.npz`` when it is there and readable, else build with ``make()`` and save it."""
    path = folder / f"{stem}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls.restore({k: z[k] for k in z.files}, vectors)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # unreadable: rebuilt below
    index = make()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{stem}.tmp.npz"
        np.savez(tmp, **index.state())
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs a rebuild next time
    return index


def _build_hnsw(x: np.ndarray, cfg: VectorConfig, progress: bool) -> HnswIndex:
    index = HnswIndex(cfg.M, cfg.ef_construction, cfg.ef_search)
    if not progress:
        return index.build(x)
    from tqdm.auto import tqdm

    with tqdm(total=len(x), desc="building HNSW", unit="vector", file=sys.stderr, mininterval=1.0) as bar:
        return index.build(x, bar.update)


_open: OrderedDict[tuple, Indexes] = OrderedDict()


def indexes(cfg: VectorConfig | None = None, progress: bool = False, **options: Any) -> Indexes:
    """The index set of ``cfg.corpus`` (built or read from disk once; at most MAX_OPEN sets stay in memory)."""
    cfg = VectorConfig.make(cfg, **options)
    key = (corpora.canonical(cfg.corpus), cfg.build_key())
    if key in _open:
        _open.move_to_end(key)
        return _open[key]
    built = Indexes(corpora.load(cfg.corpus), cfg, progress)
    _open[key] = built
    while len(_open) > MAX_OPEN:
        _open.popitem(last=False)
    return built


def capture(model: models.Loaded | str, query: str, config: VectorConfig | None = None, **options: Any) -> QueryTrace:
    """``query`` through every index of ``config.corpus``: hits, recall against exact, and each index's trace."""
    loaded = models.resolve(model)
    cfg = VectorConfig.make(config, **options)
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"the query is {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    idx = indexes(cfg)
    if loaded.name != idx.corpus.model:
        raise ValueError(f"{idx.corpus.name} was embedded with {idx.corpus.model}; query it with the same encoder")
    from toolkit.tokens import sentence_embeddings

    t0 = time.perf_counter()
    q = sentence_embeddings(loaded, [query])[0]  # (dim,) unit vector
    timings = {"embed": time.perf_counter() - t0}
    results = {"exact": idx.exact.search(q, cfg.k)}
    for method in (m for m in METHODS if m in cfg.methods and m != "exact"):
        if method in ("ivf", "ivfpq"):
            results[method] = idx[method].search(q, cfg.k, nprobe=cfg.nprobe)
        elif method == "hnsw":
            results[method] = idx.hnsw.search(q, cfg.k, ef_search=cfg.ef_search)
        else:
            results[method] = idx[method].search(q, cfg.k)
    for method, hits in results.items():
        timings[method] = hits.seconds
    t1 = time.perf_counter()
    shown = {int(i) for r in results.values() for i in r.ids if i >= 0}
    if "hnsw" in results:  # the upper layers' hops are few: name them on the graph
        shown |= set(results["hnsw"].hop_node[results["hnsw"].hop_layer > 0].tolist())
    shown = sorted(shown)
    passages = {str(i): [idx.corpus.titles[i], idx.corpus.texts[i]] for i in shown}  # the metadata fetch by id
    timings["fetch"] = time.perf_counter() - t1
    truth = set(results["exact"].ids.tolist())
    recall = {m: len(set(r.ids.tolist()) & truth) / max(len(truth), 1) for m, r in results.items()}
    return QueryTrace(
        query=query,
        corpus=idx.corpus.name,
        n_vectors=len(idx.corpus),
        k=cfg.k,
        query_vector=q.astype(np.float32),
        results=results,
        recall=recall,
        bytes_per_vector={m: b for m, b in idx.bytes_per_vector().items() if m in results},
        fixed_bytes={m: b for m, b in idx.fixed_bytes().items() if m in results},
        params={m: {**idx[m].params(), **_searched(m, cfg)} for m in results},
        passages=passages,
        timings=timings,
        config=cfg.to_dict(),
        meta=make_meta(loaded.name, dim=idx.corpus.dim),
    ).check()


def view_map(idx: Indexes, trace: QueryTrace, view: str) -> CorpusMap:
    """The corpus on the two axes that show this query's ``view`` best: for "ivf", the directions that best separate
    its probed cells (Fisher LDA on their vectors); for "hnsw", the principal axes of the nodes its search visited.
    Every vector is projected on them (a linear 2-D shadow of the 384-D space, fitted where the query looks)."""
    x = idx.corpus.vectors
    if view == "ivf":
        ivf = trace.results["ivf"]
        rows, labels = ivf.candidates, ivf.candidate_cell
    elif view == "hnsw":
        h = trace.results["hnsw"]
        rows = np.unique(np.concatenate([h.hop_node, h.candidates]))
        labels = None
    else:
        raise ValueError(f"no map for the view {view!r}: ivf or hnsw")
    fit = np.vstack([x[rows], trace.query_vector[None, :]])  # (rows + 1, d) the vectors the view is about
    if labels is not None and len(np.unique(labels)) >= 3:
        mean, axes, explained = lda_2d(x[rows], labels)
    else:
        mean, axes, explained = pca_2d(fit)
    coords = project(x, mean, axes)
    # a spherical centroid is its cell's mean vector scaled to unit length: drawn at that mean, inside its cell
    sums = np.zeros((idx.ivf.nlist, 2), np.float32)
    np.add.at(sums, idx.ivf.cell, coords)
    centres = sums / np.maximum(np.bincount(idx.ivf.cell, minlength=idx.ivf.nlist), 1)[:, None]
    return CorpusMap(
        coords=coords,
        cell=idx.ivf.cell,
        centroids=centres.astype(np.float32),
        level=idx.hnsw.levels,
        mean=mean,
        axes=axes,
        explained=explained,
        meta={"corpus": idx.corpus.name, "view": view, "fitted_on": int(len(rows))},
    ).check()


def _searched(method: str, cfg: VectorConfig) -> dict[str, int]:
    """The search-time settings a query used (the index's own defaults are build-time)."""
    if method in ("ivf", "ivfpq"):
        return {"nprobe": cfg.nprobe}
    if method == "hnsw":
        return {"ef_search": max(cfg.ef_search, cfg.k)}
    return {}
