"""SFT figures: slides "Cross-entropy" (the deck's static curve) and "SFT loss masking (-100)" (the labels row
under the tokens, and the loss of each answer token)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.sft.maths import IGNORE
from toolkit.sft.trace import SftTrace

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
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=13), row=2, col=1)
    fig.update_layout(bargap=0.08)
    title = (
        f"Loss on {int(ans.sum())} answer tokens = {t.loss:.4f} (transformers: {t.reference_loss:.4f}); "
        f"without the mask {t.unmasked_loss:.2f}"
    )
    return style.apply(fig, dark, title=title, height=640)


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
