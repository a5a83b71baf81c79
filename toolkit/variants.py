"""Named variants of a model, for side-by-side views (attention, sampling and tokens in compare mode).

    from toolkit import models, variants
    variants.register("smollm2-135m")   # smollm2-135m-lora, smollm2-135m-int4, smollm2-135m-nf4
    models.load("smollm2-135m-int4")    # built at its first load; the base model is unchanged

lora   the model after a short LoRA fine-tune on the LoRA slide's example (toolkit.lora.tuned: q_proj and v_proj,
       merged into new tensors)
int4   every linear weight of the decoder blocks quantised to int4 (symmetric, groups of 128) and back
       (toolkit.quantization: fake quantisation, new modules over the same other tensors)
nf4    the same with QLoRA's NormalFloat4 (blocks of 64)

Each is a models.derive recipe: nothing is computed until a variant is loaded, once per process. The embedded
causal model's variants are registered when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit import models

LORA_STEPS = 4  # AdamW steps of the LoRA variant (LoraConfig.steps): its attention and next-token shift show
LORA_LR = 3e-3


def lora(base: models.Loaded) -> Any:
    from toolkit.lora import EXAMPLE, tuned

    return tuned(base, EXAMPLE, steps=LORA_STEPS, lr=LORA_LR)


def quantised(scheme: str) -> Callable[[models.Loaded], Any]:
    """A transform: every linear weight of the decoder blocks as ``scheme`` stores it (toolkit.quantization)."""

    def transform(base: models.Loaded) -> Any:
        from toolkit.quantization import fake_quantize, linears, with_weights

        return with_weights(base.model, {w.name: fake_quantize(w.weight, scheme) for w in linears(base.model)})

    transform.__name__ = f"quantised_{scheme}"
    return transform


VARIANTS: dict[str, Callable[[models.Loaded], Any]] = {
    "lora": lora,
    "int4": quantised("int4-g128"),
    "nf4": quantised("nf4"),
}
HELP = {
    "lora": f"after {LORA_STEPS} LoRA steps (q_proj, v_proj) on the LoRA slide's example",
    "int4": "every linear weight quantised to int4 (group 128)",
    "nf4": "every linear weight quantised to NF4 (QLoRA, block 64)",
}


def name(base: str, variant: str) -> str:
    return f"{base}-{variant}"


def register(base: str = models.DEFAULT_CAUSAL, which: tuple[str, ...] | None = None) -> list[str]:
    """Register ``base``'s variants (all by default) under "<base>-<variant>"; returns their names."""
    unknown = [v for v in which or () if v not in VARIANTS]
    if unknown:
        raise KeyError(f"unknown variant {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    return [models.derive(name(base, v), base, VARIANTS[v]) for v in which or VARIANTS]


def describe(model: str) -> str:
    """A variant's one-line description ("" for a plain model)."""
    for v, text in HELP.items():
        if model.endswith(f"-{v}") and model in models.derived():
            return text
    return ""


NAMES = register()
