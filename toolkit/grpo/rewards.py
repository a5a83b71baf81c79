"""Verifiable rewards and the bundled task (deck: "RLVR: rewards you can check", DeepSeek R1's accuracy + format
rewards).

A reward function is a plain Python function ``fn(completion, answer) -> float`` registered under a name.
Runs choose rewards by name with weights: ``{"exact": 1.0, "number_first": 0.5}``; the total is the weighted
sum. Names are only looked up in the registry: nothing a user types is ever evaluated as code.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

RewardFn = Callable[[str, str], float]
REWARDS: dict[str, RewardFn] = {}
_NUMBER = re.compile(r"-?\d+")


def reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: register ``fn(completion, answer) -> float`` under ``name``."""

    def deco(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn

    return deco


@reward("exact")
def exact(completion: str, answer: str) -> float:
    """1 when the first number in the completion is the answer (accuracy reward)."""
    m = _NUMBER.search(completion)
    return float(m is not None and m.group() == answer.strip())


@reward("number_first")
def number_first(completion: str, answer: str) -> float:
    """1 when the completion opens with a number, as the prompt asks (format reward)."""
    return float(bool(re.match(r"\s*-?\d", completion)))


@reward("just_answer")
def just_answer(completion: str, answer: str) -> float:
    """1 when the whole completion is the answer and nothing else (a trailing period allowed)."""
    return float(completion.strip().rstrip(".").strip() == answer.strip())


@reward("short")
def short(completion: str, answer: str) -> float:
    """Brevity in [0, 1]: 1 for one word, falling linearly to 0 at 16 words."""
    return max(0.0, 1.0 - (len(completion.split()) - 1) / 15) if completion.strip() else 0.0


def resolve(weights: dict[str, float]) -> dict[str, float]:
    """Check reward names and weights; returns {name: float weight}. Unknown names raise KeyError."""
    if not weights:
        raise ValueError("choose at least one reward function")
    out = {}
    for name, w in weights.items():
        if name not in REWARDS:
            raise KeyError(f"unknown reward {name!r}; registered: {', '.join(sorted(REWARDS))}")
        out[name] = float(w)
    return out


def score(weights: dict[str, float], completions: list[str], answers: list[str]):
    """-> (per_fn {name: [value per completion]}, total [weighted sum per completion])."""
    weights = resolve(weights)
    per_fn = {name: [float(REWARDS[name](c, a)) for c, a in zip(completions, answers)] for name in weights}
    total = [sum(weights[n] * per_fn[n][i] for n in weights) for i in range(len(completions))]
    return per_fn, total


@dataclass(frozen=True)
class Task:
    """A verifiable task: a prompt generator with known answers and the rewards that check them."""

    name: str
    description: str
    make: Callable[[random.Random], tuple[str, str]]  # rng -> (prompt, answer)
    rewards: dict[str, float]


def _larger(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(range(10, 100), 2)
    return f"Which number is larger, {a} or {b}? Answer with just the number.", str(max(a, b))


TASKS: dict[str, Task] = {
    "larger": Task(
        "larger",
        "Which of two 2-digit numbers is larger, answered with just the number. SmolLM2-135M often rambles "
        "('To solve this, ...') and sometimes picks the smaller one, so groups have reward spread.",
        _larger,
        {"exact": 1.0, "number_first": 0.5},
    ),
}
