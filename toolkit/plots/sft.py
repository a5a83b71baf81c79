"""Views for SFT loss masking: the labels row under the tokens, and the loss of each answer token."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit.plots import style
from toolkit.traces import SftTrace


def _shown(piece: str) -> str:
    return repr(piece)[1:-1].replace(" ", "␣") or "∅"


def labels_and_loss(t: SftTrace, dark: bool = False) -> go.Figure:
    pal = style.palette(dark)
    x = [f"{i}:{_shown(s)}" for i, s in enumerate(t.tokens)]
    ans = t.answer
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.25, 0.75], vertical_spacing=0.04,
                        subplot_titles=["labels row (grey = -100, ignored)", "−log p(token | tokens before), answer only"])
    fig.add_trace(go.Bar(x=x, y=[1] * len(x), marker_color=[pal[2] if a else style.MASKED for a in (t.labels != -100)],
                         text=[str(v) for v in t.labels], textposition="inside", textangle=-90, showlegend=False,
                         hovertext=[f"id {i} label {v}" for i, v in zip(t.ids, t.labels)], hoverinfo="text"),
                  row=1, col=1)
    fig.add_trace(go.Bar(x=x, y=[v if a else 0 for v, a in zip(t.token_loss, ans)], marker_color=pal[5],
                         showlegend=False, text=[f"{v:.2f}" if a else "" for v, a in zip(t.token_loss, ans)],
                         textposition="outside",
                         hovertext=[f"p = {p:.3f}<br>model's top guess {_shown(g)!s}" for p, g in
                                    zip(t.token_prob, t.predicted)], hoverinfo="text"),
                  row=2, col=1)
    fig.update_yaxes(visible=False, row=1, col=1)
    fig.update_yaxes(title="loss (nats)", row=2, col=1)
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=13), row=2, col=1)
    fig.update_layout(bargap=0.08)
    title = (f"Loss on {int(ans.sum())} answer tokens = {t.loss:.4f} (transformers: {t.reference_loss:.4f}); "
             f"without the mask {t.unmasked_loss:.2f}")
    return style.apply(fig, dark, title=title, height=640)
