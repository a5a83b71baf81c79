"""The decoding loops (slide "Speculative decoding"): plain greedy, and draft-then-verify with one target pass.

Both keep a key/value cache and start from the same prefill (``prefilled``: the prompt but its last token), so
that a run checked against plain greedy reads its prompt once. The target's cache always holds every accepted
token except the last one, which goes in first at the next pass followed by the draft: one forward of 1 + k tokens
gives the target's choice after each prefix. After verification the cache is cut back (``cut``) to what was
accepted. A model draft keeps its own cache the same way; prompt lookup needs none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache

from toolkit import turns
from toolkit.speculative.maths import accept_greedy, lookup, verify_sample


@dataclass
class Step:
    """One target pass: the tokens drafted, how many passed, the token the target put after them."""

    drafted: list[int]
    accepted: int
    token: int
    rejected: int | None = None


@dataclass
class Run:
    new: list[int] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    draft_seconds: float = 0.0
    target_seconds: float = 0.0
    seconds: float = 0.0


def eos_ids(model: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set() if eos is None else {int(eos)} if isinstance(eos, int) else {int(e) for e in eos}


def _finish(run: Run, eos: set[int], max_new: int) -> bool:
    """Cut the output at the first end-of-sequence token or at max_new tokens, as plain decoding would stop."""
    for i, tok in enumerate(run.new):
        if tok in eos:
            del run.new[i + 1 :]
            return True
    if len(run.new) >= max_new:
        del run.new[max_new:]
        return True
    return False


def prefilled(model: Any, prompt: list[int]) -> tuple[DynamicCache, float]:
    """A cache holding the prompt but its last token (each loop feeds that one first), and the seconds of work."""
    work = turns.stopwatch()
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        if len(prompt) > 1:
            model(input_ids=torch.tensor([prompt[:-1]]), cache=cache, use_cache=True, logits_to_keep=1)
    return cache, work()


def greedy(model: Any, prompt: list[int], max_new: int, start: tuple[DynamicCache, float] | None = None) -> Run:
    """Plain greedy decoding with a cache: one target forward per new token. ``start``: ``prefilled(prompt)``,
    already made (its seconds count in the run's; the run adds to its cache)."""
    run, eos = Run(), eos_ids(model)
    cache, before = start if start is not None else prefilled(model, prompt)
    work = turns.stopwatch()
    ids = torch.tensor([prompt[-1:]])
    with torch.no_grad():
        while True:
            turns.turn()
            logits = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits[0, -1]
            tok = int(logits.argmax())
            run.new.append(tok)
            run.steps.append(Step([], 0, tok))
            if _finish(run, eos, max_new):
                break
            ids = torch.tensor([[tok]])
    run.seconds = run.target_seconds = before + work()
    return run


class ModelDraft:
    """A small causal LM as draft, with its own cache: ``propose`` returns (tokens, their probabilities q)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache = recording(DynamicCache(config=model.config))
        self.seen = 0  # tokens of the sequence in the cache

    def propose(self, ids: list[int], k: int, temperature: float | None, gen: torch.Generator) -> tuple[list, list]:
        tokens, probs = [], []
        feed = ids[self.seen :]
        with torch.no_grad():
            for _ in range(k):
                out = self.model(input_ids=torch.tensor([feed]), cache=self.cache, use_cache=True, logits_to_keep=1)
                logits = out.logits[0, -1].float()
                self.seen += len(feed)
                if temperature is None:
                    tok = int(logits.argmax())
                else:
                    q = torch.softmax(logits / temperature, -1)
                    tok = int(torch.multinomial(q, 1, generator=gen))
                    probs.append(q.numpy())
                tokens.append(tok)
                feed = [tok]
        return tokens, probs

    def keep(self, n: int) -> None:
        """Only the first n tokens of the sequence are still valid."""
        if self.seen > n:
            cut(self.cache, n)
            self.seen = n


class LookupDraft:
    """Prompt lookup: tokens copied from earlier in the context (deterministic: q is one-hot)."""

    def __init__(self, ngram: int = 2) -> None:
        self.ngram = ngram

    def propose(self, ids: list[int], k: int, temperature: float | None, gen: torch.Generator) -> tuple[list, list]:
        return lookup(ids, k, self.ngram), []

    def keep(self, n: int) -> None:
        pass


def speculative(
    model: Any,
    draft: ModelDraft | LookupDraft,
    prompt: list[int],
    max_new: int,
    k: int,
    temperature: float | None = None,
    seed: int = 0,
    start: tuple[DynamicCache, float] | None = None,
) -> Run:
    """Draft k tokens, verify them in one target pass, keep the agreed prefix and the target's next token.
    temperature None: greedy (the output equals plain greedy decoding); else speculative sampling. ``start``:
    ``prefilled(prompt)``, already made (the run adds to its cache: give it a copy to keep the prefill)."""
    run, eos = Run(), eos_ids(model)
    cache, before = start if start is not None else prefilled(model, prompt)
    work = turns.stopwatch()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    recording(cache)  # after the prefill, as transformers' assisted generation does
    ids = list(prompt)
    while True:
        turns.turn()  # before the step's timers; none inside them
        with turns.held():
            t1 = time.perf_counter()
            room = max_new - len(run.new) - 1  # the target adds one token itself
            drafted, q = draft.propose(ids, min(k, room), temperature, gen) if room > 0 else ([], [])
            t2 = time.perf_counter()
            with torch.no_grad():
                out = model(input_ids=torch.tensor([[ids[-1], *drafted]]), cache=cache, use_cache=True)
                logits = out.logits[0].float()  # (1 + d, vocab)
        if temperature is None:
            n = accept_greedy(drafted, logits.argmax(-1).tolist())
            token, rejected = int(logits[n].argmax()), (drafted[n] if n < len(drafted) else None)
        else:
            p = torch.softmax(logits / temperature, -1).numpy()
            qs = np.stack(q) if q else _one_hot(drafted, p.shape[1])
            n, token, rejected = verify_sample(drafted, qs, p, rng)
        run.draft_seconds += t2 - t1
        run.target_seconds += time.perf_counter() - t2  # no turn since t2: the verification has no forward
        run.steps.append(Step(list(drafted), n, token, rejected))
        cut(cache, len(ids) + n)  # keep the last token and the accepted drafts; `token` goes in next time
        ids += [*drafted[:n], token]
        draft.keep(len(ids) - 1)
        run.new += [*drafted[:n], token]
        if _finish(run, eos, max_new):
            break
    run.seconds = before + work()
    return run


def recording(cache: DynamicCache) -> DynamicCache:
    """Sliding-window layers drop states past their window; to roll back rejected drafts they must keep them until
    ``crop`` (transformers' ``activate_past_recording``)."""
    if hasattr(cache, "activate_past_recording"):
        cache.activate_past_recording()
    return cache


def cut(cache: DynamicCache, keep: int) -> None:
    """Keep the first ``keep`` positions of a cache (transformers 5 crops by the number of tokens to remove)."""
    remove = cache.get_seq_length() - keep
    if remove > 0:
        cache.crop(-remove)


def _one_hot(tokens: list[int], vocab: int) -> np.ndarray:
    q = np.zeros((len(tokens), vocab))
    q[np.arange(len(tokens)), tokens] = 1.0
    return q
