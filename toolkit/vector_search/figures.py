"""Vector search figures, one function per view, each reading traces (never an index or a model).

results:  slide "k-NN vs ANN"           every index's top k beside exact (HTML table, hits of exact marked)
ivf_map:  slide "IVF"                    the corpus in 2-D (axes that separate the probed cells), those cells lit
hnsw:     slide "HNSW"                   one panel per layer, the search path hop by hop (axes: the visited nodes')
                                         principal directions)
pq:       slide "Scalar and product quantisation"   a vector cut into sub-vectors and their centroids; the error
tradeoff: slide "Recall, latency, memory"  recall@k against ms per query, ours and FAISS / hnswlib
memory:   the same sweep's bytes per vector and build seconds
flow:     slide "The search flow"        time of each step: embed, search, fetch
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.vector_search.trace import CorpusMap, QueryTrace, TradeoffTrace

NAMES = {"exact": "exact", "ivf": "IVF", "hnsw": "HNSW", "pq": "PQ", "ivfpq": "IVF-PQ", "sq8": "SQ8"}
COLOUR = {"exact": 7, "ivf": 0, "hnsw": 1, "pq": 2, "ivfpq": 4, "sq8": 5}  # index into style.palette
LIB_DASH = {"ours": "solid", "faiss": "dash", "hnswlib": "dot"}
LIB_SYMBOL = {"ours": "circle", "faiss": "square", "hnswlib": "diamond"}
MAP_POINTS = 8_000  # the map draws at most this many corpus points (every scanned one is always drawn)


def colour(method: str, dark: bool) -> str:
    return style.palette(dark)[COLOUR[method]]


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


# ---- results ---------------------------------------------------------------------------------------------------


def _name_of(title: str) -> str:
    """A passage's short name: the last two parts of a dotted name ('json.encoder.JSONEncoder.encode' ->
    'JSONEncoder.encode'), or the title."""
    title = title.removeprefix("Python reference: ")
    return ".".join(title.split(".")[-2:]) if "." in title and " " not in title else title


def results(t: QueryTrace, dark: bool = False) -> str:
    """HTML: rank by rank, exact's passage and score; beside it each index's score, ✓ where its hit at that rank is
    one of exact's top k, ✗ and the passage's name where it is not (hover a cell for the passage)."""
    truth = set(t.results["exact"].ids.tolist())
    methods = list(t.results)
    ink, faint = ("#eee", "#1d2536") if dark else ("#111", "#eef3f8")
    good, bad = ("#0b5d46", "#6b2f16") if dark else ("#d4f0e6", "#fbe3d6")
    cell = "padding:1px 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:190px"
    head = "".join(
        f'<th style="{cell};text-align:left">{NAMES[m]} <span style="font-weight:normal">{t.recall[m]:.1f}</span></th>'
        for m in methods
    )
    rows = []
    for r in range(t.k):
        cells = []
        for m in methods:
            hits = t.results[m]
            if r >= len(hits.ids) or hits.ids[r] < 0:
                cells.append("<td></td>")
                continue
            i = int(hits.ids[r])
            tip = html.escape(f"{t.title(i)}\n\n{t.text(i)}", quote=True)
            if m == "exact":
                text = f"{html.escape(_name_of(t.title(i)))} <b>{hits.scores[r]:.2f}</b>"
                cells.append(f'<td style="{cell};max-width:300px" title="{tip}">{text}</td>')
                continue
            hit = i in truth
            text = f"✓ {hits.scores[r]:.2f}" if hit else f"✗ {hits.scores[r]:.2f} {html.escape(_name_of(t.title(i)))}"
            cells.append(f'<td style="{cell};background:{good if hit else bad}" title="{tip}">{text}</td>')
        rows.append(f'<tr><td style="padding:1px 4px;opacity:.7">{r + 1}</td>{"".join(cells)}</tr>')
    best = t.results["exact"].ids[0]
    return (
        f'<div data-lecture-view="results" style="color:{ink};font-size:17px;padding:2px 4px">'
        f'<p style="margin:0 0 4px;font-size:19px"><b>“{html.escape(_short(t.query, 80))}”</b> in '
        f"{t.n_vectors:,} passages: top {t.k} of each index, its recall beside its name (✓ = in exact's top "
        f"{t.k})</p>"
        f'<table style="border-collapse:collapse;table-layout:auto;font-size:17px;line-height:1.25">'
        f'<tr style="background:{faint}"><th></th>{head}</tr>{"".join(rows)}</table>'
        f'<p style="margin:5px 0 0;font-size:17px;opacity:.85"><b>{html.escape(t.title(best))}</b>: '
        f"{html.escape(_short(t.text(best), 220))}</p></div>"
    )


# ---- IVF map ---------------------------------------------------------------------------------------------------


def ivf_map(t: QueryTrace, cmap: CorpusMap, dark: bool = False) -> go.Figure:
    """The corpus on ``cmap``'s axes: vectors in probed cells coloured by cell, the rest grey; centroids ×."""
    pal = style.palette(dark)
    ivf = t.results["ivf"]
    q = ((t.query_vector - cmap.mean) @ cmap.axes.T).astype(np.float32)  # (2,)
    fig = go.Figure()
    scanned = np.zeros(len(cmap.coords), bool)
    scanned[ivf.candidates] = True
    rest = np.flatnonzero(~scanned)
    if len(rest) > MAP_POINTS:
        rest = np.random.default_rng(0).choice(rest, MAP_POINTS, replace=False)
    fig.add_trace(
        go.Scattergl(
            x=cmap.coords[rest, 0],
            y=cmap.coords[rest, 1],
            mode="markers",
            marker=dict(size=4, color="rgba(140,140,140,0.35)"),
            name="other cells (never scored)",
            hoverinfo="skip",
        )
    )
    cell_colours = [pal[i] for i in (0, 1, 2, 4, 5, 6, 3)]
    for rank, cell in enumerate(ivf.probed.tolist()):
        members = ivf.candidates[ivf.candidate_cell == cell]
        fig.add_trace(
            go.Scattergl(
                x=cmap.coords[members, 0],
                y=cmap.coords[members, 1],
                mode="markers",
                marker=dict(size=6, color=cell_colours[rank % len(cell_colours)]),
                name=f"probed cell {cell} ({len(members)} scanned)" if rank < 4 else "more probed cells",
                showlegend=rank < 5,
                legendgroup="probed" if rank >= 4 else f"c{cell}",
                hoverinfo="skip",
            )
        )
    others = np.setdiff1d(np.arange(len(cmap.centroids)), ivf.probed)
    for ids, name, size, col in (
        (others, "centroids", 9, "rgba(120,120,120,0.8)"),
        (ivf.probed, "probed centroids", 16, pal[7]),
    ):
        fig.add_trace(
            go.Scatter(
                x=cmap.centroids[ids, 0],
                y=cmap.centroids[ids, 1],
                mode="markers",
                marker=dict(symbol="x", size=size, color=col),
                name=name,
            )
        )
    exact = t.results["exact"].ids
    fig.add_trace(
        go.Scatter(
            x=cmap.coords[exact, 0],
            y=cmap.coords[exact, 1],
            mode="markers",
            marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=3, color=pal[5])),
            name=f"exact top {t.k}",
            text=[style.plain(t.title(i)) for i in exact],
            hoverinfo="text",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[q[0]],
            y=[q[1]],
            mode="markers",
            marker=dict(
                symbol="star", size=30, color=pal[7], line=dict(width=2, color="white" if not dark else "black")
            ),
            name="query",
        )
    )
    fig.update_xaxes(
        title="the 2 directions that best separate the probed cells (LDA): a 2-D shadow of 384-D", zeroline=False
    )
    fig.update_yaxes(zeroline=False)
    fig.update_layout(legend=dict(font=dict(size=style.MIN_FONT)))
    p = t.params["ivf"]
    title = (
        f"IVF: {len(ivf.probed)} of {p['nlist']} cells probed, {ivf.scanned:,} of {t.n_vectors:,} vectors scored, "
        f"recall@{t.k} = {t.recall['ivf']:.1f}"
    )
    return style.apply(fig, dark, title=title, height=560)


# ---- HNSW ------------------------------------------------------------------------------------------------------


def hnsw(t: QueryTrace, cmap: CorpusMap, dark: bool = False, hop: int | None = None) -> go.Figure:
    """One panel per layer (top layer left): the nodes living there, the path hop by hop (first ``hop`` hops)."""
    pal = style.palette(dark)
    h = t.results["hnsw"]
    layers = list(range(h.max_level, -1, -1))
    n_hops = len(h.hop_node)
    shown = n_hops if hop is None else max(1, min(int(hop), n_hops))
    counts = [int((cmap.level >= L).sum()) for L in layers]
    titles = [f"layer {L}: {n:,} node{'s' if n != 1 else ''}" for L, n in zip(layers, counts)]
    fig = make_subplots(rows=1, cols=len(layers), subplot_titles=titles, horizontal_spacing=0.02)
    q = ((t.query_vector - cmap.mean) @ cmap.axes.T).astype(np.float32)
    # every panel shows the same window: the path, the candidates and the query, with a margin
    seen = np.vstack([cmap.coords[h.hop_node], cmap.coords[h.candidates], q[None, :]])
    lo, hi = seen.min(0), seen.max(0)
    pad = 0.12 * (hi - lo) + 1e-3
    xr, yr = [float(lo[0] - pad[0]), float(hi[0] + pad[0])], [float(lo[1] - pad[1]), float(hi[1] + pad[1])]
    for col, L in enumerate(layers, start=1):
        nodes = np.flatnonzero(cmap.level >= L)
        if len(nodes) > MAP_POINTS:
            nodes = np.random.default_rng(0).choice(nodes, MAP_POINTS, replace=False)
        fig.add_trace(
            go.Scattergl(
                x=cmap.coords[nodes, 0],
                y=cmap.coords[nodes, 1],
                mode="markers",
                marker=dict(size=5 if L else 3, color="rgba(140,140,140,0.45)"),
                hoverinfo="skip",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        on = [i for i in range(shown) if h.hop_layer[i] == L]
        xs, ys = [], []
        for i in on:
            parent = int(h.hop_parent[i])
            if parent >= 0:
                node = int(h.hop_node[i])
                xs += [cmap.coords[parent, 0], cmap.coords[node, 0], None]
                ys += [cmap.coords[parent, 1], cmap.coords[node, 1], None]
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=pal[1], width=2), showlegend=False, hoverinfo="skip"),
            row=1,
            col=col,
        )
        label = L > 0 or len(on) <= 12
        pts = h.hop_node[on]
        fig.add_trace(
            go.Scatter(
                x=cmap.coords[pts, 0],
                y=cmap.coords[pts, 1],
                mode="markers+text" if label else "markers",
                text=[str(i) for i in on] if label else None,
                textposition="top center",
                textfont=dict(size=style.MIN_FONT),
                marker=dict(size=9, color=pal[1], line=dict(width=1, color=pal[7])),
                hovertext=[f"hop {i}: {_name(t, j)}" for i, j in zip(on, pts)],
                hoverinfo="text",
                showlegend=col == 1,
                name="path (hop number)",
            ),
            row=1,
            col=col,
        )
        if L == 0 and shown == n_hops:
            fig.add_trace(
                go.Scatter(
                    x=cmap.coords[h.ids, 0],
                    y=cmap.coords[h.ids, 1],
                    mode="markers",
                    marker=dict(size=15, color="rgba(0,0,0,0)", line=dict(width=2.5, color=pal[5])),
                    name=f"HNSW top {t.k}",
                ),
                row=1,
                col=col,
            )
        fig.add_trace(
            go.Scatter(
                x=[q[0]],
                y=[q[1]],
                mode="markers",
                marker=dict(symbol="star", size=20, color=pal[5], line=dict(width=1, color=pal[7])),
                name="query",
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(showticklabels=False, zeroline=False, range=xr)
    fig.update_yaxes(showticklabels=False, zeroline=False, range=yr)
    fig.update_annotations(font_size=style.MIN_FONT + 1)
    fig.update_layout(legend=dict(orientation="h", y=-0.04, font=dict(size=style.MIN_FONT)))
    upper = int((h.hop_layer > 0).sum())
    title = (
        f"HNSW: {upper} hops on the upper layers, {n_hops - upper} on layer 0"
        f"{f' (showing {shown})' if shown < n_hops else ''}; {h.scanned:,} of {t.n_vectors:,} scored; "
        f"recall@{t.k} {t.recall['hnsw']:.1f}"
    )
    return style.apply(fig, dark, title=title, height=520)


def _name(t: QueryTrace, i: int) -> str:
    return style.plain(t.title(i)) if str(int(i)) in t.passages else f"passage {int(i)}"


# ---- PQ --------------------------------------------------------------------------------------------------------


def pq(t: QueryTrace, dark: bool = False, segments: int = 6) -> go.Figure:
    """Top: the best PQ hit's first sub-vectors (bars) and the centroids that replace them (dots), each with its
    code. Bottom left: exact vs compressed score of every hit (PQ, IVF-PQ, SQ8). Bottom right: bytes per vector."""
    pal = style.palette(dark)
    p = t.results["pq"]
    dsub = p.hit_vector.shape[0] // p.m
    segments = max(1, min(segments, p.m))
    dims = segments * dsub
    fig = make_subplots(
        rows=2,
        cols=2,
        specs=[[{"colspan": 2}, None], [{}, {}]],
        row_heights=[0.5, 0.5],
        vertical_spacing=0.2,
        horizontal_spacing=0.12,
        subplot_titles=[
            f"the best hit, first {segments} of {p.m} sub-vectors of {dsub} dims: bars = x, dots = PQ's centroid",
            "score: exact vs compressed",
            "bytes per vector",
        ],
    )
    x = np.arange(dims)
    fig.add_trace(go.Bar(x=x, y=p.hit_vector[:dims], marker_color=pal[1], showlegend=False), row=1, col=1)
    fig.add_trace(
        go.Scatter(
            x=x, y=p.hit_recon[:dims], mode="markers", marker=dict(size=10, color=colour("pq", dark)), showlegend=False
        ),
        row=1,
        col=1,
    )
    top = float(np.abs(p.hit_vector[:dims]).max()) * 1.25
    for j in range(segments):
        if j:
            fig.add_vline(x=j * dsub - 0.5, line=dict(color="rgba(128,128,128,0.6)", dash="dot"), row=1, col=1)
        fig.add_annotation(
            x=j * dsub + (dsub - 1) / 2, y=top, text=f"code {int(p.codes[0, j])}", showarrow=False,
            font=dict(size=style.MIN_FONT), row=1, col=1,
        )  # fmt: skip
    fig.update_yaxes(range=[-top * 1.1, top * 1.2], row=1, col=1)
    lo, hi = 1.0, -1.0
    for m in ("pq", "ivfpq", "sq8"):
        if m not in t.results:
            continue
        r = t.results[m]
        lo, hi = min(lo, float(r.true_scores.min()), float(r.scores.min())), max(hi, float(r.true_scores.max()))
        fig.add_trace(
            go.Scatter(
                x=r.true_scores, y=r.scores, mode="markers", marker=dict(size=10, color=colour(m, dark)), name=NAMES[m]
            ),
            row=2,
            col=1,
        )
    fig.add_trace(
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color="gray", dash="dot"), showlegend=False),
        row=2,
        col=1,
    )
    fig.update_xaxes(title="exact q·x", row=2, col=1)
    fig.update_yaxes(title="index's score", row=2, col=1)
    shown = [m for m in ("exact", "sq8", "ivfpq", "pq") if m in t.bytes_per_vector]
    fig.add_trace(
        go.Bar(
            y=[NAMES[m] for m in shown],
            x=[t.bytes_per_vector[m] for m in shown],
            orientation="h",
            marker_color=[colour(m, dark) for m in shown],
            text=[f"{t.bytes_per_vector[m]:,.0f}" for m in shown],
            textposition="outside",
            textfont=dict(size=style.MIN_FONT),
            cliponaxis=False,
            showlegend=False,
        ),
        row=2,
        col=2,
    )
    fig.update_xaxes(type="log", tickvals=[10, 100, 1000], range=[1, 3.6], row=2, col=2)
    fig.update_annotations(font_size=style.MIN_FONT)
    fig.update_layout(legend=dict(x=0.43, y=0.02, xanchor="right", yanchor="bottom", bgcolor="rgba(128,128,128,0.12)"))
    ratio = t.bytes_per_vector["exact"] / max(p.m * p.nbits / 8, 1)
    title = (
        f"PQ: {p.hit_vector.shape[0]} floats → {p.m} codes of 1 byte ({ratio:.0f}x smaller, + "
        f"{t.fixed_bytes['pq'] / 1e3:,.0f} KB codebooks); |x − x̂|² {p.recon_error[0]:.2f}; "
        f"recall@{t.k} {t.recall['pq']:.1f}"
    )
    return style.apply(fig, dark, title=title, height=620).update_layout(margin=dict(t=95))


# ---- the sweep ---------------------------------------------------------------------------------------------------


def tradeoff(tr: TradeoffTrace, dark: bool = False) -> go.Figure:
    """Recall@k against milliseconds per query (log): one curve per index and library (colour = index, line =
    library); our IVF curve labelled with nprobe, our HNSW curve with ef."""
    fig = go.Figure()
    for lib in ("ours", "faiss", "hnswlib"):
        for m in NAMES:
            idx = tr.rows(lib, m)
            if not len(idx):
                continue
            labels = [_setting(tr, i) for i in idx] if lib == "ours" and m in ("ivf", "hnsw") else None
            fig.add_trace(
                go.Scatter(
                    x=tr.ms_per_query[idx],
                    y=tr.recall[idx],
                    mode="lines+markers+text" if labels else "lines+markers",
                    text=labels,
                    textposition="bottom right" if m == "hnsw" else "top left",
                    textfont=dict(size=style.MIN_FONT, color=colour(m, dark)),
                    line=dict(color=colour(m, dark), dash=LIB_DASH[lib], width=2.5),
                    marker=dict(symbol=LIB_SYMBOL[lib], size=10, color=colour(m, dark)),
                    name=f"{NAMES[m]} ({lib})",
                    showlegend=False,
                )
            )
    for m in NAMES:  # the legend: colour = index, line = library
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker=dict(size=12, color=colour(m, dark)),
                                 name=NAMES[m]))  # fmt: skip
    for lib, name in (("ours", "ours (numpy)"), ("faiss", "FAISS"), ("hnswlib", "hnswlib")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines+markers", name=name,
                                 line=dict(color="gray", dash=LIB_DASH[lib], width=2.5),
                                 marker=dict(symbol=LIB_SYMBOL[lib], size=10, color="gray")))  # fmt: skip
    ticks = [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30]
    fig.update_xaxes(
        type="log",
        tickvals=ticks,
        ticktext=[f"{v:g}" for v in ticks],
        title="milliseconds per query (log scale, one query at a time)",
    )
    fig.update_yaxes(title=f"recall@{tr.k} vs exact", range=[0.4, 1.06])
    fig.update_layout(legend=dict(font=dict(size=style.MIN_FONT)))
    # a recorded run (`lecture vector-sweep`), whichever corpus the demo searches now
    title = f"Recorded sweep: recall vs latency, {tr.n_vectors:,} vectors, {tr.n_queries} held-out queries, "
    title += "ours beside FAISS"
    return style.apply(fig, dark, title=title, height=560)


def _setting(tr: TradeoffTrace, i: int) -> str:
    if tr.param[i] == "nprobe":
        return f"{tr.value[i]:.0f}"
    if tr.param[i] == "ef_search":
        return f"ef {tr.value[i]:.0f}"
    return ""


def memory(tr: TradeoffTrace, dark: bool = False) -> go.Figure:
    """Bytes per vector and build seconds of each index, ours beside the libraries'."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["bytes per vector", "build seconds"], horizontal_spacing=0.12)
    for lib in ("ours", "faiss", "hnswlib"):
        methods = [m for m in NAMES if len(tr.rows(lib, m))]
        first = [int(tr.rows(lib, m)[0]) for m in methods]
        for col, values in ((1, tr.bytes_per_vector), (2, tr.build_seconds)):
            fig.add_trace(
                go.Bar(
                    x=[NAMES[m] for m in methods],
                    y=values[first],
                    name=lib,
                    marker_color=style.palette(dark)[{"ours": 4, "faiss": 0, "hnswlib": 2}[lib]],
                    showlegend=col == 1,
                    legendgroup=lib,
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(type="log")
    fig.update_annotations(font_size=style.MIN_FONT + 1)
    title = f"Recorded sweep: memory and build time, {tr.n_vectors:,} vectors of {tr.dim} dims"
    return style.apply(fig, dark, title=title, height=480)


# ---- the flow ----------------------------------------------------------------------------------------------------


def flow(t: QueryTrace, dark: bool = False) -> go.Figure:
    """Per index: embed the query, search, fetch the passages by id, stacked in milliseconds."""
    pal = style.palette(dark)
    methods = list(t.results)
    steps = [
        ("1. embed the query (MiniLM)", [t.timings["embed"]] * len(methods), pal[6]),
        ("2. search the index → ids", [t.timings[m] for m in methods], pal[1]),
        ("3. fetch passages by id", [t.timings["fetch"]] * len(methods), pal[2]),
    ]
    fig = go.Figure()
    for name, secs, col in steps:
        ms = [1e3 * s for s in secs]
        fig.add_trace(
            go.Bar(
                y=[NAMES[m] for m in methods],
                x=ms,
                orientation="h",
                name=name,
                marker_color=col,
                text=[f"{v:.1f}" if v >= 0.05 else "" for v in ms],
                textposition="inside",
                textfont=dict(size=style.MIN_FONT),
                insidetextanchor="middle",
            )
        )
    fig.update_layout(barmode="stack", legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0, traceorder="normal"))
    fig.update_xaxes(title="milliseconds (this query, this machine)")
    fig.update_yaxes(autorange="reversed")
    title = f"Query → vector → ids → passages: “{style.plain(_short(t.query, 34))}”"
    return style.apply(fig, dark, title=title, height=460)


# ---- the demo's views from Python: toolkit.views.show("vector_search", view, **preset) -------------------------
# One function per view of demos/vector_search.py, with its URL presets as keywords and its defaults: one query
# through every index of the corpus (MiniLM vectors), then one view. "results" is HTML (a str), the rest plotly.
# corpus "stdlib" is Python's docs once `lecture index` has embedded them, else the committed 3,000-passage sample.

QUERY = "convert a Python object to a JSON string"  # the deck's query (the demo's default)


def _searched(query: str, corpus: str, k: int, nprobe: int, ef: int):
    from toolkit import models
    from toolkit.vector_search import corpus as corpora
    from toolkit.vector_search.capture import VectorConfig, capture, indexes

    if corpus == "stdlib" and corpora.state("stdlib") != "ready":
        corpus = "sample"
    cfg = VectorConfig(corpus=corpus, k=k, nprobe=nprobe, ef_search=ef)
    idx = indexes(cfg)
    return idx, capture(models.load(idx.corpus.model), query, cfg)


def view_results(
    query: str = QUERY, corpus: str = "stdlib", k: int = 10, nprobe: int = 4, ef: int = 16, dark: bool = False
) -> str:
    """Each index's hits beside exact k-NN's (HTML)."""
    return results(_searched(query, corpus, k, nprobe, ef)[1], dark)


def view_ivf(
    query: str = QUERY, corpus: str = "stdlib", k: int = 10, nprobe: int = 4, ef: int = 16, dark: bool = False
) -> go.Figure:
    from toolkit.vector_search.capture import view_map

    idx, trace = _searched(query, corpus, k, nprobe, ef)
    return ivf_map(trace, view_map(idx, trace, "ivf"), dark)


def view_hnsw(
    query: str = QUERY,
    corpus: str = "stdlib",
    k: int = 10,
    nprobe: int = 4,
    ef: int = 16,
    hop: int = 0,
    dark: bool = False,
) -> go.Figure:
    """The HNSW search's path, layer by layer (``hop`` 0: every hop)."""
    from toolkit.vector_search.capture import view_map

    idx, trace = _searched(query, corpus, k, nprobe, ef)
    return hnsw(trace, view_map(idx, trace, "hnsw"), dark, hop=hop or None)


def view_pq(
    query: str = QUERY, corpus: str = "stdlib", k: int = 10, nprobe: int = 4, ef: int = 16, dark: bool = False
) -> go.Figure:
    return pq(_searched(query, corpus, k, nprobe, ef)[1], dark)


def view_tradeoff(dark: bool = False) -> go.Figure:
    """Recall against latency of every index beside FAISS and hnswlib (the sweep `lecture vector-sweep` records)."""
    from pathlib import Path

    from toolkit import views

    path = Path(__file__).resolve().parents[2] / "assets" / "vector_search" / "tradeoff.npz"
    return tradeoff(views.recorded(TradeoffTrace, path, "lecture vector-sweep"), dark)


def view_flow(
    query: str = QUERY, corpus: str = "stdlib", k: int = 10, nprobe: int = 4, ef: int = 16, dark: bool = False
) -> go.Figure:
    return flow(_searched(query, corpus, k, nprobe, ef)[1], dark)


VIEWS = {  # the demo's hero first
    "results": view_results,
    "ivf": view_ivf,
    "hnsw": view_hnsw,
    "pq": view_pq,
    "tradeoff": view_tradeoff,
    "flow": view_flow,
}
