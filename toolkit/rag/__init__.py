"""Retrieval-augmented generation (slides "RAG: retrieve, augment, generate", "Garbage in, garbage out",
"Reranking").

    from toolkit import rag
    trace = rag.capture("smollm2-135m", "How do I convert a Python object to a JSON string?", k=3)   # RagTrace
    rag.figures.budget(trace)

maths: reranking signals (maxsim, BM25); capture: retrieve with vector_search, rerank, put the passages in
SmolLM2-Instruct's chat template, answer with and without them; trace: RagTrace; figures: one view each.
"""

from toolkit.rag import figures
from toolkit.rag.capture import (
    INDEXES,
    MAX_QUESTION_CHARS,
    RERANKERS,
    SYSTEM,
    RagConfig,
    capture,
    messages,
    render,
    segment_counts,
)
from toolkit.rag.maths import Bm25, maxsim, rerank_order, words
from toolkit.rag.trace import RagTrace

__all__ = [
    "capture",
    "RagConfig",
    "RagTrace",
    "figures",
    "messages",
    "render",
    "segment_counts",
    "Bm25",
    "maxsim",
    "rerank_order",
    "words",
    "INDEXES",
    "MAX_QUESTION_CHARS",
    "RERANKERS",
    "SYSTEM",
]
