"""Weight quantisation on tensors (slides "Quantisation: fewer bits per weight", "Quantisation summary", "QLoRA").

Every scheme here is *fake* quantisation: quantise, then dequantise back to float32, so the model runs unchanged
and only the weights' values move to the grid the scheme can store. Groups run along a row of an (out, in) weight
(the input dimension, as every library and GGUF lay them out):

  int8      per output channel, symmetric: s = max|w_row| / 127, q = round(w / s) in [-127, 127]
  int4      per group of g, symmetric ("absmax"): s = max|w| / 7, q in [-7, 7]
  int4zp    per group of g, with a zero-point (quanto's MaxOptimizer): s = (max - min) / 15, z = round(-min / s),
            q = clamp(round(w / s) + z, 0, 15), w_hat = (q - z) s
  nf4       QLoRA's NormalFloat4 (Dettmers et al. 2023): w / max|w| rounded to the nearest of 16 levels placed at
            quantiles of N(0, 1), per block of 64 over the flattened weight (bitsandbytes' layout)
  q4_1      GGUF / llama.cpp: blocks of 32, d = (max - min) / 15 and m = min stored in fp16,
            q = min(15, trunc((w - m) / d + 0.5)), w_hat = q d + m
  gptq      int4zp per group, rounded column by column while later columns absorb each rounding error,
            weighted by the layer's inputs (Frantar et al. 2023, Algorithm 1)
  bf16/fp16 a cast to 16-bit floats and back

Bits per weight count the codes plus what each group stores beside them (scales, zero-points, minimums).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# QLoRA's NormalFloat4 levels (Dettmers et al. 2023, appendix E; bitsandbytes' NF4 table).
NF4 = torch.tensor(
    [
        -1.0,
        -0.6961928009986877,
        -0.5250730514526367,
        -0.39491748809814453,
        -0.28444138169288635,
        -0.18477343022823334,
        -0.09105003625154495,
        0.0,
        0.07958029955625534,
        0.16093020141124725,
        0.24611230194568634,
        0.33791524171829224,
        0.44070982933044434,
        0.5626170039176941,
        0.7229568362236023,
        1.0,
    ]
)
TINY = 1e-12  # a group of zeros gets this scale, so it dequantises to zeros instead of NaN


@dataclass(frozen=True)
class Scheme:
    """One weight format: its family, its group size (None: per row or no groups) and what it stores."""

    name: str
    family: str  # fp32, bf16, fp16, int8, int4, int4zp, nf4, q4_1, gptq
    group: int | None
    bits: float  # bits per weight, scales and offsets included
    label: str

    @property
    def needs_calibration(self) -> bool:
        return self.family == "gptq"


def _schemes() -> dict[str, Scheme]:
    rows = [
        Scheme("fp32", "fp32", None, 32, "fp32 (the toolkit's SmolLM2)"),
        Scheme("bf16", "bf16", None, 16, "bf16"),
        Scheme("fp16", "fp16", None, 16, "fp16"),
        Scheme("int8", "int8", None, 8, "int8 per channel"),
    ]
    for g in (32, 64, 128):
        rows.append(Scheme(f"int4-g{g}", "int4", g, 4 + 32 / g, f"int4 symmetric, group {g}"))
    for g in (32, 64, 128):
        rows.append(Scheme(f"int4zp-g{g}", "int4zp", g, 4 + 40 / g, f"int4 zero-point, group {g}"))
    rows += [
        Scheme("nf4", "nf4", 64, 4 + 32 / 64, "NF4 (QLoRA), block 64"),
        Scheme("q4_1", "q4_1", 32, 4 + 32 / 32, "Q4_1 (GGUF), block 32"),
        Scheme("gptq-g128", "gptq", 128, 4 + 40 / 128, "GPTQ int4 zero-point, group 128"),
    ]
    return {s.name: s for s in rows}


SCHEMES: dict[str, Scheme] = _schemes()


def scheme(name: str) -> Scheme:
    if name not in SCHEMES:
        raise ValueError(f"unknown scheme {name!r}; choose one of {', '.join(SCHEMES)}")
    return SCHEMES[name]


def bits_per_weight(name: str, in_features: int) -> float:
    """Bits one weight costs in an (out, in_features) matrix: int8 keeps one fp32 scale per row of in_features."""
    s = scheme(name)
    return 8 + 32 / in_features if s.family == "int8" else s.bits


def weight_bytes(name: str, shape: tuple[int, ...]) -> int:
    """Bytes an (out, in) weight takes in scheme ``name``: codes, plus per-group scales and offsets (a shorter
    last group in a row still stores its own)."""
    s, n = scheme(name), math.prod(shape)
    if s.group is None or s.family == "nf4":  # per row, or blocks of the flattened weight (n is a multiple)
        return int(round(n * bits_per_weight(name, shape[-1]) / 8))
    extra = (s.bits - 4) * s.group  # bits stored beside the codes, per group
    return int(round((n * 4 + n_groups(shape, s.group) * extra) / 8))


def _groups(w: torch.Tensor, group: int) -> torch.Tensor:
    """(out, in) -> (out * ceil(in / group), group): consecutive weights of a row share a group. When ``group``
    does not divide a row (SmolLM2's rows of 576 and groups of 128) the last group is shorter: it is padded with
    copies of the row's last weight, which leave its minimum, maximum and absmax unchanged (``_ungroup`` drops
    them again)."""
    pad = (-w.shape[-1]) % group
    if pad:
        w = torch.cat([w, w[:, -1:].expand(w.shape[0], pad)], 1)  # (out, in + pad)
    return w.reshape(-1, group)


def _ungroup(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of ``_groups``: (groups, group) -> (out, in), padding dropped."""
    return g.reshape(shape[0], -1)[:, : shape[-1]]


def n_groups(shape: tuple[int, ...], group: int) -> int:
    """Groups of an (out, in) weight: ceil(in / group) per row."""
    return shape[0] * -(-shape[-1] // group)


def absmax_int(w: torch.Tensor, bits: int, group: int | None = None) -> torch.Tensor:
    """Symmetric round-to-nearest: s = max|w| / (2^(bits-1) - 1) per row (group None) or per group of a row."""
    x = w.detach().float()
    g = x.reshape(x.shape[0], -1) if group is None else _groups(x, group)  # (groups, size)
    qmax = 2 ** (bits - 1) - 1
    scale = (g.abs().amax(-1, keepdim=True) / qmax).clamp(min=TINY)  # (groups, 1)
    return _ungroup(torch.round(g / scale).clamp(-qmax, qmax) * scale, w.shape)


def zero_point_params(g: torch.Tensor, bits: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero) of each row of g (groups, size): s = (max - min) / (2^bits - 1), z = clamp(round(-min / s))."""
    qmax = 2**bits - 1
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    scale = ((hi - lo) / qmax).clamp(min=TINY)
    zero = torch.round(-lo / scale).clamp(0, qmax)
    return scale, zero


def zero_point_round(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """q = clamp(round(x / s) + z, 0, 2^bits - 1), dequantised: (q - z) s."""
    q = torch.clamp(torch.round(x / scale) + zero, 0, 2**bits - 1)
    return (q - zero) * scale


def zero_point_int(w: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """Asymmetric round-to-nearest with an integer zero-point per group (optimum-quanto's qint4 with zeropoint)."""
    g = _groups(w.detach().float(), group)  # (groups, group)
    scale, zero = zero_point_params(g, bits)
    return _ungroup(zero_point_round(g, scale, zero, bits), w.shape)


def nf4(w: torch.Tensor, block: int = 64) -> torch.Tensor:
    """NF4: each block of the flattened weight scaled by its absmax, rounded to the nearest NormalFloat level."""
    flat = w.detach().float().reshape(-1)
    if flat.numel() % block:
        raise ValueError(f"{flat.numel()} weights do not split into blocks of {block}")
    out = torch.empty_like(flat)
    step = block * 65536  # blocks per chunk: the (n, 16) distance table stays small
    mids = (NF4[1:] + NF4[:-1]) / 2  # (15,) midpoints between neighbouring levels
    for start in range(0, flat.numel(), step):
        b = flat[start : start + step].reshape(-1, block)  # (blocks, block)
        absmax = b.abs().amax(-1, keepdim=True).clamp(min=TINY)
        codes = torch.bucketize((b / absmax).contiguous(), mids)  # nearest level: count of midpoints below
        out[start : start + step] = (NF4[codes] * absmax).reshape(-1)
    return out.reshape(w.shape)


def q4_1(w: torch.Tensor) -> torch.Tensor:
    """GGUF's Q4_1 (ggml ``quantize_row_q4_1_ref``): blocks of 32, fp16 delta and minimum, 16 levels."""
    if w.shape[-1] % 32:
        raise ValueError(f"Q4_1 needs rows that split into blocks of 32; a row here has {w.shape[-1]} weights")
    g = _groups(w.detach().float(), 32)  # (blocks, 32)
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    d = (hi - lo) / 15
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    q = torch.clamp(torch.trunc((g - lo) * inv + 0.5), max=15)  # ggml: MIN(15, (int8_t)(x + 0.5f))
    d16, m16 = d.half().float(), lo.half().float()  # what the file stores
    return (q * d16 + m16).reshape(w.shape)


def cast(w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return w.detach().to(dtype).float()


def fake_quantize(w: torch.Tensor, name: str, hessian: torch.Tensor | None = None) -> torch.Tensor:
    """``w`` (out, in) as scheme ``name`` stores it, back in float32. GPTQ needs the layer's input Hessian."""
    s = scheme(name)
    if s.family == "fp32":
        return w.detach().float().clone()
    if s.family in ("bf16", "fp16"):
        return cast(w, torch.bfloat16 if s.family == "bf16" else torch.float16)
    if s.family == "int8":
        return absmax_int(w, 8)
    if s.family == "int4":
        return absmax_int(w, 4, s.group)
    if s.family == "int4zp":
        return zero_point_int(w, 4, s.group)
    if s.family == "nf4":
        return nf4(w, s.group)
    if s.family == "q4_1":
        return q4_1(w)
    if hessian is None:
        raise ValueError("GPTQ needs the Hessian of the layer's inputs (quantization.capture computes it)")
    return gptq(w, hessian, 4, s.group)


def gptq(
    w: torch.Tensor, hessian: torch.Tensor, bits: int = 4, group: int = 128, damp: float = 0.01, block: int = 128
) -> torch.Tensor:
    """GPTQ (Frantar et al. 2023, Algorithm 1) with the int4 zero-point grid of ``zero_point_int``.

    hessian: (in, in) = 2 X^T X / n of the layer's inputs X (n, in). Columns are rounded left to right; each
    rounding error e_j is spread over the columns not yet rounded as -e_j H^-1[j, j:] / H^-1[j, j] (the optimal
    update of the OBS framework), using the upper Cholesky factor of H^-1. Group scales are chosen when a group's
    first column comes up, from the already updated weights. With H = I nothing is spread: plain rounding.
    """
    W = w.detach().float().clone()  # (out, in)
    n_in = W.shape[1]
    if block % group and group % block:
        raise ValueError(f"the group ({group}) and the block ({block}) must divide one another")
    H = hessian.detach().double().clone()
    dead = torch.diag(H) == 0  # inputs that never fire: their weights do not matter
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * torch.diag(H).mean() * torch.eye(n_in, dtype=H.dtype)  # dampening, as in the paper
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True).float()  # (in, in)
    Q = torch.zeros_like(W)
    scale = zero = None
    for i1 in range(0, n_in, block):
        i2 = min(i1 + block, n_in)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]  # (out, b), (b, b)
        err = torch.zeros_like(W1)
        for i in range(i2 - i1):
            col = i1 + i
            if col % group == 0:  # a new group: its scale and zero from the current (updated) weights
                scale, zero = zero_point_params(torch.cat([W1[:, i:], W[:, i2:]], 1)[:, :group], bits)
            q = zero_point_round(W1[:, i : i + 1], scale, zero, bits)[:, 0]  # (out,)
            Q[:, col] = q
            e = (W1[:, i] - q) / Hinv1[i, i]
            W1[:, i:] -= e[:, None] * Hinv1[i, i:][None, :]  # spread the error over the rest of the block
            err[:, i] = e
        W[:, i2:] -= err @ Hinv[i1:i2, i2:]  # lazy batch update of the columns after the block
    return Q


def relative_error(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """||w_hat - w||_F / ||w||_F."""
    w = w.detach().float()
    return float(torch.linalg.norm(w_hat - w) / torch.linalg.norm(w).clamp(min=TINY))


# ---- activations: why W8A8 is hard, and SmoothQuant ----------------------------------------------------------


def int8_per_tensor(x: torch.Tensor) -> torch.Tensor:
    """Activations to int8 with one scale for the whole tensor (s = max|x| / 127), back to float."""
    s = (x.abs().max() / 127).clamp(min=TINY)
    return torch.round(x / s).clamp(-127, 127) * s


def smooth_scales(x_absmax: torch.Tensor, w_absmax: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """SmoothQuant (Xiao et al. 2023, eq. 4): s_j = max|X_j|^alpha / max|W_j|^(1 - alpha) per input channel j."""
    s = x_absmax.clamp(min=1e-5) ** alpha / w_absmax.clamp(min=1e-5) ** (1 - alpha)
    return s.clamp(min=1e-5)


def w8a8_error(x: torch.Tensor, w: torch.Tensor, scales: torch.Tensor | None = None) -> float:
    """Relative error of X W^T when X is int8 per tensor and W int8 per output channel; with ``scales`` the
    product is computed as (X / s)(W s)^T first (SmoothQuant: mathematically the same product)."""
    x, w = x.float(), w.float()
    y = x @ w.T
    if scales is not None:
        x, w = x / scales, w * scales
    y_hat = int8_per_tensor(x) @ absmax_int(w, 8).T
    return float(torch.linalg.norm(y_hat - y) / torch.linalg.norm(y).clamp(min=TINY))
