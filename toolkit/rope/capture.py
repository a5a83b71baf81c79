"""RoPE capture: every layer's q and k of a real model, before and after its rotary embedding.

Serves "RoPE in SmolLM2: rotations you can watch". One forward pass through ``toolkit.qkv`` (named hooks on the
q/k projections and on each attention module, always removed, recording only this thread's forward pass); the
rotation is ``rope.maths.rotate_with`` with the cos/sin the model itself passed to its attention, and the
frequencies are the ones its rotary buffer used (``arch.rotary``), checked against what its config implies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, qkv, text
from toolkit.config import Config, param
from toolkit.rope.maths import frequencies
from toolkit.rope.trace import RopeTrace
from toolkit.trace import make_meta


@dataclass(frozen=True)
class RopeConfig(Config):
    max_tokens: int = param(
        text.DEFAULT_TOKENS, "tokens run; a longer text is cut (the trace says so)", lo=1, hi=text.MAX_TOKENS
    )


def capture(model: models.Loaded | str, prompt: str, config: RopeConfig | None = None, **options: Any) -> RopeTrace:
    """q and k per layer, head and position, before and after RoPE, for ``prompt``."""
    loaded = models.resolve(model)
    cfg = RopeConfig.make(config, **options)
    enc = text.encode(loaded.tokenizer, prompt, cfg.max_tokens)
    trace, _ = capture_ids(loaded, torch.tensor([enc.ids]), all_logits=False, n_tokens_in_text=enc.n_total)
    return trace


def capture_ids(
    loaded: models.Loaded,
    input_ids: torch.Tensor,
    tokens: list[str] | None = None,
    all_logits: bool = True,
    **meta: Any,
) -> tuple[RopeTrace, Any]:
    """One forward pass of ``input_ids`` (1, T) with q/k captured: (trace, the model's output). ``all_logits=False``
    asks for the last position's logits only (a 512-token pass's are 100 MB that the trace does not use)."""
    model = loaded.model
    if arch.rope_parameters(model.config) is None:
        raise ValueError(f"{loaded.name} has no rotary position embedding (it uses learned positions)")
    with torch.no_grad(), qkv.QkvTap(model, weights=False) as tap:
        out = model(input_ids=input_ids, use_cache=False, **({} if all_logits else arch.last_logits_only(model)))
    arrays = tap.arrays()
    if not tap.uses_rope():
        raise ValueError(f"{loaded.name}: its attention received no rotary cos/sin")
    T = input_ids.shape[1]
    f = frequencies(model.config, seq_len=T)
    used = arch.rotary(model)
    freqs, scaling = f.inv_freq.astype(np.float32), f.attention_scaling
    if used is not None:  # the float32 buffer the forward pass just used (dynamic types update it per call)
        if not np.allclose(used[0], f.inv_freq, rtol=1e-5, atol=0):
            raise RuntimeError(f"{loaded.name}: the model's inv_freq differs from the one its config implies")
        freqs, scaling = used
    with torch.no_grad():
        embed = model.get_input_embeddings()(input_ids)[0].float().numpy()  # (T, hidden)
    trace = RopeTrace(
        tokens=list(tokens) if tokens is not None else text.display(loaded.tokenizer, input_ids[0].tolist()),
        q_pre=arrays["q_pre"],
        q_post=arrays["q"],
        k_pre=arrays["k_pre"],
        k_post=arrays["k"],
        positions=np.arange(T),
        inv_freq=freqs,
        layout="half",
        attention_scaling=scaling,
        embed=embed,
        meta=make_meta(loaded.name, rope_type=f.rope_type, rope_theta=f.theta, context=f.context, **meta),
    )
    return trace.check(), out
