"""Forgetting views (slide "Catastrophic forgetting, measured"): the task loss and the general perplexity of every
method step by step, side by side; what the model says to general prompts before and after."""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.forgetting.capture import METHOD_TITLES, METHODS
from toolkit.forgetting.trace import ForgettingTrace


def _colour(method: str, dark: bool) -> str:
    pal = style.palette(dark)
    return pal[[5, 4, 1, 2, 6][list(METHODS).index(method) % 5]] if method in METHODS else pal[7]


def curves(trace: ForgettingTrace, dark: bool = False, extra: dict | None = None) -> go.Figure:
    """Left: held-out task loss (it should fall); right: perplexity of held-out general text (forgetting makes it
    rise). One colour per method. ``extra``: a live run {"method", "task_loss", "general_ppl"} drawn dashed."""
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.1,
        subplot_titles=("narrow task: held-out loss by step ↓", "general text: perplexity by step ↑"),
    )  # fmt: skip
    runs = [(m, trace.task_loss[i], trace.general_ppl[i], "solid") for i, m in enumerate(trace.methods)]
    if extra:
        runs.append((extra["method"], extra["task_loss"], extra["general_ppl"], "dash"))
    for method, task, ppl, dash in runs:
        name = METHOD_TITLES.get(method, method) + (" (live)" if dash == "dash" else "")
        line = dict(color=_colour(method, dark), width=3, dash=dash)
        steps = list(range(len(task)))
        fig.add_scatter(x=steps, y=list(task), name=name, line=line, legendgroup=name, row=1, col=1)
        fig.add_scatter(x=steps, y=list(ppl), name=name, line=line, legendgroup=name, showlegend=False, row=1, col=2)
    fig.update_xaxes(title=None)  # both panels count optimizer steps (the subplot titles say what is measured)
    fig.update_yaxes(title="loss (nats)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title="perplexity", row=1, col=2)
    fig.update_annotations(font_size=style.FONT_SIZE)
    fig.update_layout(legend=dict(orientation="h", y=-0.12))
    return style.apply(fig, dark)


def answers(trace: ForgettingTrace, dark: bool = False, methods: list[str] | None = None) -> str:
    """A table: each general prompt, the base model's answer, and each method's answer after fine-tuning."""
    ink = "#e5e7eb" if dark else "#111827"
    methods = methods or trace.methods
    head = "".join(
        f'<th style="text-align:left;padding:3px 8px">{html.escape(x)}</th>'
        for x in ["prompt", "before", *[METHOD_TITLES.get(m, m) for m in methods]]
    )
    rows = []
    for j, prompt in enumerate(trace.prompts):
        cells = [prompt, trace.before[j], *[trace.after[m][j] for m in methods]]
        rows.append(
            "<tr>"
            + "".join(
                f'<td style="padding:3px 8px;vertical-align:top">{html.escape(c).replace(chr(10), "⏎ ")}</td>'
                for c in cells
            )
            + "</tr>"
        )
    table = (
        f'<table style="border-collapse:collapse;width:100%;font-size:16px;line-height:1.25">'
        f"<tr>{head}</tr>{''.join(rows)}</table>"
    )
    return f'<div data-lecture-view="answers" style="color:{ink};padding:2px 6px">{table}</div>'


# ---- the demo's views from Python: toolkit.views.show("forgetting", view) -------------------------------------
# The recorded runs (`lecture forgetting --threads 1`): the curves, and the answers before and after (HTML, a str).


def recorded() -> ForgettingTrace:
    """The committed runs (assets/forgetting/lecture.npz), read once per file version."""
    from toolkit import views
    from toolkit.forgetting.record import ASSET, COMMAND

    return views.recorded(ForgettingTrace, ASSET, COMMAND)


def view_curves(dark: bool = False) -> go.Figure:
    return curves(recorded(), dark)


def view_answers(dark: bool = False) -> str:
    return answers(recorded(), dark)


VIEWS = {"curves": view_curves, "answers": view_answers}  # the demo's hero first
