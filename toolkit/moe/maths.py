"""Routing maths as small pure functions (the equations on the MoE slides).

route:         s = softmax(x W_r) or sigmoid(x W_r); experts = top-k(s + b); g = s[experts] (/ sum if renormalised)
balance_loss:  L_bal = N * sum_i f_i * P_i, f_i = share of tokens that send one of their k slots to expert i,
               P_i = mean router probability of expert i (Switch Transformer eq. 4-6; Mixtral's
               load_balancing_loss_func). Perfectly balanced routing gives k, not 1 (f_i = k/N, P_i = 1/N).
z_loss:        L_z = mean over tokens of logsumexp(logits)^2 (ST-MoE).
aux_free_update: b_i <- b_i + gamma * sign(mean load - load_i) (DeepSeek-V3 auxiliary-loss-free balancing;
               the bias changes which experts are chosen, never the gate weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scores(logits: torch.Tensor, score: str = "softmax") -> torch.Tensor:
    """Router scores (tokens, experts): softmax rows sum to 1; sigmoid scores are independent in (0, 1)."""
    return F.softmax(logits.float(), dim=-1) if score == "softmax" else torch.sigmoid(logits.float())


def route(
    logits: torch.Tensor, k: int, score: str = "softmax", renormalize: bool = True, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits (N, E) -> scores (N, E), experts (N, k) int64, gates (N, k). The bias only steers selection."""
    s = scores(logits, score)
    choice = s if bias is None else s + bias
    experts = torch.topk(choice, k, dim=-1).indices  # (N, k)
    gates = s.gather(1, experts)  # (N, k)
    if renormalize:
        gates = gates / (gates.sum(-1, keepdim=True) + 1e-20)
    return s, experts, gates


def importance(s: torch.Tensor, score: str = "softmax") -> torch.Tensor:
    """P_i (E,): the mean router probability per expert (sigmoid scores are first normalised per token)."""
    p = s if score == "softmax" else s / (s.sum(-1, keepdim=True) + 1e-20)
    return p.mean(0)


def token_fraction(experts: torch.Tensor, n_experts: int) -> torch.Tensor:
    """f_i (E,): share of tokens that route one of their slots to expert i; sums to k (Mixtral's convention)."""
    counts = torch.bincount(experts.reshape(-1), minlength=n_experts).float()
    return counts / experts.shape[0]


def balance_loss(s: torch.Tensor, experts: torch.Tensor, score: str = "softmax") -> torch.Tensor:
    """L_bal = N * sum_i f_i * P_i for one layer (scalar; k when perfectly balanced, up to k*N when collapsed)."""
    n_experts = s.shape[-1]
    return n_experts * (token_fraction(experts, n_experts) * importance(s, score)).sum()


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE router z-loss: mean_tokens logsumexp(logits)^2, keeps router logits small."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


def aux_free_update(bias: torch.Tensor, experts: torch.Tensor, rate: float) -> torch.Tensor:
    """DeepSeek-V3: raise the bias of under-loaded experts by rate, lower over-loaded ones by rate."""
    counts = torch.bincount(experts.reshape(-1), minlength=bias.shape[0]).float()
    return bias + rate * torch.sign(counts.mean() - counts)


def mutual_information(a, b) -> float:
    """Plug-in mutual information in bits between two integer label arrays of equal length."""
    import numpy as np

    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    joint = np.zeros((a.max(initial=0) + 1, b.max(initial=0) + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= max(joint.sum(), 1.0)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (pa @ pb)[nz])).sum())
