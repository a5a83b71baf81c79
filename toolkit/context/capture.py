"""Context engineering on the real tokenizer, and in-context learning on the real model (slides "Context
engineering: the window is a budget", "Prompt engineering: zero-shot vs few-shot").

``budget``: a prompt is composed (system prompt, the agent's tool schemas, passages retrieved from the lookup
corpus, earlier turns, the question) through the chat template, tokenised once with character offsets, and every
token is charged to the part it came from (the template's own tokens: "template"). Parts are dropped by
``maths.to_drop``'s policy until the prompt plus the room for the answer fits the window.

``fewshot``: k labelled reviews as earlier turns, then the test review; the assistant's turn is opened with
"Sentiment:" and the model's next-token log-probabilities of " positive" and " negative" decide (no sampling).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models
from toolkit.agent.tools import TOOLS, corpus, lookup_text
from toolkit.config import Config, param
from toolkit.context.data import DEMOS, HISTORY, LABELS, REVIEWS
from toolkit.context.maths import Part, priority, to_drop
from toolkit.context.trace import BudgetTrace, FewShotTrace
from toolkit.trace import make_meta

MAX_WINDOW = 8192  # SmolLM2-135M's max_position_embeddings
DEFAULT_QUESTION = "Which exception does a failed assert statement raise, and how do I add a message to it?"
SYSTEM = "You are a helpful Python tutor. Answer briefly and only from the context when it is relevant."
SHOTS = (0, 1, 2, 4, 8)
PROMPT = "Review: {text}\nIs this review positive or negative?"
PREFILL = "Sentiment:"


@dataclass(frozen=True)
class ContextConfig(Config):
    window: int = param(512, "the context window in tokens", lo=64, hi=MAX_WINDOW, step=64, label="window")
    passages: int = param(4, "retrieved passages offered", lo=0, hi=8, label="passages")
    history: int = param(6, "earlier turns offered (oldest first)", lo=0, hi=len(HISTORY), label="history turns")
    reserve: int = param(128, "tokens kept free for the answer", lo=0, hi=2048, step=16, label="answer reserve")
    tools: bool = param(True, "include the agent's tool schemas in the system prompt", label="tool schemas")
    max_question_chars: int = param(2000, "characters the question may have", lo=1, hi=20_000)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z_]+", text.lower())


def retrieve(question: str, k: int) -> list[tuple[str, str]]:
    """The k corpus topics that share most distinct words with the question (ties: alphabetical): (topic, text)."""
    if k <= 0:
        return []
    stop = {"the", "a", "an", "and", "or", "of", "to", "in", "is", "it", "do", "does", "i", "how", "what", "which"}
    wanted = set(_words(question)) - stop
    scored = []
    for name, body in corpus().items():
        head = set(_words(name.replace("-", " "))) | set(_words(body[:600]))
        scored.append((-len(wanted & head), name))
    return [(name, lookup_text(name)) for _, name in sorted(scored)[:k]]


def prompt_messages(question: str, parts: Sequence[dict]) -> list[dict[str, str]]:
    """The chat messages of a prompt holding ``parts`` (tool schemas and passages join the system message)."""
    system = [SYSTEM] + [p["text"] for p in parts if p["kind"] in ("tools", "passage")]
    out = [{"role": "system", "content": "\n\n".join(system)}]
    for p in parts:
        if p["kind"] == "history":
            user, answer = p["turn"]
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return out + [{"role": "user", "content": question}]


def _part(p: dict, tokens: int) -> Part:
    return Part(p["name"], p["kind"], tokens, *priority(p["kind"], p.get("index", 0)))


def _count(loaded: models.Loaded, question: str, parts: list[dict]) -> tuple[list[int], int]:
    """Tokens charged to each part and to the template, from one tokenisation of the whole prompt."""
    tok = loaded.tokenizer
    text = tok.apply_chat_template(prompt_messages(question, parts), add_generation_prompt=True, tokenize=False)
    spans, cursor = [], 0
    for p in [{"kind": "system", "text": SYSTEM}, *parts, {"kind": "question", "text": question}]:
        pieces = p["turn"] if p["kind"] == "history" else (p["text"],)
        begin, end = None, cursor
        for piece in pieces:
            start = text.find(piece, end)
            if start < 0:
                raise RuntimeError(f"the chat template did not render a {p['kind']} part as given")
            begin = start if begin is None else begin
            end = start + len(piece)
        # a droppable part is charged from the end of the part before it: its separator and message wrappers,
        # exactly the characters that vanish when it is dropped
        spans.append([(cursor if p["kind"] in ("tools", "passage", "history") else begin, end)])
        cursor = end
    offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    counts = [0] * len(spans)
    for s, e in offsets:
        mid = (s + e) / 2 if e > s else s
        for j, span in enumerate(spans):
            if any(a <= mid < b for a, b in span):
                counts[j] += 1
                break
    return counts, len(offsets) - sum(counts)


def offered_parts(question: str, cfg: ContextConfig) -> list[dict]:
    """Every part a prompt could hold, in prompt order: tool schemas, passages (best first), history (oldest first)."""
    parts = []
    if cfg.tools:
        schemas = json.dumps([t.schema() for t in TOOLS.values()])
        parts.append({"name": "tool schemas", "kind": "tools", "text": f"Tools:\n<tools>{schemas}</tools>"})
    for rank, (topic, passage) in enumerate(retrieve(question, cfg.passages)):
        parts.append({"name": f"passage {rank + 1}: {topic}", "kind": "passage", "text": passage, "index": rank})
    for i, turn in enumerate(HISTORY[len(HISTORY) - cfg.history :] if cfg.history else ()):
        parts.append({"name": f"turn {i + 1}", "kind": "history", "turn": turn, "index": i})
    return parts


def budget(
    model: models.Loaded | str, question: str = DEFAULT_QUESTION, config: ContextConfig | None = None, **options: Any
) -> BudgetTrace:
    """The prompt's tokens part by part, and what is dropped (in order) to fit ``window - reserve``."""
    loaded = models.resolve(model)
    cfg = ContextConfig.make(config, **options)
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty")
    if len(question) > cfg.max_question_chars:
        raise ValueError(f"the question is {len(question):,} characters; the limit is {cfg.max_question_chars:,}")
    question = question.strip()
    parts = offered_parts(question, cfg)
    standalone, template = _count(loaded, question, parts)  # every part in: what each would cost
    budget_tokens = cfg.window - cfg.reserve
    first = [_part(p, c) for p, c in zip(parts, standalone[1:-1])]
    fixed = template + standalone[0] + standalone[-1]
    dropped = to_drop(first, fixed, budget_tokens)  # indices into parts, in dropping order; then checked exactly
    while True:
        kept = [j for j in range(len(parts)) if j not in dropped]
        now, template = _count(loaded, question, [parts[j] for j in kept])  # system, kept parts..., question
        current = [Part("system prompt", "system", now[0], *priority("system", 0))]
        current += [_part(parts[j], c) for j, c in zip(kept, now[1:-1])]
        current.append(Part("question", "question", now[-1], *priority("question", 0)))
        more = to_drop(current, template, budget_tokens)
        if not more:
            break
        dropped.append(kept[more[0] - 1])  # one at a time: the counts shift a little as parts go
    tokens = dict(zip(kept, now[1:-1]))
    rows = [{"name": "system prompt", "kind": "system", "tokens": now[0], "kept": True, "order": -1}]
    for j, p in enumerate(parts):
        rows.append(
            {"name": p["name"], "kind": p["kind"], "tokens": tokens.get(j, standalone[j + 1]), "kept": j in tokens,
             "order": dropped.index(j) if j in dropped else -1}
        )  # fmt: skip
    rows.append({"name": "question", "kind": "question", "tokens": now[-1], "kept": True, "order": -1})
    total = template + sum(r["tokens"] for r in rows if r["kept"])
    return BudgetTrace(
        parts=rows,
        template=template,
        total=total,
        window=cfg.window,
        reserve=cfg.reserve,
        fits=total + cfg.reserve <= cfg.window,
        meta=make_meta(loaded.name, question=question, config=cfg.to_dict()),
    ).check()


def fewshot_messages(text: str, k: int, demos: Sequence[tuple[str, str]] = DEMOS) -> list[dict[str, str]]:
    """k worked examples (the first k of the pool) as earlier turns, then the review to classify."""
    out = []
    for demo, label in demos[:k]:
        out.append({"role": "user", "content": PROMPT.format(text=demo)})
        out.append({"role": "assistant", "content": f"{PREFILL} {label}"})
    return out + [{"role": "user", "content": PROMPT.format(text=text)}]


def fewshot(
    model: models.Loaded | str,
    shots: Sequence[int] = SHOTS,
    reviews: Sequence[tuple[str, str]] = REVIEWS,
    progress: bool = False,
) -> FewShotTrace:
    """Accuracy of the label read from the next-token log-probabilities, for each number of examples."""
    from toolkit.reasoning.generate import chat_ids

    loaded = models.resolve(model)
    if any(not 0 <= k <= len(DEMOS) for k in shots):
        raise ValueError(f"shots must be between 0 and {len(DEMOS)}")
    tok = loaded.tokenizer
    label_ids = [tok(" " + label, add_special_tokens=False)["input_ids"][0] for label in LABELS]
    margin = np.zeros((len(shots), len(reviews)), dtype=np.float32)
    jobs = [(a, b) for a in range(len(shots)) for b in range(len(reviews))]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="few-shot", unit="prompt")
    last = arch.last_logits_only(loaded.model)
    t0 = time.perf_counter()
    for a, b in jobs:
        ids = chat_ids(loaded, fewshot_messages(reviews[b][0], shots[a]), PREFILL)
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([ids]), **last).logits[0, -1]  # (vocab,)
        logp = torch.log_softmax(logits.float(), -1)
        margin[a, b] = float(logp[label_ids[0]] - logp[label_ids[1]])
    positive = np.array([label == "positive" for _, label in reviews])
    return FewShotTrace(
        shots=list(shots),
        texts=[t for t, _ in reviews],
        labels=[label for _, label in reviews],
        margin=margin,
        correct=(margin > 0) == positive[None, :],
        seconds=round(time.perf_counter() - t0, 2),
        meta=make_meta(loaded.name, label_tokens=label_ids),
    ).check()


capture = budget
