"""Sparse attention and attention sinks on SmolLM2 (slide "Sparse attention and attention sinks").

    from toolkit import sparse_attention
    trace = sparse_attention.capture("smollm2-135m", window=64, sinks=4)   # perplexity of Python's own text

maths: sliding, dilated and global + local masks, perplexity; capture: the mask applied to the model as a 4-D
attention mask, the window sweep `record` (replayed from assets/sparse_attention/curves.npz); trace: SparseTrace,
SparseCurveTrace; figures: masks, perplexity curves, attention to the first token, loss along the text.
"""

from pathlib import Path

from toolkit.sparse_attention import figures
from toolkit.sparse_attention.capture import (
    SINKS,
    TOKENS,
    TOPIC,
    WINDOWS,
    SparseConfig,
    capture,
    evaluate,
    python_text,
    record,
)
from toolkit.sparse_attention.maths import PATTERNS, additive, density, mask, oldest_visible, perplexity, since, smooth
from toolkit.sparse_attention.trace import SparseCurveTrace, SparseTrace

ASSET = Path(__file__).resolve().parents[2] / "assets" / "sparse_attention" / "curves.npz"  # `lecture sparse-curves`

__all__ = [
    "capture",
    "evaluate",
    "record",
    "SparseConfig",
    "SparseTrace",
    "SparseCurveTrace",
    "figures",
    "ASSET",
    "PATTERNS",
    "SINKS",
    "TOKENS",
    "TOPIC",
    "WINDOWS",
    "additive",
    "density",
    "mask",
    "oldest_visible",
    "perplexity",
    "python_text",
    "since",
    "smooth",
]
