"""A TRL GRPOTrainer run as our GrpoTrace (toolkit.grpo.trl.GrpoRecorder): a tiny CPU run (a two-layer random
Llama with SmolLM2's tokenizer, two steps), its groups, rewards and advantages against TRL's own and against our
maths, and the GRPO demo's replay opening the saved file (`lecture serve --grpo-trace PATH`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from architectures import tiny

from toolkit.grpo import GrpoTrace, maths, replay
from toolkit.grpo.trl import GrpoRecorder
from toolkit.trace import TraceError

PROMPTS = ["The cat sat on", "Two plus two is"]
G, WEIGHTS = 4, [1.0, 0.5]


def length_mod(completions, **_):
    """From the text alone, so the test can recompute it: the completion's length mod 3, halved."""
    return [(len(c) % 3) / 2 for c in completions]


def has_e(completions, **_):
    return [1.0 if "e" in c else 0.0 for c in completions]


@pytest.fixture(scope="module")
def trl_run(tmp_path_factory):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    root = tmp_path_factory.mktemp("trl-run")
    tiny("llama-gqa").model.save_pretrained(root / "tiny")
    args = GRPOConfig(
        output_dir=str(root / "out"),
        per_device_train_batch_size=len(PROMPTS) * G,
        num_generations=G,
        max_completion_length=6,
        max_steps=2,
        learning_rate=1e-2,
        beta=0.04,
        reward_weights=WEIGHTS,
        logging_steps=1,
        log_completions=True,
        num_completions_to_print=0,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=str(root / "tiny"),
        reward_funcs=[length_mod, has_e],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tiny("llama-gqa").tokenizer,
    )
    recorder = GrpoRecorder.attach(trainer, root / "grpo.npz")
    trainer.train()
    return trainer, recorder, root / "grpo.npz"


def test_trl_run_becomes_a_grpo_trace(trl_run):
    trainer, recorder, path = trl_run
    trace = GrpoTrace.load(path)  # saved at the end of training, and loads back as our trace
    assert len(trace.steps) == 2 and trace.rewards.shape == (2, len(PROMPTS) * G) and trace.group_size == G
    logged = [h for h in trainer.state.log_history if "reward" in h]
    for step, log in zip(trace.steps, logged):
        assert sorted(g.prompt for g in step.groups) == sorted(PROMPTS)
        totals = []
        for group in step.groups:
            texts = [c.text for c in group.completions]
            r1, r2 = length_mod(texts), has_e(texts)
            for c, a, b in zip(group.completions, r1, r2):
                assert c.rewards == {"length_mod": a, "has_e": b}
                assert c.reward == pytest.approx(WEIGHTS[0] * a + WEIGHTS[1] * b)
            ours = maths.group_advantages([[c.reward for c in group.completions]], "group")  # TRL's default
            np.testing.assert_allclose([c.advantage for c in group.completions], ours.flat(), atol=1e-5)
            assert group.std == pytest.approx(float(ours.std[0, 0]), abs=1e-6)
            totals += [c.reward for c in group.completions]
        assert step.metrics["reward"] == pytest.approx(log["reward"]) == pytest.approx(np.mean(totals), abs=1e-5)
        assert step.metrics["kl"] == pytest.approx(log["kl"]) and step.loss == pytest.approx(log["loss"])
    assert trace.config["num_generations"] == G and trace.config["beta"] == 0.04 and trace.meta["source"] == "trl"
    assert trace.metrics["reward"] == [s.metrics["reward"] for s in trace.steps]
    assert recorder.trace().rewards.tolist() == trace.rewards.tolist()


def test_the_demo_replays_a_trl_trace(trl_run):
    from demos import grpo

    path = trl_run[2]
    try:
        assert len(grpo.open_trace(path).steps) == 2
        status, curves, table, heat = grpo.replay(1, 2)
        assert status.startswith("**step 1** of 0–1") and "G = 4" in status and curves is not None
        assert replay.load(path).steps[1].groups[0].prompt in table
        assert "No per-token record" in heat.layout.annotations[0].text  # TRL's logs keep no per-token values
    finally:
        grpo.open_trace(replay.ASSET)
    assert len(grpo.replay_trace().steps) == 20  # back on the committed run


def test_open_trace_checks_the_file(tmp_path):
    from demos import grpo
    from lecture.cli import main, parser

    with pytest.raises(FileNotFoundError):
        grpo.open_trace(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a trace")
    with pytest.raises(TraceError):
        grpo.open_trace(tmp_path / "junk.npz")
    assert parser().parse_args(["serve", "--grpo-trace", "x.npz"]).grpo_trace == "x.npz"
    assert main(["serve", "--grpo-trace", str(tmp_path / "missing.npz")]) == 2  # refused before serving anything
    assert grpo.replay_trace() is replay.load()


def test_recorder_needs_trl_completion_logs():
    from trl import GRPOConfig

    args = GRPOConfig(output_dir="unused", report_to="none", use_cpu=True, log_completions=False)
    with pytest.raises(ValueError, match="log_completions=True"):
        GrpoRecorder().on_train_begin(args, None, None, model=torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="no step recorded"):
        GrpoRecorder().trace()
