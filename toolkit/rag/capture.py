"""RAG capture (slides "RAG: retrieve, augment, generate", "Garbage in, garbage out", "Reranking").

    retrieve: the question, embedded by the corpus's encoder (MiniLM), searched in one of its indexes: cand ids
    rerank:   optional second signal over the candidates (maxsim on token vectors, or BM25), re-sorted
    augment:  the top k passages numbered in the user turn of SmolLM2-Instruct's own chat template
    generate: greedy answers, with the passages and without them (same system prompt, same question)

"wrong" swaps the passages for the k least similar ones in the corpus: the model answers from garbage. The
prompt's tokens are attributed to segments through the tokenizer's character offsets; passages that would push
the prompt over ``budget`` tokens are dropped from the end (the trace counts them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from toolkit import models, prefix, turns
from toolkit.config import Config, param
from toolkit.rag.maths import Bm25, maxsim, rerank_order
from toolkit.rag.trace import RagTrace
from toolkit.trace import make_meta
from toolkit.vector_search import VectorConfig, indexes

SYSTEM = "You are a helpful assistant. Answer in one or two short sentences."
INSTRUCTION = "Answer the question using the numbered context passages."
INDEXES = ("exact", "ivf", "hnsw")
RERANKERS = ("none", "maxsim", "bm25")
MAX_QUESTION_CHARS = 1_000
RERANK_BATCH = 8  # texts per MiniLM forward when reranking by maxsim


@dataclass(frozen=True)
class RagConfig(Config):
    corpus: str = param("stdlib", "the indexed corpus to retrieve from (as in vector_search)")
    index: str = param("hnsw", "the index that retrieves the candidates", choices=INDEXES)
    k: int = param(3, "passages put in the prompt", lo=1, hi=8, step=1, label="passages")
    candidates: int = param(10, "passages retrieved before reranking (at least k)", lo=1, hi=30, step=1)
    rerank: str = param(
        "none", "second signal over the candidates: none, maxsim (token-level), bm25 (words)", choices=RERANKERS
    )
    wrong: bool = param(
        False, "feed the k least similar passages instead (garbage in, garbage out)", label="wrong passages"
    )
    max_new_tokens: int = param(12, "tokens each answer may generate", lo=1, hi=160, step=1, label="answer tokens")
    budget: int = param(1024, "most prompt tokens; passages past it are dropped", lo=128, hi=4096, step=64)

    def problems(self) -> list[str]:
        if self.candidates < self.k:
            return [f"candidates ({self.candidates}) must be at least k ({self.k}): raise candidates or lower k"]
        return []


def messages(question: str, passages: list[tuple[str, str]] | None) -> list[dict[str, str]]:
    """The chat: system prompt, then the user turn (numbered passages and the question, or the question alone)."""
    if passages is None:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    context = "\n".join(f"[{i}] {title}: {text}" for i, (title, text) in enumerate(passages, start=1))
    user = f"{INSTRUCTION}\n\nContext:\n{context}\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def render(loaded: models.Loaded, msgs: list[dict[str, str]]) -> tuple[str, list[int], list[tuple[int, int]]]:
    """The prompt as the chat template writes it, its token ids and each token's character span."""
    tok = loaded.tokenizer
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"{loaded.name} has no chat template: RAG here needs an instruct model")
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
    return prompt, list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def segment_counts(prompt: str, offsets, spans: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Tokens per named character span of the prompt; tokens in no span count as 'template'."""
    counts = {"template": 0, **{name: 0 for name in spans}}
    for a, b in offsets:
        mid = (a + b - 1) / 2 if b > a else a
        owner = next((name for name, (s, e) in spans.items() if s <= mid < e), "template")
        counts[owner] += 1
    return counts


def greedy(loaded: models.Loaded, ids: list[int], max_new_tokens: int, shared: int = 0) -> tuple[str, int, bool]:
    """The model's greedy continuation of ``ids``, decoded without special tokens, its token count, and whether
    the first ``shared`` ids came from the prefix cache (0: no prefix cache)."""
    tok = loaded.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    use = 0 < shared < len(ids) and prefix.supported(loaded.model)
    cache, reused = prefix.prefilled(loaded.model, ids[:shared]) if use else (None, False)
    with torch.no_grad():
        out = loaded.model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            cache=cache,  # holds ids[:shared]: generate() reads only the rest
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            stopping_criteria=turns.each_token(),
        )  # (1, T + new)
    new = out[0, len(ids) :]
    return tok.decode(new, skip_special_tokens=True).strip(), int(len(new)), reused


@lru_cache(maxsize=2)
def _bm25(corpus_name: str, n: int) -> Bm25:
    return Bm25(indexes(VectorConfig(corpus=corpus_name)).corpus.texts)


def _token_vectors(encoder: models.Loaded, texts: list[str]) -> list[np.ndarray]:
    """MiniLM's last hidden state of each text's real tokens (no [CLS]/[SEP]): list of (T, d). A few texts at a
    time: with 31 texts of 256 tokens in one batch, a RAG request peaked at +279 MiB; in batches of 8, +151 MiB."""
    special = torch.tensor(encoder.tokenizer.all_special_ids)
    out = []
    for i in range(0, len(texts), RERANK_BATCH):
        batch = encoder.tokenizer(
            texts[i : i + RERANK_BATCH], padding=True, truncation=True, max_length=256, return_tensors="pt"
        )
        with torch.no_grad():
            h = encoder.model(**batch).last_hidden_state  # (n, T, d)
        for row, mask, ids in zip(h, batch["attention_mask"], batch["input_ids"]):
            out.append(row[mask.bool() & ~torch.isin(ids, special)].numpy())
    return out


def capture(model: models.Loaded | str, question: str, config: RagConfig | None = None, **options: Any) -> RagTrace:
    """Retrieve, rerank, augment, generate: ``question`` answered by ``model`` with and without the passages."""
    loaded = models.resolve(model)
    cfg = RagConfig.make(config, **options)
    if loaded.kind != "causal":
        raise ValueError(f"{loaded.name} is an encoder: it cannot write an answer. Choose an instruct model.")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"the question is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}")
    question = question.strip()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    idx = indexes(VectorConfig(corpus=cfg.corpus))
    corpus = idx.corpus
    encoder = models.load(corpus.model)
    from toolkit.tokens import sentence_embeddings

    q = sentence_embeddings(encoder, [question])[0]  # (d,)
    hits = idx[cfg.index].search(q, cfg.candidates)
    cand, cand_scores = hits.ids[hits.ids >= 0], hits.scores[hits.ids >= 0]
    seconds["retrieve"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    rerank_scores = np.full(len(cand), np.nan, dtype=np.float32)
    if cfg.rerank == "maxsim":
        vecs = _token_vectors(encoder, [question] + [corpus.texts[i] for i in cand])
        rerank_scores = np.array([maxsim(vecs[0], v) for v in vecs[1:]], dtype=np.float32)
    elif cfg.rerank == "bm25":
        bm = _bm25(cfg.corpus, len(corpus))
        rerank_scores = np.array([bm.score(question, corpus.texts[i]) for i in cand], dtype=np.float32)
    order = rerank_order(rerank_scores) if cfg.rerank != "none" else np.arange(len(cand))
    seconds["rerank"] = time.perf_counter() - t1
    if cfg.wrong:  # the k passages least like the question
        chosen = idx.exact.search(-q, cfg.k).ids
    else:
        chosen = cand[order][: cfg.k]
    chosen = [int(i) for i in chosen]
    prompt, ids, offsets, spans, dropped = _fit(loaded, question, chosen, corpus, cfg.budget)
    chosen = chosen[: len(chosen) - dropped]
    counts = segment_counts(prompt, offsets, spans)
    prompt_without, ids_without, _ = render(loaded, messages(question, None))
    # Everything before the question (template, system prompt, passages) is the same for every question that
    # retrieves these passages: the prefix cache keeps its keys and values.
    shared = sum(1 for start, _ in offsets if start < spans["question"][0])
    work = turns.stopwatch()  # work, not waiting for a slot
    answer_with, n_with, reused = greedy(loaded, ids, cfg.max_new_tokens, shared)
    answer_without, n_without, _ = greedy(loaded, ids_without, cfg.max_new_tokens)
    seconds["generate"] = work()
    titles = {str(int(i)): corpus.titles[int(i)] for i in list(cand) + chosen}
    return RagTrace(
        question=question,
        corpus=corpus.name,
        index=cfg.index,
        rerank=cfg.rerank,
        wrong=cfg.wrong,
        cand_ids=cand.astype(np.int64),
        cand_scores=cand_scores.astype(np.float32),
        rerank_scores=rerank_scores,
        order=np.asarray(order, dtype=np.int64),
        titles=titles,
        passage_ids=np.array(chosen, dtype=np.int64),
        passage_texts=[corpus.texts[i] for i in chosen],
        prompt_with=prompt,
        prompt_without=prompt_without,
        answer_with=answer_with,
        answer_without=answer_without,
        segments=list(counts),
        segment_tokens=np.array(list(counts.values()), dtype=np.int64),
        answer_tokens=[n_with, n_without],
        budget=cfg.budget,
        context_window=int(getattr(loaded.config, "max_position_embeddings", 0) or 0),
        dropped=dropped,
        seconds=seconds,
        config=cfg.to_dict(),
        meta=make_meta(loaded.name, encoder=encoder.name, prefix_cached=shared if reused else 0),
    ).check()


def _fit(loaded, question, chosen, corpus, budget):
    """The prompt with as many of the chosen passages as fit in ``budget`` tokens (dropped from the end)."""
    for dropped in range(len(chosen) + 1):
        kept = chosen[: len(chosen) - dropped]
        passages = [(corpus.titles[i], corpus.texts[i]) for i in kept]
        prompt, ids, offsets = render(loaded, messages(question, passages))
        if len(ids) <= budget:
            return prompt, ids, offsets, _spans(prompt, question, passages), dropped
    raise ValueError(f"even without passages the prompt is {len(ids)} tokens, over the budget of {budget}")


def _spans(prompt: str, question: str, passages: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Character spans of the system prompt, each numbered passage and the question inside the rendered prompt."""
    spans = {"system": _find(prompt, SYSTEM, 0)}
    pos = spans["system"][1]
    for i, (title, text) in enumerate(passages, start=1):
        spans[f"passage {i}"] = _find(prompt, f"[{i}] {title}: {text}", pos)
        pos = spans[f"passage {i}"][1]
    spans["question"] = _find(prompt, f"Question: {question}", pos)
    return spans


def _find(prompt: str, part: str, start: int) -> tuple[int, int]:
    at = prompt.find(part, start)
    if at < 0:
        raise ValueError("the chat template changed the text it was given (cannot attribute its tokens)")
    return at, at + len(part)
