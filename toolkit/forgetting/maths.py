"""The two measures and the penalty of the forgetting experiment (slide "Catastrophic forgetting, measured").

- perplexity: exp(mean negative log-likelihood per token) of general text; it rises as the model forgets.
- kl_to_base: KL(p_base || p_θ) per token, averaged, the penalty that keeps the fine-tuned model's next-token
  distributions near the base model's on general text (as the KL term of PPO / GRPO does):
      KL = Σ_v p_base(v) (log p_base(v) - log p_θ(v))
"""

from __future__ import annotations

import math

import torch


def perplexity(mean_nll: float) -> float:
    return math.exp(mean_nll)


def kl_to_base(logits: torch.Tensor, base_logits: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(p_base || p_θ); logits and base_logits (..., vocab); a scalar with grad."""
    logp = torch.log_softmax(logits.float(), -1)  # (..., vocab)
    logq = torch.log_softmax(base_logits.float(), -1)  # (..., vocab)
    return (logq.exp() * (logq - logp)).sum(-1).mean()
