"""LoRA and QLoRA (slides "LoRA", "QLoRA").

    from toolkit import lora
    trace = lora.finetune("smollm2-135m", r=4, steps=2)   # LoraTrace (lora.capture is the same function)
    lora.figures.spectra(trace)

maths: LoRA's parameter count and blockwise int8/int4/NF4 quantisation (pure torch); capture: LoraConfig,
QuantConfig, twin (the shared model's weights in new modules), count/counts/expected_count, finetune,
tuned (the fine-tuned model itself, for side-by-side views), quant_trace; trace: LoraTrace, QuantTrace;
figures: one plotly figure per view.
"""

from toolkit.lora import figures
from toolkit.lora.capture import (
    DEFAULT_MODULE,
    EXAMPLE,
    MAX_STEPS,
    RANKS,
    TARGETS,
    LoraConfig,
    QuantConfig,
    capture,
    count,
    counts,
    expected_count,
    finetune,
    peft_config,
    quant_trace,
    trained_as,
    tuned,
    twin,
)
from toolkit.lora.maths import NF4, SCHEMES, lora_parameters, quantize
from toolkit.lora.trace import LoraTrace, QuantTrace

__all__ = [
    "capture",
    "finetune",
    "count",
    "counts",
    "expected_count",
    "trained_as",
    "twin",
    "tuned",
    "peft_config",
    "quant_trace",
    "LoraConfig",
    "QuantConfig",
    "LoraTrace",
    "QuantTrace",
    "quantize",
    "lora_parameters",
    "NF4",
    "SCHEMES",
    "TARGETS",
    "RANKS",
    "MAX_STEPS",
    "DEFAULT_MODULE",
    "EXAMPLE",
    "figures",
]
