"""Sparse-attention figures (slide "Sparse attention and attention sinks"), one function per view: the masks, the
perplexity curves, attention to the first token under a window, and the loss along the text."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.sparse_attention import maths
from toolkit.sparse_attention.trace import SparseCurveTrace, SparseTrace

SHOWN = 48  # tokens drawn in the mask view
PPL_TICKS = [3, 10, 30, 100, 300, 1000, 3000, 10_000]


def _sink_label(s: int) -> str:
    return "window only" if s == 0 else f"window + {s} sink{'s' * (s != 1)}"


def curves(trace: SparseCurveTrace, live: SparseTrace | None = None, dark: bool = False) -> go.Figure:
    """Perplexity of the text against the sliding window, one line per number of sinks; the full model dashed."""
    pal = style.palette(dark)
    colours = [pal[5], pal[2], pal[4], pal[0]]
    fig = go.Figure()
    ppl = trace.ppl
    for a, s in enumerate(trace.sinks):
        fig.add_trace(
            go.Scatter(
                x=trace.windows,
                y=ppl[a],
                name=_sink_label(int(s)),
                mode="lines+markers",
                line=dict(color=colours[a % len(colours)], width=4),
                marker=dict(size=11),
                hovertemplate="window %{x}: perplexity %{y:.2f}<extra></extra>",
            )
        )
    fig.add_hline(y=trace.full_ppl, line=dict(color="#888", dash="dash", width=2))
    fig.add_annotation(
        x=np.log10(trace.windows[0]),
        y=np.log10(trace.full_ppl),
        text=f"full attention {trace.full_ppl:.1f}",
        showarrow=False,
        yshift=14,
        xanchor="left",
        font=dict(size=style.MIN_FONT),
    )
    if live is not None:
        fig.add_trace(
            go.Scatter(
                x=[live.config["window"]],
                y=[live.ppl],
                name=f"live: {live.config['pattern']}, {live.config['sinks']} sinks",
                mode="markers",
                marker=dict(size=22, symbol="star", color=pal[6], line=dict(width=1, color="#000")),
            )
        )
    lo, hi = min(float(ppl.min()), trace.full_ppl), float(ppl.max())
    if live is not None:
        lo, hi = min(lo, live.ppl), max(hi, live.ppl)
    ticks = [t for t in PPL_TICKS if lo / 1.5 <= t <= hi * 1.5]
    fig.update_xaxes(type="log", title="window (keys each token sees)", tickvals=trace.windows, exponentformat="none")
    fig.update_yaxes(type="log", title="perplexity", tickvals=ticks, ticktext=[f"{t:,}" for t in ticks])
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    n = len(trace.ids)
    title = f"SmolLM2 on {n:,} tokens of Python's reference manual ('{style.plain(trace.source)}')"
    style.apply(fig, dark, title=title, height=560)
    fig.update_layout(margin=dict(t=120))
    return fig


def _kinds(n: int, pattern: str, window: int, dilation: int, sinks: int, random: int, seed: int) -> np.ndarray:
    """(query, key) 0 future, 1 not seen, 2 in the window, 3 sink / global token, 4 random key."""
    base = maths.mask(n, pattern if pattern != "global+local" else "sliding", window, dilation, 0)
    full = maths.mask(n, pattern, window, dilation, sinks, random, seed)
    k = np.where(np.tril(np.ones((n, n), dtype=bool)), 1, 0)
    k = np.where(full, 4, k)
    k = np.where(full & (np.arange(n)[None, :] < sinks), 3, k)
    return np.where(base, 2, k).astype(np.float32)


def masks(
    window: int = 8,
    dilation: int = 2,
    sinks: int = 4,
    random: int = 2,
    seed: int = 0,
    n_text: int = 1024,
    shown: int = SHOWN,
    dark: bool = False,
) -> go.Figure:
    """Sliding, dilated and global + local masks on the first ``shown`` tokens: window keys, sink / global
    tokens, random keys; each titled with the share of causal pairs it keeps over ``n_text`` tokens."""
    pal = style.palette(dark)
    unseen = "#2a2f3a" if dark else "#f2f2f2"
    colours = [style.MASKED, unseen, pal[4], pal[0], pal[6]]
    scale = []
    for i, c in enumerate(colours):
        scale += [[i / 5, c], [(i + 1) / 5, c]]
    patterns = ["sliding", "dilated", "global+local"]
    titles = []
    for p in patterns:
        d = maths.density(maths.mask(n_text, p, window, dilation, max(sinks, p == "global+local"), random, seed))
        titles.append(f"{p}: {100 * d:.1f}% of pairs")
    fig = make_subplots(1, 3, subplot_titles=titles, horizontal_spacing=0.04)
    for c, p in enumerate(patterns):
        z = _kinds(shown, p, window, dilation, max(sinks, p == "global+local"), random, seed)
        fig.add_trace(
            go.Heatmap(
                z=z,
                colorscale=scale,
                zmin=-0.5,
                zmax=4.5,
                showscale=False,
                hovertemplate="query %{y} → key %{x}<extra></extra>",
            ),
            1,
            c + 1,
        )
        fig.update_yaxes(
            autorange="reversed", showticklabels=c == 0, title="query" if c == 0 else None, row=1, col=c + 1
        )
        fig.update_xaxes(row=1, col=c + 1)
    for name, colour in (("window", pal[4]), ("sink / global", pal[0]), ("random (BigBird)", pal[6])):
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="markers", name=name, marker=dict(size=16, symbol="square", color=colour)
            )
        )
    fig.update_annotations(font_size=style.FONT_SIZE)
    fig.update_layout(legend=dict(orientation="h", y=1.2, x=1, yanchor="bottom", xanchor="right"))
    title = f"window {window} · dilation {dilation} · {sinks} sinks · {random} random: {shown} tokens"
    style.apply(fig, dark, title=title, height=560)
    fig.update_layout(margin=dict(t=110, b=40))
    return fig


def sink(trace: SparseCurveTrace, window: int, dark: bool = False) -> go.Figure:
    """Per layer, attention (mean over heads and over the queries past the window) on the first token in the full
    model, on the oldest key in view under a plain window (token 0 is out of view), and on token 0 with sinks."""
    pal = style.palette(dark)
    b = trace.at(window)
    w = int(trace.windows[b])
    layers = np.arange(trace.full_first.shape[0])
    q0 = maths.since(w, len(trace.ids))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=layers,
            y=trace.full_first[:, q0:].mean(1),
            name="full: on token 0",
            mode="lines+markers",
            line=dict(color="#888", width=3, dash="dash"),
        )
    )
    colours = [pal[5], pal[2], pal[4]]
    for a, s in enumerate(trace.sinks):
        s = int(s)
        y = trace.oldest[a, b] if s == 0 else trace.first[a, b]
        name = f"window {w}: on the oldest key in view" if s == 0 else f"window {w} + {s} sinks: on token 0"
        fig.add_trace(
            go.Scatter(x=layers, y=y, name=name, mode="lines+markers", line=dict(color=colours[a % 3], width=4))
        )
    fig.update_xaxes(title="layer", dtick=5)
    fig.update_yaxes(title="share of attention", rangemode="tozero")
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    title = f"Where the first token's attention goes (queries from position {q0} on)"
    style.apply(fig, dark, title=title, height=560)
    fig.update_layout(margin=dict(t=130))
    return fig


def loss(trace: SparseCurveTrace, window: int, live: SparseTrace | None = None, smooth: int = 64, dark: bool = False):
    """Loss of each next token along the text (moving average), full model against the window with and without
    sinks: a plain window loses nothing until the text is longer than the window."""
    pal = style.palette(dark)
    b = trace.at(window)
    w = int(trace.windows[b])
    x = np.arange(1, len(trace.ids))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=maths.smooth(trace.full_nll, smooth),
            name="full attention",
            line=dict(color="#888", width=3, dash="dash"),
        )
    )
    colours = [pal[5], pal[2], pal[4]]
    for a, s in enumerate(trace.sinks):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=maths.smooth(trace.nll[a, b], smooth),
                name=f"{_sink_label(int(s))} ({w})",
                line=dict(color=colours[a % 3], width=3),
            )
        )
    if live is not None and len(live.nll) == len(x):
        fig.add_trace(
            go.Scatter(x=x, y=maths.smooth(live.nll, smooth), name="live run", line=dict(color=pal[6], width=3))
        )
    if w < len(trace.ids):
        fig.add_vline(x=w, line=dict(color="#888", dash="dot", width=2))
    fig.update_xaxes(title="position in the text")
    fig.update_yaxes(title=f"loss (nats, mean of {smooth})", rangemode="tozero")
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    style.apply(fig, dark, title=f"Next-token loss along the text, window {w}", height=560)
    fig.update_layout(margin=dict(t=130))
    return fig


# ---- the demo's views from Python: toolkit.views.show("sparse_attention", view, **preset) ----------------------
# One function per view of demos/sparse_attention.py, with its URL presets as keywords and its defaults. The
# curves, the sink and the loss views replay the recorded window sweep (`lecture sparse-curves`).

MASK_WINDOW = 8  # the masks view draws the recorded text's first tokens: a window above 24 is drawn as 8


def recorded() -> SparseCurveTrace:
    """The committed window sweep (assets/sparse_attention/curves.npz), read once per file version."""
    from toolkit import views
    from toolkit.sparse_attention import ASSET

    return views.recorded(SparseCurveTrace, ASSET, "lecture sparse-curves")


def view_curves(dark: bool = False) -> go.Figure:
    return curves(recorded(), None, dark)


def view_masks(
    window: int = 64,
    sinks: int = 4,
    dilation: int = 2,
    random: int = 2,
    seed: int = 0,
    dark: bool = False,
) -> go.Figure:
    """Every pattern's mask on the recorded text's first tokens, each with the share of pairs it keeps."""
    from toolkit.sparse_attention.capture import SparseConfig

    cfg = SparseConfig(window=window, sinks=sinks, dilation=dilation, random=random, seed=seed)
    shown = cfg.window if cfg.window <= 24 else MASK_WINDOW
    return masks(shown, cfg.dilation, cfg.sinks, cfg.random, cfg.seed, len(recorded().ids), dark=dark)


def view_sink(window: int = 64, dark: bool = False) -> go.Figure:
    return sink(recorded(), window, dark)


def view_loss(window: int = 64, dark: bool = False) -> go.Figure:
    return loss(recorded(), window, None, dark=dark)


VIEWS = {"curves": view_curves, "masks": view_masks, "sink": view_sink, "loss": view_loss}  # the demo's hero first
