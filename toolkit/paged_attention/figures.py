"""PagedAttention figures (slide "PagedAttention: the KV cache in pages"), one function per view: the physical
memory under both policies, the block tables, memory over time, and the real model's shared prefix."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.paged_attention.capture import DEFAULT_SYSTEM, DEFAULT_USERS
from toolkit.paged_attention.maths import POLICIES
from toolkit.paged_attention.trace import PagedRunTrace, PagingTrace

FREE_LIGHT, FREE_DARK = "#d9d9d9", "#3a3f4b"
MAX_TABLE_ROWS = 16  # block tables shown at once


def _pale(hex_colour: str, dark: bool) -> str:
    """The colour mixed halfway to the background: a slot allocated to that request but holding no token."""
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    bg = (11, 15, 25) if dark else (255, 255, 255)
    return "#" + "".join(f"{int(0.35 * c + 0.65 * k):02x}" for c, k in zip((r, g, b), bg))


def _scale(dark: bool) -> list:
    """Discrete colourscale for codes 0 (free), 1 + 2c (token of a request of colour c), 2 + 2c (empty slot of it)."""
    colours = [FREE_DARK if dark else FREE_LIGHT]
    for c in style.palette(dark)[:7]:  # seven request colours, then they repeat
        colours += [c, _pale(c, dark)]
    n = len(colours)
    out = []
    for i, c in enumerate(colours):
        out += [[i / n, c], [(i + 1) / n, c]]
    return out


def _code(req: np.ndarray, has_token: np.ndarray) -> np.ndarray:
    return np.where(req < 0, 0, 1 + 2 * (req % 7) + (~has_token)).astype(np.float32)


def slots(trace: PagingTrace, f: int) -> tuple[np.ndarray, np.ndarray]:
    """(policy, slot) request owning each token slot of memory at frame f (-1: free) and whether it holds a token."""
    bs, cap = trace.block_size, trace.capacity
    req = np.full((2, cap), -1, dtype=np.int64)
    tok = np.zeros((2, cap), dtype=bool)
    for region, r in enumerate(trace.region_req[f]):  # contiguous: region k is slots k·max_len ..
        if r >= 0:
            s = region * trace.max_len
            req[0, s : s + trace.max_len] = r
            tok[0, s : s + int(trace.region_used[f, region])] = True
    for block, r in enumerate(trace.owner[f]):
        if r >= 0:
            s = block * bs
            req[1, s : s + bs] = r
            tok[1, s : s + int(trace.fill[f, block])] = True
    return req, tok


def _width(trace: PagingTrace) -> int:
    """Slots per row of the memory picture: a whole number of blocks, about square."""
    return trace.block_size * max(1, round(math.sqrt(trace.capacity) / trace.block_size))


def memory_map(trace: PagingTrace, step: int, dark: bool = False) -> go.Figure:
    """The same KV memory under both policies at one step: a cell is a token slot, coloured by its request (solid:
    holds a token; pale: allocated to the request but empty; grey: free)."""
    f = trace.frame(step)
    req, tok = slots(trace, f)
    w = _width(trace)
    rows = math.ceil(trace.capacity / w)
    pad = rows * w - trace.capacity
    cells = [
        np.pad(_code(req[p], tok[p]), (0, pad), constant_values=np.nan).reshape(rows, w)  # (row, slot in row)
        for p in range(2)
    ]
    ids = [np.pad(req[p], (0, pad), constant_values=-1).reshape(rows, w) for p in range(2)]
    waste = [1 - tok[p].sum() / max((req[p] >= 0).sum(), 1) for p in range(2)]
    running = [len({int(r) for r in req[p] if r >= 0}) for p in range(2)]
    titles = [f"{POLICIES[p]}: {running[p]} requests, {100 * waste[p]:.0f}% of allocated empty" for p in range(2)]
    fig = make_subplots(1, 2, subplot_titles=titles, horizontal_spacing=0.04)
    for p in range(2):
        fig.add_trace(
            go.Heatmap(
                z=cells[p],
                customdata=ids[p],
                colorscale=_scale(dark),
                zmin=-0.5,
                zmax=14.5,
                showscale=False,
                xgap=1 if w <= 64 else 0,
                ygap=1 if rows <= 64 else 0,
                hovertemplate="slot %{x} of row %{y}: request %{customdata}<extra></extra>",
            ),
            1,
            p + 1,
        )
        fig.update_yaxes(autorange="reversed", showticklabels=False, row=1, col=p + 1)
        fig.update_xaxes(showticklabels=False, row=1, col=p + 1)
    if w // trace.block_size > 1 and w <= 128:  # block boundaries in the paged picture
        for j in range(1, w // trace.block_size):
            x = j * trace.block_size - 0.5
            fig.add_shape(
                type="line", x0=x, x1=x, y0=-0.5, y1=rows - 0.5, line=dict(color="#888", width=2), row=1, col=2
            )
    fig.update_annotations(font_size=style.FONT_SIZE)
    mib = trace.capacity * trace.bytes_per_token / 2**20
    title = (
        f"step {int(trace.frame_steps[f])}: {mib:.0f} MiB = {trace.capacity:,} token slots, "
        f"{trace.bytes_per_token / 1024:.0f} KiB per token, blocks of {trace.block_size}"
    )
    style.apply(fig, dark, title=title, height=560)
    fig.update_layout(margin=dict(l=20, r=20, t=100, b=20))
    return fig


def tables(trace: PagingTrace, step: int, dark: bool = False) -> go.Figure:
    """Block tables at one step: a row per running request, its logical blocks left to right, each cell the physical
    block it maps to (they need not be contiguous, nor in order)."""
    f = trace.frame(step)
    reqs = [int(r) for r in trace.table_req[f] if r >= 0]
    shown = reqs[:MAX_TABLE_ROWS]
    depth = max([int((trace.tables[f, i] >= 0).sum()) for i in range(len(shown))] + [1])
    z = np.full((max(len(shown), 1), depth), np.nan, dtype=np.float32)
    text = np.full(z.shape, "", dtype=object)
    for i, r in enumerate(shown):
        table = [int(b) for b in trace.tables[f, i] if b >= 0]
        z[i, : len(table)] = 1 + 2 * (r % 7)
        text[i, : len(table)] = [str(b) for b in table]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            text=text,
            texttemplate="%{text}" if depth <= 24 else "",
            textfont=dict(size=style.MIN_FONT),
            colorscale=_scale(dark),
            zmin=-0.5,
            zmax=14.5,
            showscale=False,
            xgap=2,
            ygap=2,
            hovertemplate="logical block %{x} → physical block %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(shown))),
        ticktext=[f"request {r}" for r in shown],
        autorange="reversed",
        showgrid=False,
    )
    fig.update_xaxes(title="logical block (tokens in order)", dtick=1 if depth <= 24 else None, showgrid=False)
    more = f" (first {MAX_TABLE_ROWS} of {len(reqs)})" if len(reqs) > len(shown) else ""
    title = f"step {int(trace.frame_steps[f])}: block tables of the running requests{more}; cells: physical block"
    return style.apply(fig, dark, title=title, height=560)


def waste(trace: PagingTrace, step: int | None = None, dark: bool = False) -> go.Figure:
    """KV memory allocated and used over time under both policies (MiB), and requests served at once."""
    pal = style.palette(dark)
    mib = trace.bytes_per_token / 2**20
    x = np.arange(trace.allocated.shape[1])
    fig = make_subplots(2, 1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.08)
    colours = {"contiguous": pal[5], "paged": pal[2]}
    for p, name in enumerate(POLICIES):
        c = colours[name]
        fig.add_trace(
            go.Scatter(x=x, y=trace.allocated[p] * mib, name=f"{name}: allocated", line=dict(color=c, width=3)), 1, 1
        )
        fig.add_trace(
            go.Scatter(
                x=x, y=trace.used[p] * mib, name=f"{name}: holding tokens", line=dict(color=c, width=2, dash="dot")
            ),
            1,
            1,
        )
        fig.add_trace(go.Scatter(x=x, y=trace.running[p], showlegend=False, line=dict(color=c, width=3)), 2, 1)
    if step is not None:
        fig.add_vline(x=int(trace.frame_steps[trace.frame(step)]), line=dict(color="#888", dash="dash", width=2))
    fig.update_yaxes(title="MiB", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title="running", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title="step (one token per running request)", row=2, col=1)
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    w, r = trace.waste, trace.mean_running
    title = (
        f"empty: {100 * w[0]:.0f}% contiguous vs {100 * w[1]:.1f}% paged · "
        f"{r[0]:.1f} vs {r[1]:.1f} at once · {trace.steps[0]:,} vs {trace.steps[1]:,} steps"
    )
    style.apply(fig, dark, title=title, height=560)
    fig.update_layout(margin=dict(t=130))
    return fig


def sharing(run: PagedRunTrace, dark: bool = False) -> go.Figure:
    """The real run's block tables: blocks shared by every request (the common prefix), the copy made on the first
    write into a shared partial block, and each request's own blocks; cells name the physical block."""
    pal = style.palette(dark)
    shared = set(run.shared)
    kinds = {"shared prefix": pal[4], "copy-on-write copy": pal[0], "own": pal[2]}
    depth = max(len(t) for t in run.tables)
    z = np.full((len(run.tables), depth), np.nan, dtype=np.float32)
    text = np.full(z.shape, "", dtype=object)
    for i, table in enumerate(run.tables):
        for j, b in enumerate(table):
            z[i, j] = 0 if b in shared else 1 if j in run.copied[i] else 2
            text[i, j] = str(b)
    scale = [[0, kinds["shared prefix"]], [1 / 3, kinds["shared prefix"]], [1 / 3, kinds["copy-on-write copy"]]]
    scale += [[2 / 3, kinds["copy-on-write copy"]], [2 / 3, kinds["own"]], [1, kinds["own"]]]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=style.FONT_SIZE),
            colorscale=scale,
            zmin=0,
            zmax=2,
            showscale=False,
            xgap=3,
            ygap=3,
            hovertemplate="logical block %{x} → physical block %{text}<extra></extra>",
        )
    )
    for name, colour in kinds.items():  # legend entries for the three kinds
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="markers", marker=dict(size=16, color=colour, symbol="square"), name=name
            )
        )
    labels = [f"request {i}: {style.plain(u[:28])}{'…' * (len(u) > 28)}" for i, u in enumerate(run.users)]
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(labels))), ticktext=labels, autorange="reversed")
    fig.update_xaxes(title=f"logical block ({run.block_size} tokens each)", dtick=1, showgrid=False)
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    saved = run.blocks_alone - run.blocks_used
    title = (
        f"{len(run.users)} requests, {run.prefix}-token common prefix: {run.blocks_used} blocks instead of "
        f"{run.blocks_alone} ({saved} saved), {run.copies} copy-on-write"
    )
    style.apply(fig, dark, title=title, height=560)
    fig.update_layout(margin=dict(l=20, t=120))
    return fig


# ---- the demo's views from Python: toolkit.views.show("paged_attention", view, **preset) -----------------------
# One function per view of demos/paged_attention.py, with its URL presets as keywords and its defaults: the
# scheduler simulation of a preset workload (the model gives the bytes per token), or SmolLM2 decoding on a
# paged cache with a shared system prompt.


def _simulation(model: str, workload: str) -> PagingTrace:
    from toolkit.paged_attention.capture import PRESETS, simulate

    if workload not in PRESETS:
        raise ValueError(f"unknown workload {workload!r}; choose one of {', '.join(PRESETS)}")
    return simulate(model, PRESETS[workload])


def _at(trace: PagingTrace, step: int) -> int:
    return min(max(step, 0), int(trace.frame_steps[-1]))  # past the last frame: the last


def view_map(workload: str = "lecture", step: int = 200, model: str = "smollm2-135m", dark: bool = False):
    sim = _simulation(model, workload)
    return memory_map(sim, _at(sim, step), dark)


def view_tables(workload: str = "lecture", step: int = 200, model: str = "smollm2-135m", dark: bool = False):
    sim = _simulation(model, workload)
    return tables(sim, _at(sim, step), dark)


def view_waste(workload: str = "lecture", step: int = 200, model: str = "smollm2-135m", dark: bool = False):
    sim = _simulation(model, workload)
    return waste(sim, _at(sim, step), dark)


def view_sharing(
    system: str = DEFAULT_SYSTEM,
    user_a: str = DEFAULT_USERS[0],
    user_b: str = DEFAULT_USERS[1],
    block_size: int = 16,
    new_tokens: int = 8,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    """Two requests sharing a system prompt, decoded greedily on SmolLM2's paged cache."""
    from toolkit.paged_attention.capture import generate

    run = generate(model, (user_a, user_b), system=system, block_size=block_size, new_tokens=new_tokens)
    return sharing(run, dark)


VIEWS = {"map": view_map, "tables": view_tables, "waste": view_waste, "sharing": view_sharing}  # the hero first
