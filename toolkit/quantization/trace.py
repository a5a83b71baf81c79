"""QuantizationTrace (every scheme over every linear layer) and ActivationTrace (outlier channels, SmoothQuant);
made by ``quantization.capture`` and ``quantization.activations``; slides "Quantisation: fewer bits per weight",
"Quantisation summary" and "Outliers: why W8A8 is hard"."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class QuantizationTrace(Trace):
    """Weight-only quantisation of every linear layer, one row per scheme.

    schemes: names (see quantization.SCHEMES); ppl, nll: (scheme,) perplexity and mean negative log-likelihood of
    the held-out text; linear_bytes: (scheme,) bytes of the linear weights as stored; other_bytes: the rest of the
    model (embeddings, norms), kept in fp32 by every scheme; layer_error: (scheme, layer, module) relative error
    ||W_hat - W|| / ||W|| of each linear weight; modules: the module names of the last axis.
    hist_module: the weight the histograms show; hist_edges: (bins + 1,); hist_before: (bins,) its fp32 values;
    hist_after: (scheme, bins) its dequantised values. eval_tokens: tokens scored; seconds: (scheme,) time to
    quantise and score.
    """

    kind: ClassVar[str] = "quantization"
    schemes: list[str]
    modules: list[str]
    ppl: np.ndarray
    nll: np.ndarray
    linear_bytes: np.ndarray
    other_bytes: int
    layer_error: np.ndarray
    hist_module: str
    hist_edges: np.ndarray
    hist_before: np.ndarray
    hist_after: np.ndarray
    eval_tokens: int
    seconds: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> QuantizationTrace:
        n = len(self.schemes)
        self._require(n > 0 and len(set(self.schemes)) == n, "schemes must be distinct and not empty")
        for name in ("ppl", "nll", "linear_bytes", "seconds"):
            self._require(getattr(self, name).shape == (n,), f"{name} must have one entry per scheme")
        self._require(bool(np.isfinite(self.nll).all()), "a perplexity is not finite")
        self._require(bool(np.allclose(self.ppl, np.exp(self.nll), rtol=1e-4)), "ppl must be exp(nll)")
        self._require(bool((self.linear_bytes > 0).all()) and self.other_bytes >= 0, "sizes must be positive")
        self._require(
            self.layer_error.ndim == 3
            and self.layer_error.shape[0] == n
            and self.layer_error.shape[2] == len(self.modules),
            "layer_error must be (scheme, layer, module)",
        )
        self._require(bool((self.layer_error >= 0).all()), "errors are norms: never negative")
        if "fp32" in self.schemes:
            self._require(float(self.layer_error[self.schemes.index("fp32")].max()) == 0, "fp32 must be exact")
        bins = self.hist_before.shape[0]
        self._require(self.hist_edges.shape == (bins + 1,), "hist_edges must have one more entry than the bins")
        self._require(self.hist_after.shape == (n, bins), "hist_after must be (scheme, bins)")
        total = int(self.hist_before.sum())
        self._require(bool((self.hist_after.sum(1) == total).all()), "each histogram must count every weight")
        self._require(self.eval_tokens > 1, "perplexity needs at least two tokens")
        return self

    def row(self, scheme: str) -> int:
        if scheme not in self.schemes:
            raise KeyError(f"scheme {scheme!r} is not in this trace ({', '.join(self.schemes)})")
        return self.schemes.index(scheme)

    def total_bytes(self, scheme: str) -> int:
        return int(self.linear_bytes[self.row(scheme)]) + self.other_bytes

    def merged(self, other: QuantizationTrace) -> QuantizationTrace:
        """This trace with ``other``'s schemes added or replaced (a live run shown beside the recorded ones)."""
        if other.modules != self.modules or other.layer_error.shape[1] != self.layer_error.shape[1]:
            raise ValueError("the two traces are of different models")
        if other.hist_module != self.hist_module or not np.array_equal(other.hist_edges, self.hist_edges):
            raise ValueError("the two traces show histograms of different weights or bins")
        keep = [i for i, s in enumerate(self.schemes) if s not in other.schemes]

        def cat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.concatenate([a[keep], b])

        return replace(
            self,
            schemes=[self.schemes[i] for i in keep] + list(other.schemes),
            ppl=cat(self.ppl, other.ppl),
            nll=cat(self.nll, other.nll),
            linear_bytes=cat(self.linear_bytes, other.linear_bytes),
            layer_error=cat(self.layer_error, other.layer_error),
            hist_after=cat(self.hist_after, other.hist_after),
            seconds=cat(self.seconds, other.seconds),
            meta={**self.meta, "live": list(other.schemes)},
        ).check()


@register
@dataclass(frozen=True)
class ActivationTrace(Trace):
    """Per-channel ranges of the inputs of a model's linear layers, and what SmoothQuant does to them.

    sites: "attention" (the normed input q, k and v read) and "mlp" (the normed input gate and up read).
    x_absmax: (site, layer, channel) max |X| over the tokens; w_absmax: (site, layer, channel) max |W| over the
    output rows of the weights reading that channel; scales: (site, layer, channel) SmoothQuant's s;
    error, error_smooth: (site, layer) relative error of X W^T in W8A8 (int8 activations per tensor, int8 weights
    per channel) before and after smoothing. alpha: SmoothQuant's migration strength.
    """

    kind: ClassVar[str] = "activations"
    tokens: list[str]
    sites: list[str]
    x_absmax: np.ndarray
    w_absmax: np.ndarray
    scales: np.ndarray
    error: np.ndarray
    error_smooth: np.ndarray
    alpha: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> ActivationTrace:
        shape = self.x_absmax.shape
        self._require(len(shape) == 3 and shape[0] == len(self.sites), "x_absmax must be (site, layer, channel)")
        for name in ("w_absmax", "scales"):
            self._require(getattr(self, name).shape == shape, f"{name} must be shaped like x_absmax")
        for name in ("error", "error_smooth"):
            self._require(getattr(self, name).shape == shape[:2], f"{name} must be (site, layer)")
        self._require(bool((self.scales > 0).all()), "smoothing scales must be positive")
        self._require(0 <= self.alpha <= 1, "alpha must be in [0, 1]")
        self._require(len(self.tokens) > 0, "no tokens")
        return self

    @property
    def smoothed_absmax(self) -> np.ndarray:
        """(site, layer, channel) max |X / s|: the activation ranges after SmoothQuant."""
        return self.x_absmax / self.scales

    def outlier_ratio(self, site: int, layer: int) -> float:
        """Largest channel range over the median one: how far the outliers stand out."""
        x = self.x_absmax[site, layer]
        return float(x.max() / max(np.median(x), 1e-12))
