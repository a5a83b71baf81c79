"""Sparse attention: masks on hand-made sizes, the mask applied to SmolLM2 for real (a window as long as the text is
exactly the full model; a window of one token leaves each query only itself), the recorded window sweep against a
live run, the figures, the slides' claims and the demo."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from architectures import ARCHITECTURES, tiny

from lecture.deck import deck_slides
from toolkit import arch
from toolkit import sparse_attention as sa
from toolkit.trace import Trace, TraceError

SHORT = "Names refer to objects. Names are introduced by name binding operations."


# ---- masks and perplexity by hand ----------------------------------------------------------------------------


def test_sliding_window_by_hand():
    m = sa.mask(5, "sliding", window=2)
    assert m.astype(int).tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
    ]
    assert np.array_equal(sa.mask(5, "full"), np.tril(np.ones((5, 5), dtype=bool)))
    assert np.array_equal(sa.mask(5, "sliding", window=5), sa.mask(5, "full"))
    sinks = sa.mask(5, "sliding", window=2, sinks=1)
    assert sinks[:, 0].all() and sinks[4].astype(int).tolist() == [1, 0, 0, 1, 1]


def test_dilated_and_global_local_by_hand():
    d = sa.mask(7, "dilated", window=2, dilation=2)
    assert np.flatnonzero(d[6]).tolist() == [4, 6] and np.flatnonzero(d[3]).tolist() == [1, 3]
    g = sa.mask(12, "global+local", window=2, sinks=1, random=2, seed=3)
    assert g[:, 0].all()  # the global token
    for q in range(2, 12):  # window 2 + global token + 2 random older keys (when there are that many)
        far = q + 1 - 3
        assert g[q].sum() == 3 + min(2, max(far, 0))
    assert np.array_equal(g, sa.mask(12, "global+local", window=2, sinks=1, random=2, seed=3))
    assert not (np.triu(g, 1)).any()  # still causal
    with pytest.raises(ValueError):
        sa.mask(4, "strided")
    with pytest.raises(ValueError):
        sa.mask(4, "sliding", window=0)


def test_additive_density_oldest_and_perplexity():
    m = sa.mask(4, "sliding", window=2)
    add = sa.additive(m)
    assert add.dtype == np.float32 and (add[m] == 0).all() and (add[~m] == np.finfo(np.float32).min).all()
    assert sa.density(sa.mask(10, "full")) == 1 and sa.density(sa.mask(10, "sliding", window=1)) == 10 / 55
    assert sa.oldest_visible(m).tolist() == [0, 0, 1, 2]
    assert sa.oldest_visible(sa.mask(4, "sliding", window=2, sinks=1), skip=1).tolist() == [-1, 1, 1, 2]
    logp = np.log(np.array([[0.5, 0.5], [0.25, 0.75], [1.0, 1e-300]]))
    losses = sa.maths.nll(logp, np.array([0, 1, 0]))
    assert np.allclose(losses, [math.log(2), math.log(4)])  # p(1 | pos 0) = 0.5, p(0 | pos 1) = 0.25
    assert sa.perplexity(np.array([math.log(4)] * 3)) == pytest.approx(4)
    assert np.allclose(sa.smooth(np.arange(5.0), 2), [0, 0.5, 1.5, 2.5, 3.5])
    assert sa.since(64, 1024) == 64 and sa.since(1024, 1024) == 512


def test_config_checks():
    with pytest.raises(ValueError, match="global token"):
        sa.SparseConfig(pattern="global+local", sinks=0)
    with pytest.raises(ValueError, match="pattern"):
        sa.SparseConfig(pattern="strided")
    assert sa.SparseConfig(pattern="global+local", sinks=2).mask(6)[1:, :2].all()  # row 0 sees only itself


# ---- the mask inside the real model --------------------------------------------------------------------------


def test_a_window_as_long_as_the_text_is_exactly_the_full_model(smol):
    ids = smol.tokenizer(SHORT)["input_ids"]
    x = torch.tensor([ids])
    n = len(ids)
    with torch.no_grad():
        plain = smol.model(input_ids=x).logits
        masked = smol.model(
            input_ids=x, attention_mask=torch.from_numpy(sa.additive(sa.mask(n, "sliding", window=n)))[None, None]
        ).logits
    assert torch.equal(plain, masked)
    trace = sa.capture(smol, SHORT, window=n)
    assert np.array_equal(trace.nll, sa.evaluate(smol, ids, None)["nll"]) and trace.density == 1
    with torch.no_grad():  # the hooks are gone: the model answers as before
        assert torch.equal(smol.model(input_ids=x).logits, plain)


def test_the_mask_really_limits_attention(smol):
    ids = smol.tokenizer(SHORT)["input_ids"]
    out = sa.evaluate(smol, ids, sa.mask(len(ids), "sliding", window=1))
    assert np.allclose(out["oldest"], 1)  # each query sees itself only: all of its attention
    narrow = sa.capture(smol, SHORT, window=2)
    full = sa.capture(smol, SHORT, window=64)
    assert narrow.ppl > full.ppl and not np.allclose(narrow.nll, full.nll)
    assert np.array_equal(narrow.nll[:1], full.nll[:1])  # the first prediction sees 1 token either way


@pytest.mark.parametrize("name", [a for a in ARCHITECTURES if a != "mistral-sw"])
def test_full_window_parity_over_architectures(name):
    """(Mistral's own sliding window would be replaced by the 4-D mask, so it is left out.)"""
    loaded = tiny(name)
    ids = loaded.tokenizer("one two three four five six seven")["input_ids"]
    out = sa.evaluate(loaded, ids, sa.mask(len(ids), "sliding", window=len(ids)))
    assert np.array_equal(out["nll"], sa.evaluate(loaded, ids, None)["nll"])


def test_the_head_runs_a_chunk_at_a_time_and_scores_as_the_whole_logits(smol):
    """arch.token_nll (sparse attention and quantization score texts with it): the vocabulary projection sees at most
    a chunk of positions, and the losses are those of the whole text's logits."""
    x = torch.tensor([smol.tokenizer(sa.python_text())["input_ids"][:300]])
    widths = []
    hook = smol.model.get_output_embeddings().register_forward_hook(lambda m, a, out: widths.append(out.shape[-2]))
    try:
        with torch.no_grad():
            chunked = arch.token_nll(smol.model, x, chunk=128)
    finally:
        hook.remove()
    with torch.no_grad():
        whole = torch.nn.functional.cross_entropy(smol.model(input_ids=x).logits[0, :-1], x[0, 1:], reduction="none")
    assert widths == [1, 1, 128, 128, 43]  # the model's own last position, the check of it, then the chunks
    assert chunked.shape == (299,) and torch.allclose(chunked, whole, rtol=0, atol=1e-5)


def test_a_head_that_does_more_gets_the_whole_logits(smol, monkeypatch):
    """A model whose logits are not its output embedding of the last hidden state (here a soft cap, as Gemma 2's)."""
    x = torch.tensor([smol.tokenizer(SHORT)["input_ids"]])
    plain = smol.model.forward

    def capped(*args, logits_to_keep=0, **kwargs):
        out = plain(*args, logits_to_keep=logits_to_keep, **kwargs)
        out.logits = 5 * torch.tanh(out.logits / 5)
        return out

    monkeypatch.setattr(smol.model, "forward", capped)
    with torch.no_grad():
        ours = arch.token_nll(smol.model, x)
        want = torch.nn.functional.cross_entropy(smol.model(input_ids=x).logits[0, :-1], x[0, 1:], reduction="none")
        uncapped = torch.nn.functional.cross_entropy(plain(input_ids=x).logits[0, :-1], x[0, 1:], reduction="none")
    assert torch.allclose(ours, want, rtol=0, atol=1e-6) and not torch.allclose(ours, uncapped, atol=1e-2)


def test_record_and_its_invariants(smol, tmp_path):
    rec = sa.record(smol, windows=(2, 4, 64), sinks=(0, 2), max_tokens=24)
    assert rec.nll.shape == (2, 3, 23) and rec.first.shape == (2, 3, 30)
    assert np.array_equal(rec.nll[0, 2], rec.full_nll) and rec.ppl[1, 2] == pytest.approx(rec.full_ppl)
    assert rec.text.startswith("Naming and binding")
    back = Trace.load(rec.save(tmp_path / "curves.npz"))
    assert np.array_equal(back.nll, rec.nll) and back.source == "naming"
    with pytest.raises(TraceError, match="full model"):
        dataclasses.replace(rec, full_nll=rec.full_nll + 1).check()


# ---- the committed replay ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def curves():
    return sa.SparseCurveTrace.load(sa.ASSET)


def test_recorded_curves(curves, smol):
    assert len(curves.ids) == sa.TOKENS and list(curves.windows) == list(sa.WINDOWS)
    assert curves.ids.tolist() == smol.tokenizer(sa.python_text())["input_ids"][: sa.TOKENS]
    ppl = curves.ppl
    short = curves.windows < len(curves.ids)
    assert (ppl[1, short] < ppl[0, short]).all()  # sinks help at every window shorter than the text
    assert (np.diff(ppl[0]) < 0).all()  # a wider window, a lower perplexity
    assert ppl[0, -1] == pytest.approx(curves.full_ppl)


@pytest.mark.slow
def test_a_recorded_point_is_what_the_model_computes_now(curves, smol):
    live = sa.capture(smol, None, window=64, sinks=4)
    b = list(curves.windows).index(64)
    assert live.ppl == pytest.approx(curves.ppl[1, b], rel=1e-4)
    assert np.allclose(live.first, curves.first[1, b], atol=1e-4)


# ---- figures and the slides' claims --------------------------------------------------------------------------


def test_figures(curves):
    fig = sa.figures.curves(curves)
    assert [t.name for t in fig.data] == ["window only", "window + 4 sinks"]
    assert np.allclose(fig.data[1].y, curves.ppl[1])
    masks = sa.figures.masks(8, 2, 4, 2)
    z = np.array(masks.data[0].z)  # sliding: window cells 2, sink cells (outside the window) 3
    assert (z == 2).sum() == sum(min(q + 1, 8) for q in range(48))
    assert (z == 3).sum() == sum(1 for q in range(48) for j in range(4) if q - j >= 8)
    assert set(np.unique(np.array(masks.data[2].z))) == {0, 1, 2, 3, 4}  # global+local has random keys
    assert "of pairs" in masks.layout.annotations[0].text
    for f in (sa.figures.sink(curves, 64), sa.figures.loss(curves, 64)):
        assert isinstance(f, go.Figure) and len(f.data) == 3


def _slide(title: str) -> str:
    found = [s for s in deck_slides() if re.search(rf"^# .*{re.escape(title)}", s, re.M)]
    assert len(found) == 1, f"{len(found)} slides titled {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_sinks_slide_states_the_recorded_numbers(curves):
    text = _slide("Attention sinks")
    b = list(curves.windows).index(64)
    assert f"{curves.full_ppl:.1f}" in text and f"{len(curves.ids):,} tokens" in text
    assert f"{curves.ppl[0, b]:.1f}" in text and f"{curves.ppl[1, b]:.1f}" in text


def test_masks_slide_states_the_densities():
    text = _slide("Sparse attention: who sees whom")
    d = sa.density(sa.mask(1024, "sliding", window=64))
    assert f"{100 * d:.0f}%" in text


# ---- the demo ------------------------------------------------------------------------------------------------


def test_demo_views(curves):
    from demos import sparse_attention as demo

    for view in demo.VIEW_NAMES:
        status, fig = demo.show(view, "sliding", 64, 4)
        assert isinstance(fig, go.Figure) and f"{curves.full_ppl:.2f}" in status
    # a window over 24 is drawn as 8: the status says so, with the window its numbers are for
    status, fig = demo.show("masks", "sliding", 64, 4)
    assert fig.layout.title.text.startswith("window 8 ")
    assert "draws 48 tokens with a window of 8" in status and "numbers above are for window 64." in status
    assert "window of" not in demo.show("masks", "sliding", 16, 4)[0]


def test_demo_live_run(smol, curves):
    from demos import sparse_attention as demo

    fake = sa.SparseTrace(
        ids=curves.ids,
        nll=curves.nll[1, 4],
        first=curves.first[1, 4],
        oldest=curves.oldest[1, 4],
        density=0.1,
        config=sa.SparseConfig(window=64, sinks=4).to_dict(),
        source="naming",
    )
    status, fig = demo.show("curves", "sliding", 64, 4, live=fake)
    assert "Live run" in status and fig.data[-1].name.startswith("live")
    with pytest.raises(gr.Error, match="global token"):
        demo.run_live("curves", "global+local", 64, 0)


def test_demo_bad_input(curves):
    from demos import sparse_attention as demo

    for args, match in [
        (("nope", "sliding", 64, 4), "Unknown view"),
        (("curves", "strided", 64, 4), "pattern"),
        (("curves", "sliding", float("nan"), 4), "window"),
        (("curves", "sliding", 64, -1), "sinks"),
    ]:
        with pytest.raises(gr.Error, match=match):
            demo.show(*args)


@pytest.mark.slow
def test_demo_through_live_server(live_server, curves):
    client = live_server.client("sparse_attention")
    status, fig = client.predict("curves", "sliding", 64, 4, 2, 2, 0, api_name="/show")
    assert f"{curves.full_ppl:.2f}" in status
    assert json.loads(fig["plot"])["data"][0]["name"] == "window only"
