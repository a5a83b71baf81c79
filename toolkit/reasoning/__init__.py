"""Reasoning on a 135M model: direct vs chain of thought vs self-consistency, outcome vs process rewards, tree of
thought (slides "Chain of thought on a 135M model", "Outcome vs process supervision", "Tree of thought").

    from toolkit import reasoning
    trace = reasoning.evaluate("smollm2-135m", reasoning.problems()[:8], methods=("direct", "cot"))
    reasoning.figures.accuracy(trace)

problems: the sixty bundled problems; maths: answer reading, majority vote, Wilson intervals, rule-checked steps;
generate: chat prompts and batched generation; capture: ReasoningConfig, evaluate; tree: TreeConfig, search;
trace: ReasoningTrace, TreeTrace; record: the committed assets; figures: one plotly figure per view.
"""

from toolkit.reasoning import figures
from toolkit.reasoning.capture import ReasoningConfig, capture, evaluate
from toolkit.reasoning.maths import (
    Step,
    check_step,
    check_steps,
    extract_answer,
    first_number,
    majority,
    process_score,
    split_steps,
    wilson,
)
from toolkit.reasoning.problems import KIND_TITLES, KINDS, Problem, problem, problems
from toolkit.reasoning.trace import METHOD_TITLES, METHODS, ReasoningTrace, TreeTrace
from toolkit.reasoning.tree import TreeConfig, search

__all__ = [
    "capture",
    "evaluate",
    "search",
    "ReasoningConfig",
    "TreeConfig",
    "ReasoningTrace",
    "TreeTrace",
    "Problem",
    "problem",
    "problems",
    "KINDS",
    "KIND_TITLES",
    "METHODS",
    "METHOD_TITLES",
    "Step",
    "check_step",
    "check_steps",
    "split_steps",
    "extract_answer",
    "first_number",
    "majority",
    "process_score",
    "wilson",
    "figures",
]
