"""RoPE and sinusoidal position encoding (slides "Method 1: Sinusoidal", "Method 2: RoPE", "RoPE in SmolLM2").

    from toolkit import rope
    trace = rope.capture("smollm2-135m", "The cat sat on the mat")   # RopeTrace
    rope.figures.pair_norms(trace, layer=0, head=0)

maths: frequencies, rotations, sinusoidal PE (pure numpy); capture: q/k of a real model; trace: RopeTrace;
figures: one plotly figure per view.
"""

from toolkit.rope import figures
from toolkit.rope.capture import RopeConfig, capture, capture_ids
from toolkit.rope.maths import *  # noqa: F403  (the maths is the concept's vocabulary: rope.rotate, rope.inv_freq)
from toolkit.rope.maths import LAYOUTS, SCALINGS, SINUSOID_BASE, Frequencies
from toolkit.rope.trace import RopeTrace

__all__ = [
    "capture",
    "capture_ids",
    "RopeConfig",
    "RopeTrace",
    "Frequencies",
    "figures",
    "LAYOUTS",
    "SCALINGS",
    "SINUSOID_BASE",
]
