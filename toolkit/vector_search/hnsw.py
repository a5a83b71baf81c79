"""HNSW, hierarchical navigable small world graphs (slide "HNSW: highways, then local roads"; Malkov & Yashunin,
2016, algorithms 1, 2 and 4, as hnswlib and FAISS implement them).

Each vector is a node; it lives on layers 0..l with l = floor(-ln(U) / ln M), so layer 1 holds ~n/M nodes,
layer 2 ~n/M^2... Each node keeps at most M links per upper layer and 2M on layer 0.

    insert x: greedy descent from the entry point down to layer l+1 (follow the best neighbour while it improves);
              on each layer l..0, a best-first search with a list of ef_construction candidates, then links to M of
              them chosen by the heuristic (keep a candidate only if it is closer to x than to every one kept,
              which spreads links in all directions); a neighbour with too many links drops its worst by the
              same heuristic.
    search q: greedy descent to layer 1, then best-first on layer 0 with a list of ef = max(ef_search, k).

Scores are inner products (higher is closer). Memory: the vector plus 4 bytes per link slot (2M on layer 0, M per
upper layer); build time grows like n log n.
"""

from __future__ import annotations

import heapq
import math
import time

import numpy as np

from toolkit.vector_search.maths import one_blas_thread, pad
from toolkit.vector_search.trace import HnswSearch


class _Record:
    """What one search did: hops (node, layer, parent, score), who discovered whom, how many vectors were scored."""

    def __init__(self) -> None:
        self.hops: list[tuple[int, int, int, float]] = []
        self.parent: dict[int, int] = {}
        self.scored = 0


class HnswIndex:
    name = "hnsw"

    def __init__(self, M: int = 16, ef_construction: int = 40, ef_search: int = 16, seed: int = 100) -> None:
        if M < 2 or ef_construction < 1 or ef_search < 1:
            raise ValueError(f"need M >= 2 and ef >= 1; got M={M}, ef_construction={ef_construction}, ef={ef_search}")
        self.M, self.ef_construction, self.ef_search, self.seed = M, ef_construction, ef_search, seed
        self.vectors = np.zeros((0, 0), np.float32)
        self.levels = np.zeros(0, np.int64)
        self.links: list[dict[int, list[int]]] = []  # links[layer][node] -> neighbour ids
        self.entry = -1
        self.build_seconds = 0.0

    # ---- building ------------------------------------------------------------------------------------------------

    @one_blas_thread
    def build(self, vectors: np.ndarray, progress=None) -> HnswIndex:
        """Insert every row in order; ``progress`` (a tqdm-like callable taking the row count) is advanced by 1."""
        t0 = time.perf_counter()
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (n, d)
        n = len(self.vectors)
        rng = np.random.default_rng(self.seed)
        mult = 1.0 / math.log(self.M)
        self.levels = np.floor(-np.log(1.0 - rng.random(n)) * mult).astype(np.int64)  # (n,) top layer of each node
        self.links = [{} for _ in range(int(self.levels.max(initial=0)) + 1)]
        self.entry = -1
        for i in range(n):
            self._insert(i)
            if progress is not None:
                progress(1)
        self.build_seconds = time.perf_counter() - t0
        return self

    def _max_links(self, layer: int) -> int:
        return 2 * self.M if layer == 0 else self.M

    def _insert(self, i: int) -> None:
        level = int(self.levels[i])
        for layer in range(level + 1):
            self.links[layer][i] = []
        if self.entry < 0:
            self.entry = i
            return
        x = self.vectors[i]
        top = int(self.levels[self.entry])
        ep, ep_score = self.entry, float(self.vectors[self.entry] @ x)
        for layer in range(top, level, -1):
            ep, ep_score = self._greedy(x, ep, ep_score, layer)
        for layer in range(min(level, top), -1, -1):
            found = self._search_layer(x, [(ep_score, ep)], self.ef_construction, layer)  # best first
            chosen = self._heuristic(found, self.M)
            self.links[layer][i] = [j for _, j in chosen]
            for _, j in chosen:
                self._connect(j, i, layer)
            ep_score, ep = found[0]
        if level > top:
            self.entry = i

    def _connect(self, j: int, i: int, layer: int) -> None:
        """Add the link j -> i; if j now has too many, keep the heuristic's choice among them."""
        nbrs = self.links[layer][j]
        if len(nbrs) < self._max_links(layer):
            nbrs.append(i)
            return
        cand = nbrs + [i]
        scores = self.vectors[cand] @ self.vectors[j]  # (len(cand),)
        order = np.argsort(-scores, kind="stable")
        kept = self._heuristic([(float(scores[o]), cand[o]) for o in order], self._max_links(layer))
        self.links[layer][j] = [c for _, c in kept]

    def _heuristic(self, found: list[tuple[float, int]], m: int) -> list[tuple[float, int]]:
        """Algorithm 4: walk the candidates best first; keep one if no kept node is closer to it than the base."""
        if len(found) <= m:
            return found
        ids = [j for _, j in found]
        gram = self.vectors[ids] @ self.vectors[ids].T  # (cand, cand) scores between candidates
        kept: list[int] = []
        for a, (score, _) in enumerate(found):
            if all(gram[a, b] <= score for b in kept):
                kept.append(a)
                if len(kept) >= m:
                    break
        return [found[a] for a in kept]

    # ---- searching -------------------------------------------------------------------------------------------------

    def _greedy(self, q, ep: int, ep_score: float, layer: int, rec: _Record | None = None) -> tuple[int, float]:
        """Move to the best neighbour while it beats the current node (one candidate, ef = 1)."""
        while True:
            nbrs = self.links[layer][ep]
            if not nbrs:
                return ep, ep_score
            scores = self.vectors[nbrs] @ q  # (len(nbrs),)
            b = int(np.argmax(scores))
            if rec is not None:
                rec.scored += len(nbrs)
            if scores[b] <= ep_score:
                return ep, ep_score
            if rec is not None:
                rec.hops.append((nbrs[b], layer, ep, float(scores[b])))
            ep, ep_score = nbrs[b], float(scores[b])

    def _search_layer(self, q, entries, ef: int, layer: int, rec: _Record | None = None) -> list[tuple[float, int]]:
        """Algorithm 2: best-first search keeping the ef best seen; returns them best first as (score, id)."""
        visited = {j for _, j in entries}
        cand = [(-s, j) for s, j in entries]  # max-heap on score via negation
        heapq.heapify(cand)
        best = list(entries)  # min-heap: the worst kept result on top
        heapq.heapify(best)
        links = self.links[layer]
        while cand:
            neg, c = heapq.heappop(cand)
            if -neg < best[0][0] and len(best) >= ef:
                break
            if rec is not None and c in rec.parent:
                rec.hops.append((c, layer, rec.parent[c], -neg))  # expanded, in order
            nbrs = [j for j in links[c] if j not in visited]
            if not nbrs:
                continue
            visited.update(nbrs)
            scores = self.vectors[nbrs] @ q  # (len(nbrs),)
            for j, s in zip(nbrs, scores.tolist()):
                if len(best) < ef or s > best[0][0]:
                    heapq.heappush(cand, (-s, j))
                    heapq.heappush(best, (s, j))
                    if len(best) > ef:
                        heapq.heappop(best)
                    if rec is not None:
                        rec.parent[j] = c
        if rec is not None:
            rec.scored += len(visited)
        return sorted(best, key=lambda t: (-t[0], t[1]))

    @property
    def n(self) -> int:
        return self.vectors.shape[0]

    @property
    def max_level(self) -> int:
        return int(self.levels[self.entry]) if self.entry >= 0 else 0

    @property
    def bytes_per_vector(self) -> float:
        """What a vector costs on average: its floats and 4 bytes per link slot of every layer it lives on."""
        slots = sum(self._max_links(layer) * len(nodes) for layer, nodes in enumerate(self.links))
        return 4.0 * self.vectors.shape[1] + 4.0 * slots / max(self.n, 1)

    @property
    def fixed_bytes(self) -> float:
        return 0.0

    def params(self) -> dict:
        return {"M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search}

    @one_blas_thread
    def search(self, q: np.ndarray, k: int = 10, ef_search: int | None = None) -> HnswSearch:
        """Greedy descent, then best-first on layer 0; the trace holds every hop (each layer starts with parent -1)."""
        t0 = time.perf_counter()
        q = np.asarray(q, np.float32)
        ef = max(ef_search or self.ef_search, k)
        rec = _Record()
        ep = self.entry
        ep_score = float(self.vectors[ep] @ q)
        rec.scored = 1
        for layer in range(self.max_level, 0, -1):
            rec.hops.append((ep, layer, -1, ep_score))
            ep, ep_score = self._greedy(q, ep, ep_score, layer, rec)
        rec.hops.append((ep, 0, -1, ep_score))
        found = self._search_layer(q, [(ep_score, ep)], ef, 0, rec)
        hop_arr = np.array([h[:3] for h in rec.hops], dtype=np.int64)  # (hop, 3): node, layer, parent
        top = found[:k]
        return HnswSearch(
            ids=np.array([j for _, j in top], dtype=np.int64),
            scores=np.array([s for s, _ in top], dtype=np.float32),
            scanned=rec.scored,
            seconds=time.perf_counter() - t0,
            M=self.M,
            ef_search=ef,
            entry=self.entry,
            max_level=self.max_level,
            hop_node=hop_arr[:, 0],
            hop_layer=hop_arr[:, 1],
            hop_parent=hop_arr[:, 2],
            hop_score=np.array([h[3] for h in rec.hops], dtype=np.float32),
            candidates=np.array([j for _, j in found], dtype=np.int64),
            candidate_scores=np.array([s for s, _ in found], dtype=np.float32),
        ).check()

    @one_blas_thread
    def search_batch(self, queries: np.ndarray, k: int = 10, ef_search: int | None = None):
        hits = [self.search(q, k, ef_search) for q in queries]
        return pad([h.ids for h in hits], k), pad([h.scores for h in hits], k, np.nan)

    # ---- saving --------------------------------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        """Links as padded arrays: ``links_L`` (nodes on L, max links) with -1, ``nodes_L`` their ids."""
        out = {
            "levels": self.levels,
            "params": np.array([self.M, self.ef_construction, self.ef_search, self.seed, self.entry]),
        }
        for layer, table in enumerate(self.links):
            nodes = np.array(sorted(table), dtype=np.int64)
            padded = np.full((len(nodes), self._max_links(layer)), -1, dtype=np.int32)
            for r, node in enumerate(nodes.tolist()):
                padded[r, : len(table[node])] = table[node]
            out[f"nodes_{layer}"], out[f"links_{layer}"] = nodes, padded
        return out

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], vectors: np.ndarray) -> HnswIndex:
        M, efc, efs, seed, entry = (int(v) for v in state["params"])
        index = cls(M, efc, efs, seed)
        index.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index.levels = state["levels"]
        index.entry = entry
        index.links = []
        layer = 0
        while f"nodes_{layer}" in state:
            nodes, padded = state[f"nodes_{layer}"], state[f"links_{layer}"]
            index.links.append({int(n): [int(j) for j in row if j >= 0] for n, row in zip(nodes, padded)})
            layer += 1
        return index
