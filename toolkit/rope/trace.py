"""RopeTrace: queries and keys of every layer before and after the rotary embedding (made by ``rope.capture``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.rope.maths import half_to_adjacent
from toolkit.trace import Trace, register


@register
@dataclass(frozen=True)
class RopeTrace(Trace):
    """Query and key vectors before and after the rotary embedding.

    q_pre, q_post: (layer, head, pos, head_dim); k_pre, k_post: (layer, kv_head, pos, head_dim).
    positions: (pos,) int. inv_freq: (head_dim/2,) float, radians per position of each pair.
    layout: "half" (pairs i, i+d/2 as in Hugging Face) or "adjacent" (pairs 2i, 2i+1 as in the paper).
    attention_scaling: transformers multiplies cos/sin by it (YaRN); post norms = scaling * pre norms.
    embed: (pos, hidden) the tokens' input embeddings, or None.
    """

    kind: ClassVar[str] = "rope"
    tokens: list[str]
    q_pre: np.ndarray
    q_post: np.ndarray
    k_pre: np.ndarray
    k_post: np.ndarray
    positions: np.ndarray
    inv_freq: np.ndarray
    layout: str = "half"
    meta: dict[str, Any] = field(default_factory=dict)
    attention_scaling: float = 1.0
    embed: np.ndarray | None = None

    def check(self) -> RopeTrace:
        self._require(self.q_pre.shape == self.q_post.shape, "q_pre and q_post differ in shape")
        self._require(self.k_pre.shape == self.k_post.shape, "k_pre and k_post differ in shape")
        self._require(
            self.q_pre.ndim == 4 and self.q_pre.shape[2] == len(self.tokens), "q must be (layer, head, pos, d)"
        )
        self._require(
            self.k_pre.ndim == 4 and self.k_pre.shape[::2] == self.q_pre.shape[::2],
            "k must be (layer, kv_head, pos, d) like q",
        )
        self._require(
            self.k_pre.shape[1] > 0 and self.q_pre.shape[1] % self.k_pre.shape[1] == 0,
            "query heads must be a multiple of key/value heads",
        )
        self._require(self.q_pre.shape[-1] % 2 == 0, "head_dim must be even")
        self._require(self.positions.shape == (len(self.tokens),), "one position per token")
        self._require(self.inv_freq.shape == (self.q_pre.shape[-1] // 2,), "inv_freq must have head_dim/2 entries")
        self._require(self.layout in ("half", "adjacent"), f"unknown pair layout {self.layout!r}")
        self._require(self.embed is None or self.embed.shape[0] == len(self.tokens), "embed must be (pos, hidden)")
        for pre, post in ((self.q_pre, self.q_post), (self.k_pre, self.k_post)):
            self._require(bool(np.isfinite(post).all()), "rotated vectors contain NaN or inf")
            n0, n1 = np.linalg.norm(pre, axis=-1) * self.attention_scaling, np.linalg.norm(post, axis=-1)
            self._require(bool(np.allclose(n0, n1, rtol=1e-3, atol=1e-4)), "rotation must preserve vector norms")
        return self

    def query(self, layer: int, head: int, token: int, rotated: bool = False) -> np.ndarray:
        """The (head_dim,) query of one token in one head, in the adjacent layout (pair i = coordinates 2i, 2i+1)."""
        x = (self.q_post if rotated else self.q_pre)[layer, head, token]
        return x[half_to_adjacent(x.shape[-1])] if self.layout == "half" else x

    def key(self, layer: int, head: int, token: int, rotated: bool = False) -> np.ndarray:
        """The (head_dim,) key read by query head ``head`` (its GQA key/value head), in the adjacent layout."""
        group = self.q_pre.shape[1] // self.k_pre.shape[1]
        x = (self.k_post if rotated else self.k_pre)[layer, head // group, token]
        return x[half_to_adjacent(x.shape[-1])] if self.layout == "half" else x
