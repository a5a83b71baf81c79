"""Next-token prediction and sampling: slide "Next-token prediction", notes on greedy, temperature, top-k, top-p.

The model gives logits z over the vocabulary for the next token; p = softmax(z / T). The filters, applied in
the order transformers' generate() applies them (temperature, top-k, top-p, min-p), each set removed logits to
-inf, and the survivors are renormalised by the softmax:
  top-k:  keep the k largest logits (ties with the k-th kept).
  top-p:  keep the smallest set of most likely tokens whose probability sums to at least p.
  min-p:  keep tokens with p_i >= min_p * max_j p_j.
Greedy decoding takes argmax z; sampling draws from the filtered distribution with torch.multinomial, the same
call generate() makes, so a seeded run here equals generate(do_sample=True) under the same seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from toolkit.models import Loaded
from toolkit.traces import DecodeTrace, NextTokenTrace, make_meta

MAX_PROMPT_TOKENS = 256
MAX_STEPS = 40
STAGES = ("model", "temperature", "top-k", "top-p", "min-p")


@dataclass(frozen=True)
class SamplingConfig:
    """temperature > 0; top_k 0 = off; top_p 1.0 = off; min_p 0.0 = off."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0


# ---- the filters, as pure functions on logits (..., vocab) ----------------------------------------------------

def temperature(logits: torch.Tensor, t: float) -> torch.Tensor:
    return logits / t


def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = sorted_logits.softmax(-1)
    mass_before = probs.cumsum(-1) - probs  # probability of the strictly more likely tokens
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False  # the most likely token always survives
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def min_p(logits: torch.Tensor, m: float) -> torch.Tensor:
    if m <= 0.0:
        return logits
    probs = logits.softmax(-1)
    drop = probs < m * probs.amax(-1, keepdim=True)
    return logits.masked_fill(drop, float("-inf"))


def stages(logits: torch.Tensor, cfg: SamplingConfig) -> list[torch.Tensor]:
    """Logits after each stage in STAGES order; the last one is what gets sampled."""
    out = [logits]
    out.append(temperature(out[-1], cfg.temperature))
    out.append(top_k(out[-1], cfg.top_k))
    out.append(top_p(out[-1], cfg.top_p))
    out.append(min_p(out[-1], cfg.min_p))
    return out


def filtered(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    return stages(logits, cfg)[-1]


# ---- the model ------------------------------------------------------------------------------------------------

def prompt_ids(loaded: Loaded, prompt: str) -> torch.Tensor:
    ids = loaded.tokenizer(prompt, return_tensors="pt")["input_ids"][:, -MAX_PROMPT_TOKENS:]  # (1, T)
    return ids


def next_logits(loaded: Loaded, prompt: str) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(prompt_ids(loaded, prompt)).logits[0, -1].float()  # (vocab,)


def _labels(tok, ids: list[int]) -> list[str]:
    return [tok.decode([i]) for i in ids]


def next_token(loaded: Loaded, prompt: str, cfg: SamplingConfig, n_show: int = 20) -> NextTokenTrace:
    """The real next-token distribution and what each filter leaves of it (the n_show most likely tokens)."""
    logits = next_logits(loaded, prompt)
    per_stage = stages(logits, cfg)
    probs = torch.stack([s.softmax(-1) for s in per_stage])  # (stage, vocab); stage 0 is T=1, unfiltered
    show = torch.topk(logits, n_show).indices  # (n_show,): temperature and filters keep this order
    return NextTokenTrace(
        prompt=prompt, stages=list(STAGES), ids=show.numpy(), tokens=_labels(loaded.tokenizer, show.tolist()),
        probs=probs[:, show].numpy().astype(np.float32),
        survivors=np.array([int(torch.isfinite(s).sum()) for s in per_stage]),
        config=vars(cfg).copy(), meta=make_meta(loaded.name)).check()


def decode(loaded: Loaded, prompt: str, cfg: SamplingConfig, steps: int = 12, seed: int | None = 0,
           n_show: int = 8) -> DecodeTrace:
    """Greedy (seed None) or seeded sampling for ``steps`` tokens; each step records the distribution drawn from."""
    return decode_rows(loaded, prompt, cfg, steps, [seed], n_show)[0]


def greedy_and_sampled(loaded: Loaded, prompt: str, cfg: SamplingConfig, steps: int = 12, seed: int = 0,
                       n_show: int = 8) -> tuple[DecodeTrace, DecodeTrace]:
    """Both continuations in one batch of two rows: half the forward passes of two runs."""
    greedy, sampled = decode_rows(loaded, prompt, cfg, steps, [None, seed], n_show)
    return greedy, sampled


def decode_rows(loaded: Loaded, prompt: str, cfg: SamplingConfig, steps: int, seeds: list[int | None],
                n_show: int = 8) -> list[DecodeTrace]:
    """One row per entry of ``seeds`` (None = greedy), all from the same prompt, generated as one batch.

    At most one row samples, so its draws are exactly generate()'s under torch.manual_seed(seed). A row that
    emits end-of-sequence stops recording (its later tokens are computed but dropped).
    """
    sampled = [s for s in seeds if s is not None]
    if len(sampled) > 1:
        raise ValueError("at most one sampled row per batch (the rows would share one random stream)")
    ids = prompt_ids(loaded, prompt).repeat(len(seeds), 1)  # (rows, T)
    rec = [{"chosen": [], "ids": [], "p": [], "p_chosen": [], "survivors": []} for _ in seeds]
    done = [False] * len(seeds)
    past = None
    eos = loaded.tokenizer.eos_token_id
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        if sampled:
            torch.manual_seed(sampled[0])
        step_input = ids
        for _ in range(steps):
            out = loaded.model(step_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1].float()  # (rows, vocab)
            nxt_all = []
            for row, seed in enumerate(seeds):
                if seed is None:
                    z = logits[row : row + 1]  # (1, vocab)
                    nxt = int(z.argmax(-1))
                else:
                    z = filtered(logits[row : row + 1], cfg)
                    nxt = int(torch.multinomial(z.softmax(-1), num_samples=1)[0, 0])  # as generate() draws
                nxt_all.append(nxt)
                if done[row]:
                    continue
                p = z.softmax(-1)[0]  # (vocab,) the distribution this step drew from
                top = torch.topk(p, n_show)
                r = rec[row]
                r["chosen"].append(nxt)
                r["ids"].append(top.indices.tolist())
                r["p"].append(top.values.tolist())
                r["p_chosen"].append(float(p[nxt]))
                r["survivors"].append(int(torch.isfinite(z).sum()))
                done[row] = nxt == eos
            if all(done):
                break
            step_input = torch.tensor(nxt_all)[:, None]  # (rows, 1)
    tok = loaded.tokenizer
    return [DecodeTrace(
        prompt=prompt, mode="greedy" if seed is None else "sample", seed=seed, ids=np.array(r["chosen"]),
        tokens=_labels(tok, r["chosen"]), step_ids=np.array(r["ids"]), step_tokens=[_labels(tok, x) for x in r["ids"]],
        step_probs=np.array(r["p"], dtype=np.float32), chosen_prob=np.array(r["p_chosen"], dtype=np.float32),
        survivors=np.array(r["survivors"]), config=vars(cfg).copy(), meta=make_meta(loaded.name, seed=seed))
        .check() for r, seed in zip(rec, seeds)]
