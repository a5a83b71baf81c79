"""FlashAttention figures (slide "FlashAttention: attention in tiles"), one function per view: the tile grid filling
in step by step, one query row's running statistics, and the paper's memory-traffic count."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.flash_attention import maths
from toolkit.flash_attention.trace import FlashTrace

TICK_LIMIT = 32  # label every token up to this many
FLOOR = 1e-9  # errors below this are drawn at it (a log axis has no zero)
SRAM_KB = (48, 100, 192)  # reference on-chip memories: a small SM, the paper's "about 100 KB", an A100 SM


def _decades(lo: int, hi: int, unit: bool = False, every: int = 1) -> dict:
    """Log-axis ticks at whole powers of ten, written out at full font size (plotly's 10ˣ superscripts and minor
    labels are smaller than style.MIN_FONT)."""
    names = {0: "", 3: " k", 6: " M", 9: " G", 12: " T"}
    exps = range(lo, hi + 1, every)
    vals = [10.0**e for e in exps]
    if unit:
        text = [f"{10 ** (e % 3):g}{names[e - e % 3]}" for e in exps]
    else:
        text = [f"1e{e}" if e else "1" for e in exps]
    return dict(type="log", tickmode="array", tickvals=vals, ticktext=text, minor=dict(showgrid=False))


def _label(token: str) -> str:
    t = style.plain(token.replace("\n", "\\n").strip())
    return t if t else "␣"


def _estimate(trace: FlashTrace, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(query, key) the attention weights as the run knows them after ``step`` tiles: exp(s - m) / l with the rows'
    running m and l (NaN where no tile has run), and (pos,) each row's output error so far (NaN: not started)."""
    m, l, o = trace.state(step)
    s = (trace.q.astype(np.float64) @ trace.k.astype(np.float64).T) * trace.scale  # (query, key): the figure's copy
    seen = np.zeros((trace.n, trace.n), dtype=bool)
    for t in range(min(step, trace.n_tiles)):
        if not trace.skipped[t]:
            seen[trace.rows(int(trace.tile_i[t])), trace.cols(int(trace.tile_j[t]))] = True
    seen &= trace.mask()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        w = np.where(seen, np.exp(s - m[:, None]) / l[:, None], np.nan)
        err = np.where(l > 0, np.abs(o / l[:, None] - trace.reference).max(-1), np.nan)
    return w.astype(np.float32), err


def _token_ticks(fig: go.Figure, trace: FlashTrace, row: int, col: int, x: bool, y: bool) -> None:
    """Token labels on the axes (up to TICK_LIMIT tokens); rows beyond 16 are labelled every other one or sparser,
    never in a smaller font (hover names every cell)."""
    show = trace.n <= TICK_LIMIT
    labels = [_label(t) for t in trace.tokens]
    base = dict(tickmode="array", showgrid=False, zeroline=False)
    if x:
        vals = list(range(trace.n)) if show else []
        fig.update_xaxes(
            **base,
            tickvals=vals,
            ticktext=[labels[i] for i in vals],
            tickangle=-60,
            title=None if show else "key",
            row=row,
            col=col,
        )
    if y:
        vals = list(range(0, trace.n, -(-trace.n // 16))) if show else []
        fig.update_yaxes(
            **base, tickvals=vals, ticktext=[labels[i] for i in vals], title=None if show else "query", row=row, col=col
        )


def tiles(trace: FlashTrace, step: int | None = None, dark: bool = False) -> go.Figure:
    """Left: the N × N weights as the tiled run knows them after ``step`` tiles (grey: not computed; hatched boxes:
    fully masked tiles, skipped); the tile just computed outlined. Right: each query row's output error so far."""
    step = trace.n_tiles if step is None else max(0, min(int(step), trace.n_tiles))
    w, err = _estimate(trace, step)
    pal = style.palette(dark)
    fig = make_subplots(1, 2, column_widths=[0.7, 0.3], shared_yaxes=True, horizontal_spacing=0.03)
    fig.add_trace(
        go.Heatmap(
            z=w,
            colorscale=style.SEQUENTIAL,
            zmin=0,
            zmax=float(np.nanmax(w)) if np.isfinite(w).any() else 1.0,
            colorbar=dict(title=dict(text="weight"), x=1.02, len=0.9),
            hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>",
        ),
        1,
        1,
    )
    done = np.isfinite(err)
    fig.add_trace(
        go.Bar(
            y=np.arange(trace.n)[done],
            x=np.maximum(err[done], FLOOR),
            orientation="h",
            marker_color=pal[2],
            name="output error",
            hovertemplate="query %{y}: max |O/l − exact| = %{x:.1e}<extra></extra>",
            showlegend=False,
        ),
        1,
        2,
    )
    shapes = []
    skipped = [t for t in range(step) if trace.skipped[t]]
    for t in skipped:
        r, c = trace.rows(int(trace.tile_i[t])), trace.cols(int(trace.tile_j[t]))
        shapes.append(_box(r, c, dict(color="rgba(128,128,128,0.6)", width=1, dash="dot"), style.MASKED))
        if len(skipped) <= 24 and min(trace.block_q, trace.block_k) * 24 >= trace.n:  # room for a word
            fig.add_annotation(
                x=(c.start + c.stop - 1) / 2,
                y=(r.start + r.stop - 1) / 2,
                text="skipped",
                showarrow=False,
                font=dict(size=style.MIN_FONT, color="#888"),
                xref="x",
                yref="y",
            )
    if 0 < step:
        r, c = trace.rows(int(trace.tile_i[step - 1])), trace.cols(int(trace.tile_j[step - 1]))
        shapes.append(_box(r, c, dict(color=pal[5], width=4), None))
    for i in range(1, -(-trace.n // trace.block_q)):
        y = i * trace.block_q - 0.5
        shapes.append(dict(type="line", x0=-0.5, x1=trace.n - 0.5, y0=y, y1=y, line=dict(color="#888", width=1)))
    for j in range(1, -(-trace.n // trace.block_k)):
        x = j * trace.block_k - 0.5
        shapes.append(dict(type="line", y0=-0.5, y1=trace.n - 0.5, x0=x, x1=x, line=dict(color="#888", width=1)))
    fig.update_layout(shapes=shapes)
    _token_ticks(fig, trace, 1, 1, x=True, y=True)
    fig.update_xaxes(**_decades(-9, 0, every=3), title=dict(text="output error"), row=1, col=2)
    fig.update_xaxes(range=[-9.5, 0.5], row=1, col=2)
    fig.update_xaxes(range=[-0.5, trace.n - 0.5], row=1, col=1)
    fig.update_yaxes(range=[trace.n - 0.5, -0.5], row=1, col=1)
    finished = int(np.sum(err[done] < 1e-6)) if done.any() else 0
    current = f"tile ({int(trace.tile_i[step - 1])}, {int(trace.tile_j[step - 1])})" if step else "no tile yet"
    title = (
        f"step {step}/{trace.n_tiles}: {current} · B_r={trace.block_q}, B_c={trace.block_k} · "
        f"{finished}/{trace.n} rows exact"
    )
    style.apply(fig, dark, title=title, height=560)
    fig.update_layout(plot_bgcolor=style.MASKED, margin=dict(l=110, r=20, t=60, b=70))
    return fig


def _box(r: slice, c: slice, line: dict, fill: str | None) -> dict:
    box = dict(type="rect", x0=c.start - 0.5, x1=c.stop - 0.5, y0=r.start - 0.5, y1=r.stop - 0.5, line=line)
    if fill:
        box["fillcolor"] = fill
    return box


def row(trace: FlashTrace, query: int, dark: bool = False) -> go.Figure:
    """One query row through its tiles: running max m, running sum l, the rescale factor exp(m_old − m_new) that
    shrank the partial output, and the output's error to the exact attention after each tile."""
    query = max(0, min(int(query), trace.n - 1))
    steps = trace.row_steps(query)
    k = query - trace.rows(int(trace.tile_i[steps[0]])).start
    done = [s for s in steps if not trace.skipped[s]]
    x = [f"keys {trace.cols(int(trace.tile_j[s])).start}–{trace.cols(int(trace.tile_j[s])).stop - 1}" for s in done]
    m, l, r = trace.m[done, k], trace.l[done, k], trace.rescale[done, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(trace.partial[done, k] / l[:, None] - trace.reference[query]).max(-1)
    pal = style.palette(dark)
    titles = ["running max m", "running sum l", "rescale exp(m_old − m_new)", "output error |O/l − exact|"]
    fig = make_subplots(2, 2, subplot_titles=titles, vertical_spacing=0.22, horizontal_spacing=0.1)
    marker = dict(size=10)
    fig.add_trace(go.Scatter(x=x, y=m, mode="lines+markers", line=dict(color=pal[4], width=3), marker=marker), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=l, mode="lines+markers", line=dict(color=pal[2], width=3), marker=marker), 1, 2)
    fig.add_trace(go.Bar(x=x, y=r, marker_color=pal[0]), 2, 1)
    fig.add_trace(
        go.Scatter(x=x, y=np.maximum(err, FLOOR), mode="lines+markers", line=dict(color=pal[5], width=3)), 2, 2
    )
    fig.update_yaxes(range=[0, 1.05], row=2, col=1)
    fig.update_yaxes(**_decades(-9, 0, every=3), range=[-9.5, 0.5], row=2, col=2)
    fig.update_xaxes(tickangle=-30, nticks=8)
    fig.update_annotations(font_size=style.FONT_SIZE)
    skipped = len(steps) - len(done)
    note = f", {skipped} masked tile{'s' * (skipped != 1)} skipped" if skipped else ""
    title = f"query {query} ({_label(trace.tokens[query])}): {len(done)} tiles{note}"
    style.apply(fig, dark, title=title, height=560)
    fig.update_layout(showlegend=False)
    return fig


def traffic(
    d: int, n_mark: int = 4096, sram_kb: float = 100, bytes_per_number: int = maths.BYTES_PER_NUMBER, dark: bool = False
):
    """Elements read from and written to slow memory (HBM) against sequence length N: standard attention (4N² + 4Nd)
    and FlashAttention's Algorithm 1 for the chosen on-chip memory (and two reference sizes, dashed)."""
    pal = style.palette(dark)
    n = 2 ** np.arange(7, 17)  # 128 .. 65,536 tokens
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=n,
            y=[maths.io_standard(int(v), d) for v in n],
            name="standard: S and P through HBM",
            mode="lines+markers",
            line=dict(color=pal[5], width=4),
        )
    )
    sizes = sorted({*SRAM_KB, float(sram_kb)})
    for kb in sizes:
        chosen = kb == float(sram_kb)
        elements = maths.on_chip(kb, bytes_per_number)
        fig.add_trace(
            go.Scatter(
                x=n,
                y=[maths.io_flash(int(v), d, elements) for v in n],
                name=f"FlashAttention, {kb:g} KB on chip",
                mode="lines+markers" if chosen else "lines",
                line=dict(
                    color=pal[2] if chosen else pal[4], width=4 if chosen else 2, dash=None if chosen else "dash"
                ),
            )
        )
    elements = maths.on_chip(sram_kb, bytes_per_number)
    std, fl = maths.io_standard(n_mark, d), maths.io_flash(n_mark, d, elements)
    b_r, b_c = maths.block_sizes(d, elements)
    fig.add_vline(x=n_mark, line=dict(color="#888", dash="dot", width=2))
    fig.update_xaxes(type="log", title=dict(text="sequence length N"), tickvals=n[::2], exponentformat="none")
    fig.update_yaxes(**_decades(4, 11, unit=True), title=dict(text="HBM elements read + written"))
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0))
    title = (
        f"d = {d}, {sram_kb:g} KB on chip (B_r={b_r}, B_c={b_c}): at N = {n_mark:,}, "
        f"{std / 1e6:.0f} M vs {fl / 1e6:.1f} M elements ({std / fl:.1f}× fewer)"
    )
    return style.apply(fig, dark, title=title, height=560)


# ---- the demo's views from Python: toolkit.views.show("flash_attention", view, **preset) -----------------------
# One function per view of demos/flash_attention.py, with its URL presets as keywords and its defaults.

TEXT = "FlashAttention never writes the attention matrix to memory: it computes it tile by tile."  # the demo's
TRAFFIC_N = 4096  # the sequence length the traffic view reads its ratio at (the benchmark's largest N)
row_figure = row  # the "row" view takes a ``row`` preset (the demo's name), which hides the function


def _tiled(model: str, text: str, layer: int, head: int, block_q: int, block_k: int) -> FlashTrace:
    from toolkit.flash_attention.capture import capture

    return capture(model, text, layer=layer, head=head, block_q=block_q, block_k=block_k)


def view_tiles(
    text: str = TEXT,
    layer: int = 3,
    head: int = 0,
    block_q: int = 4,
    block_k: int = 4,
    step: int = 9,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    """The tiles done after ``step`` of them (past the last: all of them)."""
    trace = _tiled(model, text, layer, head, block_q, block_k)
    return tiles(trace, min(step, trace.n_tiles), dark)


def view_row(
    text: str = TEXT,
    layer: int = 3,
    head: int = 0,
    block_q: int = 4,
    block_k: int = 4,
    row: int = 12,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    """One query row's running max, sum and output tile by tile (past the last row: the last)."""
    trace = _tiled(model, text, layer, head, block_q, block_k)
    return row_figure(trace, min(row, trace.n - 1), dark)


def view_traffic(sram_kb: float = 100, model: str = "smollm2-135m", dark: bool = False) -> go.Figure:
    """The paper's count of slow-memory traffic at the model's head size (no capture: a formula)."""
    from toolkit import arch, models

    return traffic(arch.of(models.load(model)).head_dim, TRAFFIC_N, sram_kb, dark=dark)


VIEWS = {"tiles": view_tiles, "row": view_row, "traffic": view_traffic}  # the demo's hero first
