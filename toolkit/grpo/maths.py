"""GRPO maths as small pure functions (deck: "GRPO objective", "GRPO vs PPO"; DeepSeekMath eq. 3, Dr. GRPO).

  advantage   Â_i = (r_i − mean(r_group)) / (std + 1e-4)       (std: group, batch, or none = Dr. GRPO)
  ratio       ρ_t = π_θ(o_t | q, o_<t) / π_old(o_t | q, o_<t)
  surrogate   min(ρ_t Â, clip(ρ_t, 1 − ε_low, 1 + ε_high) Â)
  k3 KL       π_ref/π_θ − log(π_ref/π_θ) − 1                  (per token, ≥ 0, unbiased for KL(π_θ‖π_ref))
  loss        −(surrogate − β KL), aggregated per sequence (paper), per token, or by a constant (Dr. GRPO)

Same conventions as TRL 1.16's GRPOTrainer (std with Bessel's correction, 1e-4 in the denominator,
clip counted only where it changes the gradient), checked against it in tests/test_grpo.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SCALINGS = ("group", "batch", "none")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo")  # per-sequence mean (paper), token-level mean, constant (Dr. GRPO)
STD_EPS = 1e-4


@dataclass(frozen=True)
class Advantages:
    """advantages, std: (group, G); mean: (group,); zero_std: (group,) True where the group's rewards are all
    equal, so it gives no signal (TRL tests the batch std instead under "batch" scaling)."""

    advantages: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    zero_std: torch.Tensor

    def flat(self) -> list[float]:
        """Every completion's advantage, group after group."""
        return self.advantages.reshape(-1).tolist()  # (group, G) -> (group * G,)

    def summary(self) -> list[tuple[float, float, bool]]:
        """Per group: (mean reward, the std its advantages were divided by, no spread in the group)."""
        return list(zip(self.mean.tolist(), self.std[:, 0].tolist(), self.zero_std.tolist()))


def bessel_std(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sample standard deviation (divides by n − 1), computed as TRL's nanstd (mean of squared deviations,
    times n / (n − 1)) so that equal values give exactly 0."""
    n = x.numel() if dim is None else x.shape[dim]
    mean = x.mean() if dim is None else x.mean(dim=dim, keepdim=True)
    var = ((x - mean) ** 2).mean() if dim is None else ((x - mean) ** 2).mean(dim=dim)
    return torch.sqrt(var * n / (n - 1)) if n > 1 else torch.full_like(var, float("nan"))


def group_advantages(rewards, scale: str = "group") -> Advantages:
    """rewards: (group, G) total reward of each completion (a tensor or nested lists) -> advantages (group, G).

    Every option subtracts the group mean; "group" divides by the group's std, "batch" by the std of all
    rewards in the step, "none" divides by nothing (Dr. GRPO: no std bias towards easy/hard prompts).
    """
    if scale not in SCALINGS:
        raise ValueError(f"unknown advantage scaling {scale!r}; choose one of {', '.join(SCALINGS)}")
    r = torch.as_tensor(rewards, dtype=torch.float32)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"rewards must be (group, G) with G >= 2, got shape {tuple(r.shape)}")
    mean = r.mean(dim=1)  # (group,)
    group_std = bessel_std(r, dim=1)  # (group,)
    std = bessel_std(r).expand(r.shape[0]) if scale == "batch" else group_std  # (group,)
    adv = r - mean[:, None]
    if scale != "none":
        adv = adv / (std[:, None] + STD_EPS)
    zero_std = torch.isclose(group_std, torch.zeros_like(group_std))  # the group itself has no spread
    return Advantages(adv, mean, std[:, None].expand_as(r), zero_std)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(π_θ ‖ π_ref): exp(ref − logp) − (ref − logp) − 1 (same shape, ≥ 0)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def clipped_surrogate(ratio: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float) -> torch.Tensor:
    """min(ρ Â, clip(ρ, 1 − ε_low, 1 + ε_high) Â), elementwise (broadcasts Â over tokens)."""
    return torch.minimum(ratio * adv, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv)


def clip_flags(ratio: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float):
    """(low, high) boolean masks: tokens where clipping removes the gradient (ρ < 1−ε with Â < 0, ρ > 1+ε with
    Â > 0)."""
    return (ratio < 1 - eps_low) & (adv < 0), (ratio > 1 + eps_high) & (adv > 0)


def per_token_loss(logp, old_logp, ref_logp, adv, eps_low, eps_high, beta):
    """logp, old_logp, ref_logp: (B, T); adv: (B,) -> (loss (B, T), ratio (B, T), kl (B, T) or None)."""
    ratio = torch.exp(logp - old_logp)
    loss = -clipped_surrogate(ratio, adv[:, None], eps_low, eps_high)
    kl = None if ref_logp is None else k3_kl(logp, ref_logp)
    if beta != 0.0 and kl is not None:
        loss = loss + beta * kl
    return loss, ratio, kl


def aggregate(loss: torch.Tensor, mask: torch.Tensor, loss_type: str = "grpo", max_len: int | None = None):
    """loss, mask: (B, T) -> scalar. grpo: mean over sequences of each sequence's token mean (longer answers'
    tokens weigh less); bnpo: mean over all tokens; dr_grpo: sum / (B · max_len), a constant normaliser."""
    mask = mask.to(loss.dtype)
    if loss_type == "grpo":
        return ((loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (loss * mask).sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        if not max_len:
            raise ValueError("dr_grpo needs max_len (the maximum completion length)")
        return (loss * mask).sum() / (loss.shape[0] * max_len)
    raise ValueError(f"unknown loss type {loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of x over the tokens where mask is 1 (TRL's global_masked_mean on one process)."""
    mask = mask.to(x.dtype)
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


SCALING_LABELS = {"group": "÷ group std (GRPO)", "batch": "÷ batch std", "none": "no std (Dr. GRPO)"}
MAX_REWARDS = 64  # the advantage calculator's limit: typed groups, not a run


def parse_groups(text: str) -> list[list[float]]:
    """'1, 0, 0.5; 1 1 1' -> [[1, 0, 0.5], [1, 1, 1]]: groups split by ';' or new lines, values by ',' or spaces.
    ValueError (a sentence for a person) for junk, fewer than two rewards a group, or groups of unequal size."""
    import math
    import re

    groups = []
    for part in re.split(r"[;\n]", str(text)):
        if not part.strip():
            continue
        values = []
        for item in re.split(r"[,\s]+", part.strip()):
            try:
                v = float(item)
            except ValueError:
                raise ValueError(f"{item!r} is not a number. Type rewards like 1, 0, 0.5, 1.") from None
            if not math.isfinite(v):
                raise ValueError(f"Rewards must be finite numbers, got {item!r}.")
            values.append(v)
        groups.append(values)
    if not groups:
        raise ValueError("Type at least two rewards, e.g. 1, 0, 0, 1.")
    if sum(map(len, groups)) > MAX_REWARDS:
        raise ValueError(f"At most {MAX_REWARDS} rewards, please.")
    if any(len(g) < 2 for g in groups):
        raise ValueError("Each group needs at least G = 2 rewards: one answer has nothing to be compared with.")
    if len({len(g) for g in groups}) > 1:
        raise ValueError("Every group must have the same size G (separate groups with ';').")
    return groups


def by_scaling(groups) -> dict[str, Advantages]:
    """The advantages of (group, G) rewards under every scaling option, in SCALINGS' order."""
    return {s: group_advantages(groups, s) for s in SCALINGS}
