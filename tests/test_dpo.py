"""Reward model and DPO: Bradley-Terry by hand, TRL's own DPO loss code on the same log-probs, real DPO steps
with LoRA that leave the shared model untouched."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from demos import ui
from toolkit import dpo
from toolkit.dpo import DpoTrace
from toolkit.trace import Trace


def test_bradley_terry_by_hand():
    assert float(dpo.bradley_terry(0.0)) == 0.5
    assert float(dpo.reward_model_loss(0.0)) == pytest.approx(math.log(2))
    assert float(dpo.bradley_terry(math.log(3))) == pytest.approx(0.75)  # e^m / (1 + e^m) with e^m = 3
    assert float(dpo.reward_model_loss(math.log(3))) == pytest.approx(-math.log(0.75))
    loss, rw, rl = dpo.dpo_loss(-10.0, -20.0, -12.0, -18.0, beta=0.5)
    assert (float(rw), float(rl)) == (1.0, -1.0) and float(loss) == pytest.approx(-math.log(1 / (1 + math.exp(-2))))


def test_config_and_pair_checks(smol):
    from toolkit.config import ConfigError

    for bad in (
        {"beta": 0},
        {"beta": 10.5},
        {"steps": 0},
        {"steps": dpo.MAX_STEPS + 1},
        {"r": 0},
        {"r": 65},
        {"lr": 0},
        {"max_chars": 0},
    ):
        with pytest.raises(ConfigError):
            dpo.DpoConfig(**bad)
    assert dpo.check_pair(("q", "a", "b")) == dpo.Pair("q", "a", "b")
    with pytest.raises(ValueError, match="same"):
        dpo.check_pair(("q", "same ", " same"))
    with pytest.raises(ValueError, match="limit is 10"):
        dpo.sequence_logps(smol, ("q", "a" * 11, "b"), max_chars=10)
    with pytest.raises(ValueError, match="same"):
        dpo.train(smol, ("q", "a", "a"))  # refused before any step


def test_figures_and_margin_range():
    fig = dpo.figures.bradley_terry(8.0)
    assert isinstance(fig, go.Figure) and min(fig.data[0].x) == -9.0 and max(fig.data[0].x) == 9.0
    assert dpo.margins_around(None).max() == 6.0
    curve = dpo.figures.bradley_terry_curve(dark=True)
    np.testing.assert_allclose(curve.data[0].y, 1 / (1 + np.exp(-np.linspace(-6, 6, 400))), rtol=1e-12)
    np.testing.assert_allclose(curve.data[1].y, -np.log(curve.data[0].y), rtol=1e-9)


def trl_dpo_loss(per_token: torch.Tensor, completion_mask: torch.Tensor, ref: torch.Tensor, beta: float, tmp_path):
    """Run TRL's DPOTrainer._compute_loss itself, with its default DPOConfig, on the given per-token log-probs.

    per_token: (2, T-1) log-probs of [chosen, rejected] aligned with completion_mask[:, 1:]; ref: (2,).
    Only the model call is replaced (it returns these log-probs); the loss and reward code is TRL's.
    """
    from trl import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    args = DPOConfig(
        output_dir=str(tmp_path), beta=beta, precompute_ref_log_probs=True, report_to=[], use_cpu=True, bf16=False
    )

    class Accelerator:
        device = torch.device("cpu")

        def gather_for_metrics(self, x):
            return x

        gather = gather_for_metrics

    zeros = torch.zeros_like(per_token)
    model = lambda **kw: SimpleNamespace(
        log_probs=per_token,
        entropy=zeros,
        mean_logits=zeros,  # noqa: E731
        is_top1=zeros.bool(),
    )
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=False),
        accelerator=Accelerator(),
        args=args,
        beta=args.beta,
        precompute_ref_logps=args.precompute_ref_log_probs,
        loss_types=args.loss_type,
        loss_weights=args.loss_weights or [1.0] * len(args.loss_type),
        ld_alpha=args.ld_alpha,
        f_divergence_type=args.f_divergence_type,
        f_alpha_divergence_coef=args.f_alpha_divergence_coef,
        label_smoothing=args.label_smoothing,
        use_weighting=args.use_weighting,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros_like(completion_mask),
        "attention_mask": torch.ones_like(completion_mask),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref[:1],
        "ref_rejected_logps": ref[1:],
    }
    loss = DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
    m = trainer._metrics["eval"]
    return float(loss), m["rewards/chosen"][0], m["rewards/rejected"][0]


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_equals_trls_on_the_same_log_probs(smol, beta, tmp_path):
    ids, mask, labels = dpo.pair_batch(smol, dpo.PAIR)
    with torch.no_grad():
        per_token = dpo.token_logps(smol.model, ids, mask, labels)  # (2, T-1)
    completion_mask = (labels != -100).long()
    ref = per_token.sum(-1) + torch.tensor([-0.7, 1.3])  # a reference that differs from the policy
    loss, rw, rl = dpo.dpo_loss(per_token[0].sum(), per_token[1].sum(), ref[0], ref[1], beta)
    trl_loss, trl_rw, trl_rl = trl_dpo_loss(per_token, completion_mask, ref, beta, tmp_path)
    assert float(loss) == pytest.approx(trl_loss, abs=1e-6)
    assert (float(rw), float(rl)) == (pytest.approx(trl_rw, abs=1e-6), pytest.approx(trl_rl, abs=1e-6))


def test_sequence_logps_equal_transformers_loss(smol):
    from toolkit import sft

    lw, _ = dpo.sequence_logps(smol, dpo.PAIR)
    ids, labels, _ = sft.build(smol, sft.Exchange(dpo.PAIR.prompt, dpo.PAIR.chosen))
    with torch.no_grad():
        mean_nll = smol.model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
    n = sum(1 for x in labels[1:] if x != -100)
    assert float(lw) == pytest.approx(-float(mean_nll) * n, rel=1e-5)


def test_dpo_steps_move_rewards_and_leave_the_shared_model(smol, tmp_path):
    ids = torch.tensor([[1, 504, 3575, 282, 4649]])
    with torch.no_grad():
        before = smol.model(ids).logits.clone()
    t = dpo.train(smol, dpo.PAIR, beta=0.1, steps=2, r=4, lr=5e-3)
    ref = dpo.sequence_logps(smol, dpo.PAIR)
    assert (t.ref_chosen, t.ref_rejected) == (
        pytest.approx(float(ref[0]), abs=1e-4),
        pytest.approx(float(ref[1]), abs=1e-4),
    )
    assert t.loss[0] == pytest.approx(math.log(2), abs=1e-6)  # fresh adapter: π = π_ref
    assert t.reward_chosen[0] == 0 and t.reward_rejected[0] == 0
    assert t.loss[-1] < t.loss[0] and t.reward_chosen[-1] - t.reward_rejected[-1] > 0
    with torch.no_grad():
        assert torch.equal(smol.model(ids).logits, before)
    back = Trace.load(t.save(tmp_path / "d.npz"))
    assert isinstance(back, DpoTrace)
    np.testing.assert_array_equal(back.loss, t.loss)


def test_demo_handlers_and_bad_input(smol):
    from demos import dpo as d

    assert isinstance(d.demo, gr.Blocks)
    fig, md = d.bradley_terry(2, 0)
    assert isinstance(fig, go.Figure) and "0.881" in md
    assert "log 2" in d.reference(*dpo.PAIR)
    a, b, md = d.train(*dpo.PAIR, 0.1, 1)
    assert isinstance(a, go.Figure) and "Loss 0.693" in md
    bad = [
        lambda: d.bradley_terry("high", 0),
        lambda: d.bradley_terry(100, 0),
        lambda: d.bradley_terry(float("inf"), 0),
        lambda: d.reference("", "a", "b"),
        lambda: d.reference("q", "same", "same"),
        lambda: d.reference("q", "a" * 2000, "b"),
        lambda: d.train(*dpo.PAIR, 0, 1),
        lambda: d.train(*dpo.PAIR, "x", 1),
        lambda: d.train(*dpo.PAIR, 0.1, "many"),
        lambda: d.train(*dpo.PAIR, 11, 1),
        lambda: d.train(*dpo.PAIR, 0.1, dpo.MAX_STEPS + 1),
    ]
    for call in bad:
        with pytest.raises(ui.UserError):
            call()

    class Req:
        query_params = {"rw": "3", "rl": "nan", "chosen": "Same", "rejected": "Same"}

    out = d.on_load(Req())
    assert out[:2] == (3.0, 0.0) and out[4:7] == dpo.PAIR  # junk presets fall back to defaults


def test_demo_through_a_real_server(live_server):
    _, md = live_server.client("dpo").predict(1, 0, api_name="/bradley_terry")
    assert "0.731" in md
