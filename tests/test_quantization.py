"""Whole-model quantisation: each scheme on hand-made weights with known answers, parity with real quantisation
libraries (optimum-quanto, bitsandbytes' CPU backend, PyTorch's own fake quantisation, the gguf package) on
SmolLM2's weights, GPTQ's defining properties, SmoothQuant's identity, the recorded results against the model,
the slides' numbers, and the demo."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from architectures import tiny

from lecture.deck import deck_slides
from toolkit import quantization as qz
from toolkit.quantization import corpus, maths
from toolkit.quantization import figures as plots

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets" / "quantization"
MATRICES = ("model.layers.0.self_attn.q_proj", "model.layers.7.self_attn.k_proj", "model.layers.20.mlp.down_proj")


def weight(smol, name: str) -> torch.Tensor:
    return smol.model.get_submodule(name).weight.detach().float().clone()


def assert_same_to_rounding(ours: torch.Tensor, ref: torch.Tensor, step: torch.Tensor | float, share: float = 1e-4):
    """Equal up to float error, except a rare weight that sits on a rounding tie and lands one step away."""
    diff = (ours - ref).abs()
    off = diff > 1e-6 + 1e-5 * ref.abs()
    assert off.float().mean() <= share, f"{int(off.sum())} of {off.numel()} weights differ"
    step = torch.as_tensor(step, dtype=diff.dtype).expand_as(diff) if torch.is_tensor(step) else step
    bound = step[off] if torch.is_tensor(step) else step
    assert bool((diff[off] <= bound * 1.001 + 1e-6).all()), "a weight differs by more than one step"


# ---- known answers on hand-made weights --------------------------------------------------------------------------


def test_schemes_on_known_values():
    w = torch.tensor([[0.7, -0.35, 0.1, 0.0], [1.4, 0.2, -1.4, 1.0]])
    int8 = maths.absmax_int(w, 8)  # per row: steps 0.7/127 and 1.4/127
    assert torch.allclose(int8, w, atol=1.4 / 254) and int8[1, 0] == pytest.approx(1.4)
    int4 = maths.absmax_int(w, 4, group=4)  # steps 0.1 and 0.2
    torch.testing.assert_close(int4, torch.tensor([[0.7, -0.4, 0.1, 0.0], [1.4, 0.2, -1.4, 1.0]]))
    zp = maths.zero_point_int(torch.tensor([[0.0, 0.5, 1.0, 1.5]]), 4, group=4)  # s = 0.1, z = 0: exact
    torch.testing.assert_close(zp, torch.tensor([[0.0, 0.5, 1.0, 1.5]]))
    shifted = maths.zero_point_int(torch.tensor([[1.0, 1.3, 2.5, 2.2]]), 4, group=4)  # s = 0.1, z = clamp(-10) = 0
    torch.testing.assert_close(shifted, torch.tensor([[1.0, 1.3, 1.5, 1.5]]))  # above 15 s: clipped
    block = torch.arange(32, dtype=torch.float32)[None] / 31 * 3 - 1  # 32 values from -1 to 2
    q41 = maths.q4_1(block)  # d = 0.2, m = -1: 16 levels -1, -0.8, ..., 2
    assert len(torch.unique(q41)) == 16 and q41.min() == -1 and q41.max() == pytest.approx(2.0, abs=1e-3)
    nf = maths.nf4(torch.tensor([[0.7, -0.35, 0.05, 0.0]]), 4)
    assert (
        nf[0, 0] == pytest.approx(0.7)
        and nf[0, 3] == 0
        and all(min(abs(v / 0.7 - lv) for lv in qz.NF4.tolist()) < 1e-6 for v in nf.flatten().tolist())
    )
    assert maths.cast(torch.tensor([1 / 3]), torch.bfloat16).item() == pytest.approx(1 / 3, rel=2**-8)
    ragged = torch.randn(3, 48, generator=torch.Generator().manual_seed(0))  # groups of 32: 32 + a last 16
    for fn in (lambda x, g: maths.absmax_int(x, 4, g), lambda x, g: maths.zero_point_int(x, 4, g)):
        parts = torch.cat([fn(ragged[:, :32], 32), fn(ragged[:, 32:], 16)], 1)
        torch.testing.assert_close(fn(ragged, 32), parts)
    assert maths.weight_bytes("int4-g128", (576, 576)) == (576 * 576 * 4 + 576 * 5 * 32) // 8  # 4 full + 1 short
    with pytest.raises(ValueError, match="blocks of 32"):
        maths.q4_1(torch.zeros(2, 48))
    with pytest.raises(ValueError, match="unknown scheme"):
        maths.fake_quantize(w, "int3")
    with pytest.raises(ValueError, match="Hessian"):
        maths.fake_quantize(torch.zeros(4, 128), "gptq-g128")


def test_bits_and_bytes_per_scheme():
    assert maths.bits_per_weight("nf4", 576) == 4.5 and maths.bits_per_weight("q4_1", 576) == 5.0
    assert maths.bits_per_weight("int8", 576) == 8 + 32 / 576
    assert maths.bits_per_weight("int4zp-g128", 576) == 4 + 40 / 128 and maths.bits_per_weight("bf16", 7) == 16
    assert maths.weight_bytes("fp32", (192, 576)) == 192 * 576 * 4
    assert maths.weight_bytes("int4-g32", (2, 64)) == 2 * 64 // 2 + 4 * 4


def test_all_zero_groups_stay_zero():
    z = torch.zeros(3, 64)
    for name in qz.SCHEMES:
        if name != "gptq-g128" and not name.endswith("g128"):
            assert torch.equal(qz.fake_quantize(z, name), z), name


# ---- parity with quantisation libraries, on SmolLM2's own weights ------------------------------------------------


@pytest.mark.parametrize("name", MATRICES)
def test_int8_equals_optimum_quanto_and_bitsandbytes(smol, name):
    from bitsandbytes.functional import int8_vectorwise_quant
    from optimum.quanto import qint8, quantize_weight
    from optimum.quanto.tensor.optimizers import AbsmaxOptimizer

    w = weight(smol, name)
    ours = qz.fake_quantize(w, "int8")
    scale = AbsmaxOptimizer()(w, qtype=qint8, axis=0)
    ref = quantize_weight(w, qint8, axis=0, scale=scale).dequantize()
    assert_same_to_rounding(ours, ref, scale)
    codes, absmax, _ = int8_vectorwise_quant(w)
    assert_same_to_rounding(ours, codes.float() * absmax[:, None] / 127, absmax[:, None] / 127)


@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_zero_point_equals_optimum_quanto(smol, group):
    from optimum.quanto import qint4, quantize_weight
    from optimum.quanto.tensor.optimizers import MaxOptimizer

    tested = 0
    for name in MATRICES:
        w = weight(smol, name)
        if w.shape[1] % group:  # the libraries need whole groups; rows of 576 take a shorter last one
            continue
        tested += 1
        scale, shift = MaxOptimizer()(w, qtype=qint4, axis=0, group_size=group, zeropoint=True)
        assert shift.dtype == torch.uint8  # an integer zero-point
        ref = quantize_weight(w, qint4, axis=0, scale=scale, shift=shift, group_size=group).dequantize()
        ours = qz.fake_quantize(w, f"int4zp-g{group}")
        assert_same_to_rounding(ours, ref, scale.reshape(w.shape[0], -1).repeat_interleave(group, 1))
    assert tested  # at least one matrix of whole groups


@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_symmetric_equals_pytorch_fake_quantisation(smol, group):
    """Every group of a row is one channel of PyTorch's observer; on rows of 576 the last group is 576 mod group
    wide (GPTQ's convention), checked the same way."""
    from torch.ao.quantization.observer import PerChannelMinMaxObserver

    for name in MATRICES:
        w = weight(smol, name)
        ref, steps = torch.empty_like(w), torch.empty_like(w)
        for start in range(0, w.shape[1], group):
            part = w[:, start : start + group]  # (rows, group or the shorter last group): one channel per row
            observer = PerChannelMinMaxObserver(
                ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-7, quant_max=7
            )
            observer(part)
            scale, zero = observer.calculate_qparams()
            ref[:, start : start + group] = torch.fake_quantize_per_channel_affine(
                part, scale.float(), zero.int(), 0, -7, 7
            )
            steps[:, start : start + group] = scale.float()[:, None]
        assert_same_to_rounding(qz.fake_quantize(w, f"int4-g{group}"), ref, steps)


@pytest.mark.parametrize("name", MATRICES)
def test_nf4_equals_bitsandbytes(smol, name):
    import bitsandbytes.functional as bnb

    w = weight(smol, name)
    packed, state = bnb.quantize_4bit(w, blocksize=64, quant_type="nf4")
    ref = bnb.dequantize_4bit(packed, state)
    assert state.absmax.dtype == torch.float32 and state.absmax.numel() == w.numel() // 64  # 4.5 bits per weight
    assert_same_to_rounding(qz.fake_quantize(w, "nf4"), ref, state.absmax.repeat_interleave(64).reshape(w.shape))


@pytest.mark.parametrize("name", MATRICES)
def test_q4_1_equals_the_gguf_package(smol, name):
    import gguf

    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(0)) * 0.05 + weight(smol, name)[:64, :256]
    packed = gguf.quants.quantize(w.numpy(), gguf.GGMLQuantizationType.Q4_1)
    ref = torch.from_numpy(gguf.quants.dequantize(packed, gguf.GGMLQuantizationType.Q4_1))
    assert packed.nbytes == qz.weight_bytes("q4_1", tuple(w.shape))  # 5 bits per weight: the bytes the file holds
    d = (w.reshape(-1, 32).amax(1) - w.reshape(-1, 32).amin(1)) / 15
    assert_same_to_rounding(qz.fake_quantize(w, "q4_1"), ref, d.repeat_interleave(32).reshape(w.shape))


def test_the_toolkit_smollm2_is_already_q4_1(smol):
    """The embedded model is the GGUF file's Q4_1 weights, dequantised: quantising them to Q4_1 again changes
    nothing, every block of 32 holds at most 16 values, and our Q4_1 bytes are the file's tensor bytes."""
    import gguf

    from toolkit import models

    for lin in qz.linears(smol)[::23]:
        assert torch.equal(qz.fake_quantize(lin.weight, "q4_1"), lin.weight.float())
        assert max(len(torch.unique(b)) for b in lin.weight.reshape(-1, 32)[:500]) <= 16
    reader = gguf.GGUFReader(models.source_file(models.EMBEDDED["smollm2-135m"]))
    q41 = sum(int(t.n_bytes) for t in reader.tensors if t.tensor_type == gguf.GGMLQuantizationType.Q4_1)
    assert q41 == sum(qz.weight_bytes("q4_1", tuple(lin.weight.shape)) for lin in qz.linears(smol))


# ---- GPTQ ----------------------------------------------------------------------------------------------------------


def test_gptq_with_uncorrelated_inputs_is_plain_rounding():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(maths.gptq(w, torch.eye(64), 4, 32, damp=0.0), maths.zero_point_int(w, 4, 32))


def test_gptq_lowers_the_layer_output_error_on_correlated_inputs():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(512, 64, generator=g) @ torch.randn(64, 64, generator=g)  # (tokens, in) correlated features
    w = torch.randn(32, 64, generator=g)
    h = 2 * x.T @ x / len(x)
    rtn, ours = maths.zero_point_int(w, 4, 32), maths.gptq(w, h, 4, 32)
    err = lambda q: torch.linalg.norm(x @ (q - w).T)  # noqa: E731
    assert err(ours) < 0.8 * err(rtn)
    levels = [len(torch.unique(row[c : c + 32])) for row in ours for c in (0, 32)]
    assert max(levels) <= 16  # GPTQ's weights are still 4-bit: at most 16 values per group


def test_gptq_runs_layer_by_layer_on_a_tiny_model():
    loaded = tiny("llama-gqa")
    ids = torch.randint(0, 1000, (48,), generator=torch.Generator().manual_seed(0))
    before = {n: p.clone() for n, p in loaded.model.state_dict().items()}
    out = qz.gptq_weights(loaded, ids, group=32)
    assert set(out) == {lin.name for lin in qz.linears(loaded)}
    assert all(torch.equal(before[n], p) for n, p in loaded.model.state_dict().items())  # shared model untouched


# ---- capture -------------------------------------------------------------------------------------------------------


def test_quantising_runs_each_layer_with_its_quantised_weight_and_keeps_none():
    loaded = tiny("llama-gqa")
    ids = torch.tensor([[1, 5, 9, 2, 7, 3]])
    lins = qz.linears(loaded.model)
    full = qz.with_weights(loaded.model, {lin.name: qz.fake_quantize(lin.weight, "int4-g32") for lin in lins})
    seen = []
    lazy = qz.quantising(loaded.model, "int4-g32", lambda lin, q: seen.append(lin.name))
    with torch.no_grad():
        torch.testing.assert_close(lazy(ids).logits, full(ids).logits, rtol=0, atol=0)  # the same weights
        assert not torch.equal(lazy(ids).logits, loaded.model(ids).logits)
    assert seen == [lin.name for lin in lins] * 2  # every linear, in order, once per pass
    for lin in qz.linears(lazy):  # between passes each layer holds the shared weight again, no quantised copy
        assert lin.weight.data_ptr() == loaded.model.get_submodule(lin.name).weight.data_ptr()


def test_capture_on_a_tiny_model_matches_transformers_loss():
    loaded = tiny("llama-gqa")
    text = "The cat sat on the mat. " * 12
    trace = qz.capture(
        loaded,
        text,
        schemes=("fp32", "int8", "int4-g32", "q4_1"),
        eval_tokens=40,
        window=20,
        module="model.layers.1.mlp.down_proj",
        bins=16,
    )
    ids = qz.capture.__globals__["tokens"](loaded, text, 40)
    with torch.no_grad():
        losses = [loaded.model(input_ids=ids[None, s : s + 20], labels=ids[None, s : s + 20]).loss for s in (0, 20)]
    assert trace.nll[0] == pytest.approx(float(sum(losses)) / 2, rel=1e-5)  # two windows of 19 predictions each
    assert trace.layer_error.shape == (4, 2, 7) and trace.layer_error[0].max() == 0
    assert trace.layer_error[1].mean() < trace.layer_error[2].mean()  # int8 < int4
    path = trace.save(Path(pytest.importorskip("tempfile").mkdtemp()) / "q.npz")
    assert qz.QuantizationTrace.load(path).schemes == trace.schemes


def test_smoothquant_keeps_the_product_and_shrinks_the_error(smol):
    x = torch.randn(64, 576, generator=torch.Generator().manual_seed(0))
    x[:, [7, 300]] *= 60  # two outlier channels
    w = weight(smol, "model.layers.3.self_attn.q_proj")
    s = maths.smooth_scales(x.abs().amax(0), w.abs().amax(0), 0.5)
    torch.testing.assert_close((x / s) @ (w * s).T, x @ w.T, rtol=1e-4, atol=1e-4)
    assert maths.w8a8_error(x, w, s) < 0.5 * maths.w8a8_error(x, w)


def test_activations_on_the_real_model(smol):
    trace = qz.activations(smol, "The quick brown fox jumps over the lazy dog. " * 4, max_tokens=48)
    assert trace.x_absmax.shape == (2, 30, 576)
    ratios = [trace.outlier_ratio(0, layer) for layer in range(30)]
    assert max(ratios) > 10  # a few channels dwarf the median one
    assert float(np.mean(trace.error_smooth)) < float(np.mean(trace.error))


# ---- the recorded results, the slides and the demo ----------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded():
    return qz.QuantizationTrace.load(ASSETS / "schemes.npz")


def test_recorded_results_are_of_this_text_and_model(recorded):
    assert recorded.meta["model"] == "smollm2-135m" and recorded.schemes[0] == "fp32"
    assert recorded.meta["text"] == corpus.fingerprint(corpus.held_out())
    assert set(recorded.schemes) == set(qz.SCHEMES)
    assert recorded.ppl[recorded.row("q4_1")] == recorded.ppl[recorded.row("fp32")]  # Q4_1 again: nothing moves
    assert recorded.ppl[recorded.row("gptq-g128")] < recorded.ppl[recorded.row("int4zp-g128")]


@pytest.mark.slow
def test_recorded_perplexity_is_the_models(smol, recorded):
    """Two schemes scored again now, on the same held-out tokens, give the recorded numbers."""
    for name in ("fp32", "int4-g128"):
        live = qz.capture(
            smol,
            schemes=(name,),
            eval_tokens=recorded.eval_tokens,
            window=recorded.meta["window"],
            module=recorded.hist_module,
            bins=len(recorded.hist_before),
        )
        assert live.ppl[0] == pytest.approx(recorded.ppl[recorded.row(name)], rel=1e-4)
        assert live.linear_bytes[0] == recorded.linear_bytes[recorded.row(name)]
        np.testing.assert_allclose(live.layer_error[0], recorded.layer_error[recorded.row(name)], rtol=1e-4, atol=1e-6)


def slide(title: str) -> str:
    found = [s for s in deck_slides() if re.search(rf"^# .*{re.escape(title)}", s, re.M | re.I)]
    assert len(found) == 1, f"{len(found)} slides titled with {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_summary_table_states_the_measurements(recorded):
    text = slide("Quantisation summary")
    base = recorded.ppl[recorded.row("fp32")]
    for name in ("bf16", "int8", "gptq-g128", "q4_1", "nf4", "int4zp-g128"):
        r = recorded.row(name)
        mb = f"{recorded.linear_bytes[r] / 1e6:.0f} MB"
        ppl = f"{recorded.ppl[r]:.2f}"
        assert f"| {mb} | {ppl} |" in text, f"{name}: the table should say {mb} and perplexity {ppl}"
    assert f"{base:.2f}" in text and f"{recorded.linear_bytes[0] / 1e6:.0f} MB" in text


def test_quantisation_slide_numbers(recorded):
    text = slide("fewer bits per weight")
    nf4 = recorded.row("nf4")
    assert f"{recorded.linear_bytes[0] / 1e6:.0f} MB" in text and f"{recorded.linear_bytes[nf4] / 1e6:.0f} MB" in text
    growth = 100 * (recorded.ppl[nf4] / recorded.ppl[0] - 1)
    assert f"+{growth:.0f}%" in text


def test_outlier_slide_numbers(smol):
    acts = qz.ActivationTrace.load(ASSETS / "activations.npz")
    text = slide("Outliers")
    site, layer = max(((s, i) for s in range(2) for i in range(30)), key=lambda x: acts.outlier_ratio(*x))
    assert f"{acts.outlier_ratio(site, layer):.0f}×" in text
    assert f'"layer": {layer}, "site": "{acts.sites[site]}"' in text  # the demo opens on that layer
    assert (
        f"{100 * float(np.mean(acts.error)):.1f}%" in text and f"{100 * float(np.mean(acts.error_smooth)):.1f}%" in text
    )


def test_figures_render(recorded):
    acts = qz.ActivationTrace.load(ASSETS / "activations.npz")
    for fig in (
        plots.tradeoff(recorded, selected="nf4"),
        plots.layer_errors(recorded, "int4-g128", dark=True),
        plots.histogram(recorded, "nf4"),
        plots.table(recorded),
        plots.outliers(acts, "attention", 3),
        plots.w8a8_by_layer(acts),
    ):
        assert fig.data and (fig.layout.font.size or 0) >= 16


def test_demo_views_and_bad_input():
    import gradio as gr

    from demos import quantization as d

    for view in d.VIEW_NAMES:
        notice, main, *_ = d.show(view, "nf4", 3, "attention")
        assert main["value"] is not None and "perplexity" in notice or "W8A8" in notice
    notice, *_ = d.show("outliers", "nf4", 99, "mlp")
    assert "does not exist" in notice
    # the histogram is one recorded weight whatever the layer controls read: the notice says which
    notice, *_ = d.show("histogram", "nf4", 3, "attention")
    assert f"one recorded weight, `{d.recorded().hist_module}`" in notice and "outliers view" in notice
    assert "recorded weight" not in d.show("tradeoff", "nf4", 3, "attention")[0]
    for bad in (
        ("views?", "nf4", 3, "attention"),
        ("tradeoff", "int3", 3, "attention"),
        ("outliers", "nf4", "x", "attention"),
        ("outliers", "nf4", 3, "nowhere"),
    ):
        with pytest.raises(gr.Error) as err:
            d.show(*bad)
        assert "Something went wrong" not in str(err.value)


@pytest.mark.slow
def test_demo_runs_one_scheme_live(recorded):
    from demos import quantization as d

    view, notice, *_ = d.run_live("tradeoff", "bf16", 3, "attention")
    assert view == "tradeoff" and "run live" in notice
    assert f"{recorded.ppl[recorded.row('bf16')]:.3f}" in notice  # the live run gives the recorded number


def test_demo_through_the_server(live_server):
    client = live_server.client("quantization")
    notice, *_ = client.predict("table", "q4_1", 0, "attention", "", 0.5, api_name="/show")
    assert "Q4_1" in notice
