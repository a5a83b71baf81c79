"""Prompt and context engineering on the real tokenizer and model (slides "Prompt engineering: zero-shot vs
few-shot", "Context engineering: the window is a budget").

    from toolkit import context
    trace = context.budget("smollm2-135m", "What does assert do?", window=512)   # BudgetTrace
    context.figures.budget(trace)

data: the bundled reviews, examples and conversation; maths: the dropping policy; capture: ContextConfig,
retrieve, budget, fewshot; trace: BudgetTrace, FewShotTrace; figures: one plotly figure per view.
"""

from toolkit.context import figures
from toolkit.context.capture import (
    DEFAULT_QUESTION,
    MAX_WINDOW,
    SHOTS,
    ContextConfig,
    budget,
    capture,
    fewshot,
    fewshot_messages,
    offered_parts,
    retrieve,
)
from toolkit.context.data import DEMOS, HISTORY, LABELS, REVIEWS
from toolkit.context.maths import Part, priority, to_drop
from toolkit.context.trace import BudgetTrace, FewShotTrace

__all__ = [
    "capture",
    "budget",
    "fewshot",
    "fewshot_messages",
    "offered_parts",
    "retrieve",
    "ContextConfig",
    "BudgetTrace",
    "FewShotTrace",
    "Part",
    "priority",
    "to_drop",
    "DEFAULT_QUESTION",
    "MAX_WINDOW",
    "SHOTS",
    "DEMOS",
    "HISTORY",
    "LABELS",
    "REVIEWS",
    "figures",
]
