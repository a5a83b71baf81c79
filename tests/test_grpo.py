"""GRPO: pure advantage/loss maths (worked numbers; parity with TRL 1.16's GRPOTrainer run for real on a tiny
random model), rewards, the config's limits, a real run's trace invariants, the replay asset, the demo's handlers
and its server route."""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from architectures import tiny

from toolkit.config import ConfigError
from toolkit.grpo import GrpoCompletion, GrpoConfig, GrpoGroup, GrpoStep, GrpoTrace, maths, preset, rewards
from toolkit.trace import Trace, TraceError

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


# ---------------------------------------------------------------- parity with TRL's GRPOTrainer, run for real
# TRL 1.16's public GRPOTrainer trains a tiny random Llama (SmolLM2's tokenizer) for one step with a deterministic
# reward; a subclass overrides the public compute_loss(model, inputs) to record what TRL hands it (advantages,
# masks, reference and old log-probs) and the loss TRL returns. Metrics come from the public state.log_history.

TRL_G, TRL_T, TRL_TEMP, TRL_BETA, TRL_EPS = 4, 6, 0.7, 0.04, (0.2, 0.28)
TRL_PROMPTS = ["The cat sat on", "Two plus two is", "Once upon a time"]  # the last group is scored flat


def trl_reward(prompts, completion_ids, **_):
    """Deterministic: the first completion token id mod 3, halved; 0.5 for every answer to the last prompt."""
    return [0.5 if p == TRL_PROMPTS[-1] else (ids[0] % 3) / 2 for p, ids in zip(prompts, completion_ids)]


def plain_logprobs(model, inputs, temperature):
    """Per-token log-probs and entropies of the completion under ``model``: one plain forward over prompt +
    completion, logits / T (what any GRPO implementation scores). -> (B, C), (B, C)."""
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)  # (B, P + C)
    attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    c = inputs["completion_ids"].shape[1]
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn).logits[:, -c - 1 : -1].float() / temperature  # (B, C, V)
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, inputs["completion_ids"][..., None]).squeeze(-1)
    return logp, -(logp_all.exp() * logp_all).sum(-1)


@pytest.fixture(scope="module")
def trl_run(tmp_path_factory):
    """trl_run(scale_rewards, loss_type) -> (trainer, [(inputs, TRL's loss, our logp, our entropy) per call])."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    class Recording(GRPOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            logp, entropy = plain_logprobs(model, inputs, TRL_TEMP)
            self.calls.append(
                (
                    {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in inputs.items()},
                    loss.detach(),
                    logp,
                    entropy,
                )
            )
            return loss

    root = tmp_path_factory.mktemp("trl")
    tiny("llama-gqa").model.save_pretrained(root / "tiny")  # TRL loads policy and reference from a path
    runs = {}

    def run(scale: str, loss_type: str):
        if (scale, loss_type) not in runs:
            args = GRPOConfig(
                output_dir=str(root / f"{scale}-{loss_type}"),
                per_device_train_batch_size=len(TRL_PROMPTS) * TRL_G,
                num_generations=TRL_G,
                max_completion_length=TRL_T,
                max_steps=1,
                learning_rate=1e-2,
                beta=TRL_BETA,
                num_iterations=1,
                epsilon=TRL_EPS[0],
                epsilon_high=TRL_EPS[1],
                temperature=TRL_TEMP,
                scale_rewards=scale,
                loss_type=loss_type,
                logging_steps=1,
                report_to="none",
                save_strategy="no",
                use_cpu=True,
                bf16=False,
                seed=0,
                disable_tqdm=True,
                shuffle_dataset=False,
                use_bias_correction_kl=False,
            )  # our KL is the plain k3 (TRL 1.16 multiplies it by ρ by default)
            trainer = Recording(
                model=str(root / "tiny"),
                reward_funcs=[trl_reward],
                args=args,
                train_dataset=Dataset.from_dict({"prompt": TRL_PROMPTS}),
                processing_class=tiny("llama-gqa").tokenizer,
            )
            trainer.calls = []
            trainer.train()
            runs[scale, loss_type] = trainer
        return runs[scale, loss_type]

    return run


def _groups(trainer, inputs):
    """Rows of a TRL batch (shuffled) -> {prompt: [row, ...]} and each row's reward, recomputed from its tokens."""
    tok, rows, rewards_ = trainer.processing_class, {}, []
    for i in range(len(inputs["prompt_ids"])):
        prompt = tok.decode(inputs["prompt_ids"][i][inputs["prompt_mask"][i].bool()], skip_special_tokens=True)
        ids = inputs["completion_ids"][i][inputs["completion_mask"][i].bool()].tolist()
        rows.setdefault(prompt, []).append(i)
        rewards_.append(trl_reward([prompt], [ids])[0])
    return rows, torch.tensor(rewards_)


@pytest.mark.parametrize("scale", maths.SCALINGS)
def test_advantages_match_trl(trl_run, scale):
    """Our group_advantages on the rewards of TRL's own step give the advantages TRL trained on."""
    trainer = trl_run(scale, "grpo")
    inputs = trainer.calls[0][0]
    rows, r = _groups(trainer, inputs)
    assert sorted(rows) == sorted(TRL_PROMPTS) and all(len(v) == TRL_G for v in rows.values())
    order = torch.tensor([i for p in TRL_PROMPTS for i in rows[p]])  # group after group
    ours = maths.group_advantages(r[order].view(len(TRL_PROMPTS), TRL_G), scale)  # (group, G)
    assert torch.allclose(ours.advantages.reshape(-1), inputs["advantages"][order], atol=1e-6)
    assert ours.zero_std.tolist() == [False, False, True]  # the flat prompt gives no signal
    assert torch.equal(ours.advantages[-1], torch.zeros(TRL_G))
    logged = next(h for h in trainer.state.log_history if "reward" in h)  # the step's log
    assert logged["reward"] == pytest.approx(float(r.mean()), abs=1e-6)
    assert logged["reward_std"] == pytest.approx(float(maths.bessel_std(r)), abs=1e-6)
    if scale != "batch":  # TRL counts zero std per group for group/none, for the whole batch under "batch"
        assert logged["frac_reward_zero_std"] == pytest.approx(float(ours.zero_std.float().mean()))


@pytest.mark.parametrize("loss_type", maths.LOSS_TYPES)
def test_loss_matches_trl(trl_run, loss_type):
    """Our per-token loss, aggregation and logged metrics equal TRL's compute_loss: inside its training step
    (ratio 1), and on the same batch with old and reference log-probs moved so both clip sides fire."""
    trainer = trl_run("group", loss_type)
    eps_lo, eps_hi = TRL_EPS
    inputs, trl_loss, logp, _ = trainer.calls[0]
    mask = inputs["completion_mask"]
    tok_loss, _, _ = maths.per_token_loss(
        logp, logp, inputs["ref_per_token_logps"], inputs["advantages"], eps_lo, eps_hi, TRL_BETA
    )
    ours = maths.aggregate(tok_loss, mask, loss_type, max_len=TRL_T)
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-6, abs=1e-7)

    gen = torch.Generator().manual_seed(2)
    moved = {
        **inputs,
        "old_per_token_logps": logp + torch.randn(logp.shape, generator=gen) * 0.3,
        "ref_per_token_logps": logp + torch.randn(logp.shape, generator=gen) * 0.2,
        "advantages": torch.randn(len(logp), generator=gen),
    }
    moved["completion_mask"] = mask.clone()
    moved["completion_mask"][1, 3:] = 0  # shorter answers weigh differently under each aggregation
    moved["completion_mask"][4, 1:] = 0
    trainer.model.train()
    trl_loss = trainer.compute_loss(trainer.model, moved)
    trainer.log({})
    m = trainer.state.log_history[-1]
    _, _, logp, entropy = trainer.calls[-1]
    mask, adv, old, ref = (
        moved[k] for k in ("completion_mask", "advantages", "old_per_token_logps", "ref_per_token_logps")
    )
    tok_loss, ratio, kl = maths.per_token_loss(logp, old, ref, adv, eps_lo, eps_hi, TRL_BETA)
    ours = maths.aggregate(tok_loss, mask, loss_type, max_len=TRL_T)
    low, high = maths.clip_flags(ratio, adv[:, None], eps_lo, eps_hi)
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-6, abs=1e-7)
    assert maths.masked_mean(kl, mask) == pytest.approx(m["kl"], rel=1e-6)
    assert maths.masked_mean(entropy, mask) == pytest.approx(m["entropy"], rel=1e-6)
    assert maths.masked_mean(low.float(), mask) == pytest.approx(m["clip_ratio/low_mean"])
    assert maths.masked_mean(high.float(), mask) == pytest.approx(m["clip_ratio/high_mean"])
    assert m["clip_ratio/low_mean"] > 0 and m["clip_ratio/high_mean"] > 0


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
    for bad in (
        {"num_generations": 1},
        {"epsilon_low": 0.0},
        {"epsilon_high": -1},
        {"temperature": float("nan")},
        {"scale_rewards": "zscore"},
        {"loss_type": "ppo"},
        {"rewards": {}},
        {"rewards": {"nope": 1}},
        {"task": "nope"},
        {"top_p": 0},
        {"lora_targets": ()},
    ):
        with pytest.raises(ConfigError):  # a ValueError, raised when the config is made
            GrpoConfig(**bad)
    with pytest.raises(ConfigError, match="num_generations"):
        preset("tiny", num_generations=1)
    with pytest.raises(KeyError):
        preset("huge")


def test_config_limits_are_the_live_demo_limits():
    """The ranges a 2-core live demo can afford live in the config, with their help text."""
    limits = {
        "num_generations": (2, 16),
        "max_new_tokens": (1, 64),
        "steps": (1, 50),
        "num_iterations": (1, 8),
        "lr": (0, 0.1),
        "beta": (0, 10),
        "epsilon_low": (0, 1),
        "epsilon_high": (0, 1),
    }
    for name, (lo, hi) in limits.items():
        spec = GrpoConfig.spec(name)
        assert (spec.lo, spec.hi) == (lo, hi) and spec.help, name
    assert (
        GrpoConfig.spec("lr").open_lo
        and GrpoConfig.spec("epsilon_low").open_lo
        and GrpoConfig.spec("epsilon_high").open_hi
    )
    assert GrpoConfig.spec("scale_rewards").choices == maths.SCALINGS
    assert GrpoConfig.spec("loss_type").choices == maths.LOSS_TYPES
    for bad in (
        {"num_generations": 17},
        {"max_new_tokens": 65},
        {"steps": 51},
        {"num_iterations": 9},
        {"lr": 0.0},
        {"lr": 0.2},
        {"beta": -0.1},
        {"beta": 11},
        {"epsilon_high": 1.0},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            GrpoConfig(**bad)
    cfg = GrpoConfig(lora_targets=["q_proj"])
    assert cfg.lora_targets == ("q_proj",) and GrpoConfig().lora_targets == ("q_proj", "v_proj")
    assert GrpoConfig.from_dict(GrpoConfig().to_dict()) == GrpoConfig()
    assert GrpoConfig.coerce(num_generations="4", lr="0.01", scale_rewards="none").num_generations == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3


# ---------------------------------------------------------------- the trainer on the real model

TRL_METRICS = {
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "kl",
    "clip_ratio/low_mean",
    "clip_ratio/high_mean",
    "completions/mean_length",
    "entropy",
    "loss",
}


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
    ids, mask = trainer.sample_group(
        model, prompt, 3, 6, 1.0, 0.9, trainer.stop_ids(model, tok), 0, torch.Generator().manual_seed(1)
    )
    logp, _ = trainer.group_logprobs(model, prompt, ids, mask, 0.7)
    full = torch.cat([prompt.expand(3, -1), ids], 1)  # (G, P + C)
    attn = torch.cat([torch.ones_like(prompt.expand(3, -1)), mask], 1)
    with torch.no_grad():
        logits = model(input_ids=full, attention_mask=attn).logits[:, prompt.shape[1] - 1 : -1] / 0.7  # (G, C, V)
    want = torch.log_softmax(logits, -1).gather(-1, ids[..., None]).squeeze(-1)
    assert torch.allclose(logp * mask, want * mask, atol=1e-4)
    with torch.no_grad(), model.disable_adapter():
        ref, _ = trainer.group_logprobs(model, prompt, ids, mask, 0.7)
    assert not torch.allclose(ref * mask, logp * mask, atol=1e-4)  # the reference is the adapter switched off


@pytest.fixture(scope="module")
def tiny_run(smol, tmp_path_factory):
    from toolkit.grpo import trainer

    trace = trainer.train(preset("tiny"), steps=2, num_iterations=2, max_new_tokens=5)
    path = trace.save(tmp_path_factory.mktemp("grpo") / "tiny.npz")
    return trace, path


def test_run_trace_invariants(tiny_run):
    trace, path = tiny_run
    loaded = GrpoTrace.load(path)
    assert np.array_equal(loaded.rewards, trace.rewards) and loaded.steps == trace.steps
    assert isinstance(Trace.load(path), GrpoTrace) and loaded.config == trace.config
    assert trace.rewards.shape == (2, 3)
    assert TRL_METRICS <= set(trace.metrics)
    step0 = trace.steps[0]
    assert all(isinstance(s, GrpoStep) for s in loaded.steps)
    assert step0.updates[0]["kl"] == 0.0  # LoRA B starts at zero: policy == reference
    for step in trace.steps:
        first = step.updates[0]
        assert first["ratio_max_dev"] == 0.0  # π_old is π_θ before the first update: ratio exactly 1
        assert first["clip_ratio/low_mean"] == 0.0 and first["clip_ratio/high_mean"] == 0.0
        for group in step.groups:
            comps = group.completions
            adv = [c.advantage for c in comps]
            assert abs(np.mean(adv)) < 1e-5
            want = maths.group_advantages(torch.tensor([[c.reward for c in comps]]), "group").advantages[0]
            assert adv == pytest.approx(want.tolist(), abs=1e-6)
            per_fn, total = rewards.score(
                {"exact": 1.0, "number_first": 0.5}, [c.text for c in comps], [group.answer] * len(comps)
            )
            assert total == [c.reward for c in comps]
            for c in comps:
                n = len(c.token_ids)
                assert 1 <= n <= 5
                for key in ("tokens", "logprob", "old_logprob", "ref_logprob", "ratio", "kl", "entropy", "clipped_low"):
                    assert len(getattr(c, key)) == n, key
                assert min(c.kl) >= 0 and max(c.logprob) <= 0
    for c in step0.groups[0].completions:
        assert c.old_logprob == c.ref_logprob  # at step 0 the sampling policy is the reference
    lengths = [len(c.token_ids) for c in step0.groups[0].completions]
    assert trace.metrics["completions/mean_length"][0] == pytest.approx(np.mean(lengths))


def test_trace_check_rejects_nonzero_group_mean(tiny_run):
    trace, _ = tiny_run
    with pytest.raises(TraceError):
        dataclasses.replace(trace, advantages=trace.advantages + 0.5).check()
    with pytest.raises(TraceError, match="GrpoStep"):
        dataclasses.replace(trace, steps=[dataclasses.asdict(s) for s in trace.steps]).check()
    step = trace.steps[0]
    comp = step.groups[0].completions[0]
    short = dataclasses.replace(comp, ratio=comp.ratio[:-1])
    group = dataclasses.replace(step.groups[0], completions=[short, *step.groups[0].completions[1:]])
    with pytest.raises(TraceError, match="per-token"):
        dataclasses.replace(trace, steps=[dataclasses.replace(step, groups=[group]), *trace.steps[1:]]).check()


def test_replay_asset_loads():
    trace = GrpoTrace.load(ASSET)
    assert len(trace.steps) == 20 and trace.config["num_generations"] == 8
    step = trace.steps[3]
    assert isinstance(step, GrpoStep) and isinstance(step.groups[0], GrpoGroup)
    assert isinstance(step.groups[0].completions[0], GrpoCompletion) and step.step == 3
    assert GrpoConfig.from_dict(trace.config) == preset("lecture")  # recorded from the lecture preset
    r = np.array(trace.metrics["reward"])
    assert r[-5:].mean() > r[:5].mean()  # the recorded curve rises
    assert max(trace.metrics["clip_ratio/low_mean"]) > 0 or max(trace.metrics["clip_ratio/high_mean"]) > 0


# ---------------------------------------------------------------- live streaming, busy, stop


def test_stream_stops_when_closed_and_refuses_a_second_run(smol):
    from toolkit.grpo import trainer

    stop = threading.Event()
    it = trainer.stream(preset("tiny", steps=50, max_new_tokens=3, num_generations=2), stop, poll_s=0.2)
    first = next(it)
    assert first is None or first.step == 0
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
    from toolkit import registry

    assert isinstance(d.demo, gr.Blocks) and registry.get("grpo").demo == d.__name__
    md, bars, clip = d.advantages("1, 0, 0, 1; 1 1 1 1", 0.2, 0.28)
    assert "no learning signal" in md and "group 1" in md
    assert len(bars.data) == 3 and len(clip.data) == 4
    status, curves, table, heat = d.replay(3, 2)
    assert "step 3** of 0–19" in status and "<table" in table and len(curves.data) >= 5 and heat.data
    with pytest.raises(gr.Error) as err:
        d.advantages("  ", 0.2, 0.28)
    assert err.value.message == "Please type some rewards: it is empty."  # the message itself, not its repr


def test_demo_presets_render_on_load_and_views_switch():
    import re
    from types import SimpleNamespace

    from demos import grpo as d

    view, *shown = d.on_load(SimpleNamespace(query_params={"view": "group", "step": "4", "__theme": "dark"}))
    n_views = len(d.VIEW_NAMES)
    assert view == "group" and [u["visible"] for u in shown[:n_views]] == [v == "group" for v in d.VIEW_NAMES]
    assert shown[5]["value"] == 4 and shown[5]["maximum"] == len(d.replay_trace().steps) - 1  # the step slider
    assert "step 4** of 0–19" in shown[7]["value"] and shown[7]["visible"]  # the replay's status
    assert not shown[8]["visible"]  # the calculator's rewards box is not shown with the group
    assert not shown[6]["visible"]  # nor the completion number, which only the token view uses
    table = shown[0]["value"]
    group = d.replay_trace().steps[4].groups[0]
    numbers = [int(i) for i in re.findall(r'<tr style="background:[^"]+"><td[^>]*>(\d+)</td>', table)]
    assert sorted(numbers) == list(range(len(group.completions)))  # every completion once, by its number
    advantages = [group.completions[i].advantage for i in numbers]
    assert advantages == sorted(advantages, reverse=True)  # best first
    assert shown[1]["value"].layout.height is None  # heroes are sized by the frame

    view, *shown = d.on_load(SimpleNamespace(query_params={"view": "tokens", "step": "4", "completion": "3"}))
    assert shown[2]["visible"] and shown[6]["visible"] and shown[6]["value"] == 3
    comp = d.replay_trace().steps[4].groups[0].completions[3]
    assert f"{comp.advantage:+.2f}" in shown[2]["value"].layout.annotations[0].text  # that completion's tokens

    view, *shown = d.on_load(SimpleNamespace(query_params={"view": "advantages", "rewards": "1, 0, 0, 1"}))
    assert shown[3]["visible"] and shown[8]["visible"] and shown[8]["value"] == "1, 0, 0, 1"
    assert "G = 4" in shown[12]["value"] and len(shown[3]["value"].data) == 3

    view, *shown = d.on_load(
        SimpleNamespace(query_params={"view": "nope", "step": "99", "completion": "12", "rewards": "x"})
    )
    assert view == "group" and shown[5]["value"] == 19 and shown[6]["value"] == 0  # clamped, then the default
    assert shown[12]["value"].startswith("⚠️") and "not a number" in shown[12]["value"]

    switched = d.show_view("surrogate")
    assert [u["visible"] for u in switched[:n_views]] == [v == "surrogate" for v in d.VIEW_NAMES]
    assert not switched[5]["visible"] and switched[9]["visible"]  # the step goes, ε_low comes
    assert d.show_view(None)[0]["visible"]  # an unknown view shows the group


@pytest.mark.parametrize(
    "text, lo, hi",
    [
        ("", 0.2, 0.2),
        ("   ", 0.2, 0.2),
        ("1", 0.2, 0.2),
        ("1, two", 0.2, 0.2),
        ("nan, 1", 0.2, 0.2),
        ("1, inf", 0.2, 0.2),
        ("1, 0; 1, 0, 1", 0.2, 0.2),
        ("1, 0", 0, 0.2),
        ("1, 0", 0.2, -0.1),
        ("1, 0", "x", 0.2),
        (", ".join(["1"] * 100), 0.2, 0.2),
        ("1,0 ;\n 1", 0.2, 0.2),
    ],
)
def test_calculator_bad_input(text, lo, hi):
    import gradio as gr

    from demos import grpo as d

    with pytest.raises(gr.Error):
        d.advantages(text, lo, hi)


def test_live_and_replay_bad_input():
    import gradio as gr

    from demos import grpo as d

    with pytest.raises(gr.Error, match=r"G \(num_generations\) must be in \[2, 16\]"):
        d.live_config(1, 8, 2, 1e-3, 1, "group", "grpo", 0.2, 0.2, 0.04)
    cfg = d.live_config(4.0, "8", 2, 1e-3, 1, "none", "dr_grpo", 0.2, 0.28, 0)
    assert (cfg.num_generations, cfg.max_new_tokens, cfg.scale_rewards, cfg.epsilon_high) == (4, 8, "none", 0.28)
    for bad in (
        (4, 8, 2, 1e-3, 1, "group", "grpo", 0.0, 0.2, 0.04),
        (4, 8, 2, "fast", 1, "group", "grpo", 0.2, 0.2, 0),
        (4, 8, 2, 1e-3, 1, "zscore", "grpo", 0.2, 0.2, 0.04),
        (4, 8, 2, -1, 1, "group", "grpo", 0.2, 0.2, 0),
        (4, 8, 2, 1e-3, 1, "group", "grpo", 0.2, 0.2, float("nan")),
        (4, 8, 2, 1e9, 1, "group", "grpo", 0.2, 0.2, 0),
        (4, 8, 2, 1e-3, 1, "group", "grpo", 0.2, 0.2, 1e9),
        (4, 8, 2, 1e-3, 1, None, "grpo", 0.2, 0.2, 0),
        (17, 8, 2, 1e-3, 1, "group", "grpo", 0.2, 0.2, 0),
        (4, 65, 2, 1e-3, 1, "group", "grpo", 0.2, 0.2, 0),
        (4, 8, 51, 1e-3, 1, "group", "grpo", 0.2, 0.2, 0),
        (4, 8, 2, 1e-3, 9, "group", "grpo", 0.2, 0.2, 0),
        (4, 8, 2, 1e-3, 1, "group", "grpo", 0.2, 1.0, 0),
    ):
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
    status, curves, table, heat, state = outs[1]
    assert "step 0** of 0–0" in status and "<table" in table and state.step.step == 0
    assert state.config.num_generations == 2 and len(state.step.groups[0].completions) == 2
    assert d.heat(state, 0).data
    assert not trainer.is_busy()
    with trainer.exclusive():  # as if another run held the model
        assert trainer.is_busy()
        with pytest.raises(gr.Error, match="Busy"):
            next(d.live(*args))
        with pytest.raises(trainer.Busy):
            next(trainer.run(preset("tiny")))
    assert not trainer.is_busy()
    probe = d.live(*args)  # a client that reads the first update and leaves starts no training
    assert next(probe)[0].startswith("Starting")
    probe.close()
    assert not trainer.is_busy()


def test_demo_through_server(live_server):
    client = live_server.client("grpo")
    md, bars, clip = client.predict("1, 0, 0, 1", 0.2, 0.2, api_name="/advantages")
    assert "G = 4" in md
    status, *_ = client.predict(19, 0, api_name="/replay")
    assert "step 19** of 0–19" in status  # the slider's and the curves' numbering


# ---------------------------------------------------------------- live runs in a lecture hall (issue #15, finding 5)


def _wait_idle(trainer, seconds: float = 60) -> bool:
    for _ in range(int(seconds * 10)):
        if not trainer.is_busy():
            return True
        threading.Event().wait(0.1)
    return False


def test_a_stop_takes_effect_within_the_step_not_after_it(smol):
    """Stop is checked before every generated token and every update: set during step 0, no step completes."""
    from toolkit.grpo import trainer

    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    steps = list(trainer.run(preset("tiny", steps=3, max_new_tokens=64, num_generations=8, budget=512), stop))
    assert steps == [] and _wait_idle(trainer)


def test_a_run_nobody_reads_stops_by_itself_and_the_time_cap_holds(smol):
    from toolkit.grpo import trainer

    control = trainer.Control(idle_s=0.5)
    it = trainer.stream(preset("tiny", steps=50, max_new_tokens=8, num_generations=4), control, poll_s=0.2)
    next(it)  # the page opened the stream ... and was closed: nobody reads it any more
    assert _wait_idle(trainer), "a run whose page is gone kept the model"
    assert control.reason and "nobody read it" in control.reason
    it.close()
    capped = trainer.Control(max_s=0.5)
    done = [s for s in trainer.stream(preset("tiny", steps=50, max_new_tokens=8, num_generations=4), capped) if s]
    assert len(done) < 50 and "time cap" in capped.reason and _wait_idle(trainer)


def test_divergence_ends_the_run_with_a_sentence(smol):
    from toolkit.grpo import trainer

    cfg = preset("tiny", num_generations=8, max_new_tokens=8, num_iterations=2, lr=0.1, beta=0.0, max_kl=1e-9)
    with pytest.raises(trainer.Diverged, match=r"KL to the reference is .* \(the limit is 1e-09\)"):
        list(trainer.run(cfg))
    assert _wait_idle(trainer)


def test_stop_only_stops_your_own_run(smol):
    from demos import grpo as d
    from demos import ui
    from toolkit.grpo import trainer

    class Browser:
        def __init__(self, session):
            self.session_hash = session
            self.query_params = {}

    alice, bob = Browser("alice"), Browser("bob")
    args = (2, 4, 20, 2e-3, 1, "group", "grpo", 0.2, 0.2, 0.04, 0)
    run = d.live(*args, request=alice)
    assert next(run)[0].startswith("Starting")
    next(run)  # the run is going now
    assert trainer.is_busy()
    assert "no live run" in d.stop_live(bob)  # Bob cannot stop Alice's run
    assert trainer.is_busy()
    with pytest.raises(ui.UserError, match="another browser"):
        next(d.live(*args, request=bob))
    assert "Stopping your run" in d.stop_live(alice)
    for _ in run:  # Alice's stream ends once her run has stopped
        pass
    assert _wait_idle(trainer)


def test_sampler_draws_the_given_distribution():
    """The inverse-CDF draw matches its probabilities (a chi-square bound) and never picks a zero-probability
    token; nucleus sampling keeps only the top set."""
    from toolkit.grpo import trainer

    gen = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.5, 0.0, 0.3, 0.15, 0.05, 0.0])
    logits = torch.log(probs.clamp_min(1e-30)).expand(20000, -1)  # (N, 6) the same row N times
    got = torch.bincount(trainer._sample(logits, 1.0, 1.0, gen), minlength=6).float()
    assert got[1] == 0 and got[5] == 0
    want = probs * 20000
    keep = want > 0
    chi2 = float(((got[keep] - want[keep]) ** 2 / want[keep]).sum())
    assert chi2 < 16.3  # the 0.999 quantile of chi-square with 3 degrees of freedom
    nucleus = torch.bincount(trainer._sample(logits, 1.0, 0.75, gen), minlength=6)
    assert set(nucleus.nonzero().flatten().tolist()) == {0, 2}  # 0.5 + 0.3 is the smallest set with mass >= 0.75


def test_group_sampling_masks_and_shared_prompt_pass(smol):
    """Finished rows leave the batch, yet every row comes back padded after its first stop token; the prompt pass
    shared by sampling and the first update gives the same log-probs and gradients as a fresh one, and sampling
    leaves it as it was."""
    from toolkit.grpo import trainer

    cfg = preset("tiny")
    model, tok = trainer.make_policy(cfg)
    prompt = trainer.encode_prompt(tok, "Which number is larger, 12 or 40? Answer with just the number.")
    eos = trainer.stop_ids(model, tok)
    head = trainer.prefill(model, prompt)
    cached = [layer.keys.shape for layer in head[1].layers]
    seen = []  # the logits each draw saw: (live rows, V) per step

    def spy(logits, *args):
        seen.append(logits.clone())
        return draw(logits, *args)

    draw, trainer._sample = trainer._sample, spy
    try:
        gen = torch.Generator().manual_seed(2)
        ids, mask = trainer.sample_group(model, prompt, 8, 12, 0.7, 1.0, eos, 0, gen, head=head)
    finally:
        trainer._sample = draw
    assert [layer.keys.shape for layer in head[1].layers] == cached  # (1, kv heads, P, d): untouched
    lengths = mask.sum(1)
    assert len(set(lengths.tolist())) > 1  # some rows stopped early: the batch shrank on the way
    for row, m, n in zip(ids, mask, lengths.tolist()):
        assert m[:n].all() and n >= 1  # the mask is ones up to the row's end
        assert (row[n:] == 0).all()  # padded after the row ends
        assert n == ids.shape[1] or int(row[n - 1]) in eos  # a row ends at its first stop token or at the cap
        assert not any(int(t) in eos for t in row[: n - 1])
    with torch.no_grad():  # each live row drew from its own context: compare with one plain forward per row
        full = model(input_ids=torch.cat([prompt.expand(8, -1), ids], 1)).logits  # (G, P + C, V)
    p = prompt.shape[1]
    for t, logits in enumerate(seen):
        live = mask[:, t].nonzero().flatten()  # rows still writing at step t, in order
        assert torch.allclose(logits, full[live, p - 1 + t], atol=1e-3)
    fresh, _ = trainer.group_logprobs(model, prompt, ids, mask, 1.0)
    shared, _ = trainer.group_logprobs(model, prompt, ids, mask, 1.0, head=head)
    assert torch.allclose(fresh * mask, shared * mask, atol=1e-5)
    grads = []
    for logp in (fresh, shared):
        model.zero_grad(set_to_none=True)
        (logp * mask).sum().backward(retain_graph=True)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_reference_reuses_the_shared_opening_of_the_last_prompt(smol):
    """The reference's prompt pass runs only what follows the part shared with the last prompt (the chat template's
    system turn), with the same logits and cache as a fresh pass."""
    from toolkit.grpo import trainer

    model, tok = trainer.make_policy(preset("tiny"))
    ref = trainer.Reference()
    ran, runs = [], []  # tokens each forward ran; (prompt tokens, tokens the reference pass ran)
    hook = model.get_input_embeddings().register_forward_hook(lambda m, args, out: ran.append(args[0].shape[1]))
    with torch.no_grad(), model.disable_adapter():
        for q in ("Which number is larger, 12 or 40?", "Which number is larger, 73 or 9?"):
            prompt = trainer.encode_prompt(tok, q)
            ran.clear()
            logits, cache = ref.prefill(model, prompt)
            runs.append((prompt.shape[1], sum(ran)))
            want_logits, want_cache = trainer.prefill(model, prompt)
            assert torch.allclose(logits, want_logits, atol=1e-4)
            for got, want in zip(cache.layers, want_cache.layers):
                assert got.keys.shape == want.keys.shape  # (1, kv heads, P, d)
                assert torch.allclose(got.keys, want.keys, atol=1e-4)
                assert torch.allclose(got.values, want.values, atol=1e-4)
    hook.remove()
    (p0, r0), (p1, r1) = runs
    assert r0 == p0  # the first prompt runs whole
    assert r1 < p1 - 20  # the second only after the shared system turn and wording
