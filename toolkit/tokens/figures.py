"""Tokens and embeddings figures: slides "Tokenization: the real input to LLMs" (pieces side by side) and
"Embeddings" (cosine heatmap, PCA map, king − man + woman's nearest vocabulary rows). One function per view."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.tokens.trace import AnalogyTrace, EmbeddingTrace, TokenizationTrace


def _shown(piece: str) -> str:
    return piece.replace(" ", "␣").replace("\n", "⏎") or "∅"


def pieces(t: TokenizationTrace, dark: bool = False) -> go.Figure:
    """One row of boxes per tokenizer; colour = the word a piece belongs to; hatched text for byte fallbacks."""
    pal = style.palette(dark)
    n = len(t.views)
    fig = make_subplots(
        rows=n,
        cols=1,
        subplot_titles=[f"{v['model']}: {len(v['ids'])} tokens" for v in t.views],
        vertical_spacing=0.25 if n > 1 else 0.1,
    )
    for r, v in enumerate(t.views, start=1):
        x = list(range(len(v["ids"])))
        colours = [pal[w % 7] if w >= 0 else style.MASKED for w in v["word"]]
        labels = [("⚠ " if p or u else "") + _shown(s) for s, p, u in zip(v["pieces"], v["partial"], v["unknown"])]
        hover = [
            f"piece {s!r}<br>raw {raw!r}<br>id {i}" + ("<br>byte fallback" if p else "") + ("<br>unknown" if u else "")
            for s, raw, i, p, u in zip(v["pieces"], v["raw"], v["ids"], v["partial"], v["unknown"])
        ]
        fig.add_trace(
            go.Bar(
                x=x,
                y=[1] * len(x),
                marker_color=colours,
                text=[f"{lab}<br>{i}" for lab, i in zip(labels, v["ids"])],
                textposition="inside",
                insidetextanchor="middle",
                hovertext=hover,
                hoverinfo="text",
                showlegend=False,
            ),
            row=r,
            col=1,
        )
        fig.update_yaxes(visible=False, row=r, col=1)
        fig.update_xaxes(title="token position", dtick=1, row=r, col=1)
    fig.update_layout(bargap=0.05, uniformtext=dict(minsize=12, mode="show"))
    return style.apply(
        fig,
        dark,
        title="The same text, two tokenizers (colour = word, ⚠ = byte fallback / unknown)",
        height=220 * n + 120,
    )


def similarity(e: EmbeddingTrace, dark: bool = False) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(
            z=e.similarity,
            x=e.words,
            y=e.words,
            colorscale=style.DIVERGING,
            zmid=0,
            zmin=-1,
            zmax=1,
            text=np.round(e.similarity, 2),
            texttemplate="%{text}",
            colorbar=dict(title="cos"),
        )
    )
    fig.update_yaxes(autorange="reversed")
    what = (
        "sentence embeddings (mean pooled)" if e.source == "sentence" else "input embeddings (mean of a word's tokens)"
    )
    return style.apply(fig, dark, title=f"Cosine similarity, {e.meta.get('model', '')} {what}", height=520)


def projection(e: EmbeddingTrace, dark: bool = False, dims: int = 2) -> go.Figure:
    pal = style.palette(dark)
    ev = [f"PC{i + 1} ({100 * r:.0f}%)" for i, r in enumerate(e.explained)]
    if dims == 3:
        fig = go.Figure(
            go.Scatter3d(
                x=e.coords[:, 0],
                y=e.coords[:, 1],
                z=e.coords[:, 2],
                text=e.words,
                mode="markers+text",
                marker=dict(size=6, color=pal[4]),
                textfont=dict(size=18),
            )
        )
        fig.update_layout(scene=dict(xaxis_title=ev[0], yaxis_title=ev[1], zaxis_title=ev[2]))
    else:
        fig = go.Figure(
            go.Scatter(
                x=e.coords[:, 0],
                y=e.coords[:, 1],
                text=e.words,
                mode="markers+text",
                textposition="top center",
                marker=dict(size=14, color=pal[4]),
            )
        )
        fig.update_xaxes(title=ev[0])
        fig.update_yaxes(title=ev[1])
    return style.apply(fig, dark, title=f"PCA of {len(e.words)} embeddings ({dims}-D)", height=520)


def neighbours(a: AnalogyTrace, dark: bool = False) -> go.Figure:
    pal = style.palette(dark)
    labels = [f"{_shown(n)}{' (input)' if i else ''}" for n, i in zip(a.neighbours, a.is_input)]
    colours = [pal[5] if i else pal[2] for i in a.is_input]
    fig = go.Figure(
        go.Bar(
            x=a.scores,
            y=labels,
            orientation="h",
            marker_color=colours,
            text=[f"{s:.3f}" for s in a.scores],
            textposition="auto",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="cosine similarity to a − b + c")
    return style.apply(fig, dark, title=f"{a.a} − {a.b} + {a.c}: nearest vocabulary rows", height=520)
