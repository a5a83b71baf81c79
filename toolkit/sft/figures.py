"""SFT figures: slides "Cross-entropy" (the deck's static curve) and "SFT loss masking (-100)" (the labels row
under the tokens, and the loss of each answer token)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.sft.maths import IGNORE
from toolkit.sft.trace import SftTrace
from toolkit.tokens import chips

TOKEN_FONT = 20  # px: the templated conversation is long (about 45 tokens), so a little smaller than the pieces view
MIN_ROWS = 7.0

VOCAB = 49_152  # SmolLM2's vocabulary: the uniform guess the deck marks


def _shown(piece: str) -> str:
    return repr(piece)[1:-1].replace(" ", "␣") or "∅"


def labels_and_loss(t: SftTrace, dark: bool = False) -> go.Figure:
    """Top: the labels row (grey = -100, ignored); bottom: -log p of each answer token, with p and the top guess."""
    pal = style.palette(dark)
    x = [f"{i}:{_shown(s)}" for i, s in enumerate(t.tokens)]
    ans = t.answer
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.25, 0.75],
        vertical_spacing=0.04,
        subplot_titles=["labels row (grey = -100, ignored)", "−log p(token | tokens before), answer only"],
    )
    fig.add_trace(
        go.Bar(
            x=x,
            y=[1] * len(x),
            marker_color=[pal[2] if a else style.MASKED for a in (t.labels != IGNORE)],
            text=[str(v) for v in t.labels],
            textposition="inside",
            textangle=-90,
            showlegend=False,
            hovertext=[f"id {i} label {v}" for i, v in zip(t.ids, t.labels)],
            hoverinfo="text",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=x,
            y=[v if a else 0 for v, a in zip(t.token_loss, ans)],
            marker_color=pal[5],
            showlegend=False,
            text=[f"{v:.2f}" if a else "" for v, a in zip(t.token_loss, ans)],
            textposition="outside",
            hovertext=[f"p = {p:.3f}<br>model's top guess {_shown(g)!s}" for p, g in zip(t.token_prob, t.predicted)],
            hoverinfo="text",
        ),
        row=2,
        col=1,
    )
    fig.update_yaxes(visible=False, row=1, col=1)
    fig.update_yaxes(title="loss (nats)", row=2, col=1)
    fig.update_xaxes(tickangle=-90, tickfont=dict(size=style.MIN_FONT), row=2, col=1)
    fig.update_layout(bargap=0.08)
    title = (
        f"Loss on {int(ans.sum())} answer tokens = {t.loss:.4f} (transformers: {t.reference_loss:.4f}); "
        f"without the mask {t.unmasked_loss:.2f}"
    )
    return style.apply(fig, dark, title=title, height=640)


def labels_view(t: SftTrace, dark: bool = False) -> go.Figure:
    """The templated conversation as token chips, lines broken where the text breaks: grey = label -100 (no loss),
    green = learnt (label = the token's id); under each chip its label."""
    pal = style.palette(dark)
    items = [
        chips.Chip(
            text=tok.replace(" ", "␣").replace("\n", "⏎") or "∅",
            sub=str(int(label)),
            colour=pal[2] if label != IGNORE else "#888888",
            fill=0.35 if label != IGNORE else 0.15,
            hover=f"token {style.plain(repr(tok))}<br>id {i}<br>label {int(label)}"
            + (f"<br>−log p = {loss:.3f} (p = {p:.3f})" if label != IGNORE else "<br>ignored by the loss"),
            newline="\n" in tok,
        )
        for tok, i, label, loss, p in zip(t.tokens, t.ids, t.labels, t.token_loss, t.token_prob)
    ]
    fig = go.Figure()
    rows, _, shapes = chips.draw(fig, items, 0.0, TOKEN_FONT, dark)
    chips.frame(fig, TOKEN_FONT, rows, MIN_ROWS, shapes)
    n_ans = int(t.answer.sum())
    title = f"Labels: grey = −100 ({len(t.tokens) - n_ans} prompt tokens, no loss), green = learnt ({n_ans})"
    style.apply(fig, dark, title=title, height=int(90 + 56 * max(rows, MIN_ROWS)))
    return fig.update_layout(margin=dict(l=10, r=10, t=56, b=8))


def answer_loss(t: SftTrace, dark: bool = False) -> go.Figure:
    """−log p of each answer token (the only ones the loss counts), with p and the model's top guess."""
    pal = style.palette(dark)
    idx = np.flatnonzero(t.answer)
    fig = go.Figure(
        go.Bar(
            x=list(range(len(idx))),
            y=t.token_loss[idx],
            marker_color=pal[5],
            text=[f"{t.token_loss[i]:.2f}" for i in idx],
            textposition="outside",
            textfont=dict(size=18),
            cliponaxis=False,
            hovertext=[f"p = {t.token_prob[i]:.3f}<br>top guess {style.plain(_shown(t.predicted[i]))}" for i in idx],
            hoverinfo="text",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[-0.5, len(idx) - 0.5],
            y=[t.loss, t.loss],
            mode="lines",
            name=f"mean {t.loss:.3f}",
            line=dict(color=pal[4], dash="dash", width=3),
        )
    )
    fig.update_layout(showlegend=True, legend=dict(x=0.99, xanchor="right", y=0.98))
    ticks = [style.plain(t.tokens[i].replace(" ", "␣").replace("\n", "⏎") or "∅") for i in idx]
    fig.update_xaxes(tickvals=list(range(len(idx))), ticktext=ticks, title="answer token")
    fig.update_yaxes(title="−log p (nats)", range=[0, float(max(t.token_loss[idx].max(), t.loss)) * 1.2 + 0.05])
    fig.update_layout(uniformtext=dict(minsize=style.MIN_FONT, mode="show"))
    title = (
        f"Loss on the {len(idx)} answer tokens: mean {t.loss:.4f} = transformers' {t.reference_loss:.4f} "
        f"(no mask: {t.unmasked_loss:.2f})"
    )
    return style.apply(fig, dark, title=title, height=480)


def cross_entropy_curve(dark: bool = False) -> go.Figure:
    """The deck's static "Cross-entropy of one token": loss = -log p against p, with the uniform guess marked."""
    p = np.linspace(0.005, 1, 400)
    fig = go.Figure(go.Scatter(x=p, y=-np.log(p), mode="lines", line=dict(width=4), name="-log p"))
    fig.add_vline(x=1 / VOCAB, line_dash="dot")
    fig.add_annotation(
        x=0.12,
        y=4.6,
        text=f"uniform over {VOCAB:,} tokens: loss = {np.log(VOCAB):.1f}",
        showarrow=False,
        xanchor="left",
    )
    fig.update_xaxes(title="probability the model gives the right next token")
    fig.update_yaxes(title="loss = -log p", range=[0, 5.5])
    return style.apply(fig, dark, "Cross-entropy of one token")


# ---- the demo's views from Python: toolkit.views.show("sft", view, **preset) -----------------------------------

USER = "What is the capital of France?"
ANSWER = "The capital of France is Paris."


def _run(user: str, answer: str, system: str, model: str):
    from toolkit.sft.capture import Exchange, capture

    return capture(model, Exchange(user, answer, system or None))


def view_labels(
    user: str = USER, answer: str = ANSWER, system: str = "", model: str = "smollm2-135m", dark: bool = False
) -> go.Figure:
    """The chat template's tokens, the labels row (−100 on the prompt) and each answer token's loss."""
    return labels_view(_run(user, answer, system, model), dark)


def view_loss(
    user: str = USER, answer: str = ANSWER, system: str = "", model: str = "smollm2-135m", dark: bool = False
) -> go.Figure:
    return answer_loss(_run(user, answer, system, model), dark)


VIEWS = {"labels": view_labels, "loss": view_loss}  # the demo's hero first
