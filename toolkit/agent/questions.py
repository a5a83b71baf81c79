"""The agent's bundled questions and worked examples (slide "Agents: ReAct on SmolLM2").

The arithmetic problems are the reasoning concept's sixty (``toolkit.reasoning.problems``); the lookup questions
below are answered by the first paragraph of a Python reference topic (the lookup tool's corpus) and checked by
a phrase that paragraph contains. The examples are shown to the model before the question (few-shot), the same
questions with and without tools, so the two conditions differ only in the tools.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.reasoning.problems import problems


@dataclass(frozen=True)
class Question:
    id: int
    kind: str
    question: str
    answer: str  # a number, or for lookup questions a phrase the answer must contain (case-insensitive)
    topic: str = ""  # the corpus topic that holds a lookup answer


LOOKUPS = (
    ("Which exception does a failed assert statement raise?", "AssertionError", "assert"),
    ("What happens when the Python pass statement is executed?", "nothing", "pass"),
    ("What kind of functions do Python lambda expressions create?", "anonymous", "lambda"),
    ("If raise has no expression and no exception is active, which exception is raised?", "RuntimeError", "raise"),
    ("What does return substitute when it has no expression list?", "None", "return"),
    ("What does the continue statement continue with?", "next cycle", "continue"),
    ("Which method decides the truth value of an object?", "__bool__", "truth"),
    ("What does a with statement wrap the execution of a block with?", "context manager", "with"),
)


def questions() -> tuple[Question, ...]:
    """The sixty arithmetic problems, then the eight lookup questions."""
    out = [Question(p.id, p.kind, p.question, str(p.answer)) for p in problems()]
    n = len(out)
    out += [Question(n + i, "lookup", q, a, t) for i, (q, a, t) in enumerate(LOOKUPS)]
    return tuple(out)


@dataclass(frozen=True)
class Example:
    """A worked example: the question, the thought, the call (tool, arguments), the answer after the observation."""

    question: str
    thought: str
    tool: str
    arguments: dict
    answer: str
    direct: str  # the answer shown when the model has no tools


EXAMPLES = (
    Example("What does the Python del statement remove?", "I look up del.", "lookup", {"topic": "del"},
            "Deleting a name removes the binding of that name.",
            "Deleting a name removes the binding of that name."),
    Example("What is 12 + 30?", "I add 12 and 30.", "calculator", {"expression": "12 + 30"}, "The answer is 42.",
            "The answer is 42."),
    Example("A box has 9 pens. I add 4 and then take away 2. How many pens are left?",
            "I start with 9, add 4, take away 2.", "calculator", {"expression": "9 + 4 - 2"},
            "The answer is 11.", "The answer is 11."),
)  # fmt: skip
