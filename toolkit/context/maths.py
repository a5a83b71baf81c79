"""The context window as a budget (slide "Context engineering: the window is a budget").

Every part of a prompt costs tokens: the system prompt, the tool schemas, the retrieved passages, the earlier
turns, the question, and the room kept for the answer. When the parts do not fit, the lowest-priority part that
may go is dropped first, until they fit:
    dropped first   the oldest history turn, then the next oldest ...
    then            the lowest-ranked retrieved passage, then the next ...
    never           the system prompt, the tool schemas, the question (if these alone do not fit, it cannot fit)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

KIND_ORDER = ("template", "system", "tools", "passage", "history", "question")


@dataclass(frozen=True)
class Part:
    name: str
    kind: str
    tokens: int
    priority: float  # lower goes first
    droppable: bool


def priority(kind: str, index: int) -> tuple[float, bool]:
    """(priority, droppable) of the ``index``-th part of a kind: history oldest-first (index 0 is the oldest
    turn), passages lowest-rank-first (index 0 is the best passage)."""
    if kind == "history":
        return 10.0 + index, True
    if kind == "passage":
        return 50.0 - index, True
    return 100.0, False


def to_drop(parts: Sequence[Part], fixed: int, budget: int) -> list[int]:
    """Indices of the parts to drop, in dropping order, so that fixed + sum(kept tokens) <= budget (as far as
    the droppable parts allow)."""
    total = fixed + sum(p.tokens for p in parts)
    order = sorted((i for i, p in enumerate(parts) if p.droppable), key=lambda i: (parts[i].priority, i))
    dropped = []
    for i in order:
        if total <= budget:
            break
        dropped.append(i)
        total -= parts[i].tokens
    return dropped
