"""Vector search (part "Vector search and RAG": slides "What a vector database is" to "Recall, latency, memory").

    from toolkit import vector_search as vs
    trace = vs.capture("minilm-l6", "how do I read a JSON file?", nprobe=4, ef_search=16)   # QueryTrace
    vs.figures.ivf_map(trace, vs.view_map(vs.indexes(), trace, "ivf"))

corpus: Python's docs and docstrings as passages, embedded by MiniLM and cached; exact / ivf / hnsw / pq: our
indexes (pure numpy), each ``search`` returning its trace; capture: one query through all of them; sweep: recall,
latency and memory beside FAISS and hnswlib; trace: the trace classes; figures: one plotly view each.
"""

from toolkit.vector_search import corpus, figures, sweep
from toolkit.vector_search.capture import (
    MAX_QUERY_CHARS,
    PQ_M_CHOICES,
    Indexes,
    VectorConfig,
    capture,
    indexes,
    view_map,
)
from toolkit.vector_search.corpus import Corpus, CorpusError
from toolkit.vector_search.exact import ExactIndex
from toolkit.vector_search.hnsw import HnswIndex
from toolkit.vector_search.ivf import IvfIndex
from toolkit.vector_search.maths import kmeans, normalize, recall_at_k, top_k
from toolkit.vector_search.pq import IvfPqIndex, PqIndex, ProductQuantizer, Sq8Index
from toolkit.vector_search.trace import (
    METHODS,
    CorpusMap,
    ExactSearch,
    HnswSearch,
    IvfSearch,
    PqSearch,
    QueryTrace,
    TradeoffTrace,
)

__all__ = [
    "capture",
    "indexes",
    "view_map",
    "Indexes",
    "VectorConfig",
    "corpus",
    "Corpus",
    "CorpusError",
    "figures",
    "sweep",
    "ExactIndex",
    "IvfIndex",
    "HnswIndex",
    "PqIndex",
    "IvfPqIndex",
    "Sq8Index",
    "ProductQuantizer",
    "kmeans",
    "normalize",
    "recall_at_k",
    "top_k",
    "METHODS",
    "MAX_QUERY_CHARS",
    "PQ_M_CHOICES",
    "QueryTrace",
    "ExactSearch",
    "IvfSearch",
    "HnswSearch",
    "PqSearch",
    "CorpusMap",
    "TradeoffTrace",
]
