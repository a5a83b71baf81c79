"""Next-token sampling figures: slides "Next-token prediction" and "Sampling strategies" (the distribution
through the filters, the vocabulary left after each, greedy vs sampled continuations step by step). One function
per view."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from toolkit import style
from toolkit.sampling.trace import DecodeTrace, NextTokenTrace


def _shown(piece: str) -> str:
    return repr(piece)[1:-1].replace(" ", "␣") or "∅"


def distribution(t: NextTokenTrace, dark: bool = False) -> go.Figure:
    """Model probabilities (T = 1) beside the renormalised probabilities after every filter; removed = grey."""
    pal = style.palette(dark)
    labels = [_shown(s) for s in t.tokens]
    final = t.probs[-1]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=t.probs[0], name="model (T = 1)", marker_color=pal[1]))
    fig.add_trace(
        go.Bar(
            x=labels,
            y=final,
            name=f"after filters ({int(t.survivors[-1])} tokens left)",
            marker_color=[pal[0] if p > 0 else style.MASKED for p in final],
            text=[f"{p:.2f}" if p > 0 else "✗" for p in final],
            textposition="outside",
        )
    )
    c = t.config
    sub = f"T={c['temperature']:g}, top-k={c['top_k'] or 'off'}, top-p={c['top_p']:g}, min-p={c['min_p']:g}"
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.02, x=0))
    fig.update_yaxes(title="probability", range=[0, min(1.0, float(np.max(t.probs)) * 1.15 + 0.02)])
    fig.update_xaxes(title="next token (most likely first)", tickangle=-45)
    return style.apply(fig, dark, title=f"Next token: {sub}", height=520)


def survivors(t: NextTokenTrace, dark: bool = False) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=t.stages,
            y=t.survivors,
            text=[f"{n:,}" for n in t.survivors],
            textposition="outside",
            marker_color=style.palette(dark)[4],
        )
    )
    fig.update_yaxes(type="log", title="tokens left")
    return style.apply(fig, dark, title="Vocabulary left after each stage", height=380)


def steps(d: DecodeTrace, dark: bool = False) -> go.Figure:
    """Rows = steps; cells = the most likely tokens of the distribution drawn from; ★ = the token chosen."""
    n, k = d.step_probs.shape
    text = [
        [
            ("★ " if d.step_ids[i, j] == d.ids[i] else "")
            + _shown(d.step_tokens[i][j])
            + f"<br>{d.step_probs[i, j]:.2f}"
            for j in range(k)
        ]
        for i in range(n)
    ]
    rows = [
        f"{i + 1}: {_shown(d.tokens[i])}" + ("" if d.ids[i] in d.step_ids[i] else f" (p={d.chosen_prob[i]:.3f})")
        for i in range(n)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=d.step_probs,
            x=[f"#{j + 1}" for j in range(k)],
            y=rows,
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=14),
            colorscale=style.SEQUENTIAL,
            zmin=0,
            zmax=1,
            colorbar=dict(title="p"),
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="rank in the distribution drawn from")
    name = "greedy (argmax)" if d.mode == "greedy" else f"sampled, seed {d.seed}"
    return style.apply(fig, dark, title=name, height=90 + 48 * n)
