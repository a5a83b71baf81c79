"""GRPO runs from TRL: a ``TrainerCallback`` that turns a ``GRPOTrainer`` run into our ``GrpoTrace``, so a run
trained at scale (many GPUs, accelerate or DeepSpeed) opens in the GRPO demo's replay views (deck: "GRPO
objective").

    from trl import GRPOConfig, GRPOTrainer
    from toolkit.grpo.trl import GrpoRecorder

    args = GRPOConfig(output_dir="run", log_completions=True, logging_steps=1, ...)
    trainer = GRPOTrainer(model=..., reward_funcs=[...], args=args, train_dataset=...)
    recorder = GrpoRecorder.attach(trainer, "run/grpo.npz")   # saved when training ends
    trainer.train()
    # then: lecture serve --grpo-trace run/grpo.npz   (or toolkit.views.show("grpo", trace="run/grpo.npz"))

What it reads is TRL's public output only: each logged step's metrics (``on_log``: reward, reward_std, kl,
clip_ratio/..., completions/mean_length, loss, with TRL's names) and the completions table TRL writes with
``log_completions=True`` (``<output_dir>/completions/completions_<step>.parquet``: prompt, completion, each
reward function's value, advantage), which TRL gathers from every process before the main one writes it. A step
holds the generation batch its update trained on; its groups are the batch's G completions of each prompt.
TRL keeps no per-token record there, so the completions carry no per-token log-probs, ratios or KL (the token
view says so); the group table, the curves and the advantages are TRL's own numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from toolkit.grpo.maths import bessel_std
from toolkit.grpo.trace import GrpoCompletion, GrpoGroup, GrpoStep, GrpoTrace, metric_series
from toolkit.trace import make_meta

# The metrics the replay views read; a run that did not log one (beta = 0 logs no "kl") gets NaN for it.
METRICS = (
    "loss",
    "reward",
    "reward_std",
    "kl",
    "entropy",
    "clip_ratio/low_mean",
    "clip_ratio/high_mean",
    "clip_ratio/region_mean",
    "completions/mean_length",
    "frac_reward_zero_std",
)
FIXED_COLUMNS = ("step", "prompt", "completion", "advantage")


def _text(value: Any) -> str:
    """A prompt or completion as text: a plain string, or a conversation (a list of {"role", "content"})."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [_text(m.get("content", "")) if isinstance(m, dict) else _text(m) for m in value]
        return "\n".join(p for p in parts if p)
    return "" if value is None else str(value)


class GrpoRecorder(TrainerCallback):
    """Records a TRL ``GRPOTrainer`` run as a ``GrpoTrace`` (``trace()``; saved to ``path`` when training ends).

    reward_names, reward_weights: the trainer's reward functions (``attach`` reads them from the trainer); without
    them every column of the completions table other than step, prompt, completion and advantage is a reward.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        reward_names: list[str] | None = None,
        reward_weights: list[float] | None = None,
    ):
        self.path = Path(path) if path else None
        self.reward_names = list(reward_names) if reward_names else None
        self.reward_weights = list(reward_weights) if reward_weights else None
        self.metrics: dict[int, dict[str, float]] = {}  # global step -> TRL's logged metrics
        self.steps: dict[int, GrpoStep] = {}
        self.args: Any = None
        self.model_name = ""

    @classmethod
    def attach(cls, trainer: Any, path: str | Path | None = None) -> GrpoRecorder:
        """A recorder for this trainer's reward functions, added to its callbacks."""
        weights = getattr(trainer, "reward_weights", None)
        recorder = cls(
            path,
            list(getattr(trainer, "reward_func_names", []) or []) or None,
            [float(w) for w in weights] if weights is not None else None,
        )
        trainer.add_callback(recorder)
        return recorder

    # ---- TrainerCallback events ---------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not getattr(args, "log_completions", False):
            raise ValueError(
                "GrpoRecorder reads the completions TRL logs: set GRPOConfig(log_completions=True) "
                "(and logging_steps=1 for every step)"
            )
        self.args = args
        config = getattr(model, "config", None)
        self.model_name = str(getattr(config, "name_or_path", "") or getattr(config, "_name_or_path", "") or "")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "reward" not in logs:
            return
        self.metrics[state.global_step] = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        self._collect()  # TRL writes a step's table right after this event: read the ones already written

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._collect()

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self._collect()
        if self.path is not None and self.steps:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.trace().save(self.path)

    # ---- the trace ------------------------------------------------------------------------------------------------

    def _table(self, step: int) -> Path:
        return Path(self.args.output_dir) / "completions" / f"completions_{step:05d}.parquet"

    def _collect(self) -> None:
        if self.args is None:
            return
        for step, metrics in sorted(self.metrics.items()):
            if step not in self.steps and self._table(step).is_file():
                self.steps[step] = self._step(step, metrics)

    def _step(self, step: int, logged: dict[str, float]) -> GrpoStep:
        import pandas as pd

        table = pd.read_parquet(self._table(step))
        names = self.reward_names or [c for c in table.columns if c not in FIXED_COLUMNS]
        weights = self.reward_weights or [1.0] * len(names)
        g = int(self.args.num_generations)
        rows = [
            {
                "prompt": _text(r["prompt"]),
                "completion": _text(r["completion"]),
                "rewards": {n: float(r[n]) for n in names},
                "advantage": float(r["advantage"]),
            }
            for _, r in table.iterrows()
        ]
        groups = [self._group(chunk, names, weights) for chunk in _chunks(rows, g)]
        metrics = {k: float(logged.get(k, math.nan)) for k in METRICS}
        metrics.update({k: v for k, v in logged.items() if k not in metrics and k not in ("epoch", "step")})
        return GrpoStep(
            step=step - 1,  # TRL counts optimiser steps from 1; our steps from 0
            loss=metrics["loss"],
            metrics=metrics,
            updates=[],
            groups=groups,
            time={"total": float(logged.get("step_time", math.nan))},
        )

    @staticmethod
    def _group(rows: list[dict], names: list[str], weights: list[float]) -> GrpoGroup:
        totals = [
            sum(w * v for w, v in zip(weights, (r["rewards"][n] for n in names)) if not math.isnan(v)) for r in rows
        ]
        std = float(bessel_std(torch.tensor(totals)))
        completions = [
            GrpoCompletion(
                text=r["completion"],
                token_ids=[],
                tokens=[],
                rewards=r["rewards"],
                reward=float(total),
                advantage=r["advantage"],
                logprob=[],
                old_logprob=[],
                ref_logprob=[],
                ratio=[],
                kl=[],
                entropy=[],
                clipped_low=[],
                clipped_high=[],
            )
            for r, total in zip(rows, totals)
        ]
        return GrpoGroup(
            prompt=rows[0]["prompt"],
            answer="",
            mean=float(np.mean(totals)),
            std=std,
            zero_std=bool(np.isclose(std, 0.0)),
            completions=completions,
        )

    def trace(self) -> GrpoTrace:
        """The run so far as a checked GrpoTrace (its config holds TRL's settings under our names)."""
        self._collect()
        steps = [self.steps[k] for k in sorted(self.steps)]
        if not steps:
            raise ValueError(
                "no step recorded yet: TRL writes each step's completions table at its log "
                "(GRPOConfig(log_completions=True, logging_steps=1))"
            )
        rewards = np.array([[c.reward for g in s.groups for c in g.completions] for s in steps], dtype=np.float32)
        advantages = np.array([[c.advantage for g in s.groups for c in g.completions] for s in steps], np.float32)
        a = self.args
        names = self.reward_names or list(steps[0].groups[0].completions[0].rewards)
        config = {
            "model": self.model_name,
            "task": "trl",
            "rewards": dict(zip(names, self.reward_weights or [1.0] * len(names))),
            "num_generations": int(a.num_generations),
            "steps": len(steps),
            "temperature": float(a.temperature),
            "max_new_tokens": int(a.max_completion_length),
            "lr": float(a.learning_rate),
            "epsilon_low": float(a.epsilon),
            "epsilon_high": float(a.epsilon_high if a.epsilon_high is not None else a.epsilon),
            "beta": float(a.beta),
            "num_iterations": int(a.num_iterations),
            "scale_rewards": str(a.scale_rewards),
            "loss_type": str(a.loss_type),
            "seed": int(a.seed),
        }
        import trl

        meta = make_meta(self.model_name, int(a.seed), source="trl", trl=trl.__version__, output_dir=str(a.output_dir))
        return GrpoTrace(
            rewards=rewards,
            advantages=advantages,
            metrics=metric_series(steps),
            steps=steps,
            config=config,
            meta=meta,
        ).check()


def _chunks(rows: list[dict], g: int) -> list[list[dict]]:
    """The batch's groups: TRL lays out each prompt's G completions next to each other; if a table is in another
    order, rows are grouped by prompt (first appearance), each prompt's rows cut into groups of G."""
    if len(rows) % g:
        raise ValueError(f"{len(rows)} completions do not split into groups of G = {g}")
    chunks = [rows[i : i + g] for i in range(0, len(rows), g)]
    if all(len({r["prompt"] for r in c}) == 1 for c in chunks):
        return chunks
    by_prompt: dict[str, list[dict]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], []).append(r)
    if any(len(v) % g for v in by_prompt.values()):
        raise ValueError(f"the completions of a prompt do not split into groups of G = {g}")
    return [v[i : i + g] for v in by_prompt.values() for i in range(0, len(v), g)]


__all__ = ["GrpoRecorder", "METRICS"]
