"""Tokens and embeddings capture: slides "Before the Transformer: words as numbers", "Embeddings"
and "Tokenization: the real input to LLMs".

Tokenization: the real tokenizers split text into pieces with ids. SmolLM2 uses byte-level BPE: a piece is a
run of UTF-8 bytes, and a character that has no piece of its own (an emoji) is split into byte pieces that do
not decode on their own ("byte fallback"). MiniLM uses WordPiece: it lowercases, strips accents, marks
word-inner pieces with "##" and maps what it cannot spell to [UNK].

Embeddings: a one-hot vector e_i times the embedding matrix E picks row i, so a token's input embedding is
E[i]. A word of several tokens gets the mean of its rows (a choice, stated in the figure). A sentence
embedding is MiniLM's mean-pooled last hidden state, L2-normalised, as sentence-transformers does:
    s = normalize( sum_t m_t h_t / sum_t m_t ).
Similarity is cosine: cos(u, v) = u.v / (|u| |v|). The analogy king - man + woman is v = E[king] - E[man] +
E[woman], ranked against every vocabulary row by cosine, the input words NOT removed (the usual trick of
removing them is what makes "queen" look like the answer; we show both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import models, text
from toolkit.config import Config, param
from toolkit.tokens.maths import cosine_matrix, pca, word_index, word_spans
from toolkit.tokens.trace import AnalogyTrace, EmbeddingTrace, TokenizationTrace
from toolkit.trace import make_meta

SOURCES = ("input", "sentence")  # token input embeddings, or a sentence encoder's pooled output
MIN_WORDS = 3  # fewer make no map worth drawing
MAX_WORDS = 40  # more do not fit on a slide's heatmap
SENTENCE_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length in sentence-transformers


@dataclass(frozen=True)
class TokensConfig(Config):
    max_tokens: int = param(
        text.MAX_TOKENS,
        "tokens kept per tokenizer; a longer text is cut (the view says so)",
        lo=1,
        hi=text.MAX_TOKENS,
        label="token limit",
    )
    source: str = param(
        "input",
        "input: rows of the model's input embedding matrix (a word's tokens averaged); "
        "sentence: a sentence encoder's mean-pooled, normalised output",
        choices=SOURCES,
    )
    max_words: int = param(
        MAX_WORDS,
        f"most words one embedding compares (at least {MIN_WORDS} are needed)",
        lo=MIN_WORDS,
        hi=MAX_WORDS,
        label="word limit",
    )
    dims: int = param(2, "PCA dimensions drawn", choices=(2, 3), label="PCA dimensions")
    k: int = param(10, "nearest vocabulary rows the analogy lists", lo=1, hi=100, step=1, label="neighbours")


# ---- tokenization --------------------------------------------------------------------------------------------


def _is_partial(tokenizer: Any, token_id: int) -> bool:
    """True for a byte-fallback piece: its bytes are not valid UTF-8 on their own."""
    return "\ufffd" in tokenizer.decode([token_id])


def _encode(tokenizer: Any, prompt: str, max_tokens: int) -> text.Encoded:
    """``text.encode`` without special tokens; a tokenizer with no piece for any character (WordPiece drops
    control characters) gives an empty view rather than an error, so the comparison can show it."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the text is empty")
    try:
        return text.encode(tokenizer, prompt, max_tokens, special=False)
    except ValueError:
        return text.Encoded([], 0)


def tokenize(
    model: models.Loaded | str, prompt: str, config: TokensConfig | None = None, **options: Any
) -> dict[str, Any]:
    """One tokenizer's view of ``prompt``: pieces, ids, byte-fallback flags, the word each piece belongs to."""
    loaded = models.resolve(model)
    cfg = TokensConfig.make(config, **options)
    tok = loaded.tokenizer
    enc = _encode(tok, prompt, cfg.max_tokens)
    ids = enc.ids
    offsets = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"][: len(ids)]
    return {
        "model": loaded.name,
        "ids": [int(i) for i in ids],
        "raw": tok.convert_ids_to_tokens(ids),
        "pieces": text.display(tok, ids),
        "partial": [_is_partial(tok, i) for i in ids],
        "unknown": [i == tok.unk_token_id for i in ids],
        "word": word_index(offsets, word_spans(prompt)),
        "truncated": enc.truncated,
    }


def compare(
    model: models.Loaded | str | Sequence[models.Loaded | str],
    prompt: str,
    config: TokensConfig | None = None,
    **options: Any,
) -> TokenizationTrace:
    """Tokenize ``prompt`` with one model's tokenizer, or with several side by side."""
    cfg = TokensConfig.make(config, **options)
    several = [model] if isinstance(model, (models.Loaded, str)) else list(model)
    views = [tokenize(m, prompt, cfg) for m in several]
    return TokenizationTrace(
        text=prompt, words=prompt.split(), views=views, meta=make_meta(",".join(v["model"] for v in views))
    ).check()


# ---- embeddings ----------------------------------------------------------------------------------------------


def _word_ids(loaded: models.Loaded, word: str) -> list[int]:
    """Token ids of ``word`` as it appears mid-sentence (byte-level BPE marks the leading space)."""
    if not isinstance(word, str) or not word.strip():
        raise ValueError("a word is empty")
    spelled = word if loaded.kind == "encoder" else " " + word
    return text.encode(loaded.tokenizer, spelled, text.MAX_TOKENS, special=False).ids


def input_embedding(model: models.Loaded | str, word: str) -> np.ndarray:
    """Mean of the word's rows of the input embedding matrix: (hidden,)."""
    loaded = models.resolve(model)
    E = loaded.model.get_input_embeddings().weight  # (vocab, hidden)
    ids = _word_ids(loaded, word)
    with torch.no_grad():
        return E[ids].mean(0).float().numpy()


def sentence_embeddings(model: models.Loaded | str, texts: list[str]) -> np.ndarray:
    """sentence-transformers' recipe for all-MiniLM-L6-v2: mean pooling over real tokens, then L2 norm. (n, hidden)"""
    loaded = models.resolve(model)
    if loaded.kind != "encoder":
        raise ValueError(
            f"{loaded.name} is not a sentence encoder; sentence embeddings need one such as {models.default('encoder')}"
        )
    # One padded batch (text.encode is one text at a time); each text cut to the encoder's own limit.
    batch = loaded.tokenizer(texts, padding=True, truncation=True, max_length=SENTENCE_TOKENS, return_tensors="pt")
    with torch.no_grad():
        h = loaded.model(**batch).last_hidden_state  # (n, T, hidden)
    m = batch["attention_mask"].unsqueeze(-1).float()  # (n, T, 1)
    pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (n, hidden)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def check_words(words: Sequence[str], cfg: TokensConfig) -> list[str]:
    """The words as a list; ValueError when there are too few or too many for ``cfg``."""
    words = list(words)
    if not MIN_WORDS <= len(words) <= cfg.max_words:
        raise ValueError(f"{len(words)} words: an embedding compares between {MIN_WORDS} and {cfg.max_words}")
    return words


def embed(
    model: models.Loaded | str, words: Sequence[str], config: TokensConfig | None = None, **options: Any
) -> EmbeddingTrace:
    """Cosine similarities and a PCA projection of the words' embeddings (``config.source``)."""
    loaded = models.resolve(model)
    cfg = TokensConfig.make(config, **options)
    words = check_words(words, cfg)
    if cfg.source == "sentence":
        vecs = sentence_embeddings(loaded, words)
    else:
        vecs = np.stack([input_embedding(loaded, w) for w in words])  # (word, hidden)
    coords, ratio = pca(vecs, 3)
    n_tokens = [len(_word_ids(loaded, w)) for w in words]
    return EmbeddingTrace(
        words=words,
        source=cfg.source,
        vectors=vecs.astype(np.float32),
        similarity=cosine_matrix(vecs).astype(np.float32),
        coords=coords.astype(np.float32),
        explained=ratio.astype(np.float32),
        n_tokens=n_tokens,
        meta=make_meta(loaded.name),
    ).check()


def analogy(
    model: models.Loaded | str,
    a: str = "king",
    b: str = "man",
    c: str = "woman",
    expected: str = "queen",
    config: TokensConfig | None = None,
    **options: Any,
) -> AnalogyTrace:
    """a - b + c against every vocabulary row by cosine; the inputs stay in the ranking and are flagged."""
    loaded = models.resolve(model)
    cfg = TokensConfig.make(config, **options)
    E = loaded.model.get_input_embeddings().weight.detach().float()  # (vocab, hidden)
    va, vb, vc = (torch.from_numpy(input_embedding(loaded, w)) for w in (a, b, c))
    target = va - vb + vc  # (hidden,)
    sims = torch.nn.functional.cosine_similarity(E, target.unsqueeze(0), dim=-1)  # (vocab,)
    order = torch.argsort(sims, descending=True)
    top = order[: cfg.k].tolist()
    inputs = {i for w in (a, b, c) for i in _word_ids(loaded, w)}
    exp_ids = _word_ids(loaded, expected) if expected else []
    rank = -1
    if len(exp_ids) == 1:
        rank = int((order == exp_ids[0]).nonzero()[0, 0]) + 1
    rank_without = -1
    if rank > 0:
        rank_without = rank - sum(1 for i in order[: rank - 1].tolist() if i in inputs)
    return AnalogyTrace(
        a=a,
        b=b,
        c=c,
        expected=expected,
        neighbours=text.display(loaded.tokenizer, top),
        ids=np.array(top),
        scores=sims[top].numpy().astype(np.float32),
        is_input=[i in inputs for i in top],
        expected_rank=rank,
        expected_rank_without_inputs=rank_without,
        expected_score=float(sims[exp_ids].mean()) if exp_ids else float("nan"),
        meta=make_meta(loaded.name),
    ).check()
