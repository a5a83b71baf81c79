"""Vector search: the maths on hand-made vectors, our indexes held to FAISS and hnswlib on real MiniLM vectors (the
committed 3,000-passage sample of Python's docs), the corpus cache, the capture, the figures, the demo and the
slides' numbers."""

from __future__ import annotations

import json
import re
import sys

import faiss
import gradio as gr
import hnswlib
import numpy as np
import plotly.graph_objects as go
import pytest
from threadpoolctl import threadpool_limits

from toolkit import vector_search as vs
from toolkit.trace import Trace, TraceError
from toolkit.vector_search import corpus as corpora
from toolkit.vector_search import figures

QUERY = "convert a Python object to a JSON string"
N_QUERIES = 200
faiss.omp_set_num_threads(1)  # as the benchmark: one query at a time, one thread (2 busy cores make threads spin)
rng = np.random.default_rng(0)


@pytest.fixture(scope="module")
def sample() -> vs.Corpus:
    return corpora.sample()


@pytest.fixture(scope="module")
def split(sample):
    """(database, queries, exact ids): the sample's last 200 passages ask, the first 2,800 answer."""
    base, queries = vs.sweep.split(sample.vectors, N_QUERIES)
    truth = vs.ExactIndex(base).search_batch(queries, 10)[0]
    return base, queries, truth


@pytest.fixture(scope="module")
def sample_trace(minilm) -> vs.QueryTrace:
    return vs.capture(minilm, QUERY, corpus="sample")


@pytest.fixture(scope="module")
def sample_indexes(sample_trace) -> vs.Indexes:
    return vs.indexes(corpus="sample")


def blobs(n_per: int = 50, d: int = 8) -> np.ndarray:
    """Two tight groups of unit vectors around +e0 and +e1."""
    a = np.eye(d)[0] + 0.05 * rng.standard_normal((n_per, d))
    b = np.eye(d)[1] + 0.05 * rng.standard_normal((n_per, d))
    return vs.normalize(np.vstack([a, b]))


# ---- maths on hand-made inputs -------------------------------------------------------------------------------


def test_top_k_orders_by_score_then_id():
    ids, scores = vs.top_k(np.array([0.1, 0.9, 0.5, 0.9, 0.2]), 3)
    assert ids.tolist() == [1, 3, 2] and scores.tolist() == pytest.approx([0.9, 0.9, 0.5])
    ids, _ = vs.top_k(np.array([0.3, 0.3, 0.3, 0.3]), 2)  # four-way tie at the edge: the smallest ids win
    assert ids.tolist() == [0, 1]
    assert vs.top_k(np.array([2.0, 1.0]), 5)[0].tolist() == [0, 1]  # k > n: everything
    assert vs.recall_at_k(np.array([[1, 2, 3], [4, 5, -1]]), np.array([[3, 2, 9], [4, 8, 7]])) == pytest.approx(3 / 6)


def test_kmeans_finds_two_blobs_and_spherical_centroids_are_unit():
    x = blobs()
    for spherical in (False, True):
        c = vs.kmeans(x, 2, niter=10, spherical=spherical)
        labels = vs.maths.assign(x, c, spherical)[0]
        assert len(set(labels[:50])) == 1 and len(set(labels[50:])) == 1 and labels[0] != labels[50]
    assert np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="at least as many points"):
        vs.kmeans(x[:3], 4)


def test_split_passages_packs_paragraphs_and_cuts_long_ones():
    text = "One two three.\n\nFour five.\n\n" + " ".join(f"w{i}." for i in range(25))
    parts = corpora.split_passages(text, max_words=10)
    words = "One two three. Four five.".split() + [f"w{i}." for i in range(25)]
    assert " ".join(parts).split() == words  # nothing lost, nothing reordered
    assert [len(p.split()) for p in parts] == [10, 10, 10]  # sentences packed up to 10 words
    assert corpora.split_passages("a " * 25, max_words=10) == ["a " * 9 + "a"] * 2 + ["a a a a a"]


def test_exact_is_the_matrix_product(sample):
    x, q = sample.vectors[:500], sample.vectors[500:520]
    ids, scores = vs.ExactIndex(x).search_batch(q, 10)
    with threadpool_limits(1, "blas"):  # the index's own setting: the same BLAS kernel gives the same bits
        brute = q @ x.T  # (20, 500)
    for row, s in zip(brute, range(len(q))):
        order = sorted(range(len(row)), key=lambda i: (-row[i], i))[:10]
        assert ids[s].tolist() == order
    assert np.array_equal(scores, np.take_along_axis(brute, ids, 1))
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    assert np.array_equal(flat.search(q, 10)[1], ids)


def test_ivf_scans_only_the_probed_cells():
    x = blobs()
    ivf = vs.IvfIndex(nlist=2, nprobe=1).build(x)
    hits = ivf.search(x[0], k=5)
    assert hits.probed.shape == (1,) and hits.scanned == 50  # one blob's cell, never the other
    assert set(hits.candidates.tolist()) == set(range(50)) or set(hits.candidates.tolist()) == set(range(50, 100))
    full = ivf.search(x[0], k=5, nprobe=2)
    assert np.array_equal(full.ids, vs.ExactIndex(x).search(x[0], 5).ids)  # all cells: exact


def test_hnsw_layers_links_and_exactness_at_large_ef():
    x = vs.normalize(rng.standard_normal((400, 16)))
    h = vs.HnswIndex(M=8, ef_construction=40).build(x)
    assert h.levels.max() >= 1 and (h.levels == 0).mean() > 0.7  # about 1 - 1/M of the nodes live on layer 0 only
    for layer, table in enumerate(h.links):
        assert all(len(n) <= (16 if layer == 0 else 8) for n in table.values())
        assert set(table) == set(np.flatnonzero(h.levels >= layer).tolist())
    ex = vs.ExactIndex(x)
    for q in x[:20]:
        hits = h.search(q, 5, ef_search=400)
        assert np.array_equal(hits.ids, ex.search(q, 5).ids)
        assert hits.hop_node[0] == h.entry and hits.hop_layer[0] == h.max_level
    again = vs.HnswIndex.restore(h.state(), x)
    assert np.array_equal(again.search(x[3], 5).ids, h.search(x[3], 5).ids)


def test_pq_adc_equals_the_decoded_inner_product():
    x = vs.normalize(rng.standard_normal((600, 16)))
    pq = vs.PqIndex(m=4, nbits=8).build(x)
    q = x[0]
    tables = pq.pq.tables(q)
    assert tables.shape == (4, 256)
    assert np.allclose(pq.pq.adc(tables, pq.codes), pq.pq.decode(pq.codes) @ q, atol=1e-5)
    hits = pq.search(q, 5)
    assert np.allclose(hits.scores, (pq.pq.decode(hits.codes) @ q), atol=1e-5)
    assert hits.recon_error[0] == pytest.approx(float(((hits.hit_vector - hits.hit_recon) ** 2).sum()), rel=1e-4)
    with pytest.raises(ValueError, match="divide"):
        vs.PqIndex(m=5).build(x)


def test_sq8_codes_are_faiss_codes(sample):
    x = sample.vectors[:1000]
    ours = vs.Sq8Index().build(x)
    theirs = faiss.IndexScalarQuantizer(x.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    theirs.train(x)
    codes = theirs.sa_encode(x)
    assert np.array_equal(codes, ours.codes)
    assert np.allclose(theirs.sa_decode(codes), ours.decode(ours.codes), atol=1e-6)


# ---- held to FAISS and hnswlib: recall@10 on the sample, same vectors, same parameters -----------------------


def faiss_recall(index, queries, truth, **settings) -> float:
    for name, value in settings.items():
        if name == "efSearch":
            index.hnsw.efSearch = value
        else:
            setattr(index, name, value)
    return vs.recall_at_k(index.search(queries, 10)[1], truth)


@pytest.mark.slow
def test_ivf_and_ivfpq_recall_match_faiss(split):
    base, queries, truth = split
    d, ip = base.shape[1], faiss.METRIC_INNER_PRODUCT
    ivf = vs.IvfIndex(nlist=32).build(base)
    theirs = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, 32, ip)
    theirs.train(base)
    theirs.add(base)
    for nprobe in (1, 4):
        ours = vs.recall_at_k(ivf.search_batch(queries, 10, nprobe)[0], truth)
        assert abs(ours - faiss_recall(theirs, queries, truth, nprobe=nprobe)) <= 0.02, nprobe
    ivfpq = vs.IvfPqIndex(nlist=32, m=24).build(base)
    theirs = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, 32, 24, 8, ip)
    theirs.train(base)
    theirs.add(base)
    ours = vs.recall_at_k(ivfpq.search_batch(queries, 10, 8)[0], truth)
    assert abs(ours - faiss_recall(theirs, queries, truth, nprobe=8)) <= 0.02


@pytest.mark.slow
def test_pq_recall_matches_faiss(split):
    base, queries, truth = split
    pq = vs.PqIndex(m=24).build(base)
    theirs = faiss.IndexPQ(base.shape[1], 24, 8, faiss.METRIC_INNER_PRODUCT)
    theirs.train(base)
    theirs.add(base)
    ours = vs.recall_at_k(pq.search_batch(queries, 10)[0], truth)
    assert abs(ours - faiss_recall(theirs, queries, truth)) <= 0.02
    assert 0.2 < ours < 0.95  # compressed: clearly approximate, clearly better than chance


@pytest.mark.slow
def test_hnsw_recall_matches_faiss_and_hnswlib(split):
    base, queries, truth = split
    n, d = base.shape
    ours = vs.HnswIndex(M=16, ef_construction=40).build(base)
    f = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
    f.hnsw.efConstruction = 40
    f.add(base)
    h = hnswlib.Index(space="ip", dim=d)
    h.init_index(max_elements=n, M=16, ef_construction=40, random_seed=100)
    h.set_num_threads(1)
    h.add_items(base, np.arange(n))
    for ef in (10, 32):
        mine = vs.recall_at_k(ours.search_batch(queries, 10, ef)[0], truth)
        h.set_ef(ef)
        assert abs(mine - faiss_recall(f, queries, truth, efSearch=ef)) <= 0.02, ef
        assert abs(mine - vs.recall_at_k(h.knn_query(queries, k=10)[0].astype(np.int64), truth)) <= 0.02, ef


# ---- the corpus and its cache ----------------------------------------------------------------------------------


def test_sample_is_minilm_on_its_passages(sample, minilm):
    assert len(sample) == corpora.SAMPLE_SIZE and sample.dim == minilm.config.hidden_size == 384
    fresh = corpora.embed(minilm, sample.texts[:12])
    assert np.allclose((fresh * sample.vectors[:12]).sum(1), 1, atol=2e-3)  # float16 storage: cosines > 0.998


def test_folder_corpus_cache_and_errors(tmp_path, monkeypatch, minilm):
    monkeypatch.setenv("LECTURE_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(corpora.CorpusError, match="no text files"):
        corpora.folder_passages(empty)
    with pytest.raises(corpora.CorpusError, match="not a folder"):
        corpora.folder_passages(tmp_path / "nowhere")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("Vectors are lists of numbers.\n\nIndexes find near ones fast.")
    (notes / "b.txt").write_text("HNSW is a graph. IVF is a set of cells.")
    with monkeypatch.context() as m:  # a huge folder is refused before anything is read into memory
        m.setattr(corpora, "MAX_FOLDER_BYTES", 10)
        with pytest.raises(corpora.CorpusError, match="MB of text"):
            corpora.folder_passages(notes)
    assert corpora.state(str(notes)) == "missing"
    built = corpora.build(str(notes), progress=False)
    assert len(built) == 2 and built.titles == ["a.md", "b.txt"] and corpora.state(str(notes)) == "ready"
    assert corpora.indexed() == [str(notes.resolve())]
    assert np.array_equal(corpora.load(str(notes)).vectors, built.vectors)
    with pytest.raises(ValueError, match="at least 256"):
        vs.indexes(corpus=str(notes), nlist=4)
    (corpora.cache_root() / corpora.key_for(str(notes)) / "vectors.npy").write_bytes(b"broken")
    assert corpora.state(str(notes)) == "corrupt"
    with pytest.raises(corpora.CorpusError, match="lecture index"):
        corpora.load(str(notes))


def test_lecture_index_command(tmp_path, monkeypatch, capsys, minilm):
    from lecture.cli import main

    monkeypatch.setenv("LECTURE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "x.rst").write_text("Product quantisation cuts a vector into sub-vectors.")
    assert main(["index", str(folder), "--no-indexes"]) == 0
    assert "1 passages x 384 dims" in capsys.readouterr().out
    assert main(["index", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


# ---- capture, traces, cache ------------------------------------------------------------------------------------


def test_capture_traces_every_index(sample_trace, minilm):
    from toolkit.tokens import sentence_embeddings

    t = sample_trace
    assert set(t.results) == set(vs.METHODS) and t.n_vectors == 3000 and t.recall["exact"] == 1.0
    assert np.array_equal(t.query_vector, sentence_embeddings(minilm, [QUERY])[0])  # the model's own embedding
    assert any("json" in t.title(i).lower() for i in t.results["exact"].ids[:3])
    ivf = t.results["ivf"]
    assert len(ivf.probed) == t.config["nprobe"] and ivf.scanned < t.n_vectors
    hnsw = t.results["hnsw"]
    assert hnsw.scanned < t.n_vectors and (hnsw.hop_layer == 0).sum() > 1
    assert t.results["pq"].codes.shape == (10, 48) and t.results["pq"].tables.shape == (48, 256)
    assert t.bytes_per_vector == {"exact": 1536, "ivf": 1544, "hnsw": pytest.approx(1536 + 4 * 32 * 1.07, abs=8),
                                  "pq": 48, "ivfpq": 56, "sq8": 384}  # fmt: skip
    assert t.fixed_bytes["pq"] == 4 * 384 * 256 and t.fixed_bytes["ivfpq"] == 4 * 384 * (256 + 64)
    assert set(t.timings) >= {"embed", "fetch", *vs.METHODS}


def test_trace_round_trip_and_invariants(sample_trace, tmp_path):
    path = sample_trace.save(tmp_path / "q.npz")
    back = Trace.load(path)
    assert isinstance(back, vs.QueryTrace) and back.recall == sample_trace.recall
    for m, hits in sample_trace.results.items():
        assert type(back.results[m]) is type(hits)
        assert np.array_equal(back.results[m].ids, hits.ids) and np.allclose(back.results[m].scores, hits.scores)
    h = sample_trace.results["hnsw"]
    with pytest.raises(TraceError, match="best first"):
        vs.HnswSearch(**{**h.__dict__, "scores": h.scores[::-1].copy()}).check()
    with pytest.raises(TraceError, match="recall"):
        vs.QueryTrace(**{**sample_trace.__dict__, "recall": {**sample_trace.recall, "ivf": 0.123}}).check()


def test_indexes_are_cached_and_restored(sample_indexes, sample_trace):
    assert vs.indexes(corpus="sample") is sample_indexes  # in memory
    folder = next(corpora.cache_root().glob("indexes/sample-*"))
    assert {p.name for p in folder.glob("*.npz")} >= {"ivf-64.npz", "hnsw-16-40.npz", "pq-48.npz", "sq8.npz"}
    with np.load(folder / "hnsw-16-40.npz") as z:
        again = vs.HnswIndex.restore({k: z[k] for k in z.files}, sample_indexes.corpus.vectors)
    q = sample_trace.query_vector
    assert np.array_equal(again.search(q, 10).ids, sample_indexes.hnsw.search(q, 10).ids)


def test_config_ranges():
    with pytest.raises(ValueError, match="nprobe"):
        vs.VectorConfig(nprobe=80, nlist=64)
    with pytest.raises(ValueError, match="PQ m"):
        vs.VectorConfig(pq_m=7)
    with pytest.raises(ValueError, match="k must be"):
        vs.VectorConfig(k=0)


# ---- figures ---------------------------------------------------------------------------------------------------


def min_font(fig: go.Figure) -> float:
    sizes = [a.font.size for a in fig.layout.annotations if a.font and a.font.size]
    sizes += [t.textfont.size for t in fig.data if getattr(t, "textfont", None) and t.textfont.size]
    return min(sizes) if sizes else 99


def test_figures_draw_each_view(sample_trace, sample_indexes, sample, tmp_path):
    cmap = vs.view_map(sample_indexes, sample_trace, "ivf")
    assert cmap.meta["fitted_on"] == sample_trace.results["ivf"].scanned
    ivf = figures.ivf_map(sample_trace, cmap)
    assert "of 64 cells probed" in ivf.layout.title.text and min_font(ivf) >= 16
    cmap = vs.view_map(sample_indexes, sample_trace, "hnsw")
    graph = figures.hnsw(sample_trace, cmap)
    assert len([a for a in graph.layout.annotations if a.text.startswith("layer")]) == cmap.level.max() + 1
    part = figures.hnsw(sample_trace, cmap, hop=2)
    assert "showing 2" in part.layout.title.text
    pq = figures.pq(sample_trace, dark=True)
    assert "48 codes of 1 byte (32x smaller" in pq.layout.title.text and min_font(pq) >= 16
    flow = figures.flow(sample_trace)
    assert [t.name.split(".")[0] for t in flow.data] == ["1", "2", "3"]
    html = figures.results(sample_trace)
    assert 'data-lecture-view="results"' in html and html.count("<tr") == 11
    sweep = vs.sweep.tradeoff(sample.vectors[:400], n_queries=20, nlist=8, nprobes=(1, 4), efs=(10,), pq_m=4)
    assert {m for m in sweep.method} == set(vs.METHODS) and set(sweep.library) == {"ours", "faiss", "hnswlib"}
    trade = figures.tradeoff(sweep)
    assert trade.layout.xaxis.type == "log" and min_font(trade) >= 16
    assert len(figures.memory(sweep).data) == 6
    # the sweep is the recorded full corpus's, not the corpus the search uses: both titles say so
    head = f"Recorded sweep: recall vs latency, {sweep.n_vectors:,} vectors, {sweep.n_queries} held-out"
    assert trade.layout.title.text.startswith(head)
    assert figures.memory(sweep).layout.title.text.startswith("Recorded sweep: memory and build time")
    assert vs.TradeoffTrace.load(sweep.save(tmp_path / "t.npz")).recall.tolist() == sweep.recall.tolist()


def test_user_text_is_escaped(minilm):
    t = vs.capture(minilm, "<b>bold</b> & <script>x</script>", corpus="sample")
    assert "<script>" not in figures.results(t) and "&lt;script&gt;" in figures.results(t)
    assert "<b>" not in figures.flow(t).layout.title.text


# ---- demo ------------------------------------------------------------------------------------------------------


def test_demo_every_view(minilm):
    from demos import vector_search as demo

    for view in demo.VIEW_NAMES:
        status, fig, hero_html, table, memory = demo.search(QUERY, view, 4, 16, 0, "sample")
        assert "3,000 passages" in status and "recall@10" in status
        assert (fig is None) == (view == "results") and 'data-lecture-view="results"' in table
        if view == "results":
            assert hero_html == table
    out = demo.search_ui(QUERY, "hnsw", 2, 32, 3, "sample")
    assert out[1]["visible"] and not out[2]["visible"] and "showing 3" in out[1]["value"].layout.title.text


def test_demo_bad_input(minilm, monkeypatch):
    from demos import vector_search as demo

    for bad, match in (("", "empty"), ("  ", "empty"), ("x" * 5000, "limit")):
        with pytest.raises(gr.Error, match=match):
            demo.search(bad, "results", 4, 16, 0, "sample")
    with pytest.raises(gr.Error, match="nprobe"):
        demo.search(QUERY, "ivf", 80, 16, 0, "sample")
    with pytest.raises(gr.Error, match="k must be"):
        demo.search(QUERY, "results", 4, 16, 0, "sample", 0)
    with pytest.raises(gr.Error, match="not an indexed corpus"):
        demo.search(QUERY, "results", 4, 16, 0, "/etc")
    with pytest.raises(gr.Error, match="whole number"):
        demo.search(QUERY, "results", "four", 16, 0, "sample")
    status, *_ = demo.search(QUERY, "no-such-view", 4, 16, 0, "sample")  # unknown view: the default
    monkeypatch.setattr(corpora, "state", lambda *a, **k: "missing")
    status, *_ = demo.search(QUERY, "results", 4, 16, 0, "stdlib")
    assert "3,000-passage sample" in status and "lecture index" in status


@pytest.mark.slow
def test_demo_through_live_server(live_server, minilm):
    client = live_server.client("vector_search")
    status, hero, hero_html, table, memory = client.predict(
        QUERY, "ivf", 4, 16, 0, "sample", 10, 64, 16, 40, 48, api_name="/search"
    )
    assert "3,000 passages" in status and hero["visible"] and not hero_html["visible"]
    fig = json.loads(hero["value"]["plot"])
    assert "cells probed" in fig["layout"]["title"]["text"] and "data-lecture-view" in table


# ---- the slides' numbers -----------------------------------------------------------------------------------------


def slide(title: str) -> str:
    from lecture.deck import deck_slides

    found = [s for s in deck_slides() if re.search(rf"^# .*{re.escape(title)}", s, re.M | re.I)]
    assert len(found) == 1, f"{len(found)} slides titled with {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_slides_state_the_models_numbers(minilm, sample_trace):
    from demos.vector_search import tradeoff

    d = minilm.config.hidden_size
    built = slide("How vectors are built")
    assert f"{d} numbers" in built and f"{minilm.config.num_hidden_layers} layers" in built
    sweep = tradeoff()
    assert sweep is not None, "record the sweep: lecture vector-sweep"
    n = sweep.n_vectors + sweep.n_queries  # the corpus the recorded numbers come from
    assert f"{n:,} passages" in built
    if sys.version.split()[0] == corpora.sample().meta["python"]:  # the same Python's docstrings: cut them again
        assert len(corpora.stdlib_passages()) == n
    assert f"`nlist` cells ({vs.VectorConfig.default('nlist')} here)" in slide("IVF: search a few cells")
    pq_text = slide("Scalar and product quantisation")
    assert f"{4 * d:,} bytes" in pq_text and f"{d} bytes" in pq_text and "48 bytes" in pq_text
    assert f"{4 * d // 48}x" in pq_text
    measured = slide("Recall, latency, memory")

    def recall(lib, method, value):
        i = [j for j in sweep.rows(lib, method) if sweep.value[j] == value]
        return f"{sweep.recall[i[0]]:.2f}"

    assert f"HNSW at ef 16: recall {recall('ours', 'hnsw', 16)} (FAISS {recall('faiss', 'hnsw', 16)})" in measured
    assert f"IVF at nprobe 4: {recall('ours', 'ivf', 4)} (FAISS {recall('faiss', 'ivf', 4)})" in measured
    assert f"PQ: {recall('ours', 'pq', 48)} (FAISS {recall('faiss', 'pq', 48)})" in measured
    assert f"{sweep.n_vectors:,} passages, {sweep.n_queries} held-out queries" in measured
    slower = [
        sweep.ms_per_query[i] / sweep.ms_per_query[j]
        for m in vs.METHODS
        for i in sweep.rows("ours", m)
        for j in sweep.rows("faiss", m)
        if sweep.value[i] == sweep.value[j]
    ]
    assert f"FAISS (C++) answers {min(slower):.0f}-{max(slower):.0f}x faster per query" in measured
