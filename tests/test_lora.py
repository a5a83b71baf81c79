"""LoRA and quantisation: peft's parameter counts, real steps that leave the shared model untouched, rank <= r,
merged == unmerged, quantisers against torch's own per-channel int8."""

from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go
import pytest
import torch

from demos import ui
from toolkit import lora
from toolkit.lora import LoraTrace, QuantTrace
from toolkit.trace import Trace


@pytest.mark.parametrize("r,targets", [(1, ["q_proj"]), (8, ["q_proj", "v_proj"]), (16, list(lora.TARGETS))])
def test_counts_equal_peft_and_the_formula(smol, r, targets):
    trainable, frozen = lora.count(smol, r=r, targets=targets)
    assert trainable == lora.expected_count(smol, r=r, targets=targets)
    assert frozen == sum(p.numel() for p in smol.model.parameters())  # tied embeddings counted once
    row = [x for x in lora.counts(smol, targets=targets) if x["r"] == r][0]
    assert (row["trainable"], row["frozen"]) == (trainable, frozen)


def test_twin_shares_weights_and_gives_the_same_logits(smol):
    ids = torch.tensor([[1, 504, 3575, 282, 4649]])
    other = lora.twin(smol.model)
    assert other is not smol.model
    ours, shared = other.model.layers[0].self_attn.q_proj, smol.model.model.layers[0].self_attn.q_proj
    assert ours.weight.data_ptr() == shared.weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(other(ids).logits, smol.model(ids).logits)


def test_a_training_twin_keeps_less_for_the_backward_pass_and_runs_as_the_shared_model_after(smol):
    ids = torch.tensor([smol.tokenizer("The cat sat on the mat because it was tired.")["input_ids"]])
    t = lora.twin(smol, training=True)
    assert t.config is not smol.model.config and t.config._attn_implementation == "sdpa" and t.is_gradient_checkpointing
    assert smol.model.config._attn_implementation == "eager"  # the shared model is untouched
    with torch.no_grad():
        torch.testing.assert_close(t(ids).logits, smol.model(ids).logits, atol=1e-4, rtol=1e-4)  # SDPA = eager
    grads = []
    for m in (t, lora.twin(smol)):  # the final norm's weight learns: each block's backward runs
        m.train()
        m.model.norm.weight.requires_grad_(True)
        m(ids, labels=ids).loss.backward()  # the training twin recomputes each block in its backward pass
        grads.append(m.model.norm.weight.grad)
        m.model.norm.weight.requires_grad_(False)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-3)
    lora.trained_as(t, smol.model)
    assert t.config._attn_implementation == "eager" and not t.is_gradient_checkpointing
    with torch.no_grad():
        assert t.eval()(ids, output_attentions=True).attentions[0] is not None  # attention views can read it


def test_finetune_learns_low_rank_and_leaves_the_shared_model_alone(smol, tmp_path):
    ids = torch.tensor([[1, 504, 3575, 282, 4649, 314]])
    with torch.no_grad():
        before = smol.model(ids).logits.clone()
    sums = {n: float(p.detach().double().sum()) for n, p in smol.model.named_parameters()}
    t = lora.finetune(smol, r=4, alpha=8, targets=("q_proj", "v_proj"), steps=2, layer=3)
    assert t.targets == ["q_proj", "v_proj"] and t.meta["steps"] == 2
    assert t.losses[-1] < t.losses[0]
    assert t.rank == 4 and t.sv_delta[4:].max() < 1e-5 * t.sv_delta[0]  # rank exactly r: B != 0 after a step
    assert len(t.sv_weight) == 576 and t.sv_weight[200] > 1e-3 * t.sv_weight[0]  # the full weight is not low rank
    assert t.merge_max_diff < 1e-3
    assert t.module == "model.layers.3.self_attn.q_proj"
    with torch.no_grad():
        assert torch.equal(smol.model(ids).logits, before)
    assert {n: float(p.detach().double().sum()) for n, p in smol.model.named_parameters()} == sums
    assert not any(p.requires_grad is False and "lora" in n for n, p in smol.model.named_parameters())
    assert not any("lora" in n for n, _ in smol.model.named_modules())
    assert isinstance(Trace.load(t.save(tmp_path / "l.npz")), LoraTrace)


def test_configs_hold_the_ranges(smol):
    from toolkit.config import ConfigError

    for bad in (
        {"r": 0},
        {"r": 65},
        {"alpha": 0},
        {"alpha": 1025},
        {"steps": lora.MAX_STEPS + 1},
        {"targets": ()},
        {"targets": ("attn",)},
        {"layer": -1},
        {"lr": 0},
    ):
        with pytest.raises(ConfigError):
            lora.LoraConfig(**bad)
    assert lora.LoraConfig(targets="q_proj, v_proj").targets == ("q_proj", "v_proj")
    assert lora.LoraConfig.coerce(r="4", targets=["k_proj"]) == lora.LoraConfig(r=4, targets=("k_proj",))
    with pytest.raises(ConfigError):
        lora.QuantConfig(scheme="fp2")
    with pytest.raises(ValueError, match="layer"):
        lora.finetune(smol, layer=30)  # SmolLM2 has 30 layers: refused before any step
    assert lora.peft_config(r=4, alpha=8).lora_alpha == 8


def test_int8_equals_torch_per_channel_quantisation():
    torch.manual_seed(0)
    w = torch.randn(64, 128)
    w_hat, stored = lora.quantize(w, "int8")
    scale = (w.abs().amax(1) / 127).double()
    ref = torch.quantize_per_channel(w, scale, torch.zeros(64, dtype=torch.long), 0, torch.qint8).dequantize()
    torch.testing.assert_close(w_hat, ref, rtol=0, atol=1e-6)
    assert stored == 64 * 128 + 64 * 4


def test_4bit_quantisers_on_known_values():
    w = torch.tensor([[0.7, -0.33, 0.1, 0.0], [1.4, 0.21, -1.4, 1.0]])
    w_hat, stored = lora.quantize(w, "int4", block=4)
    torch.testing.assert_close(w_hat, torch.tensor([[0.7, -0.3, 0.1, 0.0], [1.4, 0.2, -1.4, 1.0]]))  # steps 0.1, 0.2
    assert stored == 8 // 2 + 2 * 4
    n_hat, _ = lora.quantize(w, "nf4", block=4)
    levels = (lora.NF4 * 0.7).tolist() + (lora.NF4 * 1.4).tolist()
    assert all(min(abs(v - x) for x in levels) < 1e-6 for v in n_hat.flatten().tolist())
    assert n_hat[1, 0] == pytest.approx(1.4) and n_hat[0, 3] == 0.0
    assert len(lora.NF4) == 16 and lora.NF4[7] == 0
    with pytest.raises(ValueError):
        lora.quantize(w, "int3")
    with pytest.raises(ValueError):
        lora.quantize(torch.zeros(3, 3), "nf4", block=4)


def test_quant_trace_on_the_real_model(smol, tmp_path):
    traces = {s: lora.quant_trace(smol, "model.layers.0.self_attn.q_proj", scheme=s) for s in lora.SCHEMES}
    assert traces["int8"].rel_error < traces["nf4"].rel_error < traces["int4"].rel_error
    assert traces["nf4"].bytes == 576 * 576 // 2 + 576 * 576 // 64 * 4
    assert isinstance(Trace.load(traces["nf4"].save(tmp_path / "q.npz")), QuantTrace)
    with pytest.raises(ValueError):
        lora.quant_trace(smol, "model.layers.99.self_attn.q_proj")


def test_demo_handlers_and_bad_input(smol):
    from demos import lora as d

    assert isinstance(d.demo, gr.Blocks)
    assert isinstance(d.parameters(["q_proj", "v_proj"]), go.Figure)
    fig, md = d.quantize(d.DEFAULT_MODULE, "int8")
    assert "nf4" in md and isinstance(fig, go.Figure)
    loss_fig, sv_fig, md = d.train(2, 4, ["v_proj"], 1, 29)
    assert "untouched" in md and isinstance(sv_fig, go.Figure)
    bad = [
        lambda: d.parameters([]),
        lambda: d.parameters(["attn"]),
        lambda: d.quantize("nope", "int8"),
        lambda: d.quantize(d.DEFAULT_MODULE, "fp2"),
        lambda: d.train("x", 16, ["q_proj"], 1, 0),
        lambda: d.train(4, -1, ["q_proj"], 1, 0),
        lambda: d.train(4, 8, [], 1, 0),
        lambda: d.train(4, 8, ["q_proj"], float("inf"), 0),
        lambda: d.train(65, 8, ["q_proj"], 1, 0),
        lambda: d.train(4, 8, ["q_proj"], 1, 30),
        lambda: d.train(4, 8, ["q_proj"], 1, -1),
    ]
    for call in bad:
        with pytest.raises(ui.UserError):
            call()

    class Req:
        query_params = {"targets": "q_proj,bogus", "module": "nope", "scheme": "int4"}

    out = d.on_load(Req())
    assert out[0] == ["q_proj"] and out[1] == d.DEFAULT_MODULE and out[2] == "int4"
    assert out[3] == 8  # no ?r=: the config's default

    class Ranked:
        query_params = {"r": "16"}

    class Unranked:
        query_params = {"r": "65"}

    assert d.on_load(Ranked())[3] == 16 and d.on_load(Unranked())[3] == 8  # 65 is beyond LoraConfig's range


def test_demo_views_presets_and_highlighted_rank(smol):
    from types import SimpleNamespace

    from demos import lora as d

    fig = d.parameters(["q_proj", "v_proj"], 5)  # a rank that is not a power of two gets its own bar
    bars = fig.data[0]
    assert "r=5" in list(bars.x) and len(set(bars.marker.color)) == 2
    assert bars.marker.color[list(bars.x).index("r=5")] != bars.marker.color[0]  # the trained rank stands out
    assert bars.y[list(bars.x).index("r=5")] == pytest.approx(5 * bars.y[0])  # linear in r
    assert fig.layout.height is None  # sized by the frame

    n = len(d.VIEW_NAMES)
    out = d.on_load(SimpleNamespace(query_params={"r": "8", "scheme": "nf4"}))  # the slide's preset
    assert out[4] == "parameters" and out[5] == 3 and "Press **Train**" in out[6] and "| nf4 |" in out[7]
    heroes = out[8 : 8 + n]
    assert [u["visible"] for u in heroes] == [v == "parameters" for v in d.VIEW_NAMES]
    assert "nf4" in heroes[1]["value"].layout.title.text  # the quantisation view is ready before it is chosen
    assert "Train" in heroes[2]["value"].layout.annotations[0].text  # training waits for its button
    quant = d.on_load(SimpleNamespace(query_params={"view": "quant", "scheme": "int8", "steps": "99"}))
    assert quant[4] == "quant" and quant[5] == 3 and quant[8 + n]["visible"]  # the table's tab comes with it
    assert [u["visible"] for u in quant[8 : 8 + n]] == [v == "quant" for v in d.VIEW_NAMES]
    assert d.after_train("parameters")[0] == "loss" and d.after_train("spectrum")[0] == "spectrum"
    assert d.show_view("nope")[0]["visible"] and d.show_view("spectrum")[3]["visible"]


def test_demo_through_a_real_server(live_server):
    from demos import lora as d

    _, md = live_server.client("lora").predict(d.DEFAULT_MODULE, "nf4", api_name="/quantize")
    assert "relative error" in md
