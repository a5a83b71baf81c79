"""Reward model and DPO figures: slides "Bradley-Terry" (the deck's static curve and the live one), "DPO loss"
and "implicit reward" (rewards and loss over DPO steps, log-probs of the two answers). One function per view."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.dpo import maths
from toolkit.dpo.capture import PAIR
from toolkit.dpo.trace import DpoTrace

# A legend on the title's line, between the title (left) and the plot's toolbar (right): never over a panel's title,
# a curve or a bar.
LEGEND_ON_TITLE_LINE = dict(orientation="h", yref="container", y=0.99, yanchor="top", x=0.55, xanchor="center")


def bradley_terry(mark: float | None = None, dark: bool = False) -> go.Figure:
    """σ(r_w − r_l) and −log σ(r_w − r_l) against the margin, over a range that holds ``mark`` (highlighted)."""
    margins = maths.margins_around(mark)  # (n,)
    probs, losses = maths.bradley_terry(margins).numpy(), maths.reward_model_loss(margins).numpy()
    pal = style.palette(dark)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=margins, y=probs, name="P(y_w ≻ y_l) = σ(r_w − r_l)", line=dict(color=pal[4], width=3)))
    fig.add_trace(
        go.Scatter(x=margins, y=losses, name="loss −log σ(r_w − r_l)", line=dict(color=pal[5], width=3)),
        secondary_y=True,
    )
    if mark is not None:
        fig.add_vline(
            x=mark, line_dash="dash", annotation_text=f"margin {mark:.2f}", annotation_position="bottom right"
        )
        fig.add_trace(
            go.Scatter(
                x=[mark],
                y=maths.bradley_terry(np.array([mark])).numpy(),
                mode="markers",
                marker=dict(size=14, color=pal[4]),
                showlegend=False,
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title="reward margin r_w − r_l")
    fig.update_yaxes(title="probability", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title="loss (nats)", secondary_y=True, rangemode="tozero")
    # the legend sits beside the title, above the plot: never over a curve
    fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return style.apply(fig, dark, title="Bradley-Terry", height=460)


def bradley_terry_curve(dark: bool = False) -> go.Figure:
    """The deck's static "Bradley-Terry: preference from a reward difference" (σ and the loss on one axis)."""
    margin = np.linspace(-6, 6, 400)  # r(x, y_w) - r(x, y_l)
    prob = maths.bradley_terry(margin).numpy()
    fig = go.Figure()
    fig.add_scatter(x=margin, y=prob, mode="lines", line=dict(width=4), name="P(y_w preferred) = σ(margin)")
    fig.add_scatter(
        x=margin,
        y=maths.reward_model_loss(margin).numpy(),
        mode="lines",
        line=dict(width=4, dash="dash"),
        name="loss = -log σ(margin)",
    )
    fig.update_xaxes(title="reward margin r(x, y_w) - r(x, y_l)")
    fig.update_yaxes(range=[0, 3])
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0))
    return style.apply(fig, dark, "Bradley-Terry: preference from a reward difference")


def steps(t: DpoTrace, dark: bool = False) -> go.Figure:
    """Implicit rewards of both answers and the DPO loss (log 2 marked) at each step."""
    pal = style.palette(dark)
    x = np.arange(len(t.loss))
    fig = make_subplots(rows=1, cols=2, subplot_titles=["implicit rewards β·log(π/π_ref)", "DPO loss"])
    fig.add_trace(
        go.Scatter(x=x, y=t.reward_chosen, name="chosen", mode="lines+markers", line=dict(color=pal[2], width=3)),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(x=x, y=t.reward_rejected, name="rejected", mode="lines+markers", line=dict(color=pal[5], width=3)),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=t.loss,
            name="loss",
            mode="lines+markers+text",
            text=[f"{v:.3f}" for v in t.loss],
            textposition="top center",
            cliponaxis=False,
            showlegend=False,  # its panel is titled "DPO loss"
            line=dict(color=pal[4], width=3),
        ),
        row=1,
        col=2,
    )
    fig.add_hline(y=float(np.log(2)), line_dash="dot", annotation_text="log 2", row=1, col=2)
    fig.update_xaxes(title="DPO step", dtick=1)
    fig.update_layout(legend=LEGEND_ON_TITLE_LINE)
    return style.apply(fig, dark, title=f"DPO with LoRA, β = {t.beta:g}", height=460)


def log_probs(t: DpoTrace, dark: bool = False) -> go.Figure:
    """log π and log π_ref of each answer, before and after the steps."""
    pal = style.palette(dark)
    names = ["chosen", "rejected"]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(x=names, y=[t.ref_chosen, t.ref_rejected], name="reference (adapter off)", marker_color=pal[1])
    )
    fig.add_trace(
        go.Bar(
            x=names,
            y=[t.logp_chosen[-1], t.logp_rejected[-1]],
            name=f"policy after {len(t.loss) - 1} steps",
            marker_color=pal[0],
        )
    )
    fig.update_yaxes(title="log π(y | x), summed over the answer")
    fig.update_layout(barmode="group", legend=LEGEND_ON_TITLE_LINE)
    return style.apply(fig, dark, title="Log-probabilities of the two answers", height=460)


def waiting(message: str, dark: bool = False) -> go.Figure:
    """An empty figure that says what to press: a view whose computation waits for its button."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=22))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style.apply(fig, dark)


# ---- the demo's views from Python: toolkit.views.show("dpo", view, **preset) -----------------------------------
# "steps" and "log-probs" train (``steps`` DPO steps with LoRA on the pair: a few seconds each).


def view_bradley_terry(rw: float = 1.0, rl: float = 0.0, dark: bool = False) -> go.Figure:
    """P(winner preferred) = σ(r_w − r_l), the margin marked."""
    return bradley_terry(rw - rl, dark)


def _trained(prompt: str, chosen: str, rejected: str, beta: float, steps: int, model: str):
    from toolkit.dpo.capture import Pair, train

    return train(model, Pair(prompt, chosen, rejected), beta=beta, steps=steps)


steps_figure = steps  # the views below take a ``steps`` preset (the demo's name), which hides the function


def view_steps(
    prompt: str = PAIR.prompt,
    chosen: str = PAIR.chosen,
    rejected: str = PAIR.rejected,
    beta: float = 0.1,
    steps: int = 3,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    return steps_figure(_trained(prompt, chosen, rejected, beta, steps, model), dark)


def view_log_probs(
    prompt: str = PAIR.prompt,
    chosen: str = PAIR.chosen,
    rejected: str = PAIR.rejected,
    beta: float = 0.1,
    steps: int = 3,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    return log_probs(_trained(prompt, chosen, rejected, beta, steps, model), dark)


VIEWS = {"bradley-terry": view_bradley_terry, "steps": view_steps, "log-probs": view_log_probs}
