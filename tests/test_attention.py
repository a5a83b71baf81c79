"""Attention capture, views, bertviz export and the demo: parity with transformers on the real embedded models and
on tiny random models of five architectures (grouped-query, multi-head, multi-query, q/k/v bias, sliding window)."""

from __future__ import annotations

import json
import math
import re

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from architectures import ARCHITECTURES, tiny

from toolkit import attention as att
from toolkit import hooks
from toolkit.attention import AttentionTrace, bertviz
from toolkit.attention import figures as plots
from toolkit.trace import TraceError

DECK = "The animal didn't cross the street because it was too tired"


def reference_attentions(model, ids) -> np.ndarray:
    """transformers' own output_attentions (eager), stacked to (layer, head, query, key)."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    return np.stack([a[0].numpy() for a in out.attentions])


@pytest.fixture(scope="module")
def smol_trace(smol):
    return att.capture(smol, DECK)


@pytest.fixture(scope="module")
def minilm_trace(minilm):
    return att.capture(minilm, DECK)


@pytest.fixture(scope="module")
def gen_trace(smol):
    return att.generate(smol, "The capital of France is", new_tokens=4, qkv=True)


# ---- capture: parity with transformers -------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["smol", "minilm"])
def test_captured_weights_equal_output_attentions(which, request):
    loaded = request.getfixturevalue(which)
    trace = request.getfixturevalue(f"{which}_trace")
    ref = reference_attentions(loaded.model, trace.meta["ids"])
    assert trace.weights.shape == ref.shape
    np.testing.assert_allclose(trace.weights, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["smol_trace", "minilm_trace"])
def test_softmax_of_captured_q_k_reproduces_weights(name, request):
    trace = request.getfixturevalue(name)
    np.testing.assert_allclose(att.recompute(trace), trace.weights, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_parity_over_architectures(name):
    """Weights equal output_attentions, softmax(QKᵀ/√d + M) of the captured post-RoPE q, k reproduces them (the
    sliding window included), K and V follow the key/value head map, and capturing leaves the logits unchanged."""
    loaded = tiny(name)
    text = "one two three four five six seven eight nine ten eleven"
    trace = att.capture(loaded, text)
    ids = trace.meta["ids"]
    np.testing.assert_allclose(trace.weights, reference_attentions(loaded.model, ids), atol=1e-6, rtol=0)
    np.testing.assert_allclose(att.recompute(trace), trace.weights, atol=1e-5, rtol=0)
    cfg = loaded.model.config
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    assert trace.kv_head.tolist() == [h // group for h in range(cfg.num_attention_heads)]
    assert trace.meta["qk"] == "post-rope"
    if name == "mistral-sw":
        assert trace.meta["sliding_window"] == 4 and trace.weights[:, :, 9, :6].max() == 0  # beyond the window
    with torch.no_grad():
        plain = loaded.model(input_ids=torch.tensor([ids])).logits
        with hooks.Hooks() as h:
            h.output("q", loaded.model.model.layers[0].self_attn.q_proj)
            hooked = loaded.model(input_ids=torch.tensor([ids])).logits
    assert torch.equal(plain, hooked) and len(h["q"]) == 1


def test_smol_q_k_are_post_rope(smol, smol_trace):
    """Pre-RoPE projections would not reproduce the weights: the captured ones are the rotated vectors."""
    assert smol_trace.meta["qk"] == "post-rope"
    layer, head = 3, 0
    with hooks.Hooks() as h, torch.no_grad():
        h.output("q", smol.model.model.layers[layer].self_attn.q_proj)
        smol.model(input_ids=torch.tensor([smol_trace.meta["ids"]]))
    q_pre = h["q"][0][0].view(len(smol_trace.tokens), 9, 64)[:, head].numpy()  # (pos, head_dim)
    assert np.allclose(q_pre[0], smol_trace.q[layer, head, 0], atol=1e-5)  # position 0: rotation by angle 0
    assert not np.allclose(q_pre[5], smol_trace.q[layer, head, 5], atol=1e-3)  # later positions are rotated
    norms = np.linalg.norm(q_pre, axis=-1), np.linalg.norm(smol_trace.q[layer, head], axis=-1)
    np.testing.assert_allclose(*norms, rtol=1e-4)  # a rotation keeps lengths


def test_logits_unchanged_and_hooks_removed(smol, minilm):
    """Capturing changes nothing, and once the block is left (normally or by an error) its hooks are gone: a later
    forward pass of the same thread records nothing (a hook left registered would record it)."""
    from toolkit.qkv import QkvTap

    ids = torch.tensor([smol.tokenizer(DECK)["input_ids"]])
    with torch.no_grad():
        plain = smol.model(input_ids=ids).logits
        with QkvTap(smol.model) as tap:
            hooked = smol.model(input_ids=ids).logits
        assert tap.calls == 1
        assert torch.equal(plain, hooked)
        after = smol.model(input_ids=ids).logits
    assert torch.equal(plain, after)
    assert tap.calls == 1  # nothing recorded once the block is left
    with pytest.raises(RuntimeError), QkvTap(minilm.model) as enc_tap:
        raise RuntimeError("boom")
    with torch.no_grad():
        minilm.model(input_ids=torch.tensor([[101, 2023, 102]]))
    assert enc_tap.calls == 0  # removed on errors too


def test_gqa_is_explicit(smol_trace, minilm_trace):
    assert smol_trace.kv_head.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert np.array_equal(smol_trace.k[:, 0], smol_trace.k[:, 2])  # heads 0-2 read kv head 0
    assert not np.allclose(smol_trace.k[:, 0], smol_trace.k[:, 3])
    assert not np.allclose(smol_trace.q[:, 0], smol_trace.q[:, 1])  # query heads stay distinct
    assert minilm_trace.kv_head.tolist() == list(range(12))


def test_tokens_as_split_and_trace_kinds(smol_trace, minilm_trace):
    assert smol_trace.tokens[:3] == ["The", " animal", " didn"] and smol_trace.causal
    assert minilm_trace.tokens[0] == "[CLS]" and minilm_trace.tokens[-1] == "[SEP]" and not minilm_trace.causal
    assert smol_trace.weights.shape == (30, 9, 12, 12) and smol_trace.q.shape == (30, 9, 12, 64)
    assert minilm_trace.weights.shape == (6, 12, 15, 15) and minilm_trace.v.shape == (6, 12, 15, 32)
    assert np.triu(minilm_trace.weights, 1).max() > 0.01  # the encoder looks ahead


def test_truncation_is_flagged(smol):
    trace = att.capture(smol, "one two three four five six seven", max_tokens=4, qkv=False)
    assert len(trace.tokens) == 4 and trace.truncated and trace.meta["n_tokens_in_text"] == 7 and trace.q is None
    assert not att.capture(smol, "short", max_tokens=4, qkv=False).truncated
    with pytest.raises(ValueError, match="max_tokens"):
        att.capture(smol, "short", max_tokens=100_000)


def test_trace_round_trip(tmp_path, gen_trace):
    path = gen_trace.save(tmp_path / "gen.npz")
    back = AttentionTrace.load(path)
    assert back.tokens == gen_trace.tokens and back.n_prompt == gen_trace.n_prompt
    np.testing.assert_array_equal(back.weights, gen_trace.weights)
    bad = AttentionTrace(
        tokens=["a", "b"], weights=np.full((1, 1, 2, 2), 0.5, np.float32), kv_head=np.zeros(1, int), causal=True
    )
    with pytest.raises(TraceError, match="future"):
        bad.check()


# ---- generation ------------------------------------------------------------------------------------------------


def test_generation_records_each_new_token(smol, gen_trace):
    n_prompt = gen_trace.n_prompt
    assert n_prompt == 5 and len(gen_trace.tokens) == n_prompt + 4
    ids = torch.tensor([gen_trace.meta["ids"][:n_prompt]])
    with torch.no_grad():
        ref = smol.model.generate(ids, max_new_tokens=4, do_sample=False)[0].tolist()
    assert gen_trace.meta["ids"] == ref  # the same greedy tokens as transformers' generate
    full = reference_attentions(smol.model, ref)  # one forward over everything: causal rows must agree
    np.testing.assert_allclose(gen_trace.weights, full, atol=1e-4)
    np.testing.assert_allclose(att.recompute(gen_trace), gen_trace.weights, atol=1e-5)
    assert gen_trace.meta["generated"][0] == " Paris"


# ---- the maths on hand-made tensors ----------------------------------------------------------------------------


def test_attention_steps_known_answer():
    q = k = np.array([[1.0, 0.0], [0.0, 2.0]])
    v = np.array([[1.0, 0.0], [0.0, 1.0]])
    s = att.attention_steps(q, k, v, causal=True)
    np.testing.assert_allclose(s["scores"], [[1, 0], [0, 4]])
    np.testing.assert_allclose(s["scaled"], np.array([[1, 0], [0, 4]]) / math.sqrt(2))
    assert s["masked"][0, 1] == -np.inf
    w1 = 1 / (1 + math.exp(4 / math.sqrt(2)))  # row 1: softmax([0, 4/√2])
    np.testing.assert_allclose(s["weights"], [[1, 0], [w1, 1 - w1]])
    np.testing.assert_allclose(s["output"], s["weights"])  # V = identity
    both = att.attention_steps(q, k, v, causal=False)
    assert both["weights"][0, 1] > 0


def test_head_stats_and_pairs_on_known_patterns():
    n = 5
    prev = np.zeros((n, n))
    prev[0, 0] = 1
    prev[np.arange(1, n), np.arange(n - 1)] = 1  # previous-token head
    sink = np.zeros((n, n))
    sink[:, 0] = 1  # attention-sink head
    w = np.stack([prev, sink])[None].astype(np.float32)  # (1 layer, 2 heads, n, n)
    trace = AttentionTrace(tokens=["The", " cat", " saw", " it", " run"], weights=w, kv_head=np.arange(2), causal=True)
    stats = att.head_stats(trace.check())
    np.testing.assert_allclose(stats["previous"][0], [1, 0.25])  # row 1 of the sink head is also "previous"
    np.testing.assert_allclose(stats["first"][0], [0.25, 1])
    np.testing.assert_allclose(stats["entropy"][0], [0, 0], atol=1e-12)
    pair = att.pair_attention(trace, "it", ["saw", "cat"])
    assert pair["query"] == 3 and pair["keys"] == [2, 1]
    assert pair["top"]["saw"][0][:2] == (0, 0)  # the previous-token head sends "it" to "saw"


def test_deck_sentence_it_heads(minilm_trace, smol_trace):
    pair = att.pair_attention(minilm_trace, "it", ["animal", "tired"])
    assert pair["weights"].shape == (2, 6, 12)
    assert pair["top"]["animal"][0][2] > 0.3 and pair["top"]["tired"][0][2] > 0.3  # both kinds of head exist
    causal = att.pair_attention(smol_trace, "it", ["animal", "tired"])
    assert causal["weights"][1].max() == 0  # a decoder cannot look ahead to "tired"
    with pytest.raises(ValueError, match="no token"):
        att.find_token(smol_trace, "zebra")


# ---- views -----------------------------------------------------------------------------------------------------


def test_head_heatmap_draws_mask_as_masked(smol_trace):
    fig = plots.head_heatmap(smol_trace, 3, 2)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (12, 12)
    assert np.isnan(z[np.triu_indices(12, 1)]).all() and not np.isnan(z[np.tril_indices(12)]).any()
    assert fig.layout.plot_bgcolor == plots.style.MASKED
    assert list(fig.layout.xaxis.ticktext) == [plots.label(t) for t in smol_trace.tokens]
    clamped = plots.head_heatmap(smol_trace, 99, -3)
    assert clamped.layout.title.text.startswith("layer 29, head 0")


def test_layer_and_model_views_shapes(smol_trace, minilm_trace):
    fig = plots.layer_heads(smol_trace, 3)
    assert len(fig.data) == 9 and all(np.asarray(t.z).shape == (12, 12) for t in fig.data)
    assert fig.layout.xaxis9.domain is not None
    mv = plots.model_view(smol_trace, selected=(3, 2))
    assert np.asarray(mv.data[0].z).shape == (9 * 12, 30 * 12)  # (head·s, layer·s), s = min(tokens, 16)
    assert mv.layout.shapes[-1].x0 == 2.5 and mv.layout.shapes[-1].y0 == 1.5  # the open head outlined
    enc = plots.model_view(minilm_trace)
    codes = np.asarray(mv.data[0].z)  # uint8: 0 = masked, 1..255 = weight
    assert codes.dtype == np.uint8 and (codes[:12, :12][np.triu_indices(12, 1)] == 0).all()
    assert (codes[:12, :12][np.tril_indices(12)] > 0).all()
    assert np.asarray(enc.data[0].z).shape == (12 * 15, 6 * 15) and (np.asarray(enc.data[0].z) > 0).all()


def test_lines_view_overlays_heads(smol_trace):
    fig = plots.lines_view(smol_trace, 13, [2, 8], query=8)
    heads = {t.legendgroup for t in fig.data if t.mode == "lines"}
    assert heads == {"2", "8"}
    colours = {t.legendgroup: t.line.color for t in fig.data if t.mode == "lines"}
    assert colours["2"] != colours["8"]
    assert all(t.y[0] == 8 and t.y[1] <= 8 for t in fig.data if t.mode == "lines")  # causal: keys up to "it"


def test_step_by_step_numbers(smol_trace, minilm_trace):
    fig = plots.step_by_step(smol_trace, 3, 2, max_tokens=6)
    assert len(fig.data) == 8
    soft = np.asarray(fig.data[6].z, dtype=float)
    np.testing.assert_allclose(np.nan_to_num(soft), smol_trace.weights[3, 2, :6, :6], atol=1e-5)
    assert fig.data[5].text[0][1] == "−∞"
    out = np.asarray(fig.data[7].z)
    ref = smol_trace.weights[3, 2] @ smol_trace.v[3, 2]
    np.testing.assert_allclose(out, ref[:6, :6], atol=1e-4)
    assert "max diff" in fig.layout.title.text
    assert plots.step_by_step(minilm_trace, 0, 0).data[5].text[0][1] != "−∞"  # an encoder has no mask
    with pytest.raises(ValueError, match="no Q"):
        plots.step_by_step(AttentionTrace(["a"], np.ones((1, 1, 1, 1), np.float32), np.zeros(1, int), True), 0, 0)


def test_summary_pairs_encdec_and_generation_views(smol_trace, minilm_trace, gen_trace):
    summary = plots.head_summary(smol_trace, dark=True)
    assert len(summary.data) == 4 and np.asarray(summary.data[0].z).shape == (30, 9)
    pair = plots.pair_heads(minilm_trace)
    assert len(pair.data) == 2 and len(pair.layout.shapes) == 6
    masked = plots.pair_heads(smol_trace)
    assert "masked" in masked.layout.annotations[1].text and np.isnan(np.asarray(masked.data[1].z)).all()
    ed = plots.encoder_vs_decoder(minilm_trace, smol_trace, (2, 29), (1, 8))
    assert np.asarray(ed.data[0].z).shape == (15, 15) and np.asarray(ed.data[1].z).shape == (12, 12)
    assert not np.isnan(np.asarray(ed.data[0].z)).any() and np.isnan(np.asarray(ed.data[1].z)).any()
    gen = plots.generation_view(gen_trace, 5, 0)
    steps = gen.layout.sliders[0].steps
    assert len(steps) == 4
    last = steps[-1].args[0]["y"][0]
    np.testing.assert_allclose(last, gen_trace.weights[5, 0, -1], atol=1e-4)
    with pytest.raises(ValueError, match="generation"):
        plots.generation_view(smol_trace, 0)


# ---- bertviz export --------------------------------------------------------------------------------------------


def test_bertviz_export_is_offline(smol_trace):
    page = bertviz.head_view(smol_trace, layers=[0, 1])
    assert not re.search(r"<script[^>]+src=[\"']?https?:", page, re.I)
    assert "cdnjs" not in page and "require.config({});" in page
    assert "d3js.org v5.7.0" in page and "jQuery v3.7.1" in page
    assert '"include_layers": [0, 1]' in page
    model = bertviz.model_view(smol_trace, layers=[0])
    assert not re.search(r"<script[^>]+src=[\"']?https?:", model, re.I) and "cdnjs" not in model
    frame = bertviz.iframe(page)
    assert frame.startswith("<iframe srcdoc=") and "<script" not in frame.split('srcdoc="')[1][:20]


# ---- demo --------------------------------------------------------------------------------------------------------


def test_demo_handlers_every_view(smol, minilm):
    from demos import attention as demo

    assert isinstance(demo.demo, gr.Blocks)
    for view in demo.VIEW_NAMES:
        notice, main, second, frame = demo.show(
            DECK, "smollm2-135m", 3, 2, "it", view, keys="animal, tired", new_tokens=3
        )
        assert "smollm2-135m" in notice
        assert main is not None or frame, view
        if view == "overview":
            assert isinstance(main, go.Figure) and isinstance(second, go.Figure)
            assert len(main.to_json()) + len(second.to_json()) < 120_000  # a small payload at 12 tokens
        if view == "bertviz":
            assert frame.startswith("<iframe")
    layer, head, view, notice, main, second, tabs, frame = demo.open_clicked(
        "17,6,1795655305800", DECK, "smollm2-135m", 0, 0, "it", "head", "", "animal, tired", 8, 256
    )
    assert (layer, head, view) == (17, 6, "overview") and frame["visible"] is False
    assert "layer 17" in main["value"].layout.title.text and second["value"].layout.shapes[-1].x0 == 16.5
    with pytest.raises(gr.Error, match="clicked"):
        demo.open_clicked("nowhere", DECK, "smollm2-135m", 0, 0, "it", "head", "", "", 8, 256)
    enc = demo.show(DECK, "minilm-l6", 1, 1, "it", "encoder-decoder")
    assert isinstance(enc[1], go.Figure) and "bidirectional" in enc[0]


def test_demo_bad_input(smol):
    from demos import attention as demo

    for text in ("", "   \n"):
        with pytest.raises(gr.Error, match="empty"):
            demo.show(text, "smollm2-135m", 0, 0, "it", "overview")
    with pytest.raises(gr.Error, match="limit"):
        demo.show("x" * 30_000, "smollm2-135m", 0, 0, "it", "overview")
    with pytest.raises(gr.Error, match="could not load"):
        demo.show(DECK, "no/such-model-here", 0, 0, "it", "overview")
    with pytest.raises(gr.Error, match="whole number"):
        demo.show(DECK, "smollm2-135m", "three", 0, "it", "head")
    with pytest.raises(gr.Error, match="encoder"):
        demo.show(DECK, "minilm-l6", 0, 0, "it", "generation")
    notice, main, *_ = demo.show(DECK, "smollm2-135m", 99, -4, "zebra", "lines")
    assert "layer 29" in notice and "head 0" in notice and "zebra" in notice and main is not None
    notice, *_ = demo.show("word " * 400, "smollm2-135m", 0, 0, "", "head", max_tokens=32)
    assert "only the first 32" in notice
    notice, *_ = demo.show("word " * 400, "smollm2-135m", 0, 0, "", "generation", new_tokens=2, max_tokens=32)
    assert "only the first 30" in notice  # the prompt leaves room for the new tokens
    notice, main, *_ = demo.show("héllo 🤖\u200b ∑ \x00 عربى", "smollm2-135m", 0, 0, "🤖", "head")
    assert isinstance(main, go.Figure)
    notice, *_ = demo.show(DECK, "smollm2-135m", 0, 0, "it", "no-such-view")  # unknown view: the default
    assert "smollm2" in notice


@pytest.mark.slow
def test_demo_through_live_server(live_server):
    client = live_server.client("attention")
    notice, main, second, frame = client.predict(
        DECK, "smollm2-135m", 2, 1, "it", "head", "", "animal, tired", 4, 64, api_name="/show"
    )
    assert "smollm2-135m" in notice and "12 tokens" in notice
    fig = json.loads(main["value"]["plot"])  # the page gets updates: unused outputs are hidden
    assert (
        main["visible"] and fig["data"][0]["type"] == "heatmap" and "layer 2, head 1" in fig["layout"]["title"]["text"]
    )
    assert second["visible"] is False and frame["visible"] is False
