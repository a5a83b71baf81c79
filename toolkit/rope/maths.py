"""RoPE and sinusoidal position encoding: slides "Positional Encoding", "Method 1: Sinusoidal", "Method 2: RoPE",
"RoPE: Rotation in Action", "RoPE vs Sinusoidal PE" and long context.

Sinusoidal PE (Vaswani et al.), added to the embedding:
    PE(pos, 2i) = sin(pos / base^(2i/d)),   PE(pos, 2i+1) = cos(pos / base^(2i/d)),   x = embedding + PE(pos).
RoPE (Su et al., RoFormer), applied to q and k inside attention, one 2-D rotation per pair of dimensions:
    theta_i = base^(-2i/d)  (``inv_freq``, radians per position),   angle = pos * theta_i
    (x'_a, x'_b) = (x_a cos - x_b sin,  x_a sin + x_b cos)
so q(m).k(n) = q^T R(n - m) k depends on m - n only. Two pair layouts exist:
    "adjacent": pairs (2i, 2i+1), as in the paper and the deck;
    "half":     pairs (i, i + d/2), as in Hugging Face's ``rotate_half`` (the checkpoint's q/k weights are
                permuted when converted, so the two give the same scores; ``HALF_TO_ADJACENT`` is that permutation).
Context extension (linear, dynamic NTK, YaRN, llama3) reuses transformers' own ``ROPE_INIT_FUNCTIONS``.
Pure maths on arrays: the capture from a real model is in ``capture.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from toolkit import arch

LAYOUTS = ("adjacent", "half")
SCALINGS = ("default", "linear", "dynamic", "yarn", "llama3")
SINUSOID_BASE = 10_000.0


# ---- frequencies ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frequencies:
    """RoPE frequencies of one configuration. inv_freq: (d/2,) radians per position, pair i."""

    inv_freq: np.ndarray
    attention_scaling: float  # transformers multiplies cos and sin by this (YaRN's mscale; 1 otherwise)
    rope_type: str
    theta: float
    head_dim: int
    context: int  # the context length the frequencies serve (after extension)

    @property
    def wavelength(self) -> np.ndarray:
        return wavelengths(self.inv_freq)


def inv_freq(theta: float, head_dim: int) -> np.ndarray:
    """theta_i = theta^(-2i/d) for i = 0 .. d/2-1: (d/2,) float64."""
    if theta <= 1:
        raise ValueError(f"theta must be > 1, got {theta}")
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be even and >= 2, got {head_dim}")
    return 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def wavelengths(freqs: np.ndarray) -> np.ndarray:
    """Positions per full turn of each pair: 2 pi / theta_i."""
    return 2 * math.pi / np.asarray(freqs, dtype=np.float64)


def frequencies(config: Any, seq_len: int | None = None) -> Frequencies:
    """Frequencies a model's config asks for, computed as transformers computes them.

    "default" is theta^(-2i/d) (our formula, tested equal to the model's buffer); every scaled type goes through
    transformers' ``ROPE_INIT_FUNCTIONS[rope_type](config, seq_len=...)``. ``seq_len`` matters for "dynamic" only.
    """
    import torch
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = arch.rope_parameters(config)
    if params is None:
        raise ValueError(f"{type(config).__name__} has no rotary position embedding (it uses learned positions)")
    d = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope_type, theta = params["rope_type"], float(params["rope_theta"])
    context = int(getattr(config, "max_position_embeddings", 0) or 0)
    if rope_type == "default":
        return Frequencies(inv_freq(theta, d), 1.0, rope_type, theta, d, context)
    if rope_type not in ROPE_INIT_FUNCTIONS:
        raise ValueError(f"unknown rope_type {rope_type!r}; transformers knows {sorted(ROPE_INIT_FUNCTIONS)}")
    freqs, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, torch.device("cpu"), seq_len=seq_len)
    if rope_type == "dynamic" and seq_len:
        context = max(context, int(seq_len))
    return Frequencies(freqs.double().numpy(), float(scaling), rope_type, theta, d, context)


def scaled_frequencies(
    theta: float, head_dim: int, rope_type: str = "default", factor: float = 1.0, context: int = 8192
) -> Frequencies:
    """Frequencies for a model of ``context`` positions stretched ``factor`` times with ``rope_type``.

    Builds a small LlamaConfig and asks transformers, so the numbers are the ones a real model would use.
    linear, yarn, llama3: config for factor * context positions, original_max_position_embeddings = context.
    dynamic: config for context positions, frequencies as recomputed at factor * context tokens.
    """
    from transformers import LlamaConfig

    inv_freq(theta, head_dim)  # validates theta and head_dim
    if rope_type == "dynamic" and head_dim < 4:
        raise ValueError(f"dynamic NTK scaling needs head_dim >= 4 (its exponent d / (d - 2)); got {head_dim}")
    if rope_type not in SCALINGS:
        raise ValueError(f"unknown scaling {rope_type!r}; choose one of {', '.join(SCALINGS)}")
    if not factor >= 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    params: dict[str, Any] = {"rope_type": rope_type, "rope_theta": float(theta)}
    target = int(round(context * factor))
    if rope_type != "default":
        params["factor"] = float(factor)
    if rope_type in ("yarn", "llama3"):
        params["original_max_position_embeddings"] = int(context)
    if rope_type == "llama3":
        params.update(low_freq_factor=1.0, high_freq_factor=4.0)
    max_pos = context if rope_type in ("default", "dynamic") else max(target, context + 1)
    cfg = LlamaConfig(
        hidden_size=head_dim,
        num_attention_heads=1,
        head_dim=head_dim,
        num_hidden_layers=1,
        max_position_embeddings=max_pos,
        rope_parameters=params,
    )
    f = frequencies(cfg, seq_len=target if rope_type == "dynamic" else None)
    return Frequencies(
        f.inv_freq,
        f.attention_scaling,
        rope_type,
        float(theta),
        head_dim,
        target if rope_type != "default" else context,
    )


# ---- rotation ------------------------------------------------------------------------------------------------


def pair_index(head_dim: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (a_i, b_i) of the two coordinates of pair i: (2i, 2i+1) adjacent, (i, i+d/2) half."""
    half = np.arange(head_dim // 2)
    if layout == "adjacent":
        return 2 * half, 2 * half + 1
    if layout == "half":
        return half, half + head_dim // 2
    raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")


def half_to_adjacent(head_dim: int) -> np.ndarray:
    """Permutation P with x_adj = x_half[..., P]: adjacent slot 2i takes half slot i, slot 2i+1 takes i+d/2."""
    a, b = pair_index(head_dim, "half")
    return np.stack([a, b], axis=-1).reshape(-1)  # (d/2, 2) -> (d,)


def angles(positions: np.ndarray, freqs: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """pos * theta_i: (pos,) x (d/2,) -> (pos, d/2). float32 reproduces transformers' arithmetic exactly."""
    pos = np.asarray(positions).astype(dtype)
    return pos[:, None] * np.asarray(freqs).astype(dtype)[None, :]


def rotate(
    x: np.ndarray, positions: np.ndarray, freqs: np.ndarray, layout: str = "adjacent", scaling: float = 1.0
) -> np.ndarray:
    """Rotate each pair of x (..., pos, d) by pos * theta_i; computed in x's dtype. ``scaling`` multiplies cos/sin."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    x = x.astype(dtype, copy=False)
    ang = angles(positions, freqs, dtype)  # (pos, d/2)
    cos, sin = np.cos(ang), np.sin(ang)
    if scaling != 1.0:
        cos, sin = cos * np.dtype(dtype).type(scaling), sin * np.dtype(dtype).type(scaling)
    a, b = _pair_slices(x.shape[-1], layout)
    xa, xb = x[..., a], x[..., b]  # (..., pos, d/2) each, views
    out = np.empty_like(x)
    out[..., a] = xa * cos - xb * sin
    out[..., b] = xa * sin + xb * cos
    return out


def _pair_slices(head_dim: int, layout: str) -> tuple[slice, slice]:
    """``pair_index`` as slices (views, not copies): the fast path for big tensors."""
    if layout == "adjacent":
        return slice(0, None, 2), slice(1, None, 2)
    if layout == "half":
        return slice(0, head_dim // 2), slice(head_dim // 2, None)
    raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")


def rotate_half(x: np.ndarray) -> np.ndarray:
    """(-x_b, x_a) in the half layout: transformers' ``rotate_half``."""
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rotate_with(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """x (..., pos, d) rotated with the cos/sin a model passed to its attention (half layout, (pos, d) each, the
    d/2 angles repeated twice and any attention scaling folded in): x cos + rotate_half(x) sin, as transformers'
    ``apply_rotary_pos_emb`` computes it. Every capture of post-RoPE q and k goes through here."""
    return x * cos + rotate_half(x) * sin


def rotation_matrix(position: float, freqs: np.ndarray, layout: str = "adjacent") -> np.ndarray:
    """R(pos): the (d, d) block rotation that ``rotate`` applies, x' = R x."""
    d = 2 * len(freqs)
    ang = position * np.asarray(freqs, dtype=np.float64)
    a, b = pair_index(d, layout)
    R = np.zeros((d, d))
    R[a, a], R[a, b] = np.cos(ang), -np.sin(ang)
    R[b, a], R[b, b] = np.sin(ang), np.cos(ang)
    return R


def relative_scores(q: np.ndarray, k: np.ndarray, freqs: np.ndarray, n: int, layout: str = "adjacent") -> np.ndarray:
    """RoPE score of the same q and k placed at every (m, n): S[m, n] = R(m)q . R(n)k, (n, n); constant on diagonals."""
    pos = np.arange(n)
    qs = rotate(np.broadcast_to(q, (n, len(q))), pos, freqs, layout)  # (n, d)
    ks = rotate(np.broadcast_to(k, (n, len(k))), pos, freqs, layout)  # (n, d)
    return qs @ ks.T


def additive_scores(
    q: np.ndarray, k: np.ndarray, n: int, base: float = SINUSOID_BASE, scale: float = 1.0
) -> np.ndarray:
    """Same grid with sinusoidal PE added instead: S[m, n] = (q + s PE(m)) . (k + s PE(n)); not diagonal-constant."""
    pe = scale * sinusoidal(n, len(q), base)  # (n, d)
    return (q[None, :] + pe) @ (k[None, :] + pe).T


def decay_bound(distances: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """RoFormer's long-term decay (sec. 3.4.3) per distance r: mean_j |S_j|, S_j = sum_{i<j} e^(i r theta_i)."""
    phase = np.exp(1j * np.outer(distances, freqs))  # (r, d/2)
    S = np.cumsum(phase, axis=1)  # (r, d/2): S_1 .. S_{d/2}
    return np.abs(S).mean(axis=1)


def matched_decay(distances: np.ndarray, freqs: np.ndarray, n_samples: int = 256, seed: int = 0) -> np.ndarray:
    """Mean |q . R(r) q| / |q|^2 over random Gaussian q (a token meeting itself r positions away), per distance r."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n_samples, 2 * len(freqs)))  # (s, d)
    a, b = pair_index(q.shape[1], "adjacent")
    energy = q[:, a] ** 2 + q[:, b] ** 2  # (s, d/2): per-pair squared norm; q.R(r)q = sum_i energy_i cos(r theta_i)
    dots = energy @ np.cos(np.outer(freqs, distances))  # (s, r)
    return np.abs(dots / energy.sum(1, keepdims=True)).mean(0)


def pair_norms(x: np.ndarray, layout: str = "half") -> np.ndarray:
    """sqrt(x_a^2 + x_b^2) per pair: (..., d) -> (..., d/2). Rotation leaves these unchanged."""
    a, b = pair_index(x.shape[-1], layout)
    return np.sqrt(x[..., a] ** 2 + x[..., b] ** 2)


# ---- sinusoidal PE -------------------------------------------------------------------------------------------


def sinusoidal(n_positions: int, d: int, base: float = SINUSOID_BASE) -> np.ndarray:
    """PE(pos, 2i) = sin(pos / base^(2i/d)), PE(pos, 2i+1) = cos(same): (pos, d) float64. d may be odd."""
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    pos = np.arange(n_positions, dtype=np.float64)[:, None]  # (pos, 1)
    two_i = np.arange(0, d, 2, dtype=np.float64)  # (ceil(d/2),)
    ang = pos / base ** (two_i / d)  # (pos, ceil(d/2))
    pe = np.zeros((n_positions, d))
    pe[:, 0::2] = np.sin(ang)
    pe[:, 1::2] = np.cos(ang[:, : d // 2])
    return pe
