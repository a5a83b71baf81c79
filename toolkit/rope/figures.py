"""RoPE and sinusoidal PE figures: slides "Method 1: Sinusoidal", "Method 2: RoPE", "RoPE: Rotation in Action",
"RoPE vs Sinusoidal PE" and long context. One function per view; maths from toolkit.rope.maths (angle = pos * theta_i).
Vectors passed in are in the adjacent layout: pair i = coordinates (2i, 2i+1), as on the slides.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.rope import maths
from toolkit.rope.trace import RopeTrace

CYCLIC = "Twilight"  # angle mod 2 pi wraps around: a cyclic scale keeps 0 and 2 pi the same colour
MAX_TRAIL = 400  # positions drawn as the arrow tip's trail


def _hline(n: int, y: float, name: str, color: str, dash: str) -> go.Scatter:
    """A named horizontal line across n pairs (a trace, so it shows in the legend and on log axes)."""
    return go.Scatter(x=[-0.5, n - 0.5], y=[y, y], mode="lines", name=name, line=dict(color=color, dash=dash, width=3))


def turn(wavelength: float) -> str:
    """Positions per turn as text: one decimal under 100 ("6.3"), whole numbers with separators above ("62,832")."""
    return f"{wavelength:,.1f}" if round(wavelength, 1) < 100 else f"{wavelength:,.0f}"


def base_text(base: float) -> str:
    """θ or the PE base as text: separators for large bases, and enough digits that 1.0001 does not read as 1."""
    digits = max(6, len(f"{base:.0f}"))
    while digits < 17 and base != 1 and float(f"{base:.{digits}g}") == 1:
        digits += 1
    return f"{base:,.{digits}g}"


def _label(token: str | None) -> str:
    return f" of {token.strip()!r}" if token else ""


def rotation(
    q: np.ndarray,
    freqs: np.ndarray,
    position: int,
    pairs: tuple[int, int] = (0, -1),
    token: str | None = None,
    dark: bool = False,
) -> go.Figure:
    """One pair of a query as a 2-D arrow, rotated to ``position`` (angle = pos * theta_i); fast and slow pair."""
    n_pairs = len(freqs)
    pairs = tuple(p % n_pairs for p in pairs)
    fig = make_subplots(
        rows=1,
        cols=len(pairs),
        horizontal_spacing=0.12,
        subplot_titles=[
            f"pair {p}: θ = {freqs[p]:.3g} rad/pos, turn every {turn(maths.wavelengths(freqs)[p])} pos" for p in pairs
        ],
    )
    col = style.palette(dark)
    trail = np.arange(0, position + 1, max(1, (position + 1) // MAX_TRAIL))
    for c, p in enumerate(pairs, start=1):
        v = np.asarray(q[2 * p : 2 * p + 2], dtype=np.float64)
        r = float(np.hypot(*v)) or 1.0
        ang = trail * freqs[p]  # (n_trail,)
        cos, sin = np.cos(ang), np.sin(ang)
        tip = np.stack([v[0] * cos - v[1] * sin, v[0] * sin + v[1] * cos], -1)  # (n_trail, 2)
        end = maths.rotate(v[None], np.array([position]), freqs[p : p + 1], "adjacent")[0]
        fig.add_trace(
            go.Scatter(
                x=tip[:, 0],
                y=tip[:, 1],
                mode="markers",
                marker=dict(size=5, color=col[1]),
                name="tip at earlier positions",
                showlegend=c == 1,
                opacity=0.5,
            ),
            1,
            c,
        )
        fig.add_trace(
            go.Scatter(
                x=[0, v[0]],
                y=[0, v[1]],
                mode="lines+markers",
                line=dict(color="gray", width=3),
                marker=dict(size=[0, 10]),
                name="position 0 (no rotation)",
                showlegend=c == 1,
            ),
            1,
            c,
        )
        fig.add_trace(
            go.Scatter(
                x=[0, end[0]],
                y=[0, end[1]],
                mode="lines+markers",
                line=dict(color=col[0], width=6),
                marker=dict(size=[0, 14], symbol="arrow", angleref="previous"),
                name=f"position {position}",
                showlegend=c == 1,
            ),
            1,
            c,
        )
        deg = math.degrees(position * freqs[p]) % 360
        lim = 1.2 * r
        title = f"q[{2 * p}]   (angle {position}·θ = {deg:.0f}° mod 360°)"
        fig.update_xaxes(range=[-lim, lim], zeroline=True, row=1, col=c, title=title)
        fig.update_yaxes(
            range=[-lim, lim],
            zeroline=True,
            row=1,
            col=c,
            title=f"q[{2 * p + 1}]",
            scaleanchor=f"x{'' if c == 1 else c}",
            scaleratio=1,
        )
    fig.update_layout(legend=dict(orientation="v", x=1.02, y=0.5, yanchor="middle"))
    for a in fig.layout.annotations:  # subplot titles: plotly makes them 16 px; the deck reads them at 18
        a.font = dict(size=style.FONT_SIZE)
    return style.apply(fig, dark, title=f"RoPE rotates each pair{_label(token)} by pos·θᵢ", height=560)


def angles(freqs: np.ndarray, n_positions: int, context: int, dark: bool = False) -> go.Figure:
    """Angle (mod 2 pi) per position and pair, and each pair's wavelength against the context length."""
    pos = np.arange(n_positions)
    ang = np.mod(maths.angles(pos, freqs), 2 * math.pi)  # (pos, d/2)
    wl = maths.wavelengths(freqs)
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.55, 0.45],
        horizontal_spacing=0.14,
        subplot_titles=["angle pos·θᵢ mod 2π", "wavelength 2π/θᵢ (log scale)"],
    )
    fig.add_trace(
        go.Heatmap(
            z=ang,
            colorscale=CYCLIC,
            zmin=0,
            zmax=2 * math.pi,
            colorbar=dict(title="rad", x=0.47, tickvals=[0, math.pi, 2 * math.pi], ticktext=["0", "π", "2π"]),
        ),
        1,
        1,
    )
    wraps = wl < context
    col = style.palette(dark)
    fig.add_trace(
        go.Bar(
            x=np.arange(len(wl)),
            y=wl,
            marker_color=[col[4] if w else col[0] for w in wraps],
            name="wavelength",
            showlegend=False,
            hovertemplate="pair %{x}: %{y:,.0f} positions per turn<extra></extra>",
        ),
        1,
        2,
    )
    fig.add_trace(_hline(len(wl), context, f"context {context:,}", col[5], "dash"), 1, 2)
    fig.update_xaxes(title="pair i", row=1, col=1)
    fig.update_yaxes(title="position", row=1, col=1)
    fig.update_xaxes(title=f"pair i ({int(wraps.sum())} wrap within the context)", row=1, col=2)
    fig.update_yaxes(type="log", dtick=1, title="positions per turn", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", x=0.6, y=-0.22))
    return style.apply(fig, dark, title="Fast pairs wrap many times; slow pairs never finish a turn", height=520)


def relative(
    q: np.ndarray,
    k: np.ndarray,
    freqs: np.ndarray,
    n: int = 32,
    pe_scale: float | None = None,
    base: float = maths.SINUSOID_BASE,
    dark: bool = False,
) -> go.Figure:
    """Score of the same q and k placed at every (m, n): RoPE (constant on diagonals) beside sinusoidal PE added."""
    if pe_scale is None:  # PE entries are ~1; scale them to the vectors' size so neither term drowns the other
        pe_scale = float(np.sqrt((np.mean(q**2) + np.mean(k**2)) / 2)) or 1.0
    rot = maths.relative_scores(q, k, freqs, n)  # (n, n)
    add = maths.additive_scores(q, k, n, base, pe_scale)  # (n, n)
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.16,
        subplot_titles=["RoPE: R(m)q · R(n)k", "sinusoidal: (q+PE(m)) · (k+PE(n))"],
    )
    for c, z in ((1, rot), (2, add)):
        lim = float(np.abs(z).max()) or 1.0
        fig.add_trace(
            go.Heatmap(
                z=z,
                colorscale=style.DIVERGING,
                zmid=0,
                zmin=-lim,
                zmax=lim,
                colorbar=dict(x=0.42 if c == 1 else 1.0, len=0.9),
                hovertemplate="m=%{y}, n=%{x}: %{z:.3g}<extra></extra>",
            ),
            1,
            c,
        )
        fig.update_xaxes(title="key position n", row=1, col=c)
        fig.update_yaxes(title="query position m", autorange="reversed", row=1, col=c)
    spread = [max(float(np.std(np.diagonal(z, o))) for o in range(-n + 2, n - 1)) for z in (rot, add)]
    title = f"Same q, k at all (m, n): RoPE depends on m−n only (diagonal spread {spread[0]:.1g} vs {spread[1]:.2g})"
    return style.apply(fig, dark, title=title, height=540)


def decay(theta: float, head_dim: int, max_distance: int = 256, dark: bool = False) -> go.Figure:
    """Long-range decay: RoFormer's relative upper bound and mean |q·R(r)q|/|q|² against distance r."""
    freqs = maths.inv_freq(theta, head_dim)
    r = np.arange(max_distance + 1)
    col = style.palette(dark)
    fig = go.Figure()
    bound = maths.decay_bound(r, freqs)
    fig.add_trace(
        go.Scatter(
            x=r, y=bound / bound[0], name="RoFormer bound Σⱼ|Sⱼ|, relative to r = 0", line=dict(color=col[0], width=3)
        )
    )
    fig.add_trace(
        go.Scatter(
            x=r,
            y=maths.matched_decay(r, freqs),
            name="mean |q·R(r)q| / |q|², random q",
            line=dict(color=col[4], width=3),
        )
    )
    fig.update_xaxes(title="relative distance r = m − n")
    fig.update_yaxes(title="size relative to r = 0", rangemode="tozero")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return style.apply(fig, dark, title=f"Long-range decay (θ = {base_text(theta)}, d = {head_dim})", height=500)


def pair_norms(trace: RopeTrace, layer: int, head: int, dark: bool = False) -> go.Figure:
    """Mean per-pair norm of q and k in one layer/head, before (bars) and after (dots) rotation."""
    group = trace.q_pre.shape[1] // trace.k_pre.shape[1]
    rows = (
        ("q", trace.q_pre[layer, head], trace.q_post[layer, head]),
        ("k", trace.k_pre[layer, head // group], trace.k_post[layer, head // group]),
    )
    wl = maths.wavelengths(trace.inv_freq)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=[f"query, head {head}", f"key, kv head {head // group}"],
    )
    col = style.palette(dark)
    for r, (name, pre, post) in enumerate(rows, start=1):
        n_pre = maths.pair_norms(pre, trace.layout).mean(0)  # (pos, d) -> (d/2,)
        n_post = maths.pair_norms(post, trace.layout).mean(0) / (trace.attention_scaling or 1.0)
        pairs = np.arange(len(n_pre))
        fig.add_trace(
            go.Bar(
                x=pairs,
                y=n_pre,
                name="before RoPE",
                marker_color=col[1],
                showlegend=r == 1,
                customdata=wl,
                hovertemplate="pair %{x} (turn every %{customdata:,.0f} pos): %{y:.3f}<extra></extra>",
            ),
            r,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=pairs,
                y=n_post,
                mode="markers",
                name="after RoPE",
                showlegend=r == 1,
                marker=dict(color=col[5], size=8, symbol="diamond"),
            ),
            r,
            1,
        )
        fig.update_yaxes(title=f"mean |{name} pair|", row=r, col=1)
    fig.update_xaxes(title="pair i (left: fast, right: slow)", row=2, col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.2), bargap=0.1)
    model = trace.meta.get("model", "")
    return style.apply(
        fig,
        dark,
        title=f"{model} layer {layer}: which frequencies carry signal (rotation keeps every pair's norm)",
        height=620,
    )


def sinusoidal(
    n_positions: int, d: int, base: float = maths.SINUSOID_BASE, dark: bool = False, position: int | None = None
) -> go.Figure:
    """The sinusoidal PE matrix: PE(pos, 2i) = sin(pos/base^(2i/d)), PE(pos, 2i+1) = cos(...), drawn as two panels
    (the sin columns 2i, the cos columns 2i+1) so each panel reads left (fast) to right (slow); ``position``'s row
    (the vector added to that token's embedding) is outlined."""
    pe = maths.sinusoidal(n_positions, d, base)  # (pos, d)
    halves = (pe[:, 0::2], pe[:, 1::2])  # (pos, ceil(d/2)), (pos, floor(d/2))
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=["PE(pos, 2i) = sin(pos / base^(2i/d))", "PE(pos, 2i+1) = cos(pos / base^(2i/d))"],
    )
    ink = "#f2f2f2" if dark else "#111111"
    for c, z in enumerate(halves, start=1):
        fig.add_trace(
            go.Heatmap(
                z=z,
                colorscale=style.DIVERGING,
                zmid=0,
                zmin=-1,
                zmax=1,
                showscale=c == 1,
                colorbar=dict(title="PE", tickvals=[-1, 0, 1]),
                hovertemplate=f"pos %{{y}}, i = %{{x}} (dim 2i{'' if c == 1 else '+1'}): %{{z:.3f}}<extra></extra>",
            ),
            1,
            c,
        )
        if position is not None and 0 <= position < n_positions and z.shape[1]:
            fig.add_shape(
                type="rect",
                x0=-0.5,
                x1=z.shape[1] - 0.5,
                y0=position - 0.5,
                y1=position + 0.5,
                line=dict(color=ink, width=3),
                row=1,
                col=c,
            )
        fig.update_xaxes(title="i (left: fast, right: slow)", row=1, col=c)
    fig.update_yaxes(title=f"position (outlined: PE({position}))" if position is not None else "position", col=1)
    fig.update_yaxes(autorange="reversed")
    for a in fig.layout.annotations:  # subplot titles: plotly makes them 16 px; the deck reads them at 18
        a.font = dict(size=style.FONT_SIZE)
    title = f"Sinusoidal position encoding: {n_positions} positions × d = {d}, base {base_text(base)}"
    return style.apply(fig, dark, title=title, height=520)


def embedding_plus_pe(
    embed: np.ndarray,
    position: int,
    token: str = "",
    n_dims: int = 12,
    base: float = maths.SINUSOID_BASE,
    dark: bool = False,
) -> go.Figure:
    """The deck's "embedding + position encoding = final vector" for a real token's embedding (first n_dims)."""
    d = embed.shape[-1]
    pe = maths.sinusoidal(position + 1, d, base)[position]  # (d,)
    rows = np.stack([embed, pe, embed + pe])[:, :n_dims]  # (3, n_dims)
    labels = [f"embedding{_label(token)}", f"+ PE(pos = {position})", "= final vector"]
    lim = float(np.abs(rows).max()) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=rows,
            x=[f"dim {i}" for i in range(rows.shape[1])],
            y=labels,
            colorscale=style.DIVERGING,
            zmid=0,
            zmin=-lim,
            zmax=lim,
            text=np.round(rows, 2),
            texttemplate="%{text}",
            textfont=dict(size=16),
            showscale=False,
            xgap=3,
            ygap=6,
        )
    )
    fig.update_yaxes(autorange="reversed")
    norm = f"|embedding| {np.linalg.norm(embed):.2f}, |PE| {np.linalg.norm(pe):.2f} over {d} dims"
    return style.apply(fig, dark, title=f"Embedding + PE = final vector ({norm})", height=380)


def extension(theta: float, head_dim: int, context: int, factor: float, dark: bool = False) -> go.Figure:
    """inv_freq and wavelength per pair under each context-extension scaling, overlaid (transformers' numbers)."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=["θᵢ (rad per position)", "wavelength 2π/θᵢ (positions)"],
    )
    col = style.palette(dark)
    dashes = ["solid", "dash", "dot", "dashdot", "longdash"]
    for j, kind in enumerate(maths.SCALINGS):
        f = maths.scaled_frequencies(theta, head_dim, kind, 1.0 if kind == "default" else factor, context)
        pairs = np.arange(len(f.inv_freq))
        line = dict(color=col[j], width=3, dash=dashes[j])
        fig.add_trace(go.Scatter(x=pairs, y=f.inv_freq, name=kind, line=line, legendgroup=kind), 1, 1)
        fig.add_trace(
            go.Scatter(x=pairs, y=f.wavelength, name=kind, line=line, legendgroup=kind, showlegend=False), 1, 2
        )
    n = head_dim // 2
    fig.add_trace(_hline(n, context, f"trained context {context:,}", "gray", "dot"), 1, 2)
    fig.add_trace(_hline(n, context * factor, f"target context {context * factor:,.0f}", col[5], "dash"), 1, 2)
    for c in (1, 2):
        fig.update_xaxes(title="pair i", row=1, col=c)
        fig.update_yaxes(type="log", dtick=1, row=1, col=c)
    fig.update_layout(legend=dict(orientation="h", y=-0.22))
    return style.apply(
        fig, dark, title=f"Context extension ×{factor:g}: which pairs each scaling slows down", height=540
    )


# ---- the demo's views from Python: toolkit.views.show("rope", view, **preset) ----------------------------------
# The maths views draw fixed random q and k (seed 0, as the demo); the real-model views rotate a token's query.

TEXT = "The cat sat on the mat because the cat was tired after chasing the mouse all day."
GRID = 32  # positions in the relative-position grids


def _example(theta: float, d: int, scaling: str, factor: float, context: int):
    """(frequencies, q, k): the demo's maths tab, with its fixed random vectors."""
    f = maths.scaled_frequencies(theta, d, scaling, 1.0 if scaling == "default" else factor, context)
    rng = np.random.default_rng(0)
    return f, rng.standard_normal(d), rng.standard_normal(d)


def _pairs(pair: int, d: int) -> tuple[int, int]:
    return (0, pair) if pair else (0, d // 2 - 1)


def view_rotation(
    theta: float = 10000.0,
    d: int = 64,
    pos: int = 10,
    pair: int = 8,
    scaling: str = "default",
    factor: float = 4.0,
    context: int = 8192,
    dark: bool = False,
) -> go.Figure:
    f, q, _ = _example(theta, d, scaling, factor, context)
    return rotation(q, f.inv_freq, pos, _pairs(pair, d), None, dark)


def view_angles(
    theta: float = 10000.0,
    d: int = 64,
    pos: int = 10,
    scaling: str = "default",
    factor: float = 4.0,
    context: int = 8192,
    dark: bool = False,
) -> go.Figure:
    f, _, _ = _example(theta, d, scaling, factor, context)
    return angles(f.inv_freq, min(max(pos + 1, 256), 2048), f.context, dark)


def view_relative(
    theta: float = 10000.0,
    d: int = 64,
    scaling: str = "default",
    factor: float = 4.0,
    context: int = 8192,
    dark: bool = False,
) -> go.Figure:
    f, q, k = _example(theta, d, scaling, factor, context)
    return relative(q, k, f.inv_freq, GRID, dark=dark)


def view_decay(theta: float = 10000.0, d: int = 64, dark: bool = False) -> go.Figure:
    return decay(theta, d, 256, dark)


def view_extension(
    theta: float = 10000.0, d: int = 64, factor: float = 4.0, context: int = 8192, dark: bool = False
) -> go.Figure:
    return extension(theta, d, context, factor, dark)


def view_sinusoidal(theta: float = 10000.0, d: int = 64, pos: int = 10, dark: bool = False) -> go.Figure:
    return sinusoidal(min(max(64, pos + 8), 2048), d, theta, dark, pos)


def _real(model: str, text: str):
    from toolkit.rope.capture import RopeConfig, capture

    return capture(model, text, max_tokens=RopeConfig.spec("max_tokens").hi)


def view_model_rotation(
    model: str = "smollm2-135m",
    text: str = TEXT,
    token: int = 1,
    layer: int = 0,
    head: int = 0,
    pos: int = 10,
    pair: int = 8,
    dark: bool = False,
) -> go.Figure:
    trace = _real(model, text)
    q = trace.query(layer, head, token)
    return rotation(q, trace.inv_freq, pos, _pairs(pair, len(q)), trace.tokens[token], dark)


def view_norms(model: str = "smollm2-135m", text: str = TEXT, layer: int = 0, head: int = 0, dark: bool = False):
    return pair_norms(_real(model, text), layer, head, dark)


def view_model_relative(
    model: str = "smollm2-135m", text: str = TEXT, token: int = 1, layer: int = 0, head: int = 0, dark: bool = False
) -> go.Figure:
    trace = _real(model, text)
    q, k = trace.query(layer, head, token), trace.key(layer, head, max(token - 1, 0))
    return relative(q, k, trace.inv_freq, GRID, dark=dark)


def view_embedding(model: str = "smollm2-135m", text: str = TEXT, token: int = 1, dark: bool = False) -> go.Figure:
    trace = _real(model, text)
    if trace.embed is None:
        raise ValueError(f"{model} gives no input embedding to add a position encoding to")
    return embedding_plus_pe(trace.embed[token], token, trace.tokens[token], dark=dark)


VIEWS = {  # the demo's hero first
    "rotation": view_rotation,
    "angles": view_angles,
    "relative": view_relative,
    "decay": view_decay,
    "extension": view_extension,
    "sinusoidal": view_sinusoidal,
    "model-rotation": view_model_rotation,
    "norms": view_norms,
    "model-relative": view_model_relative,
    "embedding": view_embedding,
}
