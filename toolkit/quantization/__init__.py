"""Quantising the whole model (slides "Quantisation: fewer bits per weight", "Quantisation summary", "Outliers").

    from toolkit import quantization
    trace = quantization.capture("smollm2-135m", schemes=("int8", "nf4"))   # QuantizationTrace
    quantization.figures.tradeoff(trace)

maths: every scheme as fake quantisation (int8, int4 symmetric / zero-point, NF4, GGUF Q4_1, GPTQ, bf16/fp16),
SmoothQuant; capture: each scheme over every linear layer, scored on held-out stdlib text; activations: outlier
channels and SmoothQuant on a real layer; record: the lecture's recorded results (`lecture quantization`).
"""

from toolkit.quantization import figures
from toolkit.quantization.activations import SITES, ActivationConfig
from toolkit.quantization.activations import capture as activations
from toolkit.quantization.capture import (
    MODULES,
    QuantizationConfig,
    capture,
    gptq_weights,
    linears,
    nll,
    quantising,
    with_weights,
)
from toolkit.quantization.maths import (
    NF4,
    SCHEMES,
    Scheme,
    bits_per_weight,
    fake_quantize,
    gptq,
    scheme,
    weight_bytes,
)
from toolkit.quantization.trace import ActivationTrace, QuantizationTrace

__all__ = [
    "capture",
    "activations",
    "QuantizationConfig",
    "ActivationConfig",
    "QuantizationTrace",
    "ActivationTrace",
    "SCHEMES",
    "SITES",
    "MODULES",
    "NF4",
    "Scheme",
    "scheme",
    "bits_per_weight",
    "weight_bytes",
    "fake_quantize",
    "gptq",
    "gptq_weights",
    "linears",
    "nll",
    "quantising",
    "with_weights",
    "figures",
]
