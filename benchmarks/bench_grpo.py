"""GRPO step time: ours vs TRL 1.16's GRPOTrainer, side by side in one run (CPU).

Same model (SmolLM2-135M-Instruct), same LoRA (r=8, alpha 16, q_proj/v_proj), one prompt per step with G=8
completions of at most 16 new tokens, β=0.04, one update per batch, same learning rate and the same prompts.
The two trainers alternate step by step, so both see the same load; one such run per seed (default 0, 1, 2),
each with a warm-up step left out. Completion lengths follow each run's draws (on one seed either trainer may
answer longer), and a step's time grows with them, so besides the median step time of both and the time per
generated token it reports each trainer's step time at one length (a line fitted to time vs mean length over
its steps, read at the mean length of all steps). Target: ours/TRL <= 0.6 per step, plain and at one length.
With --rise, our reward over 20 steps. Last line: one JSON object.

  python benchmarks/bench_grpo.py [--steps 11] [--seeds 0 1 2] [--threads 2] [--rise]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 0.6


def ours_steps(cfg):
    """Our trainer, one step per next(): yields (wall s, CPU s, GrpoStep)."""
    from toolkit.grpo.trainer import run

    it = run(cfg)
    try:
        while True:
            t, c = time.perf_counter(), time.process_time()
            try:
                step = next(it)
            except StopIteration:
                return
            yield time.perf_counter() - t, time.process_time() - c, step
    finally:
        it.close()  # gives the trainable model back for the next seed's run


def side_by_side(cfg) -> dict[str, list[float]]:
    """TRL's GRPOTrainer and ours, alternating step by step (each of our steps runs right after a TRL step), so
    both see the same load on a shared machine."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from toolkit import models
    from toolkit.grpo.rewards import REWARDS, TASKS

    loaded = models.load(cfg.model)
    task, rng = TASKS[cfg.task], random.Random(cfg.seed)
    problems = [task.make(rng) for _ in range(cfg.steps)]  # the prompts our trainer draws, in the same order
    data = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": q}] for q, _ in problems], "answer": [a for _, a in problems]}
    )
    weights = cfg.reward_weights()

    def make(name):
        def fn(completions, answer, **_):
            return [REWARDS[name](c[0]["content"], a) for c, a in zip(completions, answer)]

        fn.__name__ = name
        return fn

    out: dict[str, list[float]] = {k: [] for k in ("trl", "trl_cpu", "ours", "ours_cpu", "ours_length", "ours_reward")}
    mine = ours_steps(cfg)

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            out["trl"].append(time.perf_counter() - self.t)
            out["trl_cpu"].append(time.process_time() - self.c)
            wall, cpu, step = next(mine)
            out["ours"].append(wall)
            out["ours_cpu"].append(cpu)
            out["ours_length"].append(step.metrics["completions/mean_length"])
            out["ours_reward"].append(step.metrics["reward"])
            print(
                f"  step {len(out['trl']) - 1}: TRL {out['trl'][-1]:.2f} s ({out['trl_cpu'][-1]:.2f} s CPU), "
                f"ours {wall:.2f} s ({cpu:.2f} s CPU, length {out['ours_length'][-1]:.1f})",
                flush=True,
            )

    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp,
            per_device_train_batch_size=cfg.num_generations,
            num_generations=cfg.num_generations,
            max_completion_length=cfg.max_new_tokens,
            max_steps=cfg.steps,
            learning_rate=cfg.lr,
            beta=cfg.beta,
            num_iterations=cfg.num_iterations,
            epsilon=cfg.epsilon_low,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            scale_rewards=cfg.scale_rewards,
            loss_type=cfg.loss_type,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            seed=cfg.seed,
            disable_tqdm=True,
            reward_weights=list(weights.values()),
            shuffle_dataset=False,
            max_grad_norm=cfg.max_grad_norm,
            lr_scheduler_type="constant",
            weight_decay=0.0,
        )
        trainer = GRPOTrainer(
            model=copy.deepcopy(loaded.model),
            reward_funcs=[make(n) for n in weights],
            args=args,
            train_dataset=data,
            processing_class=loaded.tokenizer,
            callbacks=[Clock()],
            peft_config=LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                target_modules=list(cfg.lora_targets),
                lora_dropout=0.0,
                task_type="CAUSAL_LM",
            ),
        )
        trainer.train()
        mine.close()
        out["trl_length"] = [
            h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
        ]
    return out


def at_length(times: list[float], lengths: list[float], length: float) -> float:
    """Step time predicted at a given mean completion length: the least-squares line time = a + b x length over the
    measured steps (a: the prompt, the update; b: each generated token across the group)."""
    b, a = np.polyfit(lengths, times, 1)
    return float(a + b * length)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=11, help="steps per trainer and seed (the first is a warm-up)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one side-by-side run per seed")
    p.add_argument("--rise", action="store_true", help="also run our lecture preset for 20 steps and print rewards")
    a = p.parse_args()

    import torch

    from toolkit.grpo import preset

    if a.threads:
        torch.set_num_threads(a.threads)
    pooled = ("ours", "trl", "ours_cpu", "trl_cpu", "ours_length", "trl_length")
    steps: dict[str, list[float]] = {k: [] for k in pooled}
    per_seed = []
    for seed in a.seeds:
        cfg = preset("lecture", steps=a.steps, num_iterations=1, beta=0.04, seed=seed)
        print(
            f"seed {seed}: G={cfg.num_generations}, max_new_tokens={cfg.max_new_tokens}, LoRA r={cfg.lora_r} on "
            f"{cfg.lora_targets}, beta={cfg.beta}, lr={cfg.lr}, threads={torch.get_num_threads()}",
            flush=True,
        )
        r = side_by_side(cfg)
        for k in pooled:
            steps[k] += r[k][1:]  # each run's first step is its warm-up
        m_ours, m_trl = statistics.median(r["ours"][1:]), statistics.median(r["trl"][1:])
        l_ours, l_trl = statistics.mean(r["ours_length"][1:]), statistics.mean(r["trl_length"][1:])
        per_seed.append({"seed": seed, "ours_s": round(m_ours, 3), "trl_s": round(m_trl, 3),
                         "ratio": round(m_ours / m_trl, 3), "ours_length": round(l_ours, 2),
                         "trl_length": round(l_trl, 2)})  # fmt: skip
        print(f"  seed {seed}: ours {m_ours:.2f} s/step (length {l_ours:.1f}), TRL {m_trl:.2f} s/step "
              f"(length {l_trl:.1f}): {m_ours / m_trl:.3f}", flush=True)  # fmt: skip
    m_ours, m_trl = statistics.median(steps["ours"]), statistics.median(steps["trl"])
    cpu_ours, cpu_trl = statistics.median(steps["ours_cpu"]), statistics.median(steps["trl_cpu"])
    l_ours, l_trl = statistics.mean(steps["ours_length"]), statistics.mean(steps["trl_length"])
    ratio, cpu_ratio = m_ours / m_trl, cpu_ours / cpu_trl
    # Completion lengths follow each run's own draws (on one seed either trainer may write longer answers), and
    # a step's time grows with them. Per step, shorter answers flatter; per token, they penalise (the prompt and
    # the update are paid whatever the length). So compare at one length: each trainer's fitted time at the
    # mean length of all measured steps.
    length = statistics.mean(steps["ours_length"] + steps["trl_length"])
    eq_ours, eq_trl = (
        at_length(steps["ours"], steps["ours_length"], length),
        at_length(steps["trl"], steps["trl_length"], length),
    )
    eq_ratio = eq_ours / eq_trl
    g = preset("lecture").num_generations
    tok_ours, tok_trl = (
        sum(steps["ours"]) / (g * sum(steps["ours_length"])),
        sum(steps["trl"]) / (g * sum(steps["trl_length"])),
    )
    tok_ratio = tok_ours / tok_trl
    print(f"ours: {m_ours:.2f} s/step wall, {cpu_ours:.2f} s CPU (mean length {l_ours:.1f} tokens)")
    print(f"TRL:  {m_trl:.2f} s/step wall, {cpu_trl:.2f} s CPU (mean length {l_trl:.1f} tokens)")
    print(f"at one length ({length:.1f} tokens, fitted): ours {eq_ours:.2f} s, TRL {eq_trl:.2f} s: {eq_ratio:.3f}")
    print(
        f"per generated token (all steps): ours {1000 * tok_ours:.1f} ms, TRL {1000 * tok_trl:.1f} ms: {tok_ratio:.3f}"
    )
    print(
        f"ratio ours/TRL: {ratio:.3f} per step (median of {len(steps['ours'])} steps over seeds {a.seeds}), "
        f"{eq_ratio:.3f} per step at one length, {tok_ratio:.3f} per generated token, {cpu_ratio:.3f} CPU "
        f"(target <= {TARGET} per step, plain and at one length)"
    )
    result = {
        "bench": "grpo_step",
        "ours_s": round(m_ours, 3),
        "trl_s": round(m_trl, 3),
        "ratio": round(ratio, 3),
        "ratio_at_one_length": round(eq_ratio, 3),
        "one_length": round(length, 2),
        "token_ratio": round(tok_ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "ours_mean_length": round(l_ours, 2),
        "trl_mean_length": round(l_trl, 2),
        "per_seed": per_seed,
        "steps": a.steps,
        "threads": torch.get_num_threads(),
    }
    if a.rise:
        rewards = []
        for wall, _, step in ours_steps(preset("lecture", steps=20)):
            rewards.append(step.metrics["reward"])
            print(f"  rise step {step.step}: reward {rewards[-1]:.3f} ({wall:.1f} s)", flush=True)
        first, last = statistics.mean(rewards[:5]), statistics.mean(rewards[-5:])
        print("reward per step: " + " ".join(f"{r:.2f}" for r in rewards))
        print(f"mean reward, steps 0-4: {first:.3f}; steps 15-19: {last:.3f}")
        result.update({"reward_first5": round(first, 3), "reward_last5": round(last, 3), "rewards": rewards})
    met = ratio <= TARGET and eq_ratio <= TARGET
    result.update({"target": f"ours/TRL <= {TARGET} per step, plain and at one completion length", "met": met})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
