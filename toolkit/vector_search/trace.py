"""Vector search traces: what each index did for one query, a whole query over every index, the corpus map and the
recall / latency / memory sweep (slides "k-NN vs ANN", "IVF", "HNSW", "SQ and PQ", "The search flow").

Dimensions: k (results), cell (IVF cells probed), hop (HNSW moves, top layer first), ef (HNSW candidates at
layer 0), sub (PQ sub-vectors), code (256 centroids per sub-vector), passage (the corpus), row (a sweep point).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register

METHODS = ("exact", "ivf", "hnsw", "pq", "ivfpq", "sq8")
INT_FIELDS = {
    "ids",
    "probed",
    "candidates",
    "candidate_cell",
    "hop_node",
    "hop_layer",
    "hop_parent",
    "cell",
    "level",
}


def _array(name: str, value: Any) -> np.ndarray:
    if name == "codes":
        return np.asarray(value, dtype=np.uint8)
    return np.asarray(value, dtype=np.int64 if name in INT_FIELDS else np.float32)


def rebuild(cls: type[Trace], fields: dict[str, Any]) -> Trace:
    """A sub-trace from its JSON form: list fields declared as arrays become arrays again."""
    arrays = {f.name for f in dataclasses.fields(cls) if "ndarray" in str(f.type)}
    return cls(**{k: _array(k, v) if k in arrays and v is not None else v for k, v in fields.items()})


def _descending(x: np.ndarray) -> bool:
    return bool(np.all(np.diff(x) <= 1e-6))


@dataclass(frozen=True)
class Hits(Trace):
    """Ids (k,) int64 and the index's own scores (k,) float32, best first; ``scanned`` vectors scored."""

    ids: np.ndarray
    scores: np.ndarray
    scanned: int
    seconds: float

    def _check_hits(self) -> None:
        self._require(self.ids.ndim == 1 and self.ids.shape == self.scores.shape, "ids and scores must be (k,)")
        self._require(_descending(self.scores), "scores must be best first")
        found = self.ids[self.ids >= 0]
        self._require(len(set(found.tolist())) == len(found), "an id appears twice in the results")
        self._require(bool(np.isfinite(self.scores).all()), "scores contain NaN or inf")


@register
@dataclass(frozen=True)
class ExactSearch(Hits):
    """Brute force: every vector scored (scanned = n)."""

    kind: ClassVar[str] = "exact_search"

    def check(self) -> ExactSearch:
        self._check_hits()
        return self


@register
@dataclass(frozen=True)
class IvfSearch(Hits):
    """IVF: the ``probed`` cells (cell,) with the query's score against their centroid (best first), and the
    ``candidates`` (scanned,) they held, with ``candidate_cell`` the cell of each."""

    kind: ClassVar[str] = "ivf_search"
    nlist: int = 0
    probed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    probe_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    candidates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    candidate_cell: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def check(self) -> IvfSearch:
        self._check_hits()
        self._require(self.probed.shape == self.probe_scores.shape, "one score per probed cell")
        self._require(len(set(self.probed.tolist())) == len(self.probed), "a cell is probed twice")
        self._require(bool(np.all((self.probed >= 0) & (self.probed < self.nlist))), "probed cell out of range")
        self._require(_descending(self.probe_scores), "cells are probed best first")
        self._require(self.candidates.shape == self.candidate_cell.shape, "one cell per candidate")
        self._require(self.scanned == len(self.candidates), "scanned counts the candidates")
        self._require(set(self.candidate_cell.tolist()) <= set(self.probed.tolist()), "a candidate outside the cells")
        self._require(set(self.ids[self.ids >= 0].tolist()) <= set(self.candidates.tolist()), "a hit never scanned")
        return self


@register
@dataclass(frozen=True)
class HnswSearch(Hits):
    """HNSW: the hops (hop,) in order: node, layer, the node it was reached from (-1: the entry point) and its
    score. Upper layers: greedy moves; layer 0: the candidates expanded best first. ``candidates`` (ef,): the
    result list at layer 0 when the search stopped (the k best of it are the hits)."""

    kind: ClassVar[str] = "hnsw_search"
    M: int = 16
    ef_search: int = 16
    entry: int = 0
    max_level: int = 0
    hop_node: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hop_layer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hop_parent: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hop_score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    candidates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    candidate_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def check(self) -> HnswSearch:
        self._check_hits()
        n = len(self.hop_node)
        self._require(
            self.hop_layer.shape == self.hop_parent.shape == self.hop_score.shape == (n,), "hop arrays differ"
        )
        self._require(n > 0 and self.hop_node[0] == self.entry, "the path starts at the entry point")
        self._require(self.hop_layer[0] == self.max_level, "the path starts on the top layer")
        self._require(bool(np.all(np.diff(self.hop_layer) <= 0)), "the path only goes down")
        self._require(self.candidates.shape == self.candidate_scores.shape, "one score per candidate")
        self._require(_descending(self.candidate_scores), "candidates are best first")
        self._require(np.array_equal(self.ids, self.candidates[: len(self.ids)]), "hits are the best candidates")
        return self


@register
@dataclass(frozen=True)
class PqSearch(Hits):
    """Compressed search (method "pq", "ivfpq" or "sq8"). codes (k, sub) of the hits; tables (sub, code): the
    query's score against every centroid of every sub-vector (PQ: a hit's score is the sum of its codes' entries;
    IVF-PQ adds the cell's score); true_scores (k,): exact q·x of the hits; recon_error (k,): |x - x̂|^2;
    hit_vector, hit_recon (d,): the best hit as stored in float32 and as the codes rebuild it."""

    kind: ClassVar[str] = "pq_search"
    method: str = "pq"
    m: int = 0
    nbits: int = 8
    codes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))
    tables: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    true_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    recon_error: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    probed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hit_vector: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    hit_recon: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def check(self) -> PqSearch:
        self._check_hits()
        k = len(self.ids)
        self._require(self.method in ("pq", "ivfpq", "sq8"), f"unknown compressed method {self.method!r}")
        self._require(self.codes.shape[0] == k and self.true_scores.shape == (k,), "one code row per hit")
        self._require(self.recon_error.shape == (k,) and bool(np.all(self.recon_error >= 0)), "errors are >= 0")
        self._require(self.hit_vector.shape == self.hit_recon.shape, "hit_vector and hit_recon differ in shape")
        if k and self.hit_vector.size:
            err = float(((self.hit_vector - self.hit_recon) ** 2).sum())
            self._require(abs(err - self.recon_error[0]) <= 1e-4 + 1e-3 * err, "recon_error[0] is not |x - x̂|^2")
        if self.method != "sq8":
            self._require(self.codes.shape[1] == self.m, "one code per sub-vector")
            self._require(self.tables.shape == (self.m, 2**self.nbits), "tables must be (sub, 2^nbits)")
        return self


SEARCH_KINDS: dict[str, type[Hits]] = {
    "exact": ExactSearch,
    "ivf": IvfSearch,
    "hnsw": HnswSearch,
    "pq": PqSearch,
    "ivfpq": PqSearch,
    "sq8": PqSearch,
}


@register
@dataclass(frozen=True)
class QueryTrace(Trace):
    """One query through every index.

    results[method]: that index's search trace; recall[method]: its recall@k against exact; bytes_per_vector[method]:
    what one more vector costs it, fixed_bytes[method]: its shared tables (centroids, codebooks); passages: the title
    and text of every id shown (str(id) -> [title, text]); query_vector (d,): the unit query embedding; timings:
    seconds of each step of the search flow (embed, each index's search, fetch)."""

    kind: ClassVar[str] = "vector_search"
    query: str
    corpus: str
    n_vectors: int
    k: int
    query_vector: np.ndarray
    results: dict[str, Hits]
    recall: dict[str, float]
    bytes_per_vector: dict[str, float]
    fixed_bytes: dict[str, float]
    params: dict[str, dict[str, Any]]
    passages: dict[str, list[str]]
    timings: dict[str, float]
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def decode(cls, fields: dict[str, Any]) -> dict[str, Any]:
        fields = dict(fields)
        fields["results"] = {m: rebuild(SEARCH_KINDS[m], r) for m, r in fields["results"].items()}
        return fields

    def check(self) -> QueryTrace:
        self._require("exact" in self.results, "the exact search is the reference: it must be there")
        self._require(set(self.results) <= set(METHODS), f"unknown methods {set(self.results) - set(METHODS)}")
        self._require(set(self.recall) == set(self.results), "one recall per method")
        self._require(bool(np.isclose(np.linalg.norm(self.query_vector), 1, atol=1e-3)), "query is not unit norm")
        truth = set(self.results["exact"].ids.tolist())
        for method, hits in self.results.items():
            hits.check()
            self._require(len(hits.ids) <= self.k, f"{method} returned more than k ids")
            got = len(set(hits.ids.tolist()) & truth) / max(len(truth), 1)
            self._require(abs(got - self.recall[method]) < 1e-6, f"{method}: recall does not match its hits")
            for i in hits.ids[hits.ids >= 0].tolist():
                self._require(str(i) in self.passages, f"no passage text for id {i}")
        return self

    def title(self, i: int) -> str:
        return self.passages[str(int(i))][0]

    def text(self, i: int) -> str:
        return self.passages[str(int(i))][1]


@register
@dataclass(frozen=True)
class CorpusMap(Trace):
    """The corpus on two axes chosen for one view (``capture.view_map``): coords (passage, 2); cell (passage,) its
    IVF cell; centroids (cell, 2) the centre of each cell's points; level (passage,) its top HNSW layer; mean (d,)
    and axes (2, d) project a query; explained (2,) the share of the variance along each axis."""

    kind: ClassVar[str] = "vector_map"
    coords: np.ndarray
    cell: np.ndarray
    centroids: np.ndarray
    level: np.ndarray
    mean: np.ndarray
    axes: np.ndarray
    explained: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> CorpusMap:
        n = self.coords.shape[0]
        self._require(self.coords.shape == (n, 2), "coords must be (passage, 2)")
        self._require(self.cell.shape == (n,) and self.level.shape == (n,), "one cell and level per passage")
        self._require(self.centroids.ndim == 2 and self.centroids.shape[1] == 2, "centroids must be (cell, 2)")
        self._require(bool(np.all((self.cell >= 0) & (self.cell < len(self.centroids)))), "cell out of range")
        self._require(self.axes.shape == (2, self.mean.shape[0]), "axes must be (2, d)")
        return self


@register
@dataclass(frozen=True)
class TradeoffTrace(Trace):
    """Recall / latency / memory of every index at several settings, ours and the library's, in one run.

    Per row: library ("ours", "faiss", "hnswlib"), method, param (e.g. "nprobe") and its value, recall@k against
    exact, ms per query (one query at a time, one thread for the libraries), bytes per vector, build seconds."""

    kind: ClassVar[str] = "vector_tradeoff"
    library: list[str]
    method: list[str]
    param: list[str]
    value: np.ndarray
    recall: np.ndarray
    ms_per_query: np.ndarray
    bytes_per_vector: np.ndarray
    build_seconds: np.ndarray
    n_vectors: int
    n_queries: int
    k: int
    dim: int
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> TradeoffTrace:
        n = len(self.library)
        self._require(len(self.method) == len(self.param) == n, "one method and param per row")
        for name in ("value", "recall", "ms_per_query", "bytes_per_vector", "build_seconds"):
            self._require(getattr(self, name).shape == (n,), f"{name} must be (row,)")
        self._require(bool(np.all((self.recall >= 0) & (self.recall <= 1))), "recall outside [0, 1]")
        self._require(bool(np.all(self.ms_per_query > 0)), "latency must be positive")
        return self

    def rows(self, library: str, method: str) -> np.ndarray:
        """Indices of one curve, sorted by latency."""
        idx = [i for i, (lib, m) in enumerate(zip(self.library, self.method)) if lib == library and m == method]
        return np.array(sorted(idx, key=lambda i: self.ms_per_query[i]), dtype=np.int64)
