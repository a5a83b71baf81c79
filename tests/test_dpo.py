"""Reward model and DPO: Bradley-Terry by hand, parity with a real step of TRL's DPOTrainer, real DPO steps with
LoRA that leave the shared model untouched."""

from __future__ import annotations

import copy
import dataclasses
import math

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from architectures import tiny

from demos import ui
from toolkit import dpo, models
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


# ---------------------------------------------------------------- parity with TRL's DPOTrainer, run for real
# TRL 1.16's public DPOTrainer trains a tiny random Llama (SmolLM2's tokenizer and chat template) for one step on
# dpo.PAIR, with a reference model of its own (the same architecture, seeded differently, passed as ref_model), so
# the implicit rewards are not zero. A subclass overrides the public compute_loss(model, inputs) to record what TRL
# hands it and returns, with our log-probs of the pair under the model TRL is training at that moment. Metrics come
# from the public state.log_history (the training step's own log, or trainer.log({}) after a compute_loss call).

TRL_LR = 1e-2  # large enough that one AdamW step visibly moves the tiny policy


def ours(model, reference, beta: float) -> dict[str, float]:
    """Our DPO numbers for dpo.PAIR under ``model`` against ``reference`` (both plain causal LMs), in TRL's names."""
    tok = tiny("llama-gqa").tokenizer
    logps = dpo.sequence_logps(models.Loaded("policy", model, tok, "causal"), dpo.PAIR)  # (2,) chosen, rejected
    ref = dpo.sequence_logps(models.Loaded("reference", reference, tok, "causal"), dpo.PAIR)
    loss, rw, rl = dpo.dpo_loss(logps[0], logps[1], ref[0], ref[1], beta)
    return {
        "loss": float(loss),
        "rewards/chosen": float(rw),
        "rewards/rejected": float(rl),
        "rewards/margins": float(rw - rl),
        "logps/chosen": float(logps[0]),
        "logps/rejected": float(logps[1]),
    }


def assert_same_metrics(logged: dict, mine: dict):
    """TRL's logged rewards and log-probs equal ours (the loss is compared where TRL returns it)."""
    for key, value in mine.items():
        if key == "loss":
            continue
        tol = 1e-4 if key.startswith("logps") else 1e-5  # log-probs are sums of ~10 terms near -10 each
        assert logged[key] == pytest.approx(value, abs=tol), key


@pytest.fixture(scope="module")
def trl_dpo(tmp_path_factory):
    """trl_dpo(beta) -> TRL's DPOTrainer after one real training step (max_steps=1); trainer.reference is the
    reference model it was given, trainer.calls [(inputs, TRL's loss, our numbers) per compute_loss call]."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    class Recording(DPOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            with torch.no_grad():
                mine = ours(model, self.reference, self.args.beta)
            self.calls.append(({k: v.clone() for k, v in inputs.items()}, loss.detach().item(), mine))
            return loss

    root = tmp_path_factory.mktemp("trl-dpo")
    conversation = {  # conversational: TRL applies the chat template, as dpo.pair_batch does
        "prompt": [{"role": "user", "content": dpo.PAIR.prompt}],
        "chosen": [{"role": "assistant", "content": dpo.PAIR.chosen}],
        "rejected": [{"role": "assistant", "content": dpo.PAIR.rejected}],
    }
    runs = {}

    def run(beta: float):
        if beta not in runs:
            policy = copy.deepcopy(tiny("llama-gqa").model)  # TRL patches the model it trains: not the shared one
            torch.manual_seed(1)
            reference = type(policy)(copy.deepcopy(policy.config)).eval()  # same architecture, other weights
            args = DPOConfig(
                output_dir=str(root / str(beta)),
                beta=beta,
                per_device_train_batch_size=1,
                max_steps=1,
                learning_rate=TRL_LR,
                logging_steps=1,
                report_to=[],
                save_strategy="no",
                use_cpu=True,
                bf16=False,
                seed=0,
                disable_tqdm=True,
            )
            trainer = Recording(
                model=policy,
                ref_model=reference,
                args=args,
                train_dataset=Dataset.from_list([conversation]),
                processing_class=tiny("llama-gqa").tokenizer,
            )
            trainer.reference, trainer.calls = reference, []
            trainer.train()
            runs[beta] = trainer
        return runs[beta]

    return run


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_and_rewards_equal_trls_training_step(trl_dpo, beta):
    """TRL's own training step: its batch is our pair_batch token for token, and the loss it trained on and the
    rewards and log-probs it logged equal ours on the same policy and reference."""
    trainer = trl_dpo(beta)
    assert trainer.state.global_step == 1
    inputs, trl_loss, mine = trainer.calls[0]  # recorded inside trainer.train()
    ids, mask, labels = dpo.pair_batch(tiny("llama-gqa"), dpo.PAIR)  # row 0 chosen, row 1 rejected, as TRL
    assert torch.equal(inputs["input_ids"], ids) and torch.equal(inputs["attention_mask"], mask)
    assert torch.equal(inputs["completion_mask"].bool(), labels != -100)
    logged = next(h for h in trainer.state.log_history if "rewards/chosen" in h)  # the step's log
    assert trl_loss == pytest.approx(mine["loss"], abs=1e-5)
    assert logged["loss"] == pytest.approx(mine["loss"], abs=1e-5)  # what the Trainer logged for the step
    assert_same_metrics(logged, mine)
    assert abs(mine["rewards/chosen"]) > 1e-3 and abs(mine["rewards/rejected"]) > 1e-3  # π ≠ π_ref already
    assert mine["loss"] != pytest.approx(math.log(2), abs=1e-3)


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_and_rewards_equal_trls_after_its_step(trl_dpo, beta):
    """After TRL's optimiser step, its public compute_loss on a batch from its own dataloader and the rewards it
    logs equal ours on the moved policy; the reference has not moved."""
    trainer = trl_dpo(beta)
    before = trainer.calls[0][2]
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, batch)
    trainer.log({})
    logged = trainer.state.log_history[-1]
    _, recorded, mine = trainer.calls[-1]
    assert recorded == float(trl_loss) == pytest.approx(mine["loss"], abs=1e-5)
    assert_same_metrics(logged, mine)
    assert mine["logps/chosen"] != pytest.approx(before["logps/chosen"], abs=1e-3)  # the policy moved
    ref_w = before["logps/chosen"] - before["rewards/chosen"] / beta
    assert mine["logps/chosen"] - mine["rewards/chosen"] / beta == pytest.approx(ref_w, abs=1e-3)


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


def test_demo_handlers_and_bad_input(smol, monkeypatch):
    from demos import dpo as d

    assert isinstance(d.demo, gr.Blocks)
    fig, md = d.bradley_terry(2, 0)
    assert isinstance(fig, go.Figure) and "0.881" in md
    assert "log 2" in d.reference(*dpo.PAIR)
    a, b, md = d.train(*dpo.PAIR, 0.1, 1)
    assert isinstance(a, go.Figure) and "loss 0.693" in md and md.startswith("1 step (")
    trained = d.dpo.train  # a loss that rounds to minus zero (β = 10 on a short pair did) is shown as 0.000
    monkeypatch.setattr(
        d.dpo, "train", lambda *a, **k: dataclasses.replace(t := trained(*a, **k), loss=np.array([t.loss[0], -1e-9]))
    )
    assert "→ **0.000**" in d.train(*dpo.PAIR, 0.1, 1)[2]
    monkeypatch.undo()
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

    view, *pair, bt, steps_plot, lp_plot, r_w, r_l, bt_md, beta, steps, run, dpo_md = d.on_load(Req())
    assert tuple(pair) == dpo.PAIR and (r_w["value"], r_l["value"]) == (3.0, 0.0)  # junk presets: the defaults
    assert view == "bradley-terry" and bt["visible"] and not steps_plot["visible"] and "0.953" in bt_md["value"]
    assert bt["value"].layout.height is None  # the hero is sized by its frame
    assert "log 2" in dpo_md["value"] and not run["visible"]  # the reference is ready; DPO waits for its button

    class Steps:
        query_params = {"view": "steps", "rw": "40", "beta": "0.5", "steps": "99"}

    view, *_, bt, steps_plot, lp_plot, r_w, r_l, bt_md, beta, steps, run, dpo_md = d.on_load(Steps())
    assert view == "steps" and steps_plot["visible"] and run["visible"] and not r_w["visible"]
    assert "Run DPO" in steps_plot["value"].layout.annotations[0].text  # waits for the button, says so
    assert r_w["value"] == d.REWARD_RANGE and (beta["value"], steps["value"]) == (0.1, 3)  # out of range: defaults
    assert d.after_train("bradley-terry")[0] == "steps" and d.after_train("log-probs")[0] == "log-probs"
    assert d.show_view("nope")[0]["visible"] and d.show_view("log-probs")[2]["visible"]


def test_demo_through_a_real_server(live_server):
    _, md = live_server.client("dpo").predict(1, 0, api_name="/bradley_terry")
    assert "0.731" in md


def test_token_logps_run_the_head_at_the_answer_s_positions_only(smol):
    """The vocabulary projection runs where a position predicts an answer token, not over the prompt (at the limits
    the whole text's logits were 171 MiB a pair); the log-probs equal those read from the whole text's logits."""
    from toolkit.dpo.capture import pair_batch, token_logps

    ids, mask, labels = pair_batch(smol, dpo.PAIR)  # (2, T) each
    widths = []
    hook = smol.model.lm_head.register_forward_hook(lambda module, args, out: widths.append(out.shape[1]))
    try:
        with torch.no_grad():
            kept = token_logps(smol.model, ids, mask, labels)
    finally:
        hook.remove()
    with torch.no_grad():
        whole = dpo.label_logps(smol.model(input_ids=ids, attention_mask=mask).logits, labels)  # (2, T - 1)
    answer = int((labels[:, 1:] != -100).any(0).sum())
    assert widths == [answer] and answer < ids.shape[1] // 2
    assert kept.shape == whole.shape and torch.allclose(kept, whole, atol=1e-5)
    assert (kept[labels[:, 1:] == -100] == 0).all() and (kept[labels[:, 1:] != -100] < 0).all()

    class NoKeep(torch.nn.Module):  # a model whose forward takes no logits_to_keep: the whole text's logits
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids=None, attention_mask=None):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    with torch.no_grad():
        assert torch.allclose(token_logps(NoKeep(smol.model), ids, mask, labels), whole, atol=1e-5)


def test_dpo_gradients_one_answer_at_a_time_equal_the_pair_s(smol, monkeypatch):
    """A long pair's DPO step backpropagates one answer's graph at a time (half the memory at the limits): the same
    log π and the same gradients as one backward through the pair's batch."""
    import importlib

    from peft import get_peft_model

    from toolkit.dpo.capture import DPO_TARGETS, _backward, pair_batch, token_logps
    from toolkit.lora import peft_config, twin

    monkeypatch.setattr(importlib.import_module("toolkit.dpo.capture"), "ONE_AT_A_TIME", 8)  # the pair: longer

    torch.manual_seed(0)
    policy = get_peft_model(twin(smol.model, training=True), peft_config(r=4, alpha=8, targets=DPO_TARGETS))
    for p in policy.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)  # a trained adapter: every LoRA matrix gets a gradient
    policy.train()
    ids, mask, labels = pair_batch(smol, dpo.PAIR)
    assert ids.shape[1] > 8
    ref = torch.tensor([-3.0, -14.0])
    params = [p for p in policy.parameters() if p.requires_grad]
    logps = token_logps(policy, ids, mask, labels).sum(-1)  # (2,)
    dpo.dpo_loss(logps[0], logps[1], ref[0], ref[1], 0.5)[0].backward()
    whole = [p.grad.clone() for p in params]
    policy.zero_grad()
    got = _backward(policy, ids, mask, labels, ref, 0.5)
    assert torch.allclose(got, logps.detach(), atol=1e-4)
    assert all(g.abs().sum() > 0 for g in whole)
    for p, g in zip(params, whole, strict=True):
        assert torch.allclose(p.grad, g, rtol=1e-3, atol=1e-3 * float(g.abs().max()))  # to float rounding
