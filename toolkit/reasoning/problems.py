"""The bundled problems with checkable answers (slides "Chain of thought on a 135M model", "Tool use").

Sixty problems in four kinds, fifteen each, made from one fixed seed so every run, test and slide sees the same
ones: one-digit sums, two-digit sums, two-step word problems (start + add - take away) and "which is larger"
comparisons (the GRPO task). Every answer is a whole number, checked by ``maths.extract_answer``.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

SEED = 2024
PER_KIND = 15
KINDS = ("add1", "add2", "two_step", "larger")
KIND_TITLES = {
    "add1": "one-digit sums",
    "add2": "two-digit sums",
    "two_step": "two-step word problems",
    "larger": "which is larger",
}
_THINGS = ("apples", "pens", "books", "marbles", "stamps", "cards", "coins", "shells")
_BOXES = ("a basket", "a box", "a jar", "a bag", "a drawer", "a shelf")


@dataclass(frozen=True)
class Problem:
    id: int
    kind: str
    question: str
    answer: int
    steps: tuple[str, ...] = ()  # the worked solution, one equation per step


def _make(kind: str, rng: random.Random) -> tuple[str, int, tuple[str, ...]]:
    if kind == "add1":
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        return f"What is {a} + {b}?", a + b, (f"{a} + {b} = {a + b}",)
    if kind == "add2":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return f"What is {a} + {b}?", a + b, (f"{a} + {b} = {a + b}",)
    if kind == "two_step":
        a, b, c = rng.randint(10, 40), rng.randint(2, 9), rng.randint(2, 9)
        thing, box = rng.choice(_THINGS), rng.choice(_BOXES)
        return (
            f"{box.capitalize()} has {a} {thing}. I add {b} and then take away {c}. How many {thing} are left?",
            a + b - c,
            (f"{a} + {b} = {a + b}", f"{a + b} - {c} = {a + b - c}"),
        )
    if kind == "larger":
        a, b = rng.sample(range(10, 100), 2)
        return f"Which number is larger, {a} or {b}?", max(a, b), (f"{max(a, b)} > {min(a, b)}",)
    raise KeyError(f"unknown problem kind {kind!r}; known: {', '.join(KINDS)}")


@functools.cache
def problems(seed: int = SEED, per_kind: int = PER_KIND) -> tuple[Problem, ...]:
    """The bundled set: ``per_kind`` problems of each kind, interleaved (add1, add2, two_step, larger, add1, ...)."""
    rng = random.Random(seed)
    out = []
    for i in range(per_kind):
        for kind in KINDS:
            question, answer, steps = _make(kind, rng)
            out.append(Problem(i * len(KINDS) + KINDS.index(kind), kind, question, answer, steps))
    return tuple(out)


def problem(index: int) -> Problem:
    ps = problems()
    if not 0 <= index < len(ps):
        raise IndexError(f"problem {index} does not exist: the bundled set has problems 0 to {len(ps) - 1}")
    return ps[index]
