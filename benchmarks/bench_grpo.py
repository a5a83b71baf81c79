"""GRPO step time: ours vs TRL 1.16's GRPOTrainer, side by side in one run (CPU).

Same model (SmolLM2-135M-Instruct), same LoRA (r=8, alpha 16, q_proj/v_proj), one prompt per step with G=8
completions of at most 16 new tokens, β=0.04, one update per batch, same learning rate and the same prompts.
Reports the median step time after a warm-up step, both mean completion lengths (shorter answers are faster,
so compare them too), the ratio ours/TRL (target <= 0.6), and with --rise our reward over 20 steps.
Last line: one JSON object.

  python benchmarks/bench_grpo.py [--steps 6] [--threads 2] [--rise]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 0.6


def ours(cfg) -> tuple[list[float], list[float], list[float], list[float]]:
    from toolkit.grpo.trainer import run

    times, cpu, lengths, rewards = [], [], [], []
    it, c0 = run(cfg), time.process_time()
    for rec in it:
        cpu.append(time.process_time() - c0)
        times.append(rec["time"]["total"])
        lengths.append(rec["metrics"]["completions/mean_length"])
        rewards.append(rec["metrics"]["reward"])
        print(f"  ours step {rec['step']}: {times[-1]:.2f} s ({cpu[-1]:.2f} s CPU), reward {rewards[-1]:.3f}, "
              f"length {lengths[-1]:.1f}", flush=True)
        c0 = time.process_time()
    return times, cpu, lengths, rewards


def trl(cfg) -> tuple[list[float], list[float], list[float]]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from toolkit import models
    from toolkit.grpo.rewards import REWARDS, TASKS

    loaded = models.load(cfg.model)
    task, rng = TASKS[cfg.task], random.Random(cfg.seed)
    problems = [task.make(rng) for _ in range(cfg.steps)]
    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": q}] for q, _ in problems],
                              "answer": [a for _, a in problems]})
    weights = cfg.reward_weights()

    def make(name):
        def fn(completions, answer, **_):
            return [REWARDS[name](c[0]["content"], a) for c, a in zip(completions, answer)]

        fn.__name__ = name
        return fn

    times: list[float] = []
    cpu: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)
            cpu.append(time.process_time() - self.c)
            print(f"  TRL  step {len(times) - 1}: {times[-1]:.2f} s ({cpu[-1]:.2f} s CPU)", flush=True)

    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, per_device_train_batch_size=cfg.num_generations, num_generations=cfg.num_generations,
            max_completion_length=cfg.max_new_tokens, max_steps=cfg.steps, learning_rate=cfg.lr, beta=cfg.beta,
            num_iterations=cfg.num_iterations, epsilon=cfg.epsilon_low, temperature=cfg.temperature,
            top_p=cfg.top_p, scale_rewards=cfg.scale_rewards, loss_type=cfg.loss_type, logging_steps=1,
            report_to="none", save_strategy="no", use_cpu=True, seed=cfg.seed, disable_tqdm=True,
            reward_weights=list(weights.values()), shuffle_dataset=False, max_grad_norm=cfg.max_grad_norm,
            lr_scheduler_type="constant", weight_decay=0.0,
        )
        trainer = GRPOTrainer(
            model=copy.deepcopy(loaded.model), reward_funcs=[make(n) for n in weights], args=args,
            train_dataset=data, processing_class=loaded.tokenizer, callbacks=[Clock()],
            peft_config=LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_targets),
                                   lora_dropout=0.0, task_type="CAUSAL_LM"),
        )
        trainer.train()
        lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    return times, cpu, lengths


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6, help="steps per trainer (the first is a warm-up)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--rise", action="store_true", help="also run our lecture preset for 20 steps and print rewards")
    a = p.parse_args()

    import torch

    from toolkit.grpo.config import preset

    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = preset("lecture", steps=a.steps, num_iterations=1, beta=0.04)
    print(f"config: G={cfg.num_generations}, max_new_tokens={cfg.max_new_tokens}, LoRA r={cfg.lora_r} on "
          f"{cfg.lora_targets}, beta={cfg.beta}, lr={cfg.lr}, threads={torch.get_num_threads()}", flush=True)
    t_ours, c_ours, len_ours, _ = ours(cfg)
    t_trl, c_trl, len_trl = trl(cfg)
    m_ours, m_trl = statistics.median(t_ours[1:]), statistics.median(t_trl[1:])
    cpu_ours, cpu_trl = statistics.median(c_ours[1:]), statistics.median(c_trl[1:])
    ratio, cpu_ratio = m_ours / m_trl, cpu_ours / cpu_trl
    print(f"ours: {m_ours:.2f} s/step wall, {cpu_ours:.2f} s CPU (mean length {statistics.mean(len_ours):.1f} tokens)")
    print(f"TRL:  {m_trl:.2f} s/step wall, {cpu_trl:.2f} s CPU (mean length {statistics.mean(len_trl):.1f} tokens)")
    print(f"ratio ours/TRL: {ratio:.2f} wall, {cpu_ratio:.2f} CPU time (target <= {TARGET}, on wall time)")
    result = {"bench": "grpo_step", "ours_s": round(m_ours, 3), "trl_s": round(m_trl, 3), "ratio": round(ratio, 3),
              "ours_cpu_s": round(cpu_ours, 3), "trl_cpu_s": round(cpu_trl, 3), "cpu_ratio": round(cpu_ratio, 3),
              "ours_mean_length": round(statistics.mean(len_ours), 2),
              "trl_mean_length": round(statistics.mean(len_trl), 2) if len_trl else None,
              "steps": a.steps, "threads": torch.get_num_threads()}
    if a.rise:
        _, _, _, rewards = ours(preset("lecture", steps=20))
        first, last = statistics.mean(rewards[:5]), statistics.mean(rewards[-5:])
        print("reward per step: " + " ".join(f"{r:.2f}" for r in rewards))
        print(f"mean reward, steps 0-4: {first:.3f}; steps 15-19: {last:.3f}")
        result.update({"reward_first5": round(first, 3), "reward_last5": round(last, 3), "rewards": rewards})
    result.update({"target": f"ours/TRL <= {TARGET}", "met": ratio <= TARGET})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
