"""Queries, keys, values and attention weights of every layer, read from one forward pass: shared by every
concept that looks inside attention (attention maps, RoPE, FlashAttention tiling, sparse attention).

How: named hooks (``toolkit.hooks``) on each attention module (its second output is the weight matrix, eager
attention only; its ``position_embeddings`` keyword is the (cos, sin) the model rotated q and k with) and on its
q/k/v projections. Post-RoPE q and k come from ``rope.maths.rotate_with`` and that same cos/sin, so they are
exactly what the dot product QKᵀ saw (tested against transformers' ``apply_rotary_pos_emb``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from toolkit import arch
from toolkit.hooks import Hooks
from toolkit.rope.maths import rotate_with


class CaptureError(ValueError):
    """The model cannot be captured as asked (no eager attention, no attention modules found)."""


def _attention_output(
    module: torch.nn.Module, args: tuple, kwargs: dict, output: Any, weights: bool = True
) -> dict[str, Any]:
    """What a tap keeps of one attention call; ``weights=False``: not the weights (283 MB for a 512-token text)."""
    w = output[1] if weights and isinstance(output, tuple) and len(output) > 1 else None
    return {
        "weights": None if w is None else w.detach(),  # (batch, head, query, key)
        "rope": kwargs.get("position_embeddings"),
        "scaling": float(getattr(module, "scaling", 0.0) or 0.0),
    }


class QkvTap:
    """``with QkvTap(model) as tap: model(ids)`` then ``tap.arrays()`` (one forward pass as numpy arrays)."""

    def __init__(self, model: torch.nn.Module, weights: bool = True, qkv: bool = True):
        impl = getattr(model.config, "_attn_implementation", "eager")
        if weights and impl != "eager":
            raise CaptureError(
                f"attention implementation is {impl!r}; only 'eager' returns the weight matrix. Load the model "
                "with attn_implementation='eager' (toolkit.models.load does)."
            )
        self.arch = arch.of(model)
        self.layers = arch.attention_layers(model)
        self.want_weights, self.want_qkv = weights, qkv
        self.hooks = Hooks()

    def __enter__(self) -> QkvTap:
        try:
            for layer in self.layers:
                keep = functools.partial(_attention_output, weights=self.want_weights)
                self.hooks.output(f"{layer.index}.attn", layer.module, keep)
                if self.want_qkv:
                    for key in "qkv":
                        self.hooks.output(f"{layer.index}.{key}", getattr(layer, key))
        except BaseException:
            self.hooks.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.hooks.close()

    @property
    def calls(self) -> int:
        """Forward passes recorded so far."""
        return len(self.hooks.records.get("0.attn", []))

    def scaling(self) -> float:
        s = self.hooks["0.attn"][0]["scaling"] if self.calls else 0.0
        return s or self.arch.head_dim**-0.5

    def uses_rope(self) -> bool:
        return bool(self.calls and self.hooks["0.attn"][0]["rope"] is not None)

    def arrays(self, call: int = -1) -> dict[str, np.ndarray]:
        """One forward pass (batch row 0): weights (layer, head, query, key) and, with qkv, q_pre/q (layer, head,
        pos, head_dim) and k_pre/k/v (layer, kv_head, pos, head_dim); q and k are post-RoPE where the model rotates
        (else equal to q_pre, k_pre). Reads each call's weights once: they are released as they are copied."""
        a = self.arch
        out: dict[str, np.ndarray] = {}
        attn = [self.hooks[f"{layer.index}.attn"][call] for layer in self.layers]
        if self.want_weights:
            if any(rec["weights"] is None for rec in attn):
                raise CaptureError("the attention module returned no weights (is attention eager?)")
            first = attn[0]["weights"][0]  # (head, query, key)
            weights = np.empty((len(attn), *first.shape), dtype=np.float32)  # (layer, head, query, key)
            for i, rec in enumerate(attn):  # copied layer by layer, each torch tensor released once copied:
                weights[i] = rec["weights"][0].float().numpy()  # a 512-token trace is 283 MB; never twice that
                rec["weights"] = None
            out["weights"] = weights
        if self.want_qkv:
            split = {}
            for key, heads in (("q", a.heads), ("k", a.kv_heads), ("v", a.kv_heads)):
                x = torch.stack([self.hooks[f"{layer.index}.{key}"][call][0] for layer in self.layers])  # (L, T, H*d)
                split[key] = x.view(x.shape[0], x.shape[1], heads, a.head_dim).transpose(1, 2).float().numpy()
            out["q_pre"], out["k_pre"], out["v"] = split["q"], split["k"], split["v"]  # (L, H or H_kv, T, d)
            out["q"], out["k"] = out["q_pre"], out["k_pre"]
            rope = [rec["rope"] for rec in attn]
            if rope[0] is not None:
                cos = np.stack([c[0].float().numpy() for c, _ in rope])[:, None]  # (L, 1, T, d)
                sin = np.stack([s[0].float().numpy() for _, s in rope])[:, None]
                out["q"] = rotate_with(out["q_pre"], cos, sin)
                out["k"] = rotate_with(out["k_pre"], cos, sin)
        return out


def repeat_kv(x: np.ndarray, group: int) -> np.ndarray:
    """(layer, kv_head, pos, d) -> (layer, head, pos, d): query head h reads key/value head h // group."""
    return np.repeat(x, group, axis=1)
