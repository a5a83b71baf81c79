"""The SFT objective on arrays: slides "Training objective", "Cross-entropy", "SFT loss masking (-100)".

The labels row copies the token ids but puts -100 on every prompt token, so only the answer is learnt. The model
predicts x_t from x_<t, so the loss is

    L = (1 / |A|) sum_{t in A} -log p(x_t | x_<t),     A = {t >= 1 : label_t != -100},

exactly what transformers computes from ``model(input_ids, labels=labels)`` (it shifts labels by one and
ignores -100).
"""

from __future__ import annotations

import torch

IGNORE = -100  # torch.nn.CrossEntropyLoss's ignore_index, the value every trainer uses


def labels(ids: list[int], n_prompt: int) -> list[int]:
    """The labels row: -100 on the first ``n_prompt`` tokens (the prompt), the ids themselves after."""
    if not 0 <= n_prompt <= len(ids):
        raise ValueError(f"n_prompt must be in [0, {len(ids)}], got {n_prompt}")
    return [IGNORE] * n_prompt + list(ids[n_prompt:])


def per_token_loss(logits: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-log p(x_t | x_<t) for every t >= 1, aligned with the token it predicts: (T,), 0 at t = 0; and p: (T,).

    logits: (T, vocab) of one sequence; ids: (T,). ``labels`` is accepted for symmetry with the model call; the
    mask is applied by the caller (``answer_mask``) so the unmasked loss can be read from the same row.
    """
    logp = torch.log_softmax(logits[:-1].float(), -1)  # (T-1, vocab): row t-1 predicts token t
    nll = -logp.gather(-1, ids[1:, None])[:, 0]  # (T-1,)
    zero = torch.zeros(1)
    return torch.cat([zero, nll]), torch.cat([zero, nll.neg().exp()])


def answer_mask(labels: torch.Tensor) -> torch.Tensor:
    """(T,) bool: the positions whose loss counts (labelled, and not the first token: nothing predicts it)."""
    mask = labels != IGNORE
    mask[0] = False
    return mask
