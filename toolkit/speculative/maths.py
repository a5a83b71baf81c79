"""Speculative decoding and distillation on plain arrays (slides "Speculative decoding", "Speculative sampling",
"Small models and distillation").

A draft proposes k tokens; the target scores them all in one forward pass: its logits at the k + 1 positions
(after the last accepted token and after each draft token). Greedy: keep the longest prefix the target would have
chosen itself, then append the target's own token there (the correction, or a bonus token when all k pass).
Sampling (Leviathan et al. 2023, Algorithm 1; Chen et al. 2023): accept draft token x with probability
min(1, p(x) / q(x)); at the first rejection sample from norm(max(0, p - q)); the output then follows p exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# ---- drafts ----------------------------------------------------------------------------------------------------


def lookup(ids: Sequence[int], k: int, ngram: int = 2) -> list[int]:
    """Prompt lookup (Saxena 2023; transformers' PromptLookupCandidateGenerator): the last n tokens (n = ngram
    down to 1) are searched for earlier in ``ids``; the first match, left to right, that has a continuation
    proposes the up to k tokens that followed it. No match: no draft."""
    ids = list(ids)
    n_ids = len(ids)
    for n in range(min(ngram, n_ids - 1), 0, -1):
        tail = ids[-n:]
        for start in range(0, n_ids - n):  # windows that end before the tail itself
            if ids[start : start + n] == tail:
                follow = ids[start + n : min(start + n + k, n_ids)]
                if follow:
                    return follow
    return []


# ---- verification ----------------------------------------------------------------------------------------------


def accept_greedy(draft: Sequence[int], target: Sequence[int]) -> int:
    """How many draft tokens the target agrees with: ``target`` holds its argmax at the len(draft) + 1 positions;
    draft token i passes if it equals target[i] and every token before it passed."""
    n = 0
    while n < len(draft) and int(draft[n]) == int(target[n]):
        n += 1
    return n


def residual(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """norm(max(0, p - q)): what the target wants that the draft under-proposed (Leviathan et al., eq. in sec 2.3).
    When p == q there is nothing left and p itself is returned (that branch is never taken: x would be accepted)."""
    r = np.maximum(np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64), 0.0)
    total = r.sum()
    return r / total if total > 0 else np.asarray(p, dtype=np.float64) / np.sum(p)


def verify_sample(
    draft: Sequence[int], q: np.ndarray, p: np.ndarray, rng: np.random.Generator
) -> tuple[int, int, int | None]:
    """One verification step of speculative sampling.

    draft: (k,) proposed tokens; q: (k, vocab) the draft's probabilities each was sampled from (a one-hot row for
    a deterministic draft such as prompt lookup); p: (k + 1, vocab) the target's probabilities at the same
    positions plus one. Returns (accepted count n, the token appended after them, the rejected token or None).
    """
    for i, x in enumerate(draft):
        x = int(x)
        if rng.random() * q[i, x] < p[i, x]:  # u < p(x) / q(x) without dividing by a zero q
            continue
        return i, _sample(residual(p[i], q[i]), rng), x
    return len(draft), _sample(np.asarray(p[len(draft)], dtype=np.float64), rng), None


def _sample(probs: np.ndarray, rng: np.random.Generator) -> int:
    c = np.cumsum(probs)
    return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), len(probs) - 1))


def expected_tokens(alpha: float | np.ndarray, k: int | np.ndarray) -> np.ndarray:
    """Tokens per target pass when each draft token passes with probability alpha: (1 - a^(k+1)) / (1 - a)
    (Leviathan et al., eq. 1); k + 1 when alpha = 1."""
    a, k = np.asarray(alpha, dtype=np.float64), np.asarray(k, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (1 - a ** (k + 1)) / (1 - a)
    return np.where(np.isclose(a, 1.0), k + 1, out)


def speedup(alpha: float | np.ndarray, k: int | np.ndarray, cost: float) -> np.ndarray:
    """Expected wall-time gain over plain decoding when a draft step costs ``cost`` target steps and verifying
    k + 1 tokens costs about one: expected_tokens / (k cost + 1) (Leviathan et al., theorem 3.8)."""
    return expected_tokens(alpha, k) / (np.asarray(k) * cost + 1)


# ---- distillation ----------------------------------------------------------------------------------------------


def soft_targets(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(z / T): T > 1 flattens the teacher's distribution and shows how it ranks the wrong tokens."""
    return torch.softmax(logits.float() / temperature, dim=-1)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Hinton et al. (2015): T^2 KL(softmax(t / T) || softmax(s / T)), averaged over positions.

    student, teacher: (..., vocab) logits. The T^2 keeps gradients the same size as T changes. At T = 1 this is
    the cross-entropy to the teacher's distribution minus the teacher's entropy."""
    log_t = torch.log_softmax(teacher.float() / temperature, dim=-1)
    log_s = torch.log_softmax(student.float() / temperature, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (...,) one KL per position
    return temperature**2 * kl.mean()


def hard_loss(student: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to the one-hot label: what training without a teacher uses."""
    return torch.nn.functional.cross_entropy(student.float().reshape(-1, student.shape[-1]), labels.reshape(-1))
