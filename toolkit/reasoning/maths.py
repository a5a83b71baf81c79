"""Answer checking, voting, confidence intervals and step rewards (slides "Chain of thought on a 135M model",
"Outcome vs process supervision", "Tree of thought").

- ``extract_answer``: the number after the last "answer is", else the last number in the text.
- ``majority``: self-consistency's vote, argmax_a #{i : a_i = a} (ties go to the answer seen first).
- ``wilson``: the Wilson score interval of k successes in n, p̂ ± z·sqrt(p̂(1-p̂)/n + z²/4n²) / (1 + z²/n),
  re-centred at (p̂ + z²/2n) / (1 + z²/n): it stays inside [0, 1] at 0 % and 100 %, where the normal one does not.
- ``check_steps``: process supervision by rule: each step's equations recomputed by the calculator tool.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_ANSWER = re.compile(r"answer\s+is\s*:?\s*\$?\s*(-?\d+(?:,\d{3})*(?:\.\d+)?)", re.I)
# an equation: numbers joined by + - * / × x, then "=" and a number ("20 + 5 = 25", "25 - 3 = 22")
_EQUATION = re.compile(r"(-?\d+(?:\.\d+)?(?:\s*[-+*/×x]\s*-?\d+(?:\.\d+)?)+)\s*=\s*(-?\d+(?:,\d{3})*(?:\.\d+)?)", re.I)


def _number(text: str) -> int | float:
    value = float(text.replace(",", ""))
    return int(value) if value.is_integer() else value


def extract_answer(text: str) -> int | float | None:
    """The number a completion gives as its answer, or None when it has no number."""
    found = _ANSWER.findall(text or "")
    if found:
        return _number(found[-1])
    numbers = _NUMBER.findall(text or "")
    return _number(numbers[-1]) if numbers else None


def first_number(text: str) -> int | float | None:
    """The first number in a text (what a model writes right after "The answer is")."""
    m = _NUMBER.search(text or "")
    return _number(m.group()) if m else None


def majority(answers: Sequence) -> tuple[object, int]:
    """(the most frequent answer that is not None, its votes); (None, 0) when no answer was extracted."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None, 0
    return votes.most_common(1)[0]


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion k / n (95 % by default); (0, 1) when n = 0."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Step:
    """One step of a chain of thought and its rule-checked verdict: "correct", "wrong" or "unchecked" (no
    equation to check). ``equations``: (left side, the number the step claims, the calculator's value)."""

    text: str
    verdict: str
    equations: tuple[tuple[str, float, float], ...] = ()

    @property
    def reward(self) -> float | None:
        """The process reward of this step: 1 correct, 0 wrong, None when there is nothing to check."""
        return None if self.verdict == "unchecked" else float(self.verdict == "correct")


def split_steps(text: str) -> list[str]:
    """A chain of thought cut into steps: lines, and sentences within a line (a '.' before a space or the end,
    not inside a number)."""
    steps = []
    for line in (text or "").splitlines():
        for part in re.split(r"(?<=[.!?])\s+(?=\S)", line.strip()):
            if part.strip():
                steps.append(part.strip())
    return steps


def check_step(step: str) -> Step:
    """Recompute every equation of one step with the calculator tool (parsed, never evaluated as code)."""
    from toolkit.agent.tools import ToolError, calculate  # lazy: the agent concept imports this module

    found = []
    for lhs, claimed in _EQUATION.findall(step):
        try:
            actual = calculate(lhs.replace("x", "*").replace("X", "*"))
        except ToolError:
            continue
        found.append((lhs.strip(), float(_number(claimed)), float(actual)))
    if not found:
        return Step(step, "unchecked")
    ok = all(math.isclose(c, a, rel_tol=1e-9, abs_tol=1e-9) for _, c, a in found)
    return Step(step, "correct" if ok else "wrong", tuple(found))


def check_steps(text: str) -> list[Step]:
    return [check_step(s) for s in split_steps(text)]


def process_score(steps: Sequence[Step]) -> float | None:
    """The mean reward of the checked steps (None when no step could be checked)."""
    rewards = [s.reward for s in steps if s.reward is not None]
    return sum(rewards) / len(rewards) if rewards else None
