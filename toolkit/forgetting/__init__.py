"""Catastrophic forgetting, measured: fine-tune SmolLM2 on a narrow task five ways and watch general text (slide
"Catastrophic forgetting, measured").

    from toolkit import forgetting
    trace = forgetting.train("smollm2-135m", methods=["lora"], steps=2)   # ForgettingTrace
    forgetting.figures.curves(trace)

data: the narrow task, general text and prompts; maths: perplexity, KL to the base model; capture:
ForgettingConfig, METHODS, preset, private_model, stream, train, answers; trace: ForgettingTrace; record: the
committed runs; figures: one plotly figure per view.
"""

from toolkit.forgetting import figures
from toolkit.forgetting.capture import (
    METHOD_TITLES,
    METHODS,
    RECORDED,
    ForgettingConfig,
    Step,
    answers,
    capture,
    preset,
    private_model,
    stream,
    train,
)
from toolkit.forgetting.data import PROMPTS, task
from toolkit.forgetting.maths import kl_to_base, perplexity
from toolkit.forgetting.trace import ForgettingTrace

__all__ = [
    "capture",
    "train",
    "stream",
    "answers",
    "preset",
    "private_model",
    "ForgettingConfig",
    "ForgettingTrace",
    "Step",
    "METHODS",
    "RECORDED",
    "METHOD_TITLES",
    "PROMPTS",
    "task",
    "kl_to_base",
    "perplexity",
    "figures",
]
