"""Speculative decoding and distillation (slides "Speculative decoding", "Small models and distillation").

    from toolkit import speculative
    trace = speculative.capture("smollm2-135m", "Fix the typos: 'teh cat sat on teh mat'", draft="lookup", k=4)

maths: prompt lookup, greedy acceptance, Leviathan's rejection sampling, the distillation loss (pure functions);
drafts: the truncated / distilled SmolLM2 draft; decode: plain greedy and speculative loops with a KV cache;
capture: SpeculativeConfig, capture (a run step by step), targets (soft targets); distill: training the draft;
record: the recorded sweep over k (`lecture speculative`). Distillation lives here because what it buys is
measured here: the draft's acceptance and the speed-up.
"""

from pathlib import Path

from toolkit.speculative import figures
from toolkit.speculative.capture import (
    DEFAULT_PROMPT,
    DRAFT_LAYERS,
    DRAFTS,
    PROMPTS,
    SpeculativeConfig,
    TargetsConfig,
    assets_dir,
    capture,
    draft_model,
    prompt_ids,
    targets,
)
from toolkit.speculative.decode import LookupDraft, ModelDraft, greedy, speculative
from toolkit.speculative.drafts import load_adapter, save_adapter, truncated
from toolkit.speculative.maths import (
    accept_greedy,
    distillation_loss,
    expected_tokens,
    hard_loss,
    lookup,
    residual,
    soft_targets,
    speedup,
    verify_sample,
)
from toolkit.speculative.trace import DistillationTrace, SpeculativeTrace, SweepTrace, TargetsTrace
from toolkit.trace import Trace


def load(path: str | Path) -> Trace:
    """Any recorded speculative trace (a run, the sweep, the distillation run)."""
    return Trace.load(path)


__all__ = [
    "capture",
    "targets",
    "load",
    "SpeculativeConfig",
    "TargetsConfig",
    "SpeculativeTrace",
    "SweepTrace",
    "DistillationTrace",
    "TargetsTrace",
    "DRAFTS",
    "DRAFT_LAYERS",
    "PROMPTS",
    "DEFAULT_PROMPT",
    "assets_dir",
    "draft_model",
    "prompt_ids",
    "greedy",
    "speculative",
    "LookupDraft",
    "ModelDraft",
    "truncated",
    "load_adapter",
    "save_adapter",
    "lookup",
    "accept_greedy",
    "verify_sample",
    "residual",
    "expected_tokens",
    "speedup",
    "distillation_loss",
    "hard_loss",
    "soft_targets",
    "figures",
]
