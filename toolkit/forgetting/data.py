"""The forgetting experiment's data (slide "Catastrophic forgetting, measured").

- The narrow task: "Which number is larger, a or b? Answer with just the number." answered with the number alone
  (the GRPO task, supervised): 64 training exchanges and 8 held-out ones, from fixed seeds.
- General text: Python's reference topics (``pydoc_data.topics``, shipped with Python), cut into chunks of
  ``CHUNK`` tokens; the held-out chunks (perplexity) and the replay chunks come from different topics.
- General prompts: what the model is asked before and after fine-tuning.
"""

from __future__ import annotations

import functools
import random

from toolkit.sft import Exchange

TRAIN_SEED, HELDOUT_SEED = 11, 12
N_TRAIN, N_HELDOUT = 64, 8
CHUNK = 96  # tokens per general-text chunk
EVAL_TOPICS = ("assert", "while", "if", "return")  # general held-out text: perplexity at every step
REPLAY_TOPICS = ("for", "try", "with", "lambda", "pass", "break", "continue", "import")  # replayed while training
PROMPTS = (
    "What is the capital of France?",
    "Name three colours.",
    "Give me one tip for sleeping better.",
    "What do bees make?",
    "Write a short greeting for a friend.",
)


def task_exchange(rng: random.Random) -> Exchange:
    a, b = rng.sample(range(10, 100), 2)
    return Exchange(f"Which number is larger, {a} or {b}? Answer with just the number.", str(max(a, b)))


@functools.cache
def task(split: str = "train") -> tuple[Exchange, ...]:
    """The narrow task's exchanges: "train" (64) or "heldout" (8)."""
    if split not in ("train", "heldout"):
        raise KeyError(f"unknown split {split!r}; choose train or heldout")
    rng = random.Random(TRAIN_SEED if split == "train" else HELDOUT_SEED)
    return tuple(task_exchange(rng) for _ in range(N_TRAIN if split == "train" else N_HELDOUT))


def general_chunks(tokenizer, topics: tuple[str, ...], chunk: int = CHUNK) -> list[list[int]]:
    """Token chunks of ``chunk`` tokens from the topics' text (the last partial chunk of each topic dropped)."""
    return [list(c) for c in _chunks(tokenizer, tuple(topics), chunk)]


@functools.lru_cache(maxsize=8)  # the same tokenizer and topics every run: tokenise once per process
def _chunks(tokenizer, topics: tuple[str, ...], chunk: int) -> tuple[tuple[int, ...], ...]:
    from pydoc_data.topics import topics as docs

    out = []
    for name in topics:
        ids = tokenizer(docs[name], add_special_tokens=False)["input_ids"]
        out += [tuple(ids[i : i + chunk]) for i in range(0, len(ids) - chunk + 1, chunk)]
    return tuple(out)
