"""Catastrophic forgetting: the KL penalty equals torch's kl_div, training never changes the shared model (full
and LoRA), runs are reproducible from their seed, the recorded runs agree with the slide, and the demo."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from toolkit import forgetting as fg
from toolkit.forgetting.record import ASSET


def test_kl_to_base_equals_torch_kl_div():
    torch.manual_seed(0)
    logits, base = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    ours = fg.kl_to_base(logits, base)
    ref = (
        torch.nn.functional.kl_div(
            torch.log_softmax(logits, -1), torch.log_softmax(base, -1), log_target=True, reduction="none"
        )
        .sum(-1)
        .mean()
    )
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)
    assert float(fg.kl_to_base(base, base)) == pytest.approx(0.0, abs=1e-6)
    assert fg.perplexity(math.log(20.0)) == pytest.approx(20.0)


def _fingerprint(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full_top", "lora_kl", "lora_replay"])
def test_training_never_changes_the_shared_model(method):
    """Two real updates on a private copy: every parameter of the shared model is bit-for-bit what it was, and
    the private model did move."""
    from architectures import tiny

    shared = tiny("llama-gqa")
    before = _fingerprint(shared.model)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        logits = shared.model(ids).logits
    cfg = fg.preset(method, steps=2, top_layers=1, batch_size=2, lr=1e-2)
    steps = list(fg.stream(shared, cfg))
    trained = steps[-1][1]
    assert [s.step for s, _ in steps] == [0, 1, 2]
    for name, p in shared.model.named_parameters():
        assert torch.equal(p, before[name]), f"{method} changed the shared {name}"
    with torch.no_grad():
        assert torch.equal(shared.model(ids).logits, logits)
        assert not torch.equal(trained(ids).logits, logits)


def test_a_lora_step_recomputes_activations_instead_of_keeping_them(smol):
    """The private model is a training twin (lora.twin(training=True)): a LoRA step on 8 exchanges keeps a fraction
    of what an eager twin keeps for the backward pass (1.4 GB measured), for the same loss to float rounding."""
    from peft import get_peft_model

    from toolkit.forgetting.capture import LORA_TARGETS
    from toolkit.lora import peft_config, twin
    from toolkit.sft import batch

    ids, mask, labels = batch(smol, list(fg.task("train"))[:8])  # (8, T)

    def step(model):
        kept = []

        def pack(t):
            kept.append(t.numel() * t.element_size())
            return t

        model.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        return float(loss), sum(kept) / 2**30

    cfg = fg.preset("lora")
    ours, ours_gb = step(fg.private_model(smol, cfg))
    plain = twin(smol.model)
    for p in plain.parameters():
        p.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    eager, eager_gb = step(get_peft_model(plain, peft_config(r=cfg.r, alpha=2.0 * cfg.r, targets=LORA_TARGETS)))
    assert ours == pytest.approx(eager, rel=1e-5)
    assert eager_gb > 1.0 and ours_gb < 0.5, (ours_gb, eager_gb)
    assert smol.model.config._attn_implementation == "eager"  # the shared model is as it was


@pytest.mark.slow
def test_the_real_model_is_untouched_by_full_finetuning(smol):
    top = smol.model.model.layers[-1].mlp.down_proj.weight
    snapshot = top.detach().clone()
    cfg = fg.preset("full_top", steps=1, top_layers=1, batch_size=1)
    _, (_, trained) = list(fg.stream(smol, cfg))
    assert torch.equal(smol.model.model.layers[-1].mlp.down_proj.weight, snapshot)
    assert not torch.equal(trained.model.layers[-1].mlp.down_proj.weight, snapshot)


@pytest.mark.slow
def test_runs_are_reproducible_from_their_seed():
    from architectures import tiny

    model = tiny("llama-gqa")
    a = fg.train(model, ["lora"], steps=2, batch_size=2)
    b = fg.train(model, ["lora"], steps=2, batch_size=2)
    assert np.array_equal(a.task_loss, b.task_loss) and np.array_equal(a.general_ppl, b.general_ppl)
    assert a.after == b.after
    c = fg.train(model, ["lora"], steps=2, batch_size=2, seed=1)
    assert not np.array_equal(a.train_loss[:1], c.train_loss)


def test_config_limits():
    with pytest.raises(ValueError):
        fg.ForgettingConfig(method="sgd")
    with pytest.raises(KeyError):
        fg.preset("nope")
    assert fg.preset("lora_low_lr").lr == fg.preset("lora").lr / 10


@pytest.fixture(scope="module")
def recorded():
    return fg.ForgettingTrace.load(ASSET)


def test_recorded_runs(recorded):
    assert recorded.methods == list(fg.RECORDED) and recorded.steps >= 12
    assert recorded.meta["model"] == "smollm2-135m"
    for m in recorded.methods:
        assert recorded.task_loss[recorded.row(m), -1] < recorded.task_loss[recorded.row(m), 0]  # it learnt


def _slide(title: str) -> str:
    from lecture.deck import deck_slides

    found = [s for s in deck_slides() if re.search(rf"^# {re.escape(title)}", s, re.M)]
    assert len(found) == 1, f"{len(found)} slides titled {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_slide_states_the_recorded_numbers(recorded):
    text = _slide("Catastrophic forgetting")
    assert f"{recorded.steps} steps" in text
    assert f"General-text perplexity {recorded.summary(recorded.methods[0])['ppl_before']:.1f} before" in text
    for m in recorded.methods:
        assert f"{fg.METHOD_TITLES[m]} {recorded.summary(m)['ppl_after']:.1f}" in text, m
    worst = max(recorded.methods, key=lambda m: recorded.summary(m)["ppl_rise_pct"])
    assert f"most forgetting: {fg.METHOD_TITLES[worst]} ({recorded.summary(worst)['ppl_rise_pct']:+.0f} %)" in text
    asked = recorded.prompts[0]
    assert f'"{asked}" gets "{recorded.after["lora"][0][:7]}…"' in text  # what LoRA now answers
    assert recorded.before[0] == "The capital of France is Paris."


def test_demo_handlers(recorded):
    from demos import forgetting as demo

    status, plot, html = demo.show("curves")
    assert "recorded steps" in status and plot["visible"]
    status, plot, html = demo.show("answers")
    assert html["visible"] and "France" in html["value"]


def test_demo_bad_input():
    from demos import forgetting as demo
    from demos.ui import UserError

    with pytest.raises(UserError):
        demo.show("nope")
    for method, steps in [("nope", 2), ("lora", "x"), ("lora", float("nan"))]:
        with pytest.raises(UserError):
            next(demo.live(method, steps))


def test_live_run_shares_the_training_slot():
    """A live forgetting run waits for nobody: while GRPO, LoRA or DPO trains, it is told the server is busy."""
    from demos import forgetting as demo
    from demos import ui

    with ui.training():
        with pytest.raises(ui.UserError, match="Another training run"):
            next(demo.live("lora", 2))
    with ui.training():  # released again after the refusal
        pass


@pytest.mark.slow
def test_demo_through_live_server(live_server):
    client = live_server.client("forgetting")
    status, plot, html = client.predict("curves", api_name="/show")
    assert "recorded steps" in status and plot["visible"]


@pytest.mark.slow
def test_the_command_reproduces_the_recorded_start(recorded, tmp_path, capsys):
    """`lecture forgetting` for one short run: the same model, data and seed give the recorded step 0 exactly and
    a first update of the same size."""
    import json

    from lecture.cli import main

    out = tmp_path / "f.npz"
    assert main(["forgetting", "--methods", "lora", "--steps", "1", "--out", str(out)]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["method"] == "lora"
    again = fg.ForgettingTrace.load(out)
    i = recorded.row("lora")
    assert again.task_loss[0, 0] == pytest.approx(recorded.task_loss[i, 0], rel=1e-5)
    assert again.general_ppl[0, 0] == pytest.approx(recorded.general_ppl[i, 0], rel=1e-5)
    assert again.train_loss[0, 0] == pytest.approx(recorded.train_loss[i, 0], rel=1e-4)
    assert again.before == recorded.before
