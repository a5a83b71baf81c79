"""GRPO run configuration: one typed dataclass, two presets ("lecture", "tiny"). Field names follow TRL's GRPOConfig
where one exists (num_generations = G, num_iterations = updates per generated batch, epsilon, beta, scale_rewards,
loss_type)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from toolkit.grpo.maths import LOSS_TYPES, SCALINGS
from toolkit.grpo.rewards import TASKS, resolve


@dataclass
class GrpoConfig:
    model: str = "smollm2-135m"  # embedded name, Hugging Face id or local folder (any causal LM)
    task: str = "larger"  # a key of rewards.TASKS
    rewards: dict[str, float] | None = None  # {reward name: weight}; None = the task's own rewards
    num_generations: int = 8  # G, completions per prompt (the group)
    prompts_per_step: int = 1  # groups per step
    steps: int = 20
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 16
    lr: float = 2e-3  # AdamW on the LoRA weights only
    max_grad_norm: float = 1.0
    epsilon_low: float = 0.2  # ε in clip(ρ, 1 − ε_low, 1 + ε_high)
    epsilon_high: float = 0.2
    beta: float = 0.04  # weight of the k3 KL to the reference (the adapter switched off)
    num_iterations: int = 2  # optimiser updates per generated batch; > 1 lets the ratio leave 1, so clipping shows
    scale_rewards: str = "group"  # "group" | "batch" | "none" (Dr. GRPO)
    loss_type: str = "grpo"  # "grpo" (per-sequence mean, paper) | "bnpo" (token-level) | "dr_grpo" (constant)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    seed: int = 0

    def reward_weights(self) -> dict[str, float]:
        return resolve(self.rewards if self.rewards is not None else TASKS[self.task].rewards)

    def validate(self) -> "GrpoConfig":
        """Raise ValueError with a readable message for any unusable field; return self."""
        problems = []
        if self.task not in TASKS:
            problems.append(f"unknown task {self.task!r} (known: {', '.join(TASKS)})")
        if self.num_generations < 2:
            problems.append("num_generations (G) must be at least 2: a group of one has no spread to learn from")
        for name in ("prompts_per_step", "steps", "max_new_tokens", "num_iterations", "lora_r"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        for name in ("temperature", "lr", "epsilon_low", "epsilon_high"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                problems.append(f"{name} must be a positive number, got {v!r}")
        if not (0 < self.top_p <= 1):
            problems.append("top_p must be in (0, 1]")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            problems.append("beta must be a number >= 0")
        if self.scale_rewards not in SCALINGS:
            problems.append(f"scale_rewards must be one of {', '.join(SCALINGS)}")
        if self.loss_type not in LOSS_TYPES:
            problems.append(f"loss_type must be one of {', '.join(LOSS_TYPES)}")
        try:
            self.reward_weights()
        except (KeyError, ValueError) as err:
            problems.append(str(err).strip("'\""))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    "lecture": GrpoConfig(),
    "tiny": GrpoConfig(num_generations=3, steps=1, max_new_tokens=6),
}


def preset(name: str, **overrides) -> GrpoConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides).validate()
