"""Tokens and embeddings (slides "Before the Transformer: words as numbers", "Embeddings",
"Tokenization: the real input to LLMs").

    from toolkit import tokens
    trace = tokens.compare(["smollm2-135m", "minilm-l6"], "unhappiness don't 😊")   # TokenizationTrace
    tokens.figures.pieces(trace)

maths: cosine, PCA, word spans (pure numpy); capture: tokenize/compare, embed, analogy on real models; trace:
TokenizationTrace, EmbeddingTrace, AnalogyTrace; figures: one plotly figure per view; chips: tokens drawn as boxes
laid out like their text (the pieces view, and SFT's labels view).
"""

from toolkit.tokens import chips, figures
from toolkit.tokens.capture import (
    MAX_WORDS,
    MIN_WORDS,
    SOURCES,
    TokensConfig,
    analogy,
    check_words,
    compare,
    embed,
    input_embedding,
    sentence_embeddings,
    tokenize,
)
from toolkit.tokens.maths import cosine_matrix, pca, tokens_per_word, word_index, word_spans
from toolkit.tokens.trace import AnalogyTrace, EmbeddingTrace, TokenizationTrace

__all__ = [
    "compare",
    "tokenize",
    "embed",
    "analogy",
    "input_embedding",
    "sentence_embeddings",
    "check_words",
    "TokensConfig",
    "TokenizationTrace",
    "EmbeddingTrace",
    "AnalogyTrace",
    "figures",
    "chips",
    "cosine_matrix",
    "pca",
    "tokens_per_word",
    "word_index",
    "word_spans",
    "SOURCES",
    "MIN_WORDS",
    "MAX_WORDS",
]
