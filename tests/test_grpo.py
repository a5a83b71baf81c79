"""GRPO: pure advantage/loss maths (worked numbers, TRL 1.16 parity), rewards, a real run's trace invariants,
the replay asset, the demo's handlers and its server route."""
from __future__ import annotations

import inspect
import math
import textwrap
import threading
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from toolkit.grpo import maths, rewards
from toolkit.grpo.config import GrpoConfig, preset

ASSET = Path(__file__).resolve().parents[1] / "assets" / "grpo" / "lecture.npz"


# ---------------------------------------------------------------- advantages

def test_worked_group():
    a = maths.group_advantages(torch.tensor([[2.0, 0.0, 1.0, 1.0]]), "group")
    # mean 1, sample std sqrt(2/3) = 0.8165, advantage ±1 / (0.8165 + 1e-4)
    assert a.mean.tolist() == [1.0]
    assert a.std[0, 0].item() == pytest.approx(math.sqrt(2 / 3), abs=1e-6)
    assert a.advantages[0].tolist() == pytest.approx([1.224595, -1.224595, 0.0, 0.0], abs=1e-5)
    none = maths.group_advantages(torch.tensor([[2.0, 0.0, 1.0, 1.0]]), "none")
    assert none.advantages[0].tolist() == [1.0, -1.0, 0.0, 0.0]
    # batch: the second group has no spread, yet the batch std (0.5345) scales the first
    batch = maths.group_advantages(torch.tensor([[2.0, 0, 1, 1], [1.0, 1, 1, 1]]), "batch")
    assert batch.advantages[0].tolist() == pytest.approx([1.870479, -1.870479, 0, 0], abs=1e-5)
    assert batch.advantages[1].tolist() == [0.0] * 4


@pytest.mark.parametrize("scale", maths.SCALINGS)
def test_equal_rewards_give_no_signal(scale):
    a = maths.group_advantages(torch.full((2, 5), 0.7), scale)
    assert torch.equal(a.advantages, torch.zeros(2, 5))
    assert a.zero_std.all()


@pytest.mark.parametrize("scale", maths.SCALINGS)
def test_advantages_average_zero_within_groups(scale):
    r = torch.rand(6, 8, generator=torch.Generator().manual_seed(0)) * 3
    a = maths.group_advantages(r, scale).advantages
    assert a.mean(1).abs().max() < 1e-6
    assert (a.sign() == (r - r.mean(1, keepdim=True)).sign()).all()


def test_bad_rewards_refused():
    with pytest.raises(ValueError):
        maths.group_advantages(torch.ones(1, 1))
    with pytest.raises(ValueError):
        maths.group_advantages(torch.ones(1, 3), "zscore")


def _trl_advantages(rewards: torch.Tensor, g: int, scale: str):
    """Run TRL 1.16's own advantage code (the block inside GRPOTrainer._generate_and_score_completions)."""
    from trl.trainer import grpo_trainer

    src = inspect.getsource(grpo_trainer.GRPOTrainer._generate_and_score_completions).splitlines()
    start = next(i for i, s in enumerate(src) if 'if self.multi_objective_aggregation == "sum_then_normalize"' in s)
    end = next(i for i, s in enumerate(src) if "advantages = torch.nan_to_num(advantages" in s)
    block = textwrap.dedent("\n".join(src[start:end + 1]))
    ns = {
        "torch": torch, "nanstd": grpo_trainer.nanstd, "num_generations": g, "device": "cpu",
        "rewards_per_func": rewards[:, None], "unscorable_mask": torch.zeros(len(rewards), dtype=torch.bool),
        "self": SimpleNamespace(multi_objective_aggregation="sum_then_normalize", scale_rewards=scale,
                                reward_weights=torch.ones(1)),
    }
    exec(compile(block, "trl_grpo_advantages", "exec"), ns)  # TRL's source text, not user input
    return ns["advantages"], ns["is_std_zero"]


@pytest.mark.parametrize("scale", maths.SCALINGS)
def test_advantages_match_trl(scale):
    gen = torch.Generator().manual_seed(1)
    r = torch.cat([torch.randint(0, 3, (3, 6), generator=gen).float() / 2, torch.ones(1, 6)])  # one flat group
    ours = maths.group_advantages(r, scale)
    theirs, zero = _trl_advantages(r.reshape(-1), 6, scale)
    assert torch.allclose(ours.advantages.reshape(-1), theirs, atol=1e-6)
    if scale != "batch":
        assert torch.equal(ours.zero_std.repeat_interleave(6), zero)


# ---------------------------------------------------------------- surrogate, KL, aggregation

def test_clipped_surrogate_shape():
    r = torch.linspace(0.5, 1.5, 101)
    pos = maths.clipped_surrogate(r, torch.tensor(1.0), 0.2, 0.2)
    neg = maths.clipped_surrogate(r, torch.tensor(-1.0), 0.2, 0.2)
    assert torch.allclose(pos[r > 1.2], torch.tensor(1.2))  # A > 0: gains capped above 1 + ε
    assert torch.allclose(pos[r < 1.2], r[r < 1.2])
    assert torch.allclose(neg[r < 0.8], torch.tensor(-0.8))  # A < 0: capped below 1 − ε
    assert torch.allclose(neg[r > 0.8], -r[r > 0.8])
    low, high = maths.clip_flags(torch.tensor([0.7, 1.3, 0.7, 1.3]), torch.tensor([-1.0, 1, 1, -1]), 0.2, 0.2)
    assert low.tolist() == [True, False, False, False] and high.tolist() == [False, True, False, False]


def test_k3_kl():
    lp = torch.log(torch.tensor([0.5, 0.2, 0.9]))
    assert torch.equal(maths.k3_kl(lp, lp), torch.zeros(3))
    ref = torch.log(torch.tensor([0.25, 0.4, 0.9]))
    assert maths.k3_kl(lp, ref).tolist() == pytest.approx([0.5 + math.log(2) - 1, 2 - math.log(2) - 1, 0], abs=1e-6)


def test_aggregation_known_numbers():
    loss = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    assert maths.aggregate(loss, mask, "grpo").item() == pytest.approx((1 + 4) / 2)
    assert maths.aggregate(loss, mask, "bnpo").item() == pytest.approx(8 / 5)
    assert maths.aggregate(loss, mask, "dr_grpo", max_len=8).item() == pytest.approx(8 / 16)


class _Acc:
    def reduce(self, x, reduction="sum"):
        return x

    def gather(self, x):
        return x

    def gather_for_metrics(self, x):
        return x


@pytest.mark.parametrize("loss_type", maths.LOSS_TYPES)
def test_loss_matches_trl(loss_type):
    """Our per-token loss, aggregation and logged metrics equal TRL's GRPOTrainer._compute_loss on the same tensors."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    gen = torch.Generator().manual_seed(2)
    b, t, beta, eps_lo, eps_hi = 6, 5, 0.04, 0.2, 0.28
    logp = -torch.rand(b, t, generator=gen) * 3
    old = logp + torch.randn(b, t, generator=gen) * 0.3  # ratio far from 1: both clip sides fire
    ref = logp + torch.randn(b, t, generator=gen) * 0.2
    ent = torch.rand(b, t, generator=gen)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, 3:] = 0
    mask[4, 1:] = 0
    adv = torch.randn(b, generator=gen)
    stub = SimpleNamespace(
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token", beta=beta,
        loss_type=loss_type, epsilon_low=eps_lo, epsilon_high=eps_hi, use_vllm=False,
        vllm_importance_sampling_correction=False, model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, max_completion_length=t, _entropy_bonus_enabled=False,
        aux_loss_enabled=False, _metrics={"train": defaultdict(list)}, accelerator=_Acc(),
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, ent, None),
    )
    inputs = {"prompt_ids": torch.zeros(b, 2, dtype=torch.long), "prompt_mask": torch.ones(b, 2, dtype=torch.long),
              "completion_ids": torch.zeros(b, t, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref}
    trl_loss = GRPOTrainer._compute_loss(stub, None, inputs)
    m = stub._metrics["train"]

    tok_loss, ratio, kl = maths.per_token_loss(logp, old, ref, adv, eps_lo, eps_hi, beta)
    ours = maths.aggregate(tok_loss, mask, loss_type, max_len=t)
    low, high = maths.clip_flags(ratio, adv[:, None], eps_lo, eps_hi)
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-6, abs=1e-7)
    assert maths.masked_mean(kl, mask) == pytest.approx(m["kl"][0], rel=1e-6)
    assert maths.masked_mean(ent, mask) == pytest.approx(m["entropy"][0], rel=1e-6)
    assert maths.masked_mean(low.float(), mask) == pytest.approx(m["clip_ratio/low_mean"][0])
    assert maths.masked_mean(high.float(), mask) == pytest.approx(m["clip_ratio/high_mean"][0])
    assert m["clip_ratio/low_mean"][0] > 0 and m["clip_ratio/high_mean"][0] > 0


# ---------------------------------------------------------------- rewards and config

def test_rewards():
    assert rewards.exact("63 is larger", "63") == 1.0
    assert rewards.exact("The answer is 59, not 63", "63") == 0.0
    assert rewards.exact("no number", "63") == 0.0
    assert rewards.number_first(" 63.", "63") == 1.0 and rewards.number_first("It is 63", "63") == 0.0
    assert rewards.just_answer("63.", "63") == 1.0 and rewards.just_answer("63 is larger", "63") == 0.0
    assert rewards.short("63", "63") == 1.0 and rewards.short(" ".join(["w"] * 16), "63") == 0.0
    per_fn, total = rewards.score({"exact": 1.0, "number_first": 0.5}, ["63", "It is 63", "59"], ["63"] * 3)
    assert per_fn == {"exact": [1.0, 1.0, 0.0], "number_first": [1.0, 0.0, 1.0]}
    assert total == [1.5, 1.0, 0.5]


def test_reward_registry_is_by_name_only():
    @rewards.reward("test_len3")
    def len3(completion, answer):
        return float(len(completion) == 3)

    assert rewards.score({"test_len3": 2.0}, ["abc", "ab"], ["", ""])[1] == [2.0, 0.0]
    with pytest.raises(KeyError):
        rewards.score({"__import__('os').system('true')": 1.0}, ["x"], ["x"])
    with pytest.raises(ValueError):
        rewards.resolve({})
    del rewards.REWARDS["test_len3"]


def test_task_has_known_answers():
    import random

    task = rewards.TASKS["larger"]
    rng = random.Random(0)
    for _ in range(20):
        q, a = task.make(rng)
        nums = [int(x) for x in q.replace("?", " ").replace(",", " ").split() if x.isdigit()]
        assert a == str(max(nums)) and len(nums) == 2


def test_config_validation():
    assert preset("tiny").num_generations == 3
    for bad in ({"num_generations": 1}, {"epsilon_low": 0.0}, {"epsilon_high": -1}, {"temperature": float("nan")},
                {"scale_rewards": "zscore"}, {"loss_type": "ppo"}, {"rewards": {}}, {"rewards": {"nope": 1}},
                {"task": "nope"}, {"top_p": 0}):
        with pytest.raises(ValueError):
            GrpoConfig(**bad).validate()


# ---------------------------------------------------------------- the trainer on the real model

TRL_METRICS = {"reward", "reward_std", "frac_reward_zero_std", "kl", "clip_ratio/low_mean", "clip_ratio/high_mean",
               "completions/mean_length", "entropy", "loss"}


def test_group_logprobs_match_a_plain_forward(smol):
    """The shared-prompt cache trick gives the same log-probs as one padded forward over prompt + completion."""
    from toolkit.grpo import trainer

    cfg = preset("tiny")
    model, tok = trainer.make_policy(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02, generator=torch.Generator().manual_seed(3))  # a trained-looking adapter
    prompt = trainer.encode_prompt(tok, "Which number is larger, 12 or 40? Answer with just the number.")
    ids, mask = trainer.sample_group(model, prompt, 3, 6, 1.0, 0.9, trainer.stop_ids(model, tok), 0,
                                     torch.Generator().manual_seed(1))
    logp, _ = trainer.group_logprobs(model, prompt, ids, mask, 0.7)
    full = torch.cat([prompt.expand(3, -1), ids], 1)  # (G, P + C)
    attn = torch.cat([torch.ones_like(prompt.expand(3, -1)), mask], 1)
    with torch.no_grad():
        logits = model(input_ids=full, attention_mask=attn).logits[:, prompt.shape[1] - 1:-1] / 0.7  # (G, C, V)
    want = torch.log_softmax(logits, -1).gather(-1, ids[..., None]).squeeze(-1)
    assert torch.allclose(logp * mask, want * mask, atol=1e-4)
    with torch.no_grad(), model.disable_adapter():
        ref, _ = trainer.group_logprobs(model, prompt, ids, mask, 0.7)
    assert not torch.allclose(ref * mask, logp * mask, atol=1e-4)  # the reference is the adapter switched off


@pytest.fixture(scope="module")
def tiny_run(smol, tmp_path_factory):
    from toolkit.grpo import trainer

    trace = trainer.train(preset("tiny", steps=2, num_iterations=2, max_new_tokens=5))
    path = trace.save(tmp_path_factory.mktemp("grpo") / "tiny.npz")
    return trace, path


def test_run_trace_invariants(tiny_run):
    from toolkit.traces import GrpoTrace

    trace, path = tiny_run
    loaded = GrpoTrace.load(path)
    assert np.array_equal(loaded.rewards, trace.rewards) and loaded.steps == trace.steps
    assert trace.rewards.shape == (2, 3)
    assert TRL_METRICS <= set(trace.metrics)
    step0 = trace.steps[0]
    assert step0["updates"][0]["kl"] == 0.0  # LoRA B starts at zero: policy == reference
    for rec in trace.steps:
        first = rec["updates"][0]
        assert first["ratio_max_dev"] == 0.0  # π_old is π_θ before the first update: ratio exactly 1
        assert first["clip_ratio/low_mean"] == 0.0 and first["clip_ratio/high_mean"] == 0.0
        for group in rec["groups"]:
            comps = group["completions"]
            adv = [c["advantage"] for c in comps]
            assert abs(np.mean(adv)) < 1e-5
            want = maths.group_advantages(torch.tensor([[c["reward"] for c in comps]]), "group").advantages[0]
            assert adv == pytest.approx(want.tolist(), abs=1e-6)
            per_fn, total = rewards.score({"exact": 1.0, "number_first": 0.5}, [c["text"] for c in comps],
                                          [group["answer"]] * len(comps))
            assert total == [c["reward"] for c in comps]
            for c in comps:
                n = len(c["token_ids"])
                assert 1 <= n <= 5
                for key in ("tokens", "logprob", "old_logprob", "ref_logprob", "ratio", "kl", "entropy", "clipped_low"):
                    assert len(c[key]) == n, key
                assert min(c["kl"]) >= 0 and max(c["logprob"]) <= 0
    for c in step0["groups"][0]["completions"]:
        assert c["old_logprob"] == c["ref_logprob"]  # at step 0 the sampling policy is the reference
    lengths = [len(c["token_ids"]) for c in step0["groups"][0]["completions"]]
    assert trace.metrics["completions/mean_length"][0] == pytest.approx(np.mean(lengths))


def test_trace_check_rejects_nonzero_group_mean(tiny_run):
    import dataclasses

    from toolkit.traces import TraceError

    trace, _ = tiny_run
    with pytest.raises(TraceError):
        dataclasses.replace(trace, advantages=trace.advantages + 0.5).check()


def test_replay_asset_loads():
    from toolkit.traces import GrpoTrace

    trace = GrpoTrace.load(ASSET)
    assert len(trace.steps) == 20 and trace.config["num_generations"] == 8
    r = np.array(trace.metrics["reward"])
    assert r[-5:].mean() > r[:5].mean()  # the recorded curve rises
    assert max(trace.metrics["clip_ratio/low_mean"]) > 0 or max(trace.metrics["clip_ratio/high_mean"]) > 0


# ---------------------------------------------------------------- live streaming, busy, stop

def test_stream_stops_when_closed_and_refuses_a_second_run(smol):
    from toolkit.grpo import trainer

    stop = threading.Event()
    it = trainer.stream(preset("tiny", steps=50, max_new_tokens=3, num_generations=2), stop, poll_s=0.2)
    first = next(it)
    assert first is None or first["step"] == 0
    with pytest.raises(trainer.Busy):
        next(trainer.stream(preset("tiny"), threading.Event()))
    it.close()  # what Gradio does when the page is left or Stop is pressed
    assert stop.is_set()
    for _ in range(600):
        if not trainer.is_busy():
            break
        threading.Event().wait(0.1)
    assert not trainer.is_busy()


# ---------------------------------------------------------------- the demo

def test_demo_handlers():
    import gradio as gr

    from demos import grpo as d

    assert isinstance(d.demo, gr.Blocks) and d.ORDER == 90
    md, bars, clip = d.advantages("1, 0, 0, 1; 1 1 1 1", 0.2, 0.28)
    assert "no learning signal" in md and "group 1" in md
    assert len(bars.data) == 3 and len(clip.data) == 4
    status, curves, table, heat = d.replay(3, 2)
    assert "step 4 / 20" in status and "<table" in table and len(curves.data) >= 5 and heat.data


@pytest.mark.parametrize("text, lo, hi", [("", 0.2, 0.2), ("   ", 0.2, 0.2), ("1", 0.2, 0.2), ("1, two", 0.2, 0.2),
                                         ("nan, 1", 0.2, 0.2), ("1, inf", 0.2, 0.2), ("1, 0; 1, 0, 1", 0.2, 0.2),
                                         ("1, 0", 0, 0.2), ("1, 0", 0.2, -0.1), ("1, 0", "x", 0.2),
                                         (", ".join(["1"] * 100), 0.2, 0.2), ("1,0 ;\n 1", 0.2, 0.2)])
def test_calculator_bad_input(text, lo, hi):
    import gradio as gr

    from demos import grpo as d

    with pytest.raises(gr.Error):
        d.advantages(text, lo, hi)


def test_live_and_replay_bad_input():
    import gradio as gr

    from demos import grpo as d

    with pytest.raises(gr.Error, match="G must be at least 2"):
        d.live_config(1, 8, 2, 1e-3, 1, "group", "grpo", 0.2, 0.2, 0.04)
    for bad in ((4, 8, 2, 1e-3, 1, "group", "grpo", 0.0, 0.2, 0.04), (4, 8, 2, "fast", 1, "group", "grpo", 0.2, 0.2, 0),
                (4, 8, 2, 1e-3, 1, "zscore", "grpo", 0.2, 0.2, 0.04), (4, 8, 2, -1, 1, "group", "grpo", 0.2, 0.2, 0),
                (4, 8, 2, 1e-3, 1, "group", "grpo", 0.2, 0.2, float("nan")), (4, 8, 2, 1e9, 1, "group", "grpo", 0.2, 0.2, 0),
                (4, 8, 2, 1e-3, 1, "group", "grpo", 0.2, 0.2, 1e9), (4, 8, 2, 1e-3, 1, None, "grpo", 0.2, 0.2, 0)):
        with pytest.raises(gr.Error):
            d.live_config(*bad)
    with pytest.raises(gr.Error):
        d.replay(99, 0)
    with pytest.raises(gr.Error):
        d.replay(0, 8)
    with pytest.raises(gr.Error):
        d.heat(None, 0)


def test_live_handler_streams_and_reports_busy(smol):
    import gradio as gr

    from demos import grpo as d
    from toolkit.grpo import trainer

    args = (2, 4, 1, 2e-3, 2, "group", "grpo", 0.2, 0.2, 0.04, 1)
    outs = [o for o in d.live(*args) if not isinstance(o[0], type(gr.skip()))]
    assert len(outs) == 2 and outs[0][0].startswith("Starting")
    status, curves, table, heat, record = outs[1]
    assert "step 1 / 1" in status and "<table" in table and record["step"] == 0
    assert d.heat(record, 0).data
    assert not trainer.is_busy()
    with trainer._RUN_LOCK:
        with pytest.raises(gr.Error, match="Busy"):
            next(d.live(*args))
    probe = d.live(*args)  # a client that reads the first update and leaves starts no training
    assert next(probe)[0].startswith("Starting")
    probe.close()
    assert not trainer.is_busy()


def test_demo_through_server(live_server):
    client = live_server.client("grpo")
    md, bars, clip = client.predict("1, 0, 0, 1", 0.2, 0.2, api_name="/advantages")
    assert "G = 4" in md
    status, *_ = client.predict(19, 0, api_name="/replay")
    assert "step 20 / 20" in status
