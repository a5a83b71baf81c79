"""Tokens and embeddings: slides "How words become numbers", "one-hot vs embedding", "BPE tokenization".

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

import numpy as np
import torch

from toolkit.models import Loaded
from toolkit.traces import AnalogyTrace, EmbeddingTrace, TokenizationTrace, make_meta

SOURCES = ("input", "sentence")  # token input embeddings, or a sentence encoder's pooled output
MAX_TOKENS = 512
MAX_WORDS = 40


def _is_partial(tokenizer, token_id: int) -> bool:
    """True for a byte-fallback piece: its bytes are not valid UTF-8 on their own."""
    return "\ufffd" in tokenizer.decode([token_id])


def tokenize(text: str, loaded: Loaded) -> dict:
    """One tokenizer's view of ``text``: pieces, ids, byte-fallback flags, the word each piece belongs to."""
    tok = loaded.tokenizer
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])[:MAX_TOKENS]
    offsets = list(enc["offset_mapping"])[:MAX_TOKENS]
    words = text.split()
    starts, pos = [], 0
    for w in words:  # character span of each whitespace-separated word
        pos = text.index(w, pos)
        starts.append((pos, pos + len(w)))
        pos += len(w)
    word_of = []
    for a, b in offsets:
        mid = [i for i, (s, e) in enumerate(starts) if a < e and b > s]
        word_of.append(mid[0] if mid else -1)
    return {
        "model": loaded.name,
        "ids": [int(i) for i in ids],
        "raw": tok.convert_ids_to_tokens(ids),
        "pieces": [tok.decode([i]) for i in ids],
        "partial": [_is_partial(tok, i) for i in ids],
        "unknown": [i == tok.unk_token_id for i in ids],
        "word": word_of,
        "truncated": len(enc["input_ids"]) > MAX_TOKENS,
    }


def compare(text: str, loaded: list[Loaded]) -> TokenizationTrace:
    """Tokenize ``text`` with each model's tokenizer, side by side."""
    views = [tokenize(text, m) for m in loaded]
    return TokenizationTrace(text=text, words=text.split(), views=views,
                             meta=make_meta(",".join(m.name for m in loaded))).check()


def tokens_per_word(view: dict, n_words: int) -> list[int]:
    counts = [0] * n_words
    for w in view["word"]:
        if w >= 0:
            counts[w] += 1
    return counts


# ---- embeddings ----------------------------------------------------------------------------------------------

def _word_ids(loaded: Loaded, word: str) -> list[int]:
    """Token ids of ``word`` as it appears mid-sentence (byte-level BPE marks the leading space)."""
    tok = loaded.tokenizer
    text = word if loaded.kind == "encoder" else " " + word
    return tok(text, add_special_tokens=False)["input_ids"]


def input_embedding(loaded: Loaded, word: str) -> np.ndarray:
    """Mean of the word's rows of the input embedding matrix: (hidden,)."""
    E = loaded.model.get_input_embeddings().weight  # (vocab, hidden)
    ids = _word_ids(loaded, word)
    with torch.no_grad():
        return E[ids].mean(0).float().numpy()


def sentence_embeddings(loaded: Loaded, texts: list[str]) -> np.ndarray:
    """sentence-transformers' recipe for all-MiniLM-L6-v2: mean pooling over real tokens, then L2 norm. (n, hidden)"""
    tok = loaded.tokenizer
    batch = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        h = loaded.model(**batch).last_hidden_state  # (n, T, hidden)
    m = batch["attention_mask"].unsqueeze(-1).float()  # (n, T, 1)
    pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (n, hidden)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, n) cosine similarities."""
    u = x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)
    return u @ u.T


def pca(x: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Project (n, d) onto its top-k principal axes: coords (n, k), explained variance ratio (k,)."""
    xc = x - x.mean(0, keepdims=True)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k_eff = min(k, vt.shape[0])
    coords = np.zeros((x.shape[0], k))
    coords[:, :k_eff] = xc @ vt[:k_eff].T  # (n, k)
    var = s**2
    ratio = np.zeros(k)
    ratio[:k_eff] = var[:k_eff] / max(var.sum(), 1e-12)
    return coords, ratio


def embed(words: list[str], loaded: Loaded, source: str = "input") -> EmbeddingTrace:
    """Cosine similarities and a PCA projection of the words' embeddings."""
    if source == "sentence":
        vecs = sentence_embeddings(loaded, words)
    else:
        vecs = np.stack([input_embedding(loaded, w) for w in words])
    coords, ratio = pca(vecs, 3)
    n_tokens = [len(_word_ids(loaded, w)) for w in words]
    return EmbeddingTrace(words=list(words), source=source, vectors=vecs.astype(np.float32),
                          similarity=cosine_matrix(vecs).astype(np.float32), coords=coords.astype(np.float32),
                          explained=ratio.astype(np.float32), n_tokens=n_tokens, meta=make_meta(loaded.name)).check()


def analogy(loaded: Loaded, a: str = "king", b: str = "man", c: str = "woman", expected: str = "queen",
            k: int = 10) -> AnalogyTrace:
    """a - b + c against every vocabulary row by cosine; the inputs stay in the ranking and are flagged."""
    E = loaded.model.get_input_embeddings().weight.detach().float()  # (vocab, hidden)
    va, vb, vc = (torch.from_numpy(input_embedding(loaded, w)) for w in (a, b, c))
    target = va - vb + vc  # (hidden,)
    sims = torch.nn.functional.cosine_similarity(E, target.unsqueeze(0), dim=-1)  # (vocab,)
    order = torch.argsort(sims, descending=True)
    tok = loaded.tokenizer
    top = order[:k].tolist()
    inputs = {i for w in (a, b, c) for i in _word_ids(loaded, w)}
    exp_ids = _word_ids(loaded, expected) if expected else []
    rank = -1
    if len(exp_ids) == 1:
        rank = int((order == exp_ids[0]).nonzero()[0, 0]) + 1
    rank_without = -1
    if rank > 0:
        rank_without = rank - sum(1 for i in order[: rank - 1].tolist() if i in inputs)
    return AnalogyTrace(
        a=a, b=b, c=c, expected=expected,
        neighbours=[tok.decode([i]) for i in top], ids=np.array(top), scores=sims[top].numpy().astype(np.float32),
        is_input=[i in inputs for i in top], expected_rank=rank, expected_rank_without_inputs=rank_without,
        expected_score=float(sims[exp_ids].mean()) if exp_ids else float("nan"),
        meta=make_meta(loaded.name)).check()
