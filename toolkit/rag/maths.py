"""RAG maths on plain arrays (slides "RAG: retrieve, augment, generate" and "Reranking").

Reranking re-scores the retrieved candidates with a second signal and re-sorts them:
  maxsim (late interaction, as ColBERT): each question token's best cosine over the passage's tokens, averaged,
         s(q, p) = (1/|q|) Σ_i max_j cos(q_i, p_j), on MiniLM's token vectors (the same encoder, finer grain)
  bm25   (lexical, as search engines): Σ_{t ∈ q} idf(t) · f(t, p)(k1 + 1) / (f(t, p) + k1 (1 - b + b |p| / avgdl)),
         idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5)) over the whole corpus
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

BM25_K1 = 1.2
BM25_B = 0.75
_WORD = re.compile(r"[a-z0-9_]+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore: `json.dumps` is `json`, `dumps`)."""
    return _WORD.findall(text.lower())


def maxsim(q_tokens: np.ndarray, p_tokens: np.ndarray) -> float:
    """(Tq, d), (Tp, d) token vectors -> mean over question tokens of the best cosine against the passage."""
    q = q_tokens / np.linalg.norm(q_tokens, axis=1, keepdims=True).clip(1e-12)
    p = p_tokens / np.linalg.norm(p_tokens, axis=1, keepdims=True).clip(1e-12)
    return float((q @ p.T).max(1).mean())  # (Tq, Tp) cosines -> best per question token -> mean


class Bm25:
    """Document frequencies of a corpus, then BM25 scores of any passages for a question."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.n = len(texts)
        lengths = []
        df: Counter[str] = Counter()
        for t in texts:
            w = words(t)
            lengths.append(len(w))
            df.update(set(w))
        self.df = df
        self.avgdl = float(np.mean(lengths)) if lengths else 1.0

    def idf(self, term: str) -> float:
        n_t = self.df.get(term, 0)
        return math.log(1 + (self.n - n_t + 0.5) / (n_t + 0.5))

    def score(self, question: str, passage: str) -> float:
        tf = Counter(words(passage))
        dl = sum(tf.values())
        total = 0.0
        for term in set(words(question)):
            f = tf.get(term, 0)
            if f:
                total += self.idf(term) * f * (BM25_K1 + 1) / (f + BM25_K1 * (1 - BM25_B + BM25_B * dl / self.avgdl))
        return total


def rerank_order(scores: np.ndarray) -> np.ndarray:
    """Positions sorted by the new score, best first (ties keep the retrieval order)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
