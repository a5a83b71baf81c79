"""FlashAttention: the online softmax on hand-made numbers, tiled = eager attention on SmolLM2's real heads (any
block sizes, both loop orders), on MiniLM (bidirectional) and on five tiny architectures, the paper's traffic counts,
the trace, the figures, the slide's claims and the demo."""

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
from toolkit import flash_attention as fa
from toolkit.trace import Trace, TraceError

TEXT = "FlashAttention never writes the attention matrix to memory: it computes it tile by tile."
rng = np.random.default_rng(0)


# ---- the online softmax on hand-made numbers -----------------------------------------------------------------


def test_two_keys_one_at_a_time_by_hand():
    q, k, v = np.array([[1.0, 0.0]]), np.eye(2), np.eye(2)  # scores 1 and 0
    out, tiles = fa.tiled(q, k, v, block_q=1, block_k=1, causal=False, scale=1.0)
    first, second = tiles
    assert first.m[0] == 1 and first.l[0] == 1 and first.rescale[0] == 0  # nothing to rescale yet
    assert np.allclose(first.out[0], [1, 0])  # O = exp(1 - 1) v_0
    assert second.m[0] == 1 and second.rescale[0] == 1  # the max did not move
    assert second.l[0] == pytest.approx(1 + math.exp(-1))
    assert np.allclose(out[0], [math.e / (math.e + 1), 1 / (math.e + 1)])  # softmax([1, 0]) @ I


def test_a_new_maximum_rescales_the_partial_output():
    q, k, v = np.array([[1.0, 0.0]]), np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[1.0], [3.0]])
    out, (a, b) = fa.tiled(q, k, v, 1, 1, causal=False, scale=1.0)
    assert a.m[0] == 0 and a.out[0, 0] == 1
    assert b.m[0] == 2 and b.rescale[0] == pytest.approx(math.exp(-2))
    assert b.l[0] == pytest.approx(math.exp(-2) + 1)
    assert b.out[0, 0] == pytest.approx(math.exp(-2) * 1 + 3)
    w = np.exp([0, 2]) / np.exp([0, 2]).sum()
    assert out[0, 0] == pytest.approx(w @ [1, 3])


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [None, 5])
@pytest.mark.parametrize("blocks", [(1, 1), (3, 5), (16, 16), (7, 64), (40, 2)])
@pytest.mark.parametrize("order", fa.ORDERS)
def test_tiled_equals_eager_on_random_heads(causal, window, blocks, order):
    q, k, v = (rng.standard_normal((37, 8)) * 3 for _ in range(3))
    ref, weights = fa.reference(q, k, v, causal, window=window)
    out, tiles = fa.tiled(q, k, v, *blocks, causal=causal, window=window, order=order)
    assert np.abs(out - ref).max() < 1e-12
    assert np.allclose(weights.sum(-1), 1)
    assert len(tiles) == math.ceil(37 / blocks[0]) * math.ceil(37 / blocks[1])


def test_causal_tiles_above_the_diagonal_are_skipped_and_orders_differ():
    q = k = v = rng.standard_normal((8, 4))
    _, tiles = fa.tiled(q, k, v, 2, 2, causal=True)
    skipped = {(t.i, t.j) for t in tiles if t.skipped}
    assert skipped == {(i, j) for i in range(4) for j in range(4) if j > i}  # 6 of 16
    kv_outer = [(t.i, t.j) for t in tiles]
    assert kv_outer[:4] == [(0, 0), (1, 0), (2, 0), (3, 0)]  # Algorithm 1: key blocks outside
    assert fa.tile_order(4, 4, "q-outer")[:4] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    with pytest.raises(ValueError):
        fa.tile_order(2, 2, "diagonal")
    with pytest.raises(ValueError):
        fa.tiled(q, k, v, 0, 2, causal=True)


# ---- memory traffic: the paper's counts ----------------------------------------------------------------------


def test_traffic_counts_by_hand():
    assert fa.io_standard(4096, 64) == 4 * 4096**2 + 4 * 4096 * 64
    assert fa.block_sizes(2, 16) == (2, 2)  # B_c = ceil(16 / 8), B_r = min(B_c, d)
    # N = 4, d = 2, M = 16: init O, l, m (8 + 8) + K, V once (16) + T_c = 2 blocks x N (3d + 4) = 80
    assert fa.io_flash(4, 2, 16) == 8 + 8 + 16 + 2 * 4 * 10
    assert fa.block_sizes(64, 51_200) == (64, 200)
    with pytest.raises(ValueError):
        fa.block_sizes(64, 100)  # cannot hold one row of Q, K, V, O
    n = [fa.io_flash(4096, 64, m) for m in (10_000, 50_000, 100_000)]
    assert n[0] > n[1] > n[2]  # more on-chip memory, fewer trips
    assert fa.io_standard(8192, 64) / fa.io_flash(8192, 64, 51_200) > 3


def test_counted_tiles_match_the_formula():
    """A bidirectional run with Algorithm 1's block sizes moves exactly io_flash minus the initialisation."""
    d, sram, n = 8, 128, 20
    b_r, b_c = fa.block_sizes(d, sram)
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    _, tiles = fa.tiled(q, k, v, b_r, b_c, causal=False)
    assert fa.io_tiles(tiles, d) + n * d + 2 * n == fa.io_flash(n, d, sram)
    _, causal = fa.tiled(q, k, v, b_r, b_c, causal=True)
    assert fa.io_tiles(causal, d) < fa.io_tiles(tiles, d)  # skipped tiles cost nothing


# ---- SmolLM2, MiniLM and tiny architectures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol_trace(smol):
    return fa.capture(smol, TEXT, layer=3, head=4, block_q=4, block_k=4)


def test_smollm2_head_tiled_equals_eager(smol, smol_trace):
    t = smol_trace
    a = arch.of(smol.model)
    assert t.causal and t.kv_head == 4 // a.group and t.n == 17 and t.n_tiles == 25
    assert int(t.skipped.sum()) == 10 and t.error < 1e-5
    # the same head through torch's own kernel
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(x)[None, None] for x in (t.q, t.k, t.v)), is_causal=True, scale=t.scale
    )[0, 0].numpy()
    assert np.abs(t.output - sdpa).max() < 1e-5
    for blocks in [(1, 1), (3, 5), (17, 2), (64, 64)]:  # any block sizes, both orders, the model's own weights
        for order in fa.ORDERS:
            out, _ = fa.tiled(t.q, t.k, t.v, *blocks, causal=True, scale=t.scale, order=order)
            assert np.abs(out - t.reference).max() < 1e-5


def test_state_after_every_tile_is_the_output(smol_trace):
    m, l, o = smol_trace.state(smol_trace.n_tiles)
    assert np.allclose(o / l[:, None], smol_trace.output, atol=1e-6)
    m0, l0, _ = smol_trace.state(0)
    assert np.isneginf(m0).all() and (l0 == 0).all()
    steps = smol_trace.row_steps(13)
    assert len(steps) == 5 and [int(smol_trace.tile_i[s]) for s in steps] == [3] * 5


def test_layer_and_head_beyond_the_model_are_clamped(smol):
    t = fa.capture(smol, "Short text here.", layer=200, head=99, block_q=2, block_k=2)
    assert (t.layer, t.head) == (29, 8) and t.error < 1e-5


def test_minilm_is_bidirectional_and_exact(minilm):
    t = fa.capture(minilm, TEXT, block_q=3, block_k=5, order="q-outer")
    assert not t.causal and not t.skipped.any() and t.error < 1e-5


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_parity_over_architectures(name):
    loaded = tiny(name)
    t = fa.capture(loaded, "one two three four five six seven eight nine ten", layer=1, head=3, block_q=2, block_k=3)
    assert t.error < 1e-5
    if name == "mistral-sw":  # a sliding window of 4: tiles wholly older than the window are skipped too
        _, causal_only = fa.tiled(t.q, t.k, t.v, 2, 3, causal=True, scale=t.scale)
        assert t.window == 4 and int(t.skipped.sum()) > sum(c.skipped for c in causal_only)


def test_capture_leaves_the_model_alone(smol):
    ids = torch.tensor([smol.tokenizer(TEXT)["input_ids"]])
    with torch.no_grad():
        before = smol.model(input_ids=ids).logits
    fa.capture(smol, TEXT, block_q=8, block_k=8)
    with torch.no_grad():
        after = smol.model(input_ids=ids).logits
    assert torch.equal(before, after)


def test_trace_round_trip_and_invariants(smol_trace, tmp_path):
    back = Trace.load(smol_trace.save(tmp_path / "flash.npz"))
    assert isinstance(back, fa.FlashTrace) and back.tokens == smol_trace.tokens
    assert np.array_equal(back.partial, smol_trace.partial) and back.window is None
    with pytest.raises(TraceError, match="differs from eager"):
        dataclasses.replace(smol_trace, output=smol_trace.output + 1e-3).check()
    with pytest.raises(TraceError, match="tiles"):
        dataclasses.replace(smol_trace, block_q=5).check()


# ---- figures -------------------------------------------------------------------------------------------------


def test_tile_view_fills_in_step_by_step(smol_trace):
    t = smol_trace
    first = fa.figures.tiles(t, 1)
    z = np.array(first.data[0].z, dtype=float)
    assert np.isfinite(z).sum() == 10  # tile (0, 0): the 4 x 4 lower triangle
    last = fa.figures.tiles(t, t.n_tiles)
    z = np.array(last.data[0].z, dtype=float)
    assert np.array_equal(np.isfinite(z), t.mask())
    assert np.allclose(z[t.mask()], t.weights[t.mask()], atol=1e-5)  # exp(s - m) / l = the model's weights
    assert f"{t.n}/{t.n} rows exact" in last.layout.title.text
    row = fa.figures.row(t, 13)
    assert "4 tiles, 1 masked tile skipped" in row.layout.title.text  # row block 3 of 5: tiles (3, 0..3)
    traffic = fa.figures.traffic(64, 4096, 100)
    assert "68 M vs 17.7 M" in traffic.layout.title.text
    for fig in (first, last, row, traffic):
        assert isinstance(fig, go.Figure)
        assert min([fig.layout.font.size, *(a.font.size or 99 for a in fig.layout.annotations)]) >= 16


# ---- the slide's claims --------------------------------------------------------------------------------------


def _slide(title: str) -> str:
    found = [s for s in deck_slides() if re.search(rf"^# .*{re.escape(title)}", s, re.M)]
    assert len(found) == 1, f"{len(found)} slides titled {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_flash_slide_states_the_models_numbers(smol):
    text = _slide("FlashAttention: attention in tiles")
    t = fa.capture(smol, TEXT, layer=3, head=0, block_q=4, block_k=4)
    assert t.error < 1e-6 and "to within $10^{-6}$" in text
    a = arch.of(smol.model)
    scores = a.heads * 4096**2 * 4
    assert f"{a.heads} heads" in text and f"{scores / 1e6:.0f} MB" in text
    assert f"{fa.io_standard(4096, a.head_dim) / 1e6:.0f} M" in text
    assert f"{fa.io_flash(4096, a.head_dim, 100 * 1024 // 2) / 1e6:.1f} M" in text


# ---- the demo ------------------------------------------------------------------------------------------------


def test_demo_views(smol):
    from demos import flash_attention as demo

    for view in demo.VIEW_NAMES:
        status, fig, slider = demo.show(TEXT, view, 3, 4, 4, 9, 12)
        assert "Tiled = eager attention" in status and isinstance(fig, go.Figure)
        assert slider["maximum"] == 25
    status, fig, slider = demo.show(TEXT, "tiles", 3, 4, 4, 999, -5)
    assert slider["value"] == 25  # clamped to the last tile
    assert "block sizes" not in status
    # the traffic figure's block sizes are the paper's for the on-chip memory, not the tiles': the status says so
    status, fig, _ = demo.show(TEXT, "traffic", 3, 4, 4, 9, 12, sram_kb=16)
    b_r, b_c = fa.block_sizes(64, 16 * 1024 // 2)
    assert f"(B_r={b_r}, B_c={b_c})" in fig.layout.title.text
    note = f"paper's block sizes for 16 KB on chip (B_r={b_r}, B_c={b_c}), not the tiles view's B_r × B_c (4×4)"
    assert note in status


def test_demo_bad_input(smol):
    from demos import flash_attention as demo

    for bad, match in [
        (dict(prompt="  "), "empty"),
        (dict(view="nope"), "Unknown view"),
        (dict(block_q=1), "B_r"),
        (dict(layer="x"), "whole number"),
        (dict(sram_kb=1), "on-chip memory"),
    ]:
        args = dict(prompt=TEXT, view="tiles", layer=3, block_q=4, block_k=4, step=3, row=0, **{})
        args.update(bad)
        with pytest.raises(gr.Error, match=match):
            demo.show(**args)
    status, *_ = demo.show("word " * 400, "tiles", 0, 8, 8, 1, 1)
    assert "the first 64 are used" in status
    status, *_ = demo.show("<b>x</b> 🤖\u200b", "tiles", 0, 2, 2, 1, 1)
    assert "Tiled = eager" in status


@pytest.mark.slow
def test_demo_through_live_server(live_server):
    client = live_server.client("flash_attention")
    status, fig, slider = client.predict(
        TEXT, "tiles", 3, 4, 4, 9, 12, 0, "kv-outer", 64, 100, "smollm2-135m", api_name="/show"
    )
    assert "25 tiles of 4×4" in status
    plot = json.loads(fig["plot"])
    assert plot["data"][0]["type"] == "heatmap" and "step 9/25" in plot["layout"]["title"]["text"]
