"""Text in, token ids out: one token policy for every capture.

Every concept that runs a text through a model encodes it here, so limits agree everywhere: a text longer than
``max_tokens`` (at most ``MAX_TOKENS``) is cut to its first tokens and the trace says ``truncated``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_TOKENS = 256  # tokens a capture runs unless asked for more
MAX_TOKENS = 512  # the ceiling: a 512-token attention trace of SmolLM2 is 30 x 9 x 512 x 512 floats (283 MB)


@dataclass(frozen=True)
class Encoded:
    """ids: the tokens run (at most max_tokens); n_total: how many the whole text has."""

    ids: list[int]
    n_total: int

    @property
    def truncated(self) -> bool:
        return self.n_total > len(self.ids)


def check_limit(max_tokens: int) -> int:
    if not 1 <= int(max_tokens) <= MAX_TOKENS:
        raise ValueError(f"max_tokens must be between 1 and {MAX_TOKENS}, got {max_tokens}")
    return int(max_tokens)


def encode(tokenizer: Any, text: str, max_tokens: int = DEFAULT_TOKENS, special: bool = True) -> Encoded:
    """Token ids of ``text`` cut to ``max_tokens``; ValueError for an empty text or one with no tokens."""
    max_tokens = check_limit(max_tokens)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the text is empty")
    ids = list(tokenizer(text, add_special_tokens=special)["input_ids"])
    if not ids:
        raise ValueError("the text gives no tokens")
    return Encoded(ids[:max_tokens], len(ids))


def display(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token as text, the way the tokenizer split it (leading spaces kept, special tokens by name)."""
    return [tokenizer.decode([int(i)]) for i in ids]
