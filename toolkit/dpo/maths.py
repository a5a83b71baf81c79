"""Reward model and DPO on numbers: slides "Bradley-Terry", "reward model loss", "DPO loss", "implicit reward".

Bradley-Terry: P(y_w preferred to y_l) = σ(r_w − r_l); a reward model is trained with −log σ(r_w − r_l).
DPO needs no reward model: with π the policy, π_ref the frozen reference and log π(y|x) the sum of the
answer tokens' log-probabilities, the implicit reward is r(x, y) = β · log(π(y|x) / π_ref(y|x)) and

    L_DPO = −log σ( β·[log π(y_w|x) − log π_ref(y_w|x)] − β·[log π(y_l|x) − log π_ref(y_l|x)] ),

TRL's ``loss_type="sigmoid"`` (its default).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.sft.maths import IGNORE

MAX_MARGIN = 50.0  # |r_w − r_l| the Bradley-Terry view accepts: σ is flat (0 or 1 to 1e-22) beyond


def bradley_terry(margin):
    """P(winner preferred) = σ(r_w − r_l), for a margin or an array of them."""
    return torch.sigmoid(torch.as_tensor(margin, dtype=torch.float64))


def reward_model_loss(margin):
    """−log σ(r_w − r_l)."""
    return -F.logsigmoid(torch.as_tensor(margin, dtype=torch.float64))


def margins_around(margin: float | None = None, n: int = 241) -> np.ndarray:
    """(n,) margins from −span to span, span = max(6, |margin| + 1): the curve with ``margin`` well inside."""
    span = max(6.0, abs(margin) + 1) if margin is not None else 6.0
    return np.linspace(-span, span, n)


def dpo_loss(logp_w, logp_l, ref_w, ref_l, beta: float):
    """(loss, reward_w, reward_l) from summed log-probs of the chosen (w) and rejected (l) answers."""
    reward_w = beta * (torch.as_tensor(logp_w) - torch.as_tensor(ref_w))
    reward_l = beta * (torch.as_tensor(logp_l) - torch.as_tensor(ref_l))
    return -F.logsigmoid(reward_w - reward_l), reward_w, reward_l


def label_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p of each labelled token given those before it, 0 elsewhere.

    logits: (B, T, vocab), labels: (B, T) with -100 off the answer -> (B, T-1), aligned with labels[:, 1:]."""
    return target_logps(logits[:, :-1], labels[:, 1:])  # position t-1 predicts token t


def target_logps(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log p of each ``target`` token under the ``logits`` beside it, 0 where the target is IGNORE: (..., vocab) and
    (...) -> (...). Minus the cross-entropy, as transformers' loss computes it (logit minus logsumexp differed from
    it by 1e-5 a token)."""
    flat = F.cross_entropy(logits.float().flatten(0, -2), target.flatten(), ignore_index=IGNORE, reduction="none")
    return -flat.view(target.shape)
