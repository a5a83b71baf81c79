"""Activation outliers and SmoothQuant (slide "Outliers: why W8A8 is hard").

Weight-only schemes keep activations in float. W8A8 also stores the activations in int8, with one scale per
tensor (per-channel activation scales cannot be folded out of the matmul). A few input channels of a real layer
are tens of times larger than the rest, so one scale wastes most of the int8 range on them. SmoothQuant moves
that range into the weights: X W^T = (X diag(s)^-1)(W diag(s))^T, with s_j = max|X_j|^a / max|W_j|^(1-a).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, text
from toolkit.config import Config, param
from toolkit.hooks import Hooks
from toolkit.quantization.maths import smooth_scales, w8a8_error
from toolkit.quantization.trace import ActivationTrace
from toolkit.trace import make_meta

SITES = {"attention": ("q_proj", "k_proj", "v_proj"), "mlp": ("gate_proj", "up_proj")}


@dataclass(frozen=True)
class ActivationConfig(Config):
    max_tokens: int = param(256, "tokens run; a longer text is cut", lo=1, hi=text.MAX_TOKENS)
    alpha: float = param(0.5, "SmoothQuant's migration strength α", lo=0, hi=1, step=0.05, label="α")


def _readers(block: torch.nn.Module) -> dict[str, list[torch.nn.Linear]]:
    mine = {n.rpartition(".")[2]: m for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)}
    missing = [m for names in SITES.values() for m in names if m not in mine]
    if missing:
        raise arch.ArchError(f"no {', '.join(missing)} in a decoder layer: not a llama-style block")
    return {site: [mine[m] for m in names] for site, names in SITES.items()}


def capture(
    model: models.Loaded | str, prompt: str, config: ActivationConfig | None = None, **options: Any
) -> ActivationTrace:
    """One forward pass of ``prompt``: each layer's normed inputs, their channel ranges, SmoothQuant's scales and
    the W8A8 error of the product before and after smoothing."""
    loaded = models.resolve(model)
    cfg = ActivationConfig.make(config, **options)
    enc = text.encode(loaded.tokenizer, prompt, cfg.max_tokens)
    blocks = arch.decoder_layers(loaded.model)
    readers = [_readers(b) for b in blocks]
    with torch.no_grad(), Hooks() as h:
        for i, r in enumerate(readers):
            for site, mods in r.items():  # the first reader's input is every reader's input
                h.output(f"{i}.{site}", mods[0], lambda m, a, kw, o: a[0].detach()[0])  # (T, hidden)
        loaded.model(input_ids=torch.tensor([enc.ids]), use_cache=False)
    xs, ws, ss, err, err_s = [], [], [], [], []
    for site in SITES:
        row = [[], [], [], [], []]
        for i, r in enumerate(readers):
            x = h[f"{i}.{site}"][0].float()  # (T, channel)
            w = torch.cat([m.weight.detach() for m in r[site]], 0).float()  # (rows, channel)
            x_max, w_max = x.abs().amax(0), w.abs().amax(0)  # (channel,)
            s = smooth_scales(x_max, w_max, cfg.alpha)
            for out, value in zip(row, (x_max, w_max, s, w8a8_error(x, w), w8a8_error(x, w, s))):
                out.append(value.numpy() if torch.is_tensor(value) else value)
        for out, values in zip((xs, ws, ss, err, err_s), row):
            out.append(np.stack(values) if isinstance(values[0], np.ndarray) else np.array(values))
    return ActivationTrace(
        tokens=text.display(loaded.tokenizer, enc.ids),
        sites=list(SITES),
        x_absmax=np.stack(xs).astype(np.float32),
        w_absmax=np.stack(ws).astype(np.float32),
        scales=np.stack(ss).astype(np.float32),
        error=np.stack(err),
        error_smooth=np.stack(err_s),
        alpha=float(cfg.alpha),
        meta=make_meta(loaded.name, n_tokens_in_text=enc.n_total),
    ).check()
