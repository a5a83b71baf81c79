"""Context views: the window as a budget, part by part, with what was dropped (slide "Context engineering: the
window is a budget"), and zero-shot vs few-shot accuracy (slide "Prompt engineering: zero-shot vs few-shot")."""

from __future__ import annotations

import plotly.graph_objects as go

from toolkit import style
from toolkit.context.capture import DEFAULT_QUESTION
from toolkit.context.trace import BudgetTrace, FewShotTrace

KIND_TITLES = {
    "template": "chat template",
    "system": "system prompt",
    "tools": "tool schemas",
    "passage": "retrieved passages",
    "history": "earlier turns",
    "question": "question",
}


def budget(trace: BudgetTrace, dark: bool = False) -> go.Figure:
    """Two stacked bars in tokens: what the prompt holds (with the room kept for the answer) and what was dropped
    to make it fit, each part a segment; the window and the budget (window - reserve) as lines."""
    pal = style.palette(dark)
    colour = {"template": "#9ca3af", "system": pal[7], "tools": pal[0], "passage": pal[1], "history": pal[6],
              "question": pal[2]}  # fmt: skip
    fig = go.Figure()
    shown: set[str] = set()
    parts = [p for p in trace.parts if p["kept"]]
    rows = [("in the prompt", parts), ("dropped", trace.dropped())]
    segments = [("in the prompt", {"name": "chat template", "kind": "template", "tokens": trace.template})]
    for label, items in rows:
        segments += [(label, p) for p in items]
    for label, p in segments:
        kind = p["kind"]
        fig.add_bar(
            y=[label],
            x=[p["tokens"]],
            orientation="h",
            name=KIND_TITLES[kind],
            legendgroup=kind,
            showlegend=kind not in shown,
            marker=dict(color=colour[kind], line=dict(color="#ffffff" if not dark else "#0b0f19", width=1),
                        pattern=dict(shape="/" if label == "dropped" else "")),
            hovertext=style.plain(f"{p['name']}: {p['tokens']} tokens"),
            hoverinfo="text",
        )  # fmt: skip
        shown.add(kind)
    if trace.reserve:
        fig.add_bar(y=["in the prompt"], x=[trace.reserve], orientation="h", name="answer reserve",
                    marker=dict(color="rgba(0,0,0,0)", line=dict(color=pal[5], width=2)), hoverinfo="skip")  # fmt: skip
    fig.add_vline(x=trace.window, line=dict(color=pal[5], width=3), annotation_text=f"window {trace.window}",
                  annotation_position="top", annotation_font_size=style.MIN_FONT)  # fmt: skip
    dropped = sum(p["tokens"] for p in trace.dropped())
    top = max(trace.window, trace.total + trace.reserve, dropped) * 1.08
    fig.update_xaxes(title="tokens (SmolLM2's tokenizer)", range=[0, top])
    fig.update_layout(barmode="stack", legend=dict(orientation="h", y=-0.32), bargap=0.35)
    verdict = "fits" if trace.fits else "does not fit even without the droppable parts"
    return style.apply(
        fig, dark, title=f"{trace.total} prompt tokens + {trace.reserve} reserved, window {trace.window}: {verdict}"
    )


def fewshot(trace: FewShotTrace, dark: bool = False) -> go.Figure:
    """Accuracy against the number of examples in the prompt (Wilson 95 % intervals), and how often the model
    answers "positive" (0.5 on this balanced set when it has no bias)."""
    pal = style.palette(dark)
    stats = [trace.accuracy(k) for k in trace.shots]
    x = [str(k) for k in trace.shots]
    fig = go.Figure()
    fig.add_bar(
        x=x,
        y=[100 * s[0] for s in stats],
        name="accuracy",
        marker_color=pal[4],
        error_y=dict(type="data", symmetric=False, array=[100 * (s[2] - s[0]) for s in stats],
                     arrayminus=[100 * (s[0] - s[1]) for s in stats], thickness=2, width=8),
        text=[f"{s[3]}/{s[4]}" for s in stats],
        textposition="inside",
        insidetextanchor="start",
    )  # fmt: skip
    fig.add_scatter(
        x=x,
        y=[100 * trace.positive_rate(k) for k in trace.shots],
        name='says "positive" (%)',
        mode="lines+markers",
        line=dict(color=pal[5], width=3, dash="dash"),
        marker=dict(size=12),
    )
    fig.add_hline(y=50, line=dict(color="gray", dash="dot"), annotation_text="chance",
                  annotation_font_size=style.MIN_FONT)  # fmt: skip
    fig.update_xaxes(title="examples in the prompt (k-shot)", type="category")
    fig.update_yaxes(title="% of the reviews", range=[0, 105])
    fig.update_layout(legend=dict(orientation="h", y=-0.2, x=0), uniformtext=dict(minsize=style.MIN_FONT, mode="hide"))
    return style.apply(fig, dark, title=f"Sentiment of {len(trace.texts)} reviews: zero-shot vs few-shot")


# ---- the demo's views from Python: toolkit.views.show("context", view, **preset) -------------------------------
# The budget is computed now on the model's tokenizer; the few-shot accuracy is the recorded measurement
# (`lecture context --threads 1`).


def view_budget(
    question: str = DEFAULT_QUESTION,
    window: int = 512,
    passages: int = 4,
    history: int = 6,
    reserve: int = 128,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    """The prompt part by part in the window, and what is dropped to fit ``window - reserve``."""
    from toolkit.context.capture import budget as measure

    trace = measure(model, question, window=window, passages=passages, history=history, reserve=reserve)
    return budget(trace, dark)


def view_fewshot(dark: bool = False) -> go.Figure:
    from toolkit import views
    from toolkit.context.record import ASSET, COMMAND

    return fewshot(views.recorded(FewShotTrace, ASSET, COMMAND), dark)


VIEWS = {"budget": view_budget, "fewshot": view_fewshot}  # the demo's hero first
