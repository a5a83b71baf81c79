"""SFT loss masking (slides "Training objective", "Cross-entropy", "SFT loss masking (-100)").

    from toolkit import sft
    trace = sft.capture("smollm2-135m", sft.Exchange("What is the capital of France?", "Paris."))  # SftTrace
    sft.figures.labels_and_loss(trace)

maths: the labels row, -log p per token, the answer mask; capture: Exchange, SftConfig, build/batch (the chat
template with -100 on the prompt, also used by LoRA and DPO) and capture; trace: SftTrace; figures: one plotly
figure per view (and the deck's static cross-entropy curve).
"""

from toolkit.sft import figures
from toolkit.sft.capture import Built, Exchange, SftConfig, batch, build, capture, check_lengths
from toolkit.sft.maths import IGNORE, answer_mask, labels, per_token_loss
from toolkit.sft.trace import SftTrace

__all__ = [
    "capture",
    "build",
    "batch",
    "check_lengths",
    "Built",
    "Exchange",
    "SftConfig",
    "SftTrace",
    "IGNORE",
    "answer_mask",
    "labels",
    "per_token_loss",
    "figures",
]
