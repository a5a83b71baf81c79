"""Next-token sampling (slides "Next-token prediction" and "Sampling strategies": greedy, temperature, top-k,
top-p, min-p).

    from toolkit import sampling
    trace = sampling.next_token("smollm2-135m", "The capital of France is", temperature=0.8, top_p=0.9)
    sampling.figures.distribution(trace)

maths: the filters on logits (pure torch); capture: SamplingConfig, next_token, decode, greedy_and_sampled on a
real model, compare (two models' next-token distributions and their KL); trace: NextTokenTrace, DecodeTrace,
NextTokenCompareTrace; figures: one plotly figure per view.
"""

from toolkit.sampling import figures
from toolkit.sampling.capture import (
    MAX_STEPS,
    SamplingConfig,
    compare,
    decode,
    decode_rows,
    greedy_and_sampled,
    next_logits,
    next_token,
)
from toolkit.sampling.maths import STAGES, filtered, kl, min_p, stages, temperature, top_k, top_p
from toolkit.sampling.trace import DecodeTrace, NextTokenCompareTrace, NextTokenTrace

__all__ = [
    "next_token",
    "compare",
    "NextTokenCompareTrace",
    "kl",
    "next_logits",
    "decode",
    "decode_rows",
    "greedy_and_sampled",
    "SamplingConfig",
    "NextTokenTrace",
    "DecodeTrace",
    "figures",
    "STAGES",
    "MAX_STEPS",
    "filtered",
    "stages",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
]
