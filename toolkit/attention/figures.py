"""Attention figures, one function per view, each reading an AttentionTrace (never a model).

Serves the deck's slides on self-attention (the weight matrix), multi-head attention (the two-head "it ->
animal / tired" slide), causal masking, the "Self-Attention Computation" slide
softmax(QKᵀ/√d_k + M)·V, and encoder vs decoder. Masked cells (a causal model's future) are NaN, drawn in
style.MASKED behind the data, so they never look like a measured zero. Arrays go out as float32 so plotly
sends them base64-packed (4 bytes a number) instead of as decimal text.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.attention import maths
from toolkit.attention.trace import AttentionTrace

TICK_LIMIT = 40  # label every token up to this many; beyond, hover gives positions


def label(token: str) -> str:
    """A token as a tick label: newlines visible, a bare space shown as ␣."""
    t = token.replace("\n", "\\n").replace("\t", "\\t").strip()
    return t if t else "␣"


def _masked(trace: AttentionTrace, layer: int, head: int) -> np.ndarray:
    """(query, key) float32 with NaN where the model cannot look (the future, or beyond a sliding window)."""
    out = np.array(trace.weights[layer, head], dtype=np.float32)
    if trace.causal:
        out[~np.isfinite(maths.causal_mask(out.shape[0], trace.meta.get("sliding_window")))] = np.nan
    return out


def _clamp(i: int, n: int) -> int:
    return max(0, min(int(i), n - 1))


def _token_axes(fig: go.Figure, tokens: list[str], row=None, col=None, ticks: bool = True) -> None:
    n = len(tokens)
    show = ticks and n <= TICK_LIMIT
    kw = dict(
        tickmode="array",
        tickvals=list(range(n)) if show else [],
        ticktext=[label(t) for t in tokens] if show else [],
        showgrid=False,
        zeroline=False,
    )
    fig.update_xaxes(tickangle=-60, **kw, row=row, col=col)
    fig.update_yaxes(autorange="reversed", **kw, row=row, col=col)


def _finish(fig: go.Figure, dark: bool, title: str, height: int) -> go.Figure:
    style.apply(fig, dark, title=title, height=height)
    fig.update_layout(plot_bgcolor=style.MASKED)  # NaN (masked) cells show this colour
    return fig


def _heat(z: np.ndarray, **kw) -> go.Heatmap:
    return go.Heatmap(z=z, hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>", **kw)


def head_heatmap(trace: AttentionTrace, layer: int, head: int, dark: bool = False) -> go.Figure:
    """One head's weight matrix with token labels; the causal mask drawn as masked, not as zeros."""
    layer, head = _clamp(layer, trace.n_layers), _clamp(head, trace.n_heads)
    z = _masked(trace, layer, head)
    fig = go.Figure(_heat(z, colorscale=style.SEQUENTIAL, zmin=0, zmax=1, colorbar=dict(title="weight")))
    _token_axes(fig, trace.tokens)
    fig.update_xaxes(title="key (attended to)")
    fig.update_yaxes(title="query (attending)", scaleanchor="x")
    mask = "; grey = masked (future)" if trace.causal else ""
    title = f"layer {layer}, head {head} (kv head {int(trace.kv_head[head])}){mask}"
    return _finish(fig, dark, title, 640)


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3 if n <= 9 else 4 if n <= 16 else 6)
    return -(-n // cols), cols


def _grid_layout(
    n: int, rows: int, cols: int, titles: list[str], axis: dict, hgap: float = 0.03, vgap: float = 0.08
) -> dict:
    """A layout dict with n subplot axes in a rows × cols grid, built in one go (plotly's make_subplots plus
    per-axis updates cost about 0.3 s for nine panels; this is the demo's default view, so it must be quick)."""
    layout: dict = {"annotations": []}
    w, h = (1 - hgap * (cols - 1)) / cols, (1 - vgap * (rows - 1)) / rows
    for i in range(n):
        r, c = divmod(i, cols)
        sfx = "" if i == 0 else str(i + 1)
        x0, y1 = c * (w + hgap), 1 - r * (h + vgap)
        x = [max(0.0, x0), min(1.0, x0 + w)]  # clamped: rounding can step a hair outside [0, 1]
        y = [max(0.0, y1 - h), min(1.0, y1)]
        layout[f"xaxis{sfx}"] = {**axis, "domain": x, "anchor": f"y{sfx}"}
        layout[f"yaxis{sfx}"] = {**axis, "domain": y, "anchor": f"x{sfx}", "autorange": "reversed"}
        layout["annotations"].append(
            {
                "text": titles[i],
                "x": x0 + w / 2,
                "y": y1,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": style.FONT_SIZE - 2},
            }
        )
    return layout


def layer_heads(trace: AttentionTrace, layer: int, dark: bool = False) -> go.Figure:
    """Every head of one layer side by side (multi-head attention: same tokens, different patterns)."""
    layer = _clamp(layer, trace.n_layers)
    rows, cols = _grid(trace.n_heads)
    n = len(trace.tokens)
    titles = [f"head {h} · kv {int(trace.kv_head[h])}" for h in range(trace.n_heads)]
    ticks = n <= 12
    axis = {
        "showgrid": False,
        "zeroline": False,
        "tickmode": "array",
        "tickvals": list(range(n)) if ticks else [],
        "ticktext": [label(t) for t in trace.tokens] if ticks else [],
    }
    layout = _grid_layout(trace.n_heads, rows, cols, titles, axis, vgap=0.06)
    for i in range(
        trace.n_heads
    ):  # token labels under the bottom row only (rows are the same tokens; hover names them)
        r, c = divmod(i, cols)
        sfx = "" if i == 0 else str(i + 1)
        if rows > 1 or c:
            layout[f"yaxis{sfx}"] = {**layout[f"yaxis{sfx}"], "showticklabels": False}
        if r != rows - 1 and i + cols < trace.n_heads:
            layout[f"xaxis{sfx}"] = {**layout[f"xaxis{sfx}"], "showticklabels": False}
    layout["coloraxis"] = {
        "colorscale": style.SEQUENTIAL,
        "cmin": 0,
        "cmax": 1,
        "colorbar": {"title": {"text": "weight"}},
    }
    data = [
        {
            "type": "heatmap",
            "z": _masked(trace, layer, h),
            "coloraxis": "coloraxis",
            "xaxis": "x" if h == 0 else f"x{h + 1}",
            "yaxis": "y" if h == 0 else f"y{h + 1}",
            "hovertemplate": "query %{y} → key %{x}: %{z:.3f}<extra></extra>",
        }
        for h in range(trace.n_heads)
    ]
    fig = go.Figure(data=data, layout=layout)
    return _finish(fig, dark, f"layer {layer}: all {trace.n_heads} heads", (340 if ticks else 260) * rows + 80)


def _difference(a: AttentionTrace, b: AttentionTrace, layer: int, head: int) -> np.ndarray:
    """(query, key) float32 B − A of one head, NaN where the model cannot look."""
    return _masked(b, layer, head) - _masked(a, layer, head)


def head_difference(a: AttentionTrace, b: AttentionTrace, layer: int, dark: bool = False) -> go.Figure:
    """Side by side: every head of one layer as B − A (red: B attends more, blue: less), each titled with its
    total variation distance (``maths.total_variation``: 0 the same, 1 nothing in common)."""
    layer = _clamp(layer, a.n_layers)
    tv = maths.total_variation(a.weights, b.weights)[layer]  # (head,)
    diffs = [_difference(a, b, layer, h) for h in range(a.n_heads)]
    top = max(float(np.nanmax(np.abs(d))) if np.isfinite(d).any() else 0.0 for d in diffs) or 1.0
    rows, cols = _grid(a.n_heads)
    n = len(a.tokens)
    ticks = n <= 12
    axis = {
        "showgrid": False,
        "zeroline": False,
        "tickmode": "array",
        "tickvals": list(range(n)) if ticks else [],
        "ticktext": [label(t) for t in a.tokens] if ticks else [],
    }
    layout = _grid_layout(a.n_heads, rows, cols, [f"head {h} · TV {tv[h]:.3f}" for h in range(a.n_heads)], axis)
    for i in range(a.n_heads):  # token labels on the outer edges only
        r, c = divmod(i, cols)
        sfx = "" if i == 0 else str(i + 1)
        if c:
            layout[f"yaxis{sfx}"] = {**layout[f"yaxis{sfx}"], "showticklabels": False}
        if r != rows - 1 and i + cols < a.n_heads:
            layout[f"xaxis{sfx}"] = {**layout[f"xaxis{sfx}"], "showticklabels": False}
    layout["coloraxis"] = {
        "colorscale": style.DIVERGING,
        "reversescale": True,  # RdBu runs red to blue: reversed, more attention is red
        "cmid": 0,
        "cmin": -top,
        "cmax": top,
        "colorbar": {"title": {"text": "B − A"}},
    }
    data = [
        {
            "type": "heatmap",
            "z": diffs[h],
            "coloraxis": "coloraxis",
            "xaxis": "x" if h == 0 else f"x{h + 1}",
            "yaxis": "y" if h == 0 else f"y{h + 1}",
            "hovertemplate": "query %{y} → key %{x}: %{z:+.3f}<extra></extra>",
        }
        for h in range(a.n_heads)
    ]
    names = f"{style.plain(b.meta.get('model', 'B'))} − {style.plain(a.meta.get('model', 'A'))}"
    fig = go.Figure(data=data, layout=layout)
    return _finish(fig, dark, f"layer {layer}, {names}", (340 if ticks else 260) * rows + 80)


def difference_summary(a: AttentionTrace, b: AttentionTrace, dark: bool = False) -> go.Figure:
    """Every layer × head (layers across, heads down, as the model view): the total variation distance between
    the two models' patterns, so the heads that moved stand out."""
    tv = maths.total_variation(a.weights, b.weights).astype(np.float32)  # (layer, head)
    fig = go.Figure(
        go.Heatmap(
            z=tv.T,  # (head, layer)
            colorscale=style.SEQUENTIAL,
            zmin=0,
            colorbar=dict(title="TV"),
            hovertemplate="layer %{x}, head %{y}: TV %{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(title="head", autorange="reversed", dtick=1 if a.n_heads <= 12 else 2)
    fig.update_xaxes(title="layer", dtick=1 if a.n_layers <= 16 else 2)
    layer, head = np.unravel_index(int(tv.argmax()), tv.shape)
    names = f"{style.plain(a.meta.get('model', 'A'))} vs {style.plain(b.meta.get('model', 'B'))}"
    title = f"{names}: most changed head L{layer} H{head} (TV {tv[layer, head]:.3f})"
    return style.apply(fig, dark, title=title, height=max(380, 30 * a.n_heads + 200))


def _pool(w: np.ndarray, causal: bool, s: int) -> np.ndarray:
    """(layer, head, s, s) block means of (layer, head, T, T); NaN for blocks with no visible cell."""
    n = w.shape[-1]
    edges = np.linspace(0, n, s + 1).astype(int)[:-1]
    valid = np.tril(np.ones((n, n))) if causal else np.ones((n, n))
    total = np.add.reduceat(np.add.reduceat(w, edges, axis=-1), edges, axis=-2)  # (L, H, s, s)
    count = np.add.reduceat(np.add.reduceat(valid, edges, axis=-1), edges, axis=-2)  # (s, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _viridis_after_mask() -> list:
    """A colourscale for 0..255 byte codes: 0 is the masked grey, 1..255 run through the sequential scale."""
    import plotly.colors as pc

    colours = pc.get_colorscale(style.SEQUENTIAL)
    grey = "rgb(200,200,200)"
    return [[0, grey], [0.5 / 255, grey]] + [[1 / 255 + (1 - 1 / 255) * p, c] for p, c in colours]


def model_view(
    trace: AttentionTrace, dark: bool = False, selected: tuple[int, int] | None = None, cell: int = 16
) -> go.Figure:
    """All layers × heads as thumbnails in one figure, layers across and heads down (a landscape slide).

    Each head's matrix is pooled to at most cell × cell block means. The selected (layer, head) is outlined;
    pick one with the demo's layer/head controls to open it.
    """
    n_l, n_h, n = trace.weights.shape[:3]
    s = min(n, cell)
    pooled = _pool(np.asarray(trace.weights, dtype=np.float32), trace.causal, s)  # (L, H, s, s), no copy
    mosaic = pooled.transpose(1, 2, 0, 3).reshape(n_h * s, n_l * s).astype(np.float32)  # (H·s, L·s)
    x = (np.arange(n_l * s) + 0.5) / s - 0.5  # layer index at thumbnail centres
    y = (np.arange(n_h * s) + 0.5) / s - 0.5  # head index
    zmax = float(np.nanmax(mosaic)) if np.isfinite(mosaic).any() and np.nanmax(mosaic) > 0 else 1.0
    # One byte a cell: 1..255 is the weight scaled to zmax, 0 is "masked" and gets the masked colour.
    codes = np.where(np.isnan(mosaic), 0, 1 + np.round(np.nan_to_num(mosaic) / zmax * 254)).astype(np.uint8)
    scale = _viridis_after_mask()
    heat = {
        "type": "heatmap",
        "z": codes,
        "x": x.astype(np.float32),
        "y": y.astype(np.float32),
        "colorscale": scale,
        "zmin": 0,
        "zmax": 255,
        "colorbar": {
            "title": {"text": "mean"},
            "tickvals": [1, 128, 255],
            "ticktext": ["0", f"{zmax / 2:.2f}", f"{zmax:.2f}"],
        },
        "hovertemplate": "layer %{x:.0f}, head %{y:.0f}<extra></extra>",
    }
    line = {"color": "#0b0f19" if dark else "white", "width": 1}
    shapes = [
        {"type": "line", "x0": i - 0.5, "x1": i - 0.5, "y0": -0.5, "y1": n_h - 0.5, "line": line} for i in range(1, n_l)
    ]
    shapes += [
        {"type": "line", "y0": h - 0.5, "y1": h - 0.5, "x0": -0.5, "x1": n_l - 0.5, "line": line} for h in range(1, n_h)
    ]
    if selected is not None:
        sl, sh = _clamp(selected[0], n_l), _clamp(selected[1], n_h)
        shapes.append(
            {
                "type": "rect",
                "x0": sl - 0.5,
                "x1": sl + 0.5,
                "y0": sh - 0.5,
                "y1": sh + 0.5,
                "line": {"color": style.palette(dark)[5], "width": 4},
            }
        )
    axis = {"showgrid": False, "zeroline": False, "tickmode": "linear"}
    fig = go.Figure(
        data=[heat],
        layout={
            "shapes": shapes,
            "xaxis": {**axis, "title": {"text": "layer"}, "dtick": 1 if n_l <= 12 else 2},
            "yaxis": {**axis, "title": {"text": "head"}, "dtick": 1, "autorange": "reversed", "scaleanchor": "x"},
        },
    )
    return _finish(
        fig,
        dark,
        f"model view: {n_l} layers × {n_h} heads (outlined: the open head)",
        max(360, int(1100 * n_h / max(n_l, 1)) + 160),
    )


def lines_view(
    trace: AttentionTrace, layer: int, heads: list[int], query: int, dark: bool = False, threshold: float = 0.02
) -> go.Figure:
    """bertviz-style: the query token on the left, lines to the keys it attends on the right, one colour per
    head, line width and opacity proportional to the weight (weights below ``threshold`` are not drawn)."""
    layer, query = _clamp(layer, trace.n_layers), _clamp(query, len(trace.tokens))
    heads = sorted({_clamp(h, trace.n_heads) for h in heads}) or [0]
    colours = style.palette(dark)
    n = len(trace.tokens)
    fig = go.Figure()
    for j, h in enumerate(heads):
        w = trace.weights[layer, h, query]
        first = True
        for k in sorted(np.flatnonzero(w >= threshold), key=lambda i: -w[i]):  # legend shows the boldest line
            fig.add_trace(
                go.Scatter(
                    x=[0, 1],
                    y=[query, int(k)],
                    mode="lines",
                    opacity=float(0.25 + 0.75 * w[k]),
                    line=dict(color=colours[j % len(colours)], width=float(1 + 10 * w[k])),
                    name=f"head {h}",
                    legendgroup=str(h),
                    showlegend=first,
                    hovertemplate=f"head {h}: {label(trace.tokens[query])} → {label(trace.tokens[k])} {w[k]:.3f}"
                    "<extra></extra>",
                )
            )
            first = False
    ink = "#eeeeee" if dark else "#111111"
    labels = [label(t) for t in trace.tokens]
    sizes = [style.FONT_SIZE + 2 if i == query else style.FONT_SIZE - 2 for i in range(n)]
    for x, pos in ((0, "middle left"), (1, "middle right")):
        fig.add_trace(
            go.Scatter(
                x=[x] * n,
                y=list(range(n)),
                mode="text",
                text=labels,
                textposition=pos,
                textfont=dict(size=sizes, color=ink),
                showlegend=False,
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(visible=False, range=[-0.8, 1.8])
    fig.update_yaxes(visible=False, autorange="reversed")
    title = f"layer {layer}: '{labels[query]}' attends to… (heads {', '.join(map(str, heads))})"
    style.apply(fig, dark, title=title, height=max(420, min(24 * n + 140, 1600)))
    fig.update_layout(legend=dict(orientation="h", y=-0.02))
    return fig


def step_by_step(
    trace: AttentionTrace, layer: int, head: int, dark: bool = False, max_tokens: int = 8, dims: int = 6
) -> go.Figure:
    """One head's real numbers: Q, K, V → Q·Kᵀ → ÷√d_k → + mask (−∞) → softmax → × V = output.

    Shows the first ``max_tokens`` tokens and the first ``dims`` of head_dim in Q, K, V and the output. The
    softmax is computed over all keys; for a causal model the shown block is exact, for an encoder the rows of
    the block need not sum to 1 when the text is longer than the block.
    """
    if trace.q is None:
        raise ValueError("this trace has no Q, K, V (capture with with_qkv=True)")
    layer, head = _clamp(layer, trace.n_layers), _clamp(head, trace.n_heads)
    q, k, v = trace.q[layer, head], trace.k[layer, head], trace.v[layer, head]  # (pos, head_dim)
    steps = maths.attention_steps(q, k, v, trace.causal, trace.meta.get("scaling"), trace.meta.get("sliding_window"))
    err = float(np.abs(steps["weights"] - trace.weights[layer, head]).max())
    n, d = min(len(trace.tokens), max_tokens), q.shape[-1]
    m = min(dims, d)
    toks = [label(t) for t in trace.tokens[:n]]
    dim_labels = [f"d{i}" for i in range(m)]
    mask_note = "+ mask (−∞ above diagonal)" if trace.causal else "+ mask (none: bidirectional)"
    panels = [
        ("Q (first dims)", q[:n, :m], toks, dim_labels, None),
        ("K (first dims)", k[:n, :m], toks, dim_labels, None),
        ("V (first dims)", v[:n, :m], toks, dim_labels, None),
        ("Q·Kᵀ", steps["scores"][:n, :n], toks, toks, None),
        (f"÷ √d_k = √{d}", steps["scaled"][:n, :n], toks, toks, None),
        (mask_note, steps["masked"][:n, :n], toks, toks, "mask"),
        ("softmax (rows sum to 1)", steps["weights"][:n, :n], toks, toks, "weights"),
        ("× V → output (first dims)", steps["output"][:n, :m], toks, dim_labels, None),
    ]
    fig = make_subplots(2, 4, subplot_titles=[p[0] for p in panels], horizontal_spacing=0.06, vertical_spacing=0.16)
    for i, (_, z, ylab, xlab, kind) in enumerate(panels):
        r, c = i // 4 + 1, i % 4 + 1
        z = np.asarray(z, dtype=np.float64)
        text = np.vectorize(lambda a: "−∞" if a == -np.inf else f"{a:.2f}")(z)
        shown = z.copy()
        if trace.causal and kind in ("mask", "weights"):
            shown[np.triu_indices(len(z), k=1)] = np.nan
        fig.add_trace(
            go.Heatmap(
                z=shown.astype(np.float32),
                text=text,
                texttemplate="%{text}",
                colorscale=style.SEQUENTIAL if kind == "weights" else style.DIVERGING,
                zmid=None if kind == "weights" else 0,
                showscale=False,
                hovertemplate="%{y} · %{x}: %{text}<extra></extra>",
            ),
            r,
            c,
        )
        fig.update_xaxes(
            tickmode="array",
            tickvals=list(range(len(xlab))),
            ticktext=xlab,
            tickangle=-60,
            row=r,
            col=c,
            showgrid=False,
        )
        fig.update_yaxes(
            tickmode="array",
            tickvals=list(range(len(ylab))),
            ticktext=ylab,
            autorange="reversed",
            row=r,
            col=c,
            showgrid=False,
            showticklabels=c == 1,
        )
    fig.update_annotations(font_size=style.FONT_SIZE - 2)
    fig.update_traces(textfont_size=style.MIN_FONT)
    note = f"first {n} of {len(trace.tokens)} tokens · " if n < len(trace.tokens) else ""
    title = f"layer {layer}, head {head}: {note}recomputed softmax vs captured: max diff {err:.1e}"
    return _finish(fig, dark, title, 820)


def formula(trace: AttentionTrace, layer: int, head: int, dark: bool = False, max_tokens: int = 6) -> go.Figure:
    """The slide's equation on one head's real numbers, big enough for a room: QKᵀ/√d_k, + M, softmax.

    Three panels over the first ``max_tokens`` tokens (the full eight-panel view is ``step_by_step``).
    """
    if trace.q is None:
        raise ValueError("this trace has no Q, K, V (capture with with_qkv=True)")
    layer, head = _clamp(layer, trace.n_layers), _clamp(head, trace.n_heads)
    q, k, v = trace.q[layer, head], trace.k[layer, head], trace.v[layer, head]  # (pos, head_dim)
    steps = maths.attention_steps(q, k, v, trace.causal, trace.meta.get("scaling"), trace.meta.get("sliding_window"))
    n = min(len(trace.tokens), max_tokens)
    toks = [label(t) for t in trace.tokens[:n]]
    mask = "+ M (−∞ above the diagonal)" if trace.causal else "+ M (none: the encoder sees both ways)"
    panels = [
        (f"Q·Kᵀ / √{q.shape[-1]}", steps["scaled"][:n, :n], False),
        (mask, steps["masked"][:n, :n], True),
        ("softmax: each row sums to 1", steps["weights"][:n, :n], True),
    ]
    fig = make_subplots(1, 3, subplot_titles=[p[0] for p in panels], horizontal_spacing=0.05)
    for c, (_, z, masked) in enumerate(panels, start=1):
        z = np.asarray(z, dtype=np.float64)
        text = np.vectorize(lambda a: "−∞" if a == -np.inf else f"{a:.2f}")(z)
        shown = z.copy()
        if trace.causal and masked:
            shown[np.triu_indices(n, k=1)] = np.nan
        weights = c == 3
        fig.add_trace(
            go.Heatmap(
                z=shown.astype(np.float32),
                text=text,
                texttemplate="%{text}",
                showscale=False,
                colorscale=style.SEQUENTIAL if weights else style.DIVERGING,
                zmid=None if weights else 0,
                zmin=0 if weights else None,
                zmax=1 if weights else None,
                hovertemplate="%{y} → %{x}: %{text}<extra></extra>",
            ),
            1,
            c,
        )
        fig.update_xaxes(
            tickmode="array", tickvals=list(range(n)), ticktext=toks, tickangle=-45, showgrid=False, row=1, col=c
        )
        fig.update_yaxes(
            tickmode="array",
            tickvals=list(range(n)),
            ticktext=toks,
            autorange="reversed",
            showgrid=False,
            showticklabels=c == 1,
            row=1,
            col=c,
        )
    fig.update_traces(textfont_size=style.MIN_FONT)
    fig.update_annotations(font_size=style.MIN_FONT + 1)
    note = f" (first {n} of {len(trace.tokens)} tokens)" if n < len(trace.tokens) else ""
    return _finish(fig, dark, f"layer {layer}, head {head}: softmax(QKᵀ/√d + M){note}", 520)


def head_summary(trace: AttentionTrace, dark: bool = False) -> go.Figure:
    """Per layer × head: entropy (bits), and the share of attention to the previous token, to the first token
    (the attention sink) and to itself."""
    stats = maths.head_stats(trace)
    names = [
        ("entropy", "entropy (bits)"),
        ("previous", "→ previous token"),
        ("first", "→ first token (sink)"),
        ("self", "→ itself"),
    ]
    fig = make_subplots(1, 4, subplot_titles=[t for _, t in names], horizontal_spacing=0.04)
    for i, (key, _) in enumerate(names):
        z = stats[key].astype(np.float32)  # (layer, head)
        axis = "coloraxis" if key == "entropy" else "coloraxis2"
        fig.add_trace(
            go.Heatmap(
                z=z, coloraxis=axis, hovertemplate=f"layer %{{y}}, head %{{x}}: {key} %{{z:.2f}}<extra></extra>"
            ),
            1,
            i + 1,
        )
        fig.update_yaxes(
            autorange="reversed", showticklabels=i == 0, title="layer" if i == 0 else None, row=1, col=i + 1
        )
        fig.update_xaxes(title="head", dtick=1 if trace.n_heads <= 12 else 2, row=1, col=i + 1)
    fig.update_layout(
        coloraxis=dict(colorscale=style.SEQUENTIAL, colorbar=dict(title="bits", x=-0.12)),
        coloraxis2=dict(colorscale=style.SEQUENTIAL, cmin=0, cmax=1, colorbar=dict(title="share")),
    )
    fig.update_annotations(font_size=style.FONT_SIZE - 2)
    return style.apply(fig, dark, title="head summary", height=max(420, 18 * trace.n_layers + 160))


def pair_heads(
    trace: AttentionTrace, query: str = "it", keys: tuple[str, ...] = ("animal", "tired"), dark: bool = False
) -> go.Figure:
    """Per layer × head, how much ``query`` attends to each of ``keys``; the top 3 heads per key outlined.

    The deck's two-head slide: on "The animal didn't cross the street because it was too tired", which heads
    send "it" to "animal" and which to "tired"? A causal model cannot look ahead: "tired" comes after "it".
    """
    pair = maths.pair_attention(trace, query, list(keys))
    titles = []
    for word, ki in zip(keys, pair["keys"]):
        after = trace.causal and ki > pair["query"]
        titles.append(f"'{style.plain(query)}' → '{style.plain(word)}'" + (" (masked: comes later)" if after else ""))
    fig = make_subplots(1, len(keys), subplot_titles=titles, horizontal_spacing=0.06)
    colours = style.palette(dark)
    shapes = []
    for i, (word, ki, w) in enumerate(zip(keys, pair["keys"], pair["weights"])):
        z = w.astype(np.float32)  # (layer, head)
        if trace.causal and ki > pair["query"]:
            z = np.full_like(z, np.nan)
        fig.add_trace(
            go.Heatmap(
                z=z, coloraxis="coloraxis", hovertemplate=f"layer %{{y}}, head %{{x}}: {word} %{{z:.3f}}<extra></extra>"
            ),
            1,
            i + 1,
        )
        fig.update_yaxes(autorange="reversed", title="layer" if i == 0 else None, row=1, col=i + 1)
        fig.update_xaxes(title="head", row=1, col=i + 1)
        if np.isfinite(z).any():
            ref = "" if i == 0 else str(i + 1)
            for layer, head, _ in pair["top"][word][:3]:
                shapes.append(
                    dict(
                        type="rect",
                        xref=f"x{ref}",
                        yref=f"y{ref}",
                        x0=head - 0.5,
                        x1=head + 0.5,
                        y0=layer - 0.5,
                        y1=layer + 0.5,
                        line=dict(color=colours[i % 2], width=3),
                    )
                )
    fig.update_layout(
        shapes=shapes, coloraxis=dict(colorscale=style.SEQUENTIAL, cmin=0, cmax=1, colorbar=dict(title="weight"))
    )
    fig.update_annotations(font_size=style.FONT_SIZE - 2)
    for i, (word, ki) in enumerate(zip(keys, pair["keys"])):
        if trace.causal and ki > pair["query"]:  # say why the panel is empty, in the panel
            ref = "" if i == 0 else str(i + 1)
            fig.add_annotation(
                text=f"'{style.plain(word)}' comes after '{style.plain(query)}':<br>a decoder cannot look ahead",
                xref=f"x{ref} domain",
                yref=f"y{ref} domain",
                x=0.5,
                y=0.5,
                showarrow=False,
                font=dict(size=style.FONT_SIZE),
            )
            fig.update_xaxes(showticklabels=False, row=1, col=i + 1)
            fig.update_yaxes(showticklabels=False, row=1, col=i + 1)
    return _finish(
        fig,
        dark,
        f"which heads send '{style.plain(query)}' where (top 3 outlined)",
        max(420, 18 * trace.n_layers + 160),
    )


def encoder_vs_decoder(
    encoder: AttentionTrace, decoder: AttentionTrace, layer: tuple[int, int], head: tuple[int, int], dark: bool = False
) -> go.Figure:
    """The same sentence through an encoder (every token sees every token) and a decoder (only the past).

    layer, head: (encoder's, decoder's), each clamped to its model.
    """
    names = [encoder.meta.get("model", "encoder"), decoder.meta.get("model", "decoder")]
    fig = make_subplots(
        1,
        2,
        horizontal_spacing=0.12,
        subplot_titles=[
            f"{names[0]} (bidirectional) · L{_clamp(layer[0], encoder.n_layers)} H{_clamp(head[0], encoder.n_heads)}",
            f"{names[1]} (causal) · L{_clamp(layer[1], decoder.n_layers)} H{_clamp(head[1], decoder.n_heads)}",
        ],
    )
    for i, tr in enumerate((encoder, decoder)):
        lay, hd = _clamp(layer[i], tr.n_layers), _clamp(head[i], tr.n_heads)
        fig.add_trace(_heat(_masked(tr, lay, hd), coloraxis="coloraxis"), 1, i + 1)
        _token_axes(fig, tr.tokens, 1, i + 1)
    fig.update_layout(coloraxis=dict(colorscale=style.SEQUENTIAL, cmin=0, cmax=1, colorbar=dict(title="weight")))
    fig.update_annotations(font_size=style.FONT_SIZE - 2)
    return _finish(fig, dark, "encoder vs decoder on the same sentence (grey = masked)", 620)


def generation_view(trace: AttentionTrace, layer: int, head: int | None = None, dark: bool = False) -> go.Figure:
    """Attention during generation, one step per slider position: how generated token s attends to every
    token before it (and itself). ``head`` None averages the layer's heads."""
    if trace.n_prompt is None:
        raise ValueError("not a generation trace (use toolkit.attention.generate)")
    layer = _clamp(layer, trace.n_layers)
    w = trace.weights[layer].mean(0) if head is None else trace.weights[layer, _clamp(head, trace.n_heads)]
    n, p = len(trace.tokens), trace.n_prompt
    colours = style.palette(dark)
    who = "mean of heads" if head is None else f"head {_clamp(head, trace.n_heads)}"

    def step(s: int) -> tuple[dict, dict]:
        t = p + s
        y = [round(float(a), 4) for a in w[t, : t + 1]]  # plain lists: slider args are not unpacked from base64
        colour = [colours[4] if i < p else colours[0] for i in range(t + 1)]
        colour[t] = colours[5]
        title = f"step {s + 1}: '{label(trace.tokens[t])}' attends to… (layer {layer}, {who})"
        return {"x": [list(range(t + 1))], "y": [y], "marker.color": [colour]}, {"title.text": title}

    first_data, first_layout = step(0)
    fig = go.Figure(
        go.Bar(
            x=first_data["x"][0],
            y=first_data["y"][0],
            marker_color=first_data["marker.color"][0],
            hovertemplate="key %{x}: %{y:.3f}<extra></extra>",
        )
    )
    steps = []
    for s in range(n - p):
        data, lay = step(s)
        steps.append(dict(method="update", args=[data, lay], label=label(trace.tokens[p + s])))
    fig.update_layout(sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="generated: "), pad=dict(t=90))])
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(n)),
        ticktext=[label(t) for t in trace.tokens],
        range=[-0.5, n - 0.5],
        tickangle=-60,
    )
    fig.update_yaxes(title="weight", range=[0, 1])
    style.apply(fig, dark, title=first_layout["title.text"], height=560)
    fig.update_layout(margin=dict(b=160))
    return fig


# ---- the demo's views from Python: toolkit.views.show("attention", view, **preset) -------------------------------
# One function per view of demos/attention.py, with its URL presets as keywords and its defaults: capture, then
# draw. "bertviz" returns HTML (a str: IPython.display.HTML shows it), every other view a plotly figure.

DECK = "The animal didn't cross the street because it was too tired"  # the deck's sentence (the demo's default)
MODEL = "smollm2-135m"
COMPARE = "smollm2-135m-nf4"  # toolkit.variants: the same model, linear weights in NF4 (built once per process)


def _trace(model: str, text: str, qkv: bool = False) -> AttentionTrace:
    from toolkit.attention.capture import capture

    return capture(model, text, qkv=qkv)


def view_overview(text: str = DECK, model: str = MODEL, layer: int = 3, dark: bool = False) -> go.Figure:
    return layer_heads(_trace(model, text), layer, dark)


def view_head(text: str = DECK, model: str = MODEL, layer: int = 3, head: int = 0, dark: bool = False) -> go.Figure:
    return head_heatmap(_trace(model, text), layer, head, dark)


def view_lines(
    text: str = DECK,
    model: str = MODEL,
    layer: int = 3,
    heads: list[int] | None = None,
    query: str | int = "it",
    dark: bool = False,
) -> go.Figure:
    """heads: None draws every head; query: a word (its first token) or a position."""
    trace = _trace(model, text)
    q = query if isinstance(query, int) else maths.find_token(trace, query)
    return lines_view(trace, layer, list(range(trace.n_heads)) if heads is None else list(heads), q, dark)


def view_step(
    text: str = DECK, model: str = MODEL, layer: int = 3, head: int = 0, shown: int = 6, dark: bool = False
) -> go.Figure:
    return formula(_trace(model, text, qkv=True), layer, head, dark, max_tokens=shown)


def view_summary(
    text: str = DECK, model: str = MODEL, query: str = "it", keys: str = "animal, tired", dark: bool = False
) -> go.Figure:
    words = tuple(w.strip() for w in keys.split(",") if w.strip()) if isinstance(keys, str) else tuple(keys)
    return pair_heads(_trace(model, text), query, words, dark)


def view_encoder_decoder(
    text: str = DECK, model: str = MODEL, layer: int = 3, head: int = 0, dark: bool = False
) -> go.Figure:
    """The model beside the embedded model of the other kind, at the same relative depth and head."""
    from toolkit import models

    trace = _trace(model, text)
    other = _trace(models.DEFAULT_ENCODER if trace.causal else models.DEFAULT_CAUSAL, text)
    lay = _clamp(layer, trace.n_layers)
    other_layer = round(lay * (other.n_layers - 1) / max(trace.n_layers - 1, 1))
    enc, dec = (other, trace) if trace.causal else (trace, other)
    layers = (other_layer, lay) if trace.causal else (lay, other_layer)
    return encoder_vs_decoder(enc, dec, layers, (head, head), dark)


def view_generation(
    text: str = DECK, model: str = MODEL, layer: int = 3, head: int = 0, new_tokens: int = 8, dark: bool = False
) -> go.Figure:
    from toolkit.attention.capture import generate

    return generation_view(generate(model, text, new_tokens=new_tokens), layer, head, dark)


def view_bertviz(text: str = DECK, model: str = MODEL, layer: int = 3, dark: bool = False) -> str:
    """bertviz's head view of one layer, offline, as an <iframe> (HTML: not a plotly figure)."""
    from toolkit.attention import bertviz

    trace = _trace(model, text)
    return bertviz.iframe(bertviz.head_view(trace, layers=[_clamp(layer, trace.n_layers)]), height=520)


def view_compare(
    text: str = DECK, model: str = MODEL, compare: str = COMPARE, layer: int = 3, dark: bool = False
) -> go.Figure:
    """Two models on the same text: every head of one layer as the difference ``compare`` − ``model``."""
    from toolkit import variants  # noqa: F401  (registers the embedded model's variants)
    from toolkit.attention.capture import compare as both

    return head_difference(*both(model, compare, text, qkv=False), layer, dark)


VIEWS = {  # the demo's hero first
    "overview": view_overview,
    "head": view_head,
    "lines": view_lines,
    "step": view_step,
    "summary": view_summary,
    "encoder-decoder": view_encoder_decoder,
    "generation": view_generation,
    "bertviz": view_bertviz,
    "compare": view_compare,
}
