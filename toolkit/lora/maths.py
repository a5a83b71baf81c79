"""LoRA and QLoRA on tensors: slides "LoRA", "QLoRA" (4-bit storage of the frozen weight).

LoRA freezes a weight W (out, in) and learns W' = W + (alpha / r) * B A with B (out, r) = 0 at start and
A (r, in) random, so the update has rank <= r and costs r * (in + out) parameters instead of in * out.

QLoRA stores the frozen W in 4 bits. Quantisation here is blockwise absmax: each block of weights shares one
scale s = max|w| / q_max and stores round(w / s); NF4 instead rounds w / max|w| to the nearest of 16 levels
placed at normal quantiles (QLoRA's codebook). Memory counts the codes plus one fp32 scale per block. The
quantisers are the whole-model ones of ``toolkit.quantization.maths`` (one implementation, shared).
"""

from __future__ import annotations

import torch

from toolkit.quantization.maths import NF4, absmax_int, nf4

SCHEMES = {"int8": 8, "int4": 4, "nf4": 4}  # scheme -> bits per weight (the whole-model schemes: toolkit.quantization)
__all__ = ["NF4", "SCHEMES", "lora_parameters", "quantize"]


def lora_parameters(r: int, in_features: int, out_features: int) -> int:
    """Trainable parameters of one LoRA pair on an (out, in) weight: A (r, in) and B (out, r)."""
    return r * (in_features + out_features)


def quantize(w: torch.Tensor, scheme: str = "int8", block: int = 64) -> tuple[torch.Tensor, int]:
    """Quantise then dequantise ``w`` blockwise (int8: one block per row; int4 and nf4: blocks of the flattened
    weight). Returns (w_hat, bytes stored). The maths lives in toolkit.quantization.maths."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    flat = w.detach().float()
    if scheme == "int8":
        return absmax_int(flat, 8), flat.numel() + flat.shape[0] * 4
    if flat.numel() % block:
        raise ValueError(f"{flat.numel()} weights do not split into blocks of {block}")
    blocks = flat.reshape(-1, block)  # (n_blocks, block)
    w_hat = nf4(blocks, block) if scheme == "nf4" else absmax_int(blocks, 4)
    return w_hat.reshape(w.shape), flat.numel() * SCHEMES[scheme] // 8 + blocks.shape[0] * 4
