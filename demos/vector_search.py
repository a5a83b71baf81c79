"""One question through exact k-NN, IVF, HNSW, PQ, IVF-PQ and SQ8 over Python's own docs (MiniLM vectors), held
to FAISS."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import gradio as gr

from demos import stage, ui
from toolkit import vector_search as vs
from toolkit.trace import TraceError
from toolkit.vector_search import corpus as corpora
from toolkit.vector_search import figures as views

DECK_QUERY = "convert a Python object to a JSON string"
VIEWS = [
    ("Results beside exact k-NN", "results"),
    ("IVF: the probed cells", "ivf"),
    ("HNSW: the path, layer by layer", "hnsw"),
    ("PQ and SQ8: codes and error", "pq"),
    ("Recall vs latency, with FAISS", "tradeoff"),
    ("The search flow, timed", "flow"),
]
VIEW_NAMES = [v for _, v in VIEWS]
TRADEOFF = Path(__file__).resolve().parents[1] / "assets" / "vector_search" / "tradeoff.npz"
TRADEOFF_COMMAND = "lecture vector-sweep"
Config = vs.VectorConfig


@lru_cache(maxsize=1)
def tradeoff() -> vs.TradeoffTrace | None:
    """The recorded sweep (ours and FAISS / hnswlib on the full corpus), or None when it was never recorded."""
    try:
        return vs.TradeoffTrace.load(TRADEOFF)
    except TraceError:
        return None


def corpus_choices() -> list[str]:
    return ["stdlib", "sample", *[c for c in corpora.indexed() if c != "stdlib"]]


def _corpus(raw, notes: list[str]) -> str:
    """'stdlib' (the sample until `lecture index` has embedded it), 'sample', or a folder `lecture index` built."""
    name = ui.as_text(raw if raw is not None else "stdlib", "corpus", 1_000).strip()
    if name == "sample":
        return name
    if name == "stdlib":
        if corpora.state("stdlib") == "ready":
            return name
        notes.append(
            "⚠️ The full corpus is not embedded on this machine yet: showing the committed 3,000-passage sample. "
            "Run `lecture index` once (a few minutes) for all of Python's docs."
        )
        return "sample"
    indexed = corpora.indexed()
    if corpora.canonical(name) in indexed:
        return corpora.canonical(name)
    raise ui.UserError(
        f"{name[:80]!r} is not an indexed corpus. Choose stdlib or sample, or index a folder of text files first "
        "with `lecture index PATH` (it then appears here)."
    )


def _status(trace: vs.QueryTrace, notes: list[str]) -> str:
    recall = " · ".join(f"{views.NAMES[m]} {trace.recall[m]:.1f}" for m in trace.results if m != "exact")
    head = (
        f"**{trace.n_vectors:,} passages** ({'Python docs' if trace.corpus == 'stdlib' else trace.corpus}) · "
        f"recall@{trace.k} vs exact: {recall} · query embedded in {1e3 * trace.timings['embed']:.0f} ms"
    )
    return "\n\n".join([head, *notes])


@ui.safe
def search(
    query,
    view,
    nprobe,
    ef_search,
    hop,
    corpus="stdlib",
    k=10,
    nlist=64,
    M=16,
    ef_construction=40,
    pq_m=48,
    request: gr.Request | None = None,
):
    """Returns (status, hero figure, hero HTML, results table HTML, memory figure)."""
    query = ui.as_text(query, "query", vs.MAX_QUERY_CHARS)
    view = view if view in VIEW_NAMES else "results"
    dark = ui.is_dark(request)
    notes: list[str] = []
    name = _corpus(corpus, notes)
    pq_m = ui.as_choice(ui.as_int(pq_m, "PQ m"), "PQ m", vs.PQ_M_CHOICES)
    cfg = ui.config(
        Config, corpus=name, k=k, nlist=nlist, nprobe=nprobe, M=M, ef_construction=ef_construction,
        ef_search=ef_search, pq_m=pq_m,
    )  # fmt: skip
    hop = ui.as_int(hop, "hops shown", 0, 100_000)
    try:
        idx = vs.indexes(cfg, progress=True)
        trace = vs.capture(ui.model(idx.corpus.model, "encoder"), query, cfg)
    except (ValueError, corpora.CorpusError) as err:
        raise ui.UserError(str(err)) from None
    sweep = tradeoff()
    fig = None
    if view == "ivf":
        fig = views.ivf_map(trace, vs.view_map(idx, trace, "ivf"), dark)
    elif view == "hnsw":
        fig = views.hnsw(trace, vs.view_map(idx, trace, "hnsw"), dark, hop=hop or None)
    elif view == "pq":
        fig = views.pq(trace, dark)
    elif view == "flow":
        fig = views.flow(trace, dark)
    elif view == "tradeoff":
        if sweep is None:
            notes.append(f"No recorded sweep at {TRADEOFF}: record it with `{TRADEOFF_COMMAND}`.")
            fig = views.flow(trace, dark)
        else:
            fig = views.tradeoff(sweep, dark)
    table = views.results(trace, dark)
    memory = views.memory(sweep, dark) if sweep is not None else None
    return _status(trace, notes), fig, table if fig is None else "", table, memory


@ui.answers
def search_ui(*args, request: gr.Request | None = None):
    """``search`` for the page: the hero is the figure or the results table, whichever the view draws."""
    status, fig, hero_html, table, memory = search(*args, request=request)
    return (
        status,
        gr.update(value=stage.fill(fig), visible=fig is not None),
        gr.update(value=hero_html, visible=fig is None),
        table,
        memory,
    )


def on_load(request: gr.Request):
    p = ui.query(request)
    query = ui.preset(p, "query", DECK_QUERY)
    view = ui.preset(p, "view", "results", str, VIEW_NAMES)
    nprobe = ui.preset(p, "nprobe", Config.default("nprobe"), int)
    ef = ui.preset(p, "ef", Config.default("ef_search"), int)
    hop = ui.preset(p, "hop", 0, int)
    corpus = ui.preset(p, "corpus", "stdlib")
    k = ui.preset(p, "k", Config.default("k"), int)
    widgets = [gr.update(value=v) for v in (query, view, nprobe, ef, hop, corpus, k)]
    try:
        out = search_ui(query, view, nprobe, ef, hop, corpus, k, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", gr.update(visible=False), gr.update(visible=False), "", None)
    return *widgets, *out


with gr.Blocks(title="Vector search") as demo:
    ui.header("vector_search", __doc__)
    with stage.strip():
        query_in = gr.Textbox(DECK_QUERY, label="query", lines=1, max_lines=1, scale=3)
        view_in = gr.Dropdown(VIEWS, value="results", label="view", scale=3)
        nprobe_in = ui.slider(Config, "nprobe", scale=1)
        ef_in = ui.slider(Config, "ef_search", scale=1)
        nprobe_in.maximum, ef_in.maximum = 64, 256  # the slider's useful span; the config's limits still apply
        hop_in = gr.Slider(0, 200, value=0, step=1, label="HNSW hops (0 all)", scale=1)
        go_btn = gr.Button("Search", variant="primary", scale=1)
    with stage.options():
        corpus_in = gr.Dropdown(corpus_choices(), value="stdlib", label="corpus", allow_custom_value=True)
        k_in = ui.number(Config, "k")
        nlist_in = ui.number(Config, "nlist", info="a new value rebuilds IVF and IVF-PQ")
        M_in = ui.number(Config, "M", info="a new value rebuilds HNSW (in Python: about a minute)")
        efc_in = ui.number(Config, "ef_construction")
        pqm_in = ui.dropdown(Config, "pq_m")
    status = stage.status()
    hero = stage.hero()
    hero_html = stage.hero_html()
    with stage.more():
        with gr.Tab("results beside exact"):
            table_out = gr.HTML()
        with gr.Tab("memory and build time (recorded sweep)"):
            memory_out = gr.Plot(show_label=False)
    inputs = [query_in, view_in, nprobe_in, ef_in, hop_in, corpus_in, k_in, nlist_in, M_in, efc_in, pqm_in]
    outputs = [status, hero, hero_html, table_out, memory_out]
    go_btn.click(search_ui, inputs, outputs, api_name="search")
    query_in.submit(search_ui, inputs, outputs, api_name=False)
    view_in.input(search_ui, inputs, outputs, api_name=False)
    for slider in (nprobe_in, ef_in, hop_in):
        slider.release(search_ui, inputs, outputs, api_name=False)
    demo.load(on_load, None, [query_in, view_in, nprobe_in, ef_in, hop_in, corpus_in, k_in, *outputs], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
