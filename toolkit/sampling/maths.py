"""The sampling filters as pure functions on logits (..., vocab): slide "Sampling strategies" (temperature,
top-k, top-p, min-p).

p = softmax(z / T). The filters, applied in the order transformers' generate() applies them (temperature, top-k,
top-p, min-p), each set removed logits to -inf, and the survivors are renormalised by the softmax:
  top-k:  keep the k largest logits (ties with the k-th kept).
  top-p:  keep the smallest set of most likely tokens whose probability sums to at least p.
  min-p:  keep tokens with p_i >= min_p * max_j p_j.
"""

from __future__ import annotations

from typing import Protocol

import torch

STAGES = ("model", "temperature", "top-k", "top-p", "min-p")


class Knobs(Protocol):
    """What the filters read (a ``SamplingConfig`` has these): temperature > 0; top_k 0 = off; top_p 1.0 = off;
    min_p 0.0 = off."""

    temperature: float
    top_k: int
    top_p: float
    min_p: float


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
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back from sorted order to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def min_p(logits: torch.Tensor, m: float) -> torch.Tensor:
    if m <= 0.0:
        return logits
    probs = logits.softmax(-1)
    drop = probs < m * probs.amax(-1, keepdim=True)
    return logits.masked_fill(drop, float("-inf"))


def stages(logits: torch.Tensor, knobs: Knobs) -> list[torch.Tensor]:
    """Logits after each stage in STAGES order; the last one is what gets sampled."""
    out = [logits]
    out.append(temperature(out[-1], knobs.temperature))
    out.append(top_k(out[-1], knobs.top_k))
    out.append(top_p(out[-1], knobs.top_p))
    out.append(min_p(out[-1], knobs.min_p))
    return out


def filtered(logits: torch.Tensor, knobs: Knobs) -> torch.Tensor:
    return stages(logits, knobs)[-1]


def kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) = Σ_i p_i (log p_i − log q_i) in nats, over the last axis, from log-probabilities (..., vocab).
    Terms with p_i = 0 count 0. The next-token shift between two models on the same prompt (compare mode)."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1)
