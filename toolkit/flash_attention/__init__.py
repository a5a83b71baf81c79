"""FlashAttention on a real head (slide "FlashAttention: attention in tiles"): tiles, online softmax, memory traffic.

    from toolkit import flash_attention
    trace = flash_attention.capture("smollm2-135m", "The cat sat on the mat", layer=3, block_q=4, block_k=4)

maths: tiled attention with the online softmax, eager reference, the paper's HBM-traffic counts; capture: one head's
post-RoPE Q, K, V through the tiles; trace: FlashTrace; figures: tile grid, one row's statistics, traffic.
"""

from toolkit.flash_attention import figures
from toolkit.flash_attention.capture import MAX_TOKENS, FlashConfig, capture
from toolkit.flash_attention.maths import (
    ORDERS,
    allowed,
    block_sizes,
    io_flash,
    io_standard,
    io_tiles,
    on_chip,
    reference,
    tile_order,
    tiled,
)
from toolkit.flash_attention.trace import FlashTrace

__all__ = [
    "capture",
    "FlashConfig",
    "FlashTrace",
    "figures",
    "MAX_TOKENS",
    "ORDERS",
    "allowed",
    "block_sizes",
    "io_flash",
    "io_standard",
    "io_tiles",
    "on_chip",
    "reference",
    "tile_order",
    "tiled",
]
