"""MoE routing: maths against transformers' Mixtral loss, the config's ranges, trace invariants, training, the
capture's dispatch (our model, committed runs, HF MoE families), figures, demo."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from architectures import MOE_FAMILIES, tiny_moe
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

from toolkit import models, moe, registry
from toolkit.config import Config, ConfigError
from toolkit.moe import PRESETS, MoeConfig, MoeTrace, maths, runs
from toolkit.moe import figures as views
from toolkit.moe.model import MoeTransformer, load, save
from toolkit.text import display, encode
from toolkit.trace import Trace, TraceError


def _topk(logits, k):
    return torch.topk(F.softmax(logits, -1), k, -1).indices


# ---------------------------------------------------------------- pure maths
@pytest.mark.parametrize("n_experts,k,n_tokens", [(8, 2, 37), (4, 1, 16), (16, 4, 50)])
def test_balance_loss_equals_mixtral(n_experts, k, n_tokens):
    torch.manual_seed(n_experts + k)
    logits = torch.randn(n_tokens, n_experts) * 2
    ours = maths.balance_loss(F.softmax(logits, -1), _topk(logits, k))
    ref = load_balancing_loss_func((logits,), n_experts, k)
    torch.testing.assert_close(ours, ref)


def test_balance_loss_pooled_layers_equals_mixtral():
    torch.manual_seed(0)
    layers = tuple(torch.randn(20, 8) for _ in range(3))
    cat = torch.cat(layers)  # Mixtral pools all layers' rows before multiplying f and P
    torch.testing.assert_close(
        maths.balance_loss(F.softmax(cat, -1), _topk(cat, 2)), load_balancing_loss_func(layers, 8, 2)
    )


def test_balanced_routing_gives_k_and_collapse_gives_more():
    n_experts, k = 8, 2
    logits = torch.full((n_experts, n_experts), -5.0)
    for i in range(n_experts):  # token i prefers experts i and i+1: every expert gets 2 of 16 slots
        logits[i, i], logits[i, (i + 1) % n_experts] = 5.0, 4.0
    experts = _topk(logits, k)
    ours = maths.balance_loss(F.softmax(logits, -1), experts)
    assert torch.bincount(experts.ravel(), minlength=n_experts).tolist() == [2] * n_experts
    assert ours.item() == pytest.approx(k, abs=1e-5)
    assert load_balancing_loss_func((logits,), n_experts, k).item() == pytest.approx(k, abs=1e-5)
    collapsed = torch.zeros(16, n_experts)
    collapsed[:, :2] = 10.0
    collapsed_loss = maths.balance_loss(F.softmax(collapsed, -1), _topk(collapsed, k))
    assert collapsed_loss.item() == pytest.approx(n_experts, rel=1e-3)  # f = (1, 1, 0...), P = (.5, .5, 0...)


def test_z_loss_by_hand():
    assert maths.z_loss(torch.zeros(5, 4)).item() == pytest.approx(np.log(4) ** 2)
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert maths.z_loss(x).item() == pytest.approx(float(np.log(np.exp([1, 2, 3]).sum()) ** 2), rel=1e-6)


def test_aux_free_bias_update_and_selection_only():
    experts = torch.tensor([[0, 2], [0, 3], [0, 2], [0, 3]])  # counts 4, 0, 2, 2 (mean 2)
    bias = maths.aux_free_update(torch.zeros(4), experts, 0.1)
    torch.testing.assert_close(bias, torch.tensor([-0.1, 0.1, 0.0, 0.0]))
    logits = torch.tensor([[2.0, 1.9, -3.0, -3.0]])
    s, e0, g0 = maths.route(logits, 1, "sigmoid", renormalize=False)
    _, e1, g1 = maths.route(logits, 1, "sigmoid", renormalize=False, bias=torch.tensor([-0.5, 0.0, 0.0, 0.0]))
    assert e0.item() == 0 and e1.item() == 1  # the bias changes which expert is chosen ...
    assert g1.item() == pytest.approx(s[0, 1].item())  # ... but the gate is the unbiased score


def test_route_renormalisation_and_scores():
    torch.manual_seed(1)
    logits = torch.randn(10, 6)
    s, e, g = maths.route(logits, 3, "softmax", renormalize=True)
    torch.testing.assert_close(g.sum(-1), torch.ones(10))
    _, _, raw = maths.route(logits, 3, "softmax", renormalize=False)
    torch.testing.assert_close(raw, s.gather(1, e))
    assert (raw.sum(-1) < 1).all()
    sig, _, _ = maths.route(logits, 3, "sigmoid")
    assert ((sig > 0) & (sig < 1)).all() and not torch.allclose(sig.sum(-1), torch.ones(10))


def test_mutual_information_by_hand():
    a = np.array([0, 1, 2, 3] * 25)
    assert maths.mutual_information(a, a) == pytest.approx(2.0)
    assert maths.mutual_information(a, np.zeros_like(a)) == pytest.approx(0.0)
    assert maths.mutual_information(a, a % 2) == pytest.approx(1.0)


# ---------------------------------------------------------------- the config
def test_config_documents_every_field_and_checks_ranges():
    assert issubclass(MoeConfig, Config)
    for f in dataclasses.fields(MoeConfig):
        assert MoeConfig.spec(f.name).help, f.name  # every field has its help text
    assert MoeConfig.spec("top_k").lo == 1 and MoeConfig.spec("top_k").hi == moe.MAX_EXPERTS
    assert MoeConfig.spec("score").choices == ("softmax", "sigmoid")
    assert "top_k = 2" in MoeConfig.help()
    bad = [
        (dict(top_k=9), "top-k"),
        (dict(n_experts=0), "n_experts"),
        (dict(n_heads=3), "divisible"),
        (dict(score="relu"), "score"),
        (dict(lr=0.0), "lr"),
        (dict(balance_coef=-1.0), "balance_coef"),
        (dict(shared_experts=-1), "shared_experts"),
    ]
    for changes, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            MoeConfig(**changes)
    with pytest.raises(ValueError, match="top-k"):  # a ConfigError is a ValueError, as before
        PRESETS["tiny"].replace(top_k=5)
    assert PRESETS["tiny"].replace(steps=3).steps == 3 and PRESETS["lecture"] == MoeConfig()


@pytest.mark.parametrize("run", runs.RUNS)
def test_committed_configs_load_unchanged(run):
    raw = json.loads((runs.assets_dir() / run / "config.json").read_text())["config"]
    cfg = MoeConfig.from_dict(raw)
    assert cfg.to_dict() == raw  # every field, same names and values
    assert runs.model(run).cfg == cfg and MoeConfig.from_dict(runs.replay(run)["config"]) == cfg


# ---------------------------------------------------------------- model, trace, training
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return MoeTransformer(PRESETS["tiny"]).eval()


def test_trace_invariants_and_round_trip(tiny, tmp_path):
    t = moe.capture(tiny, "x = 1  # one\nWords here.")
    assert isinstance(t, MoeTrace) and t.probs.shape == (2, len(t.tokens), 4)
    assert t.experts.shape == (2, len(t.tokens), 2) and t.shared_norm.shape == (2, len(t.tokens))
    np.testing.assert_allclose(t.gates.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(t.importance, t.probs.mean(1), atol=1e-6)
    for layer in range(2):  # the trace's loss is Mixtral's on the same router logits
        ref = load_balancing_loss_func((torch.from_numpy(t.router_logits[layer]),), 4, 2)
        assert t.balance_loss[layer] == pytest.approx(ref.item(), rel=1e-5)
    back = Trace.load(t.save(tmp_path / "moe.npz"))
    np.testing.assert_array_equal(back.experts, t.experts)
    assert back.tokens == t.tokens
    with pytest.raises(TraceError, match="does not match"):
        dataclasses.replace(t, expert_load=np.roll(t.expert_load, 1, axis=1)).check()
    with pytest.raises(TraceError, match="top_k"):
        dataclasses.replace(t, top_k=5).check()
    assert MoeTrace.kind == "moe" and isinstance(MoeTrace.load(tmp_path / "moe.npz"), MoeTrace)


def test_capture_does_not_change_outputs_and_top_k_override(tiny):
    ids = torch.tensor([list(b"hello world")])
    a, _ = tiny(ids)
    moe.capture(tiny, "hello world")
    b, _ = tiny(ids)
    torch.testing.assert_close(a, b)
    t1 = moe.capture(tiny, "hello world", top_k=1)
    assert t1.top_k == 1 and np.allclose(t1.gates, 1.0)
    assert moe.capture(tiny, "hello world", moe.RouteConfig(top_k=1)).top_k == 1  # the config, or options
    for k in (0, 5):  # the tiny model has 4 experts: its MoeConfig refuses the rest
        with pytest.raises(ConfigError, match="top-k"):
            moe.capture(tiny, "hello world", top_k=k)


def test_tiny_training_is_seeded_and_writes_assets(tmp_path):
    from lecture.cli import main

    assert main(["train-moe", "--preset", "tiny", "--out", str(tmp_path), "--steps", "3", "--runs", "balanced"]) == 0
    rep = json.loads((tmp_path / "balanced" / "replay.json").read_text())
    assert [s["step"] for s in rep["snapshots"]] == [0, 2, 3] and len(rep["train_loss"]) == 3
    assert len(rep["final"]["mi"]) == 2 and all(m >= 0 for m in rep["final"]["mi"])
    model = load(tmp_path / "balanced")
    assert isinstance(model, MoeTransformer) and not model.training
    from toolkit.moe.train import train

    _, again = train(PRESETS["tiny"].replace(steps=3), progress=False)
    assert [r["ce"] for r in again["train_loss"]] == pytest.approx([r["ce"] for r in rep["train_loss"]], abs=1e-3)


@pytest.mark.parametrize(
    "changes",
    [dict(aux_free_rate=0.01, balance_coef=0.0, score="sigmoid"), dict(shared_experts=0, renormalize=False, top_k=1)],
)
def test_training_variants(changes):
    from toolkit.moe.train import train

    model, rep = train(PRESETS["tiny"].replace(steps=2, **changes), progress=False)
    t = moe.capture(model, "abc 123")
    assert t.score == model.cfg.score and t.top_k == model.cfg.top_k
    if changes.get("aux_free_rate"):
        assert t.bias is not None and np.abs(t.bias).sum() > 0  # the bias moved during training
    if changes.get("shared_experts") == 0:
        assert t.shared_norm is None


def test_checkpoint_round_trip(tiny, tmp_path):
    save(tiny, tmp_path)
    back = load(tmp_path)
    ids = torch.tensor([list(b"round trip")])
    torch.testing.assert_close(back(ids)[0], tiny(ids)[0], atol=2e-2, rtol=1e-2)  # weights stored as float16


def test_committed_runs_show_specialisation_and_collapse():
    bal, nob = runs.replay("balanced"), runs.replay("no_balance")
    model = runs.model("balanced")
    assert model.cfg.n_experts == 8 and not model.training
    assert runs.snapshot(bal, 10**9) is bal["snapshots"][-1] and runs.snapshot(bal, 0)["step"] == 0
    # specialisation: measured MI above the shuffled baseline in every layer of the balanced run
    assert all(m > 3 * s for m, s in zip(bal["final"]["mi"], bal["final"]["mi_shuffled"]))
    # collapse: without the balance loss the busiest expert takes more, and the balance loss is higher
    assert np.mean([max(x) for x in nob["final"]["load"]]) > np.mean([max(x) for x in bal["final"]["load"]])
    assert np.mean(nob["final"]["balance_loss"]) > np.mean(bal["final"]["balance_loss"])
    # the DeepSeek-V3 bias alone (no balance loss) keeps every expert in use
    free = runs.replay("aux_free")
    assert free["config"]["balance_coef"] == 0 and free["config"]["aux_free_rate"] > 0
    assert min(min(x) for x in free["final"]["load"]) > 0
    assert min(min(x) for x in nob["final"]["load"]) == 0


def test_parameter_counts():
    from toolkit.moe import params

    mix = params.count_hf(params.mixtral_8x7b_config(), "Mixtral 8x7B")
    assert 46.5e9 < mix.total < 47.0e9 and 12.7e9 < mix.active < 13.1e9
    ours = params.count_ours(PRESETS["lecture"])
    assert ours.total == sum(p.numel() for p in MoeTransformer(PRESETS["lecture"]).parameters())
    assert ours.routed == 4 * 8 * 3 * 64 * 96 and ours.active < ours.total


# ---------------------------------------------------------------- Hugging Face MoE families
@pytest.mark.parametrize("family", list(MOE_FAMILIES))
def test_hf_family_trace(family):
    model = tiny_moe(family)
    if family == "deepseek_v3":
        for m in model.modules():
            if hasattr(m, "e_score_correction_bias"):
                m.e_score_correction_bias.copy_(torch.tensor([0.5, 0.0, 0.0, -0.5]))
    ids = torch.randint(3, 64, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model(ids).logits
    t = moe.capture(model, ids)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, plain)  # hooks removed, nothing changed
        ref = model(ids, output_router_logits=True).router_logits
    assert t.probs.shape == (2, 12, 4) and t.top_k == 2 and t.meta["model_type"] == family
    for layer in range(2):
        logits = ref[layer].float()
        np.testing.assert_allclose(t.router_logits[layer], logits.numpy(), atol=1e-6)
        if family == "deepseek_v3":  # sigmoid scores, selection steered by the correction bias
            assert t.score == "sigmoid"
            np.testing.assert_allclose(t.bias[layer], [0.5, 0.0, 0.0, -0.5])
            chosen = torch.topk(torch.sigmoid(logits) + torch.tensor([0.5, 0, 0, -0.5]), 2).indices
        else:
            assert t.score == "softmax"
            chosen = _topk(logits, 2)
            ref_loss = load_balancing_loss_func((logits,), 4, 2)
            assert t.balance_loss[layer] == pytest.approx(ref_loss.item(), rel=1e-5)
        np.testing.assert_array_equal(np.sort(t.experts[layer], -1), np.sort(chosen.numpy(), -1))


def test_hf_capture_from_loaded_uses_the_token_policy(smol):
    model = tiny_moe("mixtral", vocab_size=smol.tokenizer.vocab_size)
    loaded = models.Loaded("tiny-mixtral", model, smol.tokenizer, "causal")
    prompt = "A router sends every token to two of its experts."
    t = moe.capture(loaded, prompt, max_tokens=6)
    enc = encode(smol.tokenizer, prompt, 6)
    assert t.tokens == display(smol.tokenizer, enc.ids) and t.truncated and t.meta["model"] == "tiny-mixtral"
    assert t.meta["n_tokens_in_text"] == enc.n_total > 6 and t.bias is None
    with torch.no_grad():
        ref = model(torch.tensor([enc.ids]), output_router_logits=True).router_logits
    for layer in range(2):
        np.testing.assert_allclose(t.router_logits[layer], ref[layer].float().numpy(), atol=1e-6)
    with pytest.raises(ConfigError, match="top_k"):  # a transformers model routes with its own k
        moe.capture(loaded, prompt, top_k=1)
    with pytest.raises(ValueError, match="tokenizer"):  # a bare model cannot encode a text
        moe.capture(model, prompt)
    with pytest.raises(ValueError, match="one text"):
        moe.capture(model, torch.ones(2, 3, dtype=torch.long))


def test_capture_dispatch_run_names_ids_and_limits():
    prompt = "def f(x): return x"
    by_name, by_model = moe.capture("no_balance", prompt), moe.capture(runs.model("no_balance"), prompt)
    np.testing.assert_array_equal(by_name.experts, by_model.experts)
    assert by_name.meta["model"] == "moe/no_balance" and by_model.meta["model"] == "moe"
    assert by_name.meta["config"] == runs.model("no_balance").cfg.to_dict()
    by_ids = moe.capture("no_balance", list(prompt.encode()))
    np.testing.assert_array_equal(by_ids.gates, by_name.gates)
    long = moe.capture("balanced", "ab" * 300)  # the context is 256 bytes
    assert len(long.tokens) == 256 and long.truncated and long.meta["n_tokens_in_text"] == 600
    assert len(moe.capture("balanced", "ab" * 300, max_tokens=10).tokens) == 10
    assert not moe.capture("balanced", "short").truncated
    with pytest.raises(ConfigError, match="max_tokens"):
        moe.capture("balanced", prompt, max_tokens=0)
    with pytest.raises(ValueError, match="empty"):
        moe.capture("balanced", "")
    with pytest.raises(ValueError, match="0..255"):
        moe.capture("balanced", [1, 300])


def test_hf_trace_refuses_dense_model():
    import transformers as tf

    dense = tf.LlamaForCausalLM(
        tf.LlamaConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    )
    with pytest.raises(ValueError, match="router logits"):
        moe.capture(dense, torch.tensor([[1, 2, 3]]))


# ---------------------------------------------------------------- views and demo
def test_views_return_figures():
    import plotly.graph_objects as go

    from toolkit.moe import params

    t = moe.capture(runs.model("balanced"), "def f(x):\n    return 2 * x\nProse too.")
    figs = [
        views.router_heatmap(t, 0, dark=True),
        views.expert_load(t, 2),
        views.load_heatmap(t),
        views.coactivation(t, 0, 1),
        views.shared_vs_routed(t),
        views.replay({r: runs.replay(r) for r in runs.RUNS}, 100, 1),
        views.parameters([params.count_ours(PRESETS["lecture"])]),
    ]
    assert all(isinstance(f, go.Figure) and f.data for f in figs)
    assert figs[0].layout.template.layout.paper_bgcolor is not None


def test_token_views_are_escaped_html_coloured_by_top1_expert():
    import html
    import re

    text = "<b>x</b> & 'y'\n\tz"
    t = moe.capture(runs.model("balanced"), text)
    page = views.token_experts(t, 1)
    spans = re.findall(r'<span style="background:([^;"]+);color:([^;"]+)" title="([^"]*)">(.*?)</span>', page, re.S)
    assert len(spans) == len(t.tokens)  # one span per byte token, nothing injected: "<b>" stays text
    colors = views.expert_colors(t.n_experts)
    for i, (bg, ink, title, _) in enumerate(spans):
        assert bg == colors[t.experts[1, i, 0]] and ink == views.ink(bg)
        tip = html.unescape(title)
        assert f"expert {t.experts[1, i, 0]}: gate {t.gates[1, i, 0]:.2f}" in tip
        assert len(tip.split("\n")) == 1 + t.top_k
    assert "".join(html.unescape(x) for *_, x in spans) == text.replace("\n", "⏎\n").replace("\t", "⇥")
    probe = views.replay_tokens(runs.replay(), 50, 2)
    assert probe.count('" title="token ') == len(runs.replay()["snapshots"][0]["probe_top1"][2])


def test_demo_handlers_and_bad_input():
    import gradio as gr

    from demos import moe as demo_mod

    assert isinstance(demo_mod.demo, gr.Blocks) and registry.get("moe").demo == demo_mod.__name__
    out = demo_mod.route(demo_mod.DEFAULT_TEXT, "no_balance", 1, 2)
    assert "byte tokens" in out[0] and len(out) == 7
    assert "cut to" in demo_mod.route("a" * 400, "balanced", 0, 2)[0]
    fig, probe, table = demo_mod.replay(120, 0, "aux_free")
    assert "no_balance" in table and "aux_free" in table and fig.data and "expert 0" in probe
    bad = [
        ("some text", "balanced", 0, 9, "top-k"),
        ("some text", "balanced", 0, 0, "top-k"),
        ("   ", "balanced", 0, 2, "empty"),
        ("some text", "balanced", 7, 2, "Unknown layer"),
        ("some text", "balanced", "two", 2, "whole number"),
        ("some text", "nope", 0, 2, "Unknown run"),
    ]
    for text, run, layer, k, msg in bad:
        with pytest.raises(gr.Error, match=msg):
            demo_mod.route(text, run, layer, k)
    with pytest.raises(gr.Error, match="Unknown layer"):
        demo_mod.replay(10, -1)
    last = demo_mod.route("héllo 👋 wörld", "balanced", 3, 1)
    assert "byte tokens" in last[0]  # multi-byte UTF-8
    assert last[5].layout.title.text == "Co-activation: layer 2 → layer 3"  # the last layer: with the one before
    assert out[5].layout.title.text == "Co-activation: layer 1 → layer 2"


def test_demo_url_presets():
    from types import SimpleNamespace

    from demos import moe as demo_mod

    req = SimpleNamespace(
        query_params={"run": "no_balance", "layer": "2", "k": "1", "step": "50", "__theme": "dark", "text": "x = 1"}
    )
    out = demo_mod.on_load(req)
    assert (out[0], out[1]["value"], out[2], out[3]) == ("x = 1", "no_balance", 2, 1) and out[5] == "tokens"
    assert out[1]["choices"][:3] == ["balanced", "no_balance", "aux_free"]  # then any MoE checkpoint served
    assert out[4]["value"] == 50 and out[4]["visible"] is False  # the step slider moves only the replay
    n_views = len(demo_mod.VIEW_NAMES)
    summary, probe, heroes = out[6], out[7], out[10 : 10 + n_views]
    assert "top-1" in summary and "Top-1 expert per token, layer 2" in heroes[0]["value"]
    assert [u["visible"] for u in heroes] == [v == "tokens" for v in demo_mod.VIEW_NAMES]  # one hero: the tokens
    router = heroes[1]["value"]  # every view is rendered on load: switching views computes nothing
    assert router.layout.template.layout.paper_bgcolor == "rgb(17,17,17)"  # dark template (then our darker paper)
    assert router.layout.height is None  # the hero is sized by its frame
    assert "step 50" in probe  # the probe text as the router saw it at step 50

    replay_view = demo_mod.on_load(SimpleNamespace(query_params={"view": "replay", "step": "120"}))
    assert replay_view[4] == {"__type__": "update", "value": 120, "visible": True}
    heroes = replay_view[10 : 10 + n_views]
    assert [u["visible"] for u in heroes] == [v == "replay" for v in demo_mod.VIEW_NAMES]
    assert heroes[demo_mod.VIEW_NAMES.index("replay")]["value"].data and "no_balance" in replay_view[8]
    params = demo_mod.on_load(SimpleNamespace(query_params={"view": "parameters"}))
    assert "Mixtral 8x7B" in params[9] and params[10 + n_views - 1]["value"].data  # counted when the preset asks
    bad = demo_mod.on_load(SimpleNamespace(query_params={"layer": "9", "k": "0", "view": "nope"}))
    assert bad[2:4] == (0, 2) and bad[5] == "tokens" and "Unknown layer 9" in bad[6]  # said, then the defaults

    switched = demo_mod.show_view("router")
    assert [u["visible"] for u in switched[:n_views]] == [v == "router" for v in demo_mod.VIEW_NAMES]
    assert demo_mod.show_view(None)[0]["visible"] is True  # an unknown view shows the tokens


@pytest.mark.slow
def test_demo_through_live_server(live_server):
    client = live_server.client("moe")
    out = client.predict("x = 42\nHello.", "balanced", 0, 2, api_name="/route")
    assert "byte tokens" in out[0]
