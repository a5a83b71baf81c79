"""RoPE and sinusoidal PE: worked numbers, the relative-position property, parity with transformers' rotary code
on SmolLM2 and on tiny random llama configs (every scaling type), the figures, and the demo."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from architectures import ARCHITECTURES, tiny
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from toolkit import models, rope
from toolkit.rope import RopeTrace
from toolkit.rope import figures as plots
from toolkit.trace import TraceError

TEXT = "The cat sat on the mat because the cat was tired after chasing the mouse all day."
rng = np.random.default_rng(0)


# ---- pure maths on hand-made vectors -------------------------------------------------------------------------


def test_inv_freq_is_theta_to_the_minus_2i_over_d():
    assert np.allclose(rope.inv_freq(10_000, 8), [1, 0.1, 0.01, 0.001], rtol=1e-12)
    assert np.allclose(rope.wavelengths([1.0, 0.5]), [2 * math.pi, 4 * math.pi])
    for bad in ((1.0, 8), (0.5, 8), (10_000, 7), (10_000, 0)):
        with pytest.raises(ValueError):
            rope.inv_freq(*bad)


def test_worked_2d_rotation():
    # one pair, theta_0 = pi/6 per position: position 2 turns (1, 0) by 60 degrees
    out = rope.rotate(np.array([[1.0, 0.0]]), np.array([2]), np.array([math.pi / 6]))
    assert np.allclose(out, [[0.5, math.sqrt(3) / 2]])
    # the deck's formula: q'0 = q0 cos - q1 sin, q'1 = q0 sin + q1 cos; (3, 4) turned 90 degrees is (-4, 3)
    assert np.allclose(rope.rotate(np.array([[3.0, 4.0]]), np.array([1]), np.array([math.pi / 2])), [[-4, 3]])
    # position 0 leaves the vector alone
    x = rng.standard_normal((1, 8))
    assert np.array_equal(rope.rotate(x, np.array([0]), rope.inv_freq(100, 8)), x)


@pytest.mark.parametrize("layout", rope.LAYOUTS)
def test_norms_preserved(layout):
    x = rng.standard_normal((3, 50, 64))  # (head, pos, d)
    y = rope.rotate(x, np.arange(50), rope.inv_freq(10_000, 64), layout)
    assert np.allclose(np.linalg.norm(x, axis=-1), np.linalg.norm(y, axis=-1), rtol=1e-12)
    assert np.allclose(rope.pair_norms(x, layout), rope.pair_norms(y, layout), rtol=1e-12)
    assert not np.allclose(x[:, 1:], y[:, 1:])  # it did rotate


@pytest.mark.parametrize("layout", rope.LAYOUTS)
@pytest.mark.parametrize("shift", [1, 7, 500, 10_000])
def test_score_depends_on_relative_position_only(layout, shift):
    d, freqs = 32, rope.inv_freq(10_000, 32)
    q, k = rng.standard_normal(d), rng.standard_normal(d)
    for m, n in ((3, 1), (0, 9), (40, 40)):
        pos = np.array([m, n, m + shift, n + shift])
        rq = rope.rotate(np.stack([q] * 4), pos, freqs, layout)
        rk = rope.rotate(np.stack([k] * 4), pos, freqs, layout)
        assert rq[0] @ rk[1] == pytest.approx(rq[2] @ rk[3], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("layout", rope.LAYOUTS)
def test_rotation_matrices_are_orthogonal_and_compose(layout):
    freqs = rope.inv_freq(10_000, 16)
    R3, R10 = rope.rotation_matrix(3, freqs, layout), rope.rotation_matrix(10, freqs, layout)
    assert np.allclose(R3 @ R3.T, np.eye(16)) and np.linalg.det(R3) == pytest.approx(1.0)
    assert np.allclose(R3.T @ R10, rope.rotation_matrix(7, freqs, layout))  # R(m)^T R(n) = R(n - m)
    x = rng.standard_normal(16)
    assert np.allclose(rope.rotate(x[None], np.array([10]), freqs, layout)[0], R10 @ x)


def test_half_and_adjacent_layouts_agree_after_the_permutation():
    d, freqs = 64, rope.inv_freq(100_000, 64)
    P = rope.half_to_adjacent(d)
    assert sorted(P) == list(range(d)) and list(P[:4]) == [0, 32, 1, 33]
    q, k = rng.standard_normal((20, d)), rng.standard_normal((20, d))  # (pos, d) in the half layout
    pos = np.arange(20)
    qh, kh = rope.rotate(q, pos, freqs, "half"), rope.rotate(k, pos, freqs, "half")
    qa, ka = rope.rotate(q[:, P], pos, freqs, "adjacent"), rope.rotate(k[:, P], pos, freqs, "adjacent")
    assert np.allclose(qh[:, P], qa)
    assert np.allclose(qh @ kh.T, qa @ ka.T)  # identical attention scores


def test_half_layout_is_transformers_rotate_half():
    d, T = 64, 30
    freqs = rope.inv_freq(10_000, d).astype(np.float32)
    q = torch.randn(1, 4, T, d)
    k = torch.randn(1, 2, T, d)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * torch.from_numpy(freqs)[None]  # (T, d/2)
    emb = torch.cat([ang, ang], -1)[None]  # (1, T, d), as LlamaRotaryEmbedding builds it
    hq, hk = apply_rotary_pos_emb(q, k, emb.cos(), emb.sin())
    assert np.allclose(rope.rotate(q.numpy(), np.arange(T), freqs, "half"), hq.numpy(), atol=1e-5)
    assert np.allclose(rope.rotate(k.numpy(), np.arange(T), freqs, "half"), hk.numpy(), atol=1e-5)


def test_sinusoidal_pe_formula():
    d = 6
    pe = rope.sinusoidal(5, d)
    for pos in range(5):
        for i in range(d // 2):
            assert pe[pos, 2 * i] == pytest.approx(math.sin(pos / 10_000 ** (2 * i / d)))
            assert pe[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10_000 ** (2 * i / d)))
    assert np.allclose(pe[0], [0, 1] * 3)
    assert rope.sinusoidal(3, 5).shape == (3, 5)  # odd d: last column is a sine


def test_relative_grid_is_constant_on_diagonals_and_additive_is_not():
    q, k, freqs = rng.standard_normal(16), rng.standard_normal(16), rope.inv_freq(10_000, 16)
    S = rope.relative_scores(q, k, freqs, 12)
    for off in range(-10, 11):
        assert np.ptp(np.diagonal(S, off)) < 1e-9
    A = rope.additive_scores(q, k, 12)
    assert max(np.ptp(np.diagonal(A, off)) for off in range(-10, 11)) > 0.1


def test_long_range_decay():
    freqs = rope.inv_freq(10_000, 128)
    r = np.arange(0, 257)
    bound = rope.decay_bound(r, freqs)
    assert bound[0] == pytest.approx((64 + 1) / 2)  # S_j = j at r = 0
    assert bound[200:].mean() < 0.5 * bound[0]
    matched = rope.matched_decay(r, freqs)
    assert matched[0] == pytest.approx(1.0) and matched[200:].mean() < 0.6


# ---- context extension: transformers' own functions ----------------------------------------------------------


def test_scaled_frequencies_follow_each_recipe():
    theta, d, ctx, f = 100_000.0, 64, 2048, 4.0
    base = rope.inv_freq(theta, d)
    default = rope.scaled_frequencies(theta, d, "default", 1.0, ctx)
    assert np.allclose(default.inv_freq, base, rtol=1e-6) and default.context == ctx
    linear = rope.scaled_frequencies(theta, d, "linear", f, ctx)
    assert np.allclose(linear.inv_freq, base / f, rtol=1e-6) and linear.context == ctx * f
    dynamic = rope.scaled_frequencies(theta, d, "dynamic", f, ctx)  # NTK: a bigger base at f x context tokens
    new_base = theta * (f * f - (f - 1)) ** (d / (d - 2))
    assert np.allclose(dynamic.inv_freq, rope.inv_freq(new_base, d), rtol=1e-5)
    llama3 = rope.scaled_frequencies(theta, d, "llama3", f, ctx)
    wl = rope.wavelengths(base)
    assert np.allclose(llama3.inv_freq[wl < ctx / 4], base[wl < ctx / 4], rtol=1e-6)  # fast pairs untouched
    assert np.allclose(llama3.inv_freq[wl > ctx], base[wl > ctx] / f, rtol=1e-6)  # slow pairs slowed f times
    yarn = rope.scaled_frequencies(theta, d, "yarn", f, ctx)
    assert yarn.inv_freq[0] == pytest.approx(base[0]) and yarn.inv_freq[-1] == pytest.approx(base[-1] / f)
    assert yarn.attention_scaling == pytest.approx(0.1 * math.log(f) + 1)
    with pytest.raises(ValueError):
        rope.scaled_frequencies(theta, d, "cubic", f, ctx)
    with pytest.raises(ValueError):
        rope.scaled_frequencies(theta, d, "linear", 0.5, ctx)


# ---- capture from SmolLM2: parity with transformers ----------------------------------------------------------


def encode(loaded, text):
    return torch.tensor([loaded.tokenizer(text)["input_ids"]])


@pytest.fixture(scope="module")
def smol_run(smol):
    ids = encode(smol, TEXT)
    trace, out = rope.capture_ids(smol, ids)
    return smol, ids, trace, out


def _reference_rotation(model, q_pre, k_pre, T):
    cos, sin = model.model.rotary_emb(torch.zeros(1), torch.arange(T)[None])  # (1, T, d)
    return apply_rotary_pos_emb(torch.from_numpy(q_pre), torch.from_numpy(k_pre), cos, sin)


def test_capture_shapes_and_frequencies(smol_run):
    smol, ids, trace, _ = smol_run
    T = ids.shape[1]
    assert trace.q_pre.shape == (30, 9, T, 64) and trace.k_pre.shape == (30, 3, T, 64)
    assert len(trace.tokens) == T and trace.embed.shape == (T, 576)
    assert np.allclose(trace.inv_freq, rope.inv_freq(100_000, 64), rtol=1e-6)
    assert np.array_equal(trace.inv_freq, smol.model.model.rotary_emb.inv_freq.numpy())
    assert trace.meta["model"] == "smollm2-135m" and trace.meta["rope_theta"] == 100_000
    f = rope.frequencies(smol.config)
    assert f.rope_type == "default" and f.context == 8192
    assert np.allclose(f.inv_freq, smol.model.model.rotary_emb.inv_freq.numpy(), rtol=1e-6)


def test_rotation_matches_transformers_apply_rotary_pos_emb(smol_run):
    smol, ids, trace, _ = smol_run
    hq, hk = _reference_rotation(smol.model, trace.q_pre, trace.k_pre, ids.shape[1])
    assert np.abs(trace.q_post - hq.numpy()).max() < 1e-5
    assert np.abs(trace.k_post - hk.numpy()).max() < 1e-5


def test_keys_match_the_models_kv_cache(smol_run):
    smol, ids, trace, _ = smol_run
    with torch.no_grad():
        cache = smol.model(input_ids=ids, use_cache=True).cache
    keys = np.stack([layer.keys[0].numpy() for layer in cache.layers])  # (layer, kv_head, T, d), post-RoPE
    assert np.abs(trace.k_post - keys).max() < 1e-5


def test_attention_recomputed_from_rotated_qk_equals_output_attentions(smol_run):
    smol, ids, trace, _ = smol_run
    with torch.no_grad():
        ref = smol.model(input_ids=ids, output_attentions=True, use_cache=False).attentions
    A = _attention(trace)
    assert np.abs(A - np.stack([a[0].numpy() for a in ref])).max() < 1e-5


def _attention(trace: RopeTrace) -> np.ndarray:
    q = torch.from_numpy(trace.q_post)  # (layer, head, T, d)
    group = trace.q_pre.shape[1] // trace.k_pre.shape[1]
    k = torch.from_numpy(trace.k_post).repeat_interleave(group, dim=1)  # (layer, head, T, d)
    T, d = q.shape[2], q.shape[3]
    s = q @ k.transpose(-1, -2) / math.sqrt(d)  # (layer, head, T, T)
    s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    return s.softmax(-1).numpy()


def test_capture_holds_no_attention_weights_and_no_logits_it_does_not_use(smol):
    from toolkit import qkv

    ids = encode(smol, TEXT)
    with torch.no_grad(), qkv.QkvTap(smol.model, weights=False) as tap:
        smol.model(input_ids=ids, use_cache=False)
    assert all(rec["weights"] is None for layer in tap.layers for rec in tap.hooks[f"{layer.index}.attn"])
    trace, out = rope.capture_ids(smol, ids, all_logits=False)  # what the demo's capture asks for
    assert out.logits.shape[1] == 1
    full, _ = rope.capture_ids(smol, ids)
    np.testing.assert_array_equal(trace.q_post, full.q_post)  # the trace is the same either way


def test_capture_does_not_change_logits(smol_run):
    smol, ids, _, out = smol_run
    with torch.no_grad():
        plain = smol.model(input_ids=ids, use_cache=False).logits
    assert torch.allclose(out.logits, plain, atol=1e-6, rtol=0)


def test_hooks_are_removed_even_when_the_forward_fails(smol):
    from toolkit.hooks import Hooks

    seen = []
    with pytest.raises(IndexError), Hooks() as h:  # an id beyond the vocabulary fails inside the forward
        h.output("q", smol.model.model.layers[0].self_attn.q_proj, lambda *a: seen.append(1))
        smol.model(input_ids=torch.tensor([[10**9]]))
    with torch.no_grad():
        smol.model(input_ids=torch.tensor([[1, 2, 3]]))
    assert seen == []  # the hook was removed by the failing block: the later forward recorded nothing
    with pytest.raises(IndexError):
        rope.capture_ids(smol, torch.tensor([[10**9]]), tokens=["x"])
    trace, _ = rope.capture_ids(smol, torch.tensor([[1, 2, 3]]))
    assert trace.q_pre.shape[2] == 3


def test_concurrent_forwards_do_not_leak_into_a_capture(smol):
    """Demos share one model: a forward another thread runs mid-capture must not land in this trace."""
    import threading

    ids_a = encode(smol, "One short sentence.")
    ids_b = encode(smol, "A different, longer text of words here.")
    alone = rope.capture_ids(smol, ids_a)[0]
    stop = threading.Event()

    def other():
        while not stop.is_set():
            with torch.no_grad():
                smol.model(input_ids=ids_b, use_cache=False)

    worker = threading.Thread(target=other)
    worker.start()
    try:
        traces = [rope.capture_ids(smol, ids_a)[0] for _ in range(3)]
    finally:
        stop.set()
        worker.join()
    for t in traces:
        assert t.q_pre.shape == alone.q_pre.shape and np.allclose(t.q_pre, alone.q_pre, atol=1e-5)


def test_trace_round_trip_and_check(smol_run, tmp_path):
    _, _, trace, _ = smol_run
    loaded = RopeTrace.load(trace.save(tmp_path / "rope.npz"))
    assert loaded.tokens == trace.tokens and np.array_equal(loaded.q_post, trace.q_post)
    assert np.array_equal(loaded.embed, trace.embed) and loaded.attention_scaling == trace.attention_scaling
    import dataclasses

    bad = dataclasses.replace(trace, q_post=trace.q_post * 1.1)
    with pytest.raises(TraceError, match="norm"):
        bad.check()
    with pytest.raises(TraceError, match="multiple"):
        dataclasses.replace(trace, k_pre=trace.k_pre[:, :2], k_post=trace.k_post[:, :2]).check()


def test_text_limits(smol):
    with pytest.raises(ValueError, match="empty"):
        rope.capture(smol, "  ")
    long = rope.capture(smol, "word " * 600, max_tokens=16)
    assert len(long.tokens) == 16 and long.meta["n_tokens_in_text"] == 601  # the trailing space is a token


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_rotation_parity_over_architectures(name):
    """Post-RoPE q and k equal apply_rotary_pos_emb and the keys in the model's own cache, on every architecture."""
    loaded = tiny(name)
    ids = encode(loaded, "one two three four five six seven eight")
    trace, out = rope.capture_ids(loaded, ids)
    hq, hk = _reference_rotation(loaded.model, trace.q_pre, trace.k_pre, ids.shape[1])
    assert np.abs(trace.q_post - hq.numpy()).max() < 1e-5 and np.abs(trace.k_post - hk.numpy()).max() < 1e-5
    with torch.no_grad():
        cache = loaded.model(input_ids=ids, use_cache=True).cache
    keys = np.stack([layer.keys[0].numpy() for layer in cache.layers])  # (layer, kv_head, T, d)
    kept = keys.shape[2]  # a sliding-window cache keeps only the last window - 1 keys
    assert np.abs(trace.k_post[:, :, -kept:] - keys).max() < 1e-5
    with torch.no_grad():
        plain = loaded.model(input_ids=ids, use_cache=False).logits
    assert torch.equal(out.logits, plain)


# ---- tiny random llama models: every scaling type, GQA, attention scaling ------------------------------------

TINY_SCALINGS = [
    {"rope_type": "default", "rope_theta": 500.0},
    {"rope_type": "linear", "rope_theta": 10_000.0, "factor": 2.0},
    {"rope_type": "dynamic", "rope_theta": 10_000.0, "factor": 2.0},
    {"rope_type": "yarn", "rope_theta": 10_000.0, "factor": 4.0, "original_max_position_embeddings": 16},
    {
        "rope_type": "llama3",
        "rope_theta": 10_000.0,
        "factor": 8.0,
        "original_max_position_embeddings": 16,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
    },
]


@pytest.mark.parametrize("params", TINY_SCALINGS, ids=[p["rope_type"] for p in TINY_SCALINGS])
def test_tiny_llama_parity_for_every_scaling(params):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=64,
        rope_parameters=dict(params),
        attn_implementation="eager",
    )
    model = LlamaForCausalLM(cfg).eval()
    loaded = models.Loaded("tiny", model, None, "causal")
    ids = torch.randint(0, 50, (1, 12))
    trace, out = rope.capture_ids(loaded, ids, tokens=[str(i) for i in ids[0].tolist()])
    rotary = model.model.rotary_emb
    assert np.allclose(rope.frequencies(cfg).inv_freq, rotary.inv_freq.numpy(), rtol=1e-6)
    assert trace.attention_scaling == pytest.approx(rotary.attention_scaling)
    hq, hk = _reference_rotation(model, trace.q_pre, trace.k_pre, 12)
    assert np.abs(trace.q_post - hq.numpy()).max() < 1e-5 and np.abs(trace.k_post - hk.numpy()).max() < 1e-5
    with torch.no_grad():
        ref = model(input_ids=ids, output_attentions=True, use_cache=False)
    assert np.abs(_attention(trace) - np.stack([a[0].numpy() for a in ref.attentions])).max() < 1e-5
    assert torch.allclose(out.logits, ref.logits, atol=1e-6, rtol=0)


def test_a_model_without_rope_is_refused():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    loaded = models.Loaded("tiny-bert", BertModel(cfg).eval(), None, "encoder")
    with pytest.raises(ValueError):
        rope.capture_ids(loaded, torch.tensor([[1, 2]]), tokens=["a", "b"])


# ---- figures ---------------------------------------------------------------------------------------------------


def test_rotation_view_draws_the_rotated_pair(smol_run):
    _, _, trace, _ = smol_run
    q = trace.query(3, 4, 2)
    assert np.allclose(q, trace.q_pre[3, 4, 2][rope.half_to_adjacent(64)])
    fig = plots.rotation(q, trace.inv_freq, 37, (0, 20), trace.tokens[2], dark=True)
    assert isinstance(fig, go.Figure) and fig.layout.template.layout.paper_bgcolor is not None
    arrows = [t for t in fig.data if t.name == "position 37"]
    end = rope.rotate(q[None], np.array([37]), trace.inv_freq)[0]
    assert np.allclose([arrows[0].x[1], arrows[0].y[1]], end[0:2], atol=1e-5)
    assert np.allclose([arrows[1].x[1], arrows[1].y[1]], end[40:42], atol=1e-5)


def test_every_view_builds(smol_run):
    _, _, trace, _ = smol_run
    q, k = trace.query(0, 0, 3), trace.key(0, 0, 2)
    figs = [
        plots.angles(trace.inv_freq, 300, 8192),
        plots.relative(q, k, trace.inv_freq, 16),
        plots.decay(10_000, 128),
        plots.pair_norms(trace, 2, 5),
        plots.sinusoidal(64, 576),
        plots.embedding_plus_pe(trace.embed[3], 3, trace.tokens[3]),
        plots.extension(100_000, 64, 8192, 4),
    ]
    for fig in figs:
        assert isinstance(fig, go.Figure) and fig.layout.title.text and fig.data
    rel = figs[1].data[0].z
    assert np.allclose(np.asarray(rel), rope.relative_scores(q, k, trace.inv_freq, 16))
    norms = figs[3].data  # bars before, dots after: equal because rotation keeps pair norms
    assert np.allclose(norms[0].y, norms[1].y, rtol=1e-4)
    assert len(figs[6].data) == 2 * len(rope.SCALINGS) + 2


# ---- demo --------------------------------------------------------------------------------------------------------


def test_demo_handlers_and_bad_input(smol):
    import gradio as gr

    from demos import rope as demo_mod
    from demos import ui

    assert isinstance(demo_mod.demo, gr.Blocks)
    out = demo_mod.explore(10_000, 64, 100, 8, "yarn", 4, 8192)
    assert "pair 0 turns every 6.3 positions" in out[0] and all(isinstance(f, go.Figure) for f in out[1:])
    assert "turn every 6.3 pos" in out[1].layout.annotations[0].text  # the figure says what the status says
    assert "θ = 10,000," in out[4].layout.title.text and "base 10,000" in out[6].layout.title.text
    notes, _, _, _, decay, _, sinus = demo_mod.explore(1.0001, 64, 100, 0, "default", 1, 8192)
    assert "θ = 1.0001," in decay.layout.title.text and "base 1.0001" in sinus.layout.title.text  # not "1"
    real = demo_mod.show_model("smollm2-135m", TEXT, 2, 3, 4, 50, 10)
    assert "smollm2-135m" in real[0] and all(isinstance(f, go.Figure) for f in real[1:])
    bad_maths = [
        ((1.0, 64, 0, 0, "default", 1, 8192), "greater than 1"),
        ((10_000, 63, 0, 0, "default", 1, 8192), "even"),
        ((10_000, 64, 10**9, 0, "default", 1, 8192), "position"),
        ((10_000, 64, 0, 40, "default", 1, 8192), "pair"),
        ((10_000, 64, 0, 0, "cubic", 1, 8192), "scaling"),
        ((10_000, 64, 0, 0, "linear", 0.5, 8192), "factor"),
        ((float("nan"), 64, 0, 0, "default", 1, 8192), "finite"),
        ((10_000, "abc", 0, 0, "default", 1, 8192), "whole number"),
    ]
    for args, words in bad_maths:
        with pytest.raises(ui.UserError, match=words):
            demo_mod.explore(*args)
    bad_real = [
        (("smollm2-135m", "   ", 0, 0, 0, 0, 0), "empty"),
        (("smollm2-135m", TEXT, 999, 0, 0, 0, 0), "token"),
        (("smollm2-135m", TEXT, 0, 30, 0, 0, 0), "layer"),
        (("smollm2-135m", TEXT, 0, 0, 9, 0, 0), "head"),
        (("smollm2-135m", TEXT, 0, 0, 0, 8192, 0), "position"),
        (("smollm2-135m", "x" * 30_000, 0, 0, 0, 0, 0), "limit"),
        (("/no/such/model", TEXT, 0, 0, 0, 0, 0), "not a model folder"),
    ]
    for args, words in bad_real:
        with pytest.raises(ui.UserError, match=words):
            demo_mod.show_model(*args)


def test_sinusoidal_view_is_the_pe_matrix():
    fig = plots.sinusoidal(64, 128, 10_000, dark=True, position=20)
    sin, cos = (np.asarray(t.z) for t in fig.data)  # the sin columns 2i, the cos columns 2i+1
    pe = rope.sinusoidal(64, 128)
    assert np.allclose(sin, pe[:, 0::2]) and np.allclose(cos, pe[:, 1::2])
    assert np.allclose(sin[20, 3], np.sin(20 / 10_000 ** (6 / 128)))
    rows = [(s.y0, s.y1) for s in fig.layout.shapes]
    assert rows == [(19.5, 20.5)] * 2  # PE(20), the vector added at position 20, is outlined in both panels
    assert all(a.font.size >= 16 for a in fig.layout.annotations)


def test_page_views(smol):
    from demos import rope as demo_mod

    maths = (10_000, 128, 20, 8, "default", 4, 8192)
    real = ("smollm2-135m", TEXT, 1, 0, 0, 10, 8)
    for view in demo_mod.VIEW_NAMES:
        notes, hero, *strip = demo_mod.show_ui(view, *maths, *real)
        assert isinstance(hero, go.Figure) and hero.layout.height is None, view
        maths_shown = view in demo_mod.MATHS_NAMES
        assert [u["visible"] for u in strip] == [maths_shown] * 4 + [not maths_shown] * 5
    notes, hero, *_ = demo_mod.show_ui("sinusoidal", *maths, *real)
    assert "PE(20)" in notes and "54,410 for i = 63" in notes and "Sinusoidal" in hero.layout.title.text

    class Req:
        query_params = {"view": "sinusoidal", "d": "128", "pos": "20"}

    view, notes, hero, *updates = demo_mod.on_load(Req())
    assert view == "sinusoidal" and "PE(20)" in notes and updates[1]["value"] == 128 and updates[1]["visible"]

    class Old:  # the older ?tab=model preset still opens the real model
        query_params = {"tab": "model"}

    assert demo_mod.on_load(Old())[0] == "model-rotation"


def test_demo_through_a_real_server(live_server):
    from gradio_client.exceptions import AppError

    client = live_server.client("rope")
    notes, *figs = client.predict(10_000, 64, 12, 8, "llama3", 8, 8192, api_name="/rope")
    assert "θ = 10,000, d" in notes and len(figs) == 6 and all(figs)
    notes, *figs = client.predict("smollm2-135m", TEXT, 1, 0, 0, 10, 8, api_name="/rope_model")
    assert "9 query heads" in notes and all(figs)
    with pytest.raises(AppError, match="even"):
        client.predict(10_000, 63, 12, 8, "default", 1, 8192, api_name="/rope")
