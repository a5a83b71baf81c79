"""LoRA and QLoRA on tensors: slides "LoRA", "QLoRA" (4-bit storage of the frozen weight).

LoRA freezes a weight W (out, in) and learns W' = W + (alpha / r) * B A with B (out, r) = 0 at start and
A (r, in) random, so the update has rank <= r and costs r * (in + out) parameters instead of in * out.

QLoRA stores the frozen W in 4 bits. Quantisation here is blockwise absmax: each block of weights shares one
scale s = max|w| / q_max and stores round(w / s); NF4 instead rounds w / max|w| to the nearest of 16 levels
placed at normal quantiles (QLoRA's codebook). Memory counts the codes plus one fp32 scale per block.
"""

from __future__ import annotations

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
SCHEMES = {"int8": 8, "int4": 4, "nf4": 4}  # scheme -> bits per weight


def lora_parameters(r: int, in_features: int, out_features: int) -> int:
    """Trainable parameters of one LoRA pair on an (out, in) weight: A (r, in) and B (out, r)."""
    return r * (in_features + out_features)


def quantize(w: torch.Tensor, scheme: str = "int8", block: int = 64) -> tuple[torch.Tensor, int]:
    """Quantise then dequantise ``w`` blockwise (int8: one block per row). Returns (w_hat, bytes stored)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    flat = w.detach().float()
    if scheme == "int8":
        blocks = flat.reshape(flat.shape[0], -1)  # (out, in): one scale per output row
    else:
        if flat.numel() % block:
            raise ValueError(f"{flat.numel()} weights do not split into blocks of {block}")
        blocks = flat.reshape(-1, block)  # (n_blocks, block)
    absmax = blocks.abs().amax(-1, keepdim=True).clamp(min=1e-12)  # (n_blocks, 1)
    if scheme == "nf4":
        codes = (blocks / absmax).unsqueeze(-1).sub(NF4).abs().argmin(-1)  # (n_blocks, block) nearest level
        w_hat = NF4[codes] * absmax
    else:
        qmax = 2 ** (SCHEMES[scheme] - 1) - 1  # 127 or 7 (symmetric)
        scale = absmax / qmax
        w_hat = torch.round(blocks / scale).clamp(-qmax, qmax) * scale
    stored = flat.numel() * SCHEMES[scheme] // 8 + blocks.shape[0] * 4
    return w_hat.reshape(w.shape), stored
