"""Reward model and DPO (slides "Bradley-Terry", "reward model loss", "DPO loss", "implicit reward").

    from toolkit import dpo
    trace = dpo.train("smollm2-135m", dpo.PAIR, beta=0.1, steps=2)   # DpoTrace (dpo.capture is the same function)
    dpo.figures.steps(trace)

maths: Bradley-Terry, the reward-model and DPO losses, per-token log-probs from logits; capture: Pair, DpoConfig,
sequence_logps (log π of both answers) and train (DPO steps with LoRA, reference = adapter off); trace: DpoTrace;
figures: one plotly figure per view (and the deck's static Bradley-Terry curve).
"""

from toolkit.dpo import figures
from toolkit.dpo.capture import (
    MAX_STEPS,
    PAIR,
    DpoConfig,
    Pair,
    capture,
    check_pair,
    pair_batch,
    sequence_logps,
    token_logps,
    train,
)
from toolkit.dpo.maths import MAX_MARGIN, bradley_terry, dpo_loss, label_logps, margins_around, reward_model_loss
from toolkit.dpo.trace import DpoTrace

__all__ = [
    "capture",
    "train",
    "sequence_logps",
    "token_logps",
    "pair_batch",
    "check_pair",
    "Pair",
    "PAIR",
    "DpoConfig",
    "DpoTrace",
    "MAX_STEPS",
    "MAX_MARGIN",
    "bradley_terry",
    "reward_model_loss",
    "dpo_loss",
    "label_logps",
    "margins_around",
    "figures",
]
