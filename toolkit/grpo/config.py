"""GrpoConfig: one GRPO run in a frozen, self-documenting config, with two presets ("lecture", "tiny").

Serves the "GRPO objective" and "GRPO vs PPO" slides: every knob on them is a field with its help text and its
range (``toolkit.config``); the live demo builds its widgets from these fields, so the page, the API and the
library share one set of limits, chosen so that a live run stays responsive on a 2-core CPU. Field names follow
TRL's GRPOConfig where one exists (num_generations = G, num_iterations = updates per generated batch, epsilon,
beta, scale_rewards, loss_type). The committed replay ``assets/grpo/lecture.npz`` was recorded from
``PRESETS["lecture"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.config import Config, check_budget, param
from toolkit.grpo.maths import LOSS_TYPES, SCALINGS
from toolkit.grpo.rewards import TASKS, resolve


@dataclass(frozen=True)
class GrpoConfig(Config):
    model: str = param("smollm2-135m", "policy: an embedded name, a Hugging Face id or a local folder (any causal LM)")
    task: str = param("larger", "the verifiable task (a key of rewards.TASKS)")
    rewards: dict[str, float] | None = param(None, "{reward name: weight}; None = the task's own rewards")
    num_generations: int = param(8, "G, completions sampled per prompt (the group)", lo=2, hi=16, label="G")
    prompts_per_step: int = param(1, "prompts (groups) per step", lo=1, hi=8)
    steps: int = param(20, "training steps, each on freshly sampled groups", lo=1, hi=50)
    temperature: float = param(
        1.0, "sampling temperature (log-probs use the same one, as TRL)", lo=0.0, hi=5.0, open_lo=True, step=0.05
    )
    top_p: float = param(
        1.0, "nucleus sampling: keep the smallest set of tokens with this mass", lo=0.0, hi=1.0, open_lo=True, step=0.05
    )
    max_new_tokens: int = param(16, "longest completion, in tokens", lo=1, hi=64, label="max new tokens")
    lr: float = param(
        2e-3, "AdamW learning rate on the LoRA weights only", lo=0.0, hi=0.1, open_lo=True, label="learning rate"
    )
    max_grad_norm: float = param(1.0, "gradient norm clip", lo=0.0, hi=100.0, open_lo=True)
    epsilon_low: float = param(
        0.2,
        "ε_low in clip(ρ, 1 − ε_low, 1 + ε_high)",
        lo=0.0,
        hi=1.0,
        open_lo=True,
        open_hi=True,
        step=0.01,
        label="ε low",
    )
    epsilon_high: float = param(
        0.2,
        "ε_high in clip(ρ, 1 − ε_low, 1 + ε_high)",
        lo=0.0,
        hi=1.0,
        open_lo=True,
        open_hi=True,
        step=0.01,
        label="ε high",
    )
    beta: float = param(
        0.04, "β, weight of the k3 KL to the reference (the adapter switched off)", lo=0.0, hi=10.0, label="β (KL)"
    )
    num_iterations: int = param(
        2,
        "optimiser updates per generated batch; > 1 lets the ratio leave 1, so clipping shows",
        lo=1,
        hi=8,
        label="updates per batch",
    )
    scale_rewards: str = param(
        "group",
        "advantage scaling: ÷ group std (GRPO), ÷ batch std, or none (Dr. GRPO)",
        choices=SCALINGS,
        label="advantage scaling",
    )
    loss_type: str = param(
        "grpo",
        "loss aggregation: per-sequence mean (paper), token-level (bnpo) or a constant (dr_grpo)",
        choices=LOSS_TYPES,
        label="loss aggregation",
    )
    lora_r: int = param(8, "LoRA rank", lo=1, hi=256)
    lora_alpha: int = param(16, "LoRA alpha (the update is scaled by alpha / r)", lo=1, hi=1024)
    lora_targets: tuple[str, ...] = param(("q_proj", "v_proj"), "module names that get a LoRA adapter")
    seed: int = param(0, "seed of the prompts, the sampling and the adapter's initial weights", lo=0)
    max_kl: float = param(
        5.0,
        "the run is ended (diverged) when the mean per-token KL to the reference passes this (nats)",
        lo=0.0,
        hi=1e6,
        open_lo=True,
        label="KL limit",
    )
    budget: int = param(
        128,
        "completion tokens a step may sample (prompts per step x G x max new tokens): a step's memory and time grow "
        "with them (16 x 64: +3.6 GB and 70 s a step on one core; 16 x 16: +1.1 GB; 8 x 16, the default: +0.6 GB)",
        lo=1,
        hi=1_000_000,
    )

    def sampled(self) -> int:
        """Completion tokens one step samples at most."""
        return self.prompts_per_step * self.num_generations * self.max_new_tokens

    def check_budget(self) -> None:
        """BudgetError (a sentence with the fix) when a step would sample more than ``budget`` tokens."""
        check_budget(self.sampled(), self.budget, "sampled tokens a step", "Lower G or the max new tokens.")

    def __post_init__(self) -> None:
        if isinstance(self.lora_targets, (list, str)):  # a list (JSON, a caller) or one name: stored as a tuple
            targets = [self.lora_targets] if isinstance(self.lora_targets, str) else self.lora_targets
            object.__setattr__(self, "lora_targets", tuple(targets))
        super().__post_init__()

    def problems(self) -> list[str]:
        out = []
        if self.task not in TASKS:
            out.append(f"unknown task {self.task!r} (known: {', '.join(TASKS)})")
        else:
            try:
                self.reward_weights()
            except (KeyError, ValueError) as err:
                out.append(str(err).strip("'\""))
        if not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets):
            out.append("lora_targets must name at least one module, e.g. ('q_proj', 'v_proj')")
        return out

    def reward_weights(self) -> dict[str, float]:
        """{reward name: weight}, the task's own when ``rewards`` is None; unknown names raise KeyError."""
        return resolve(self.rewards if self.rewards is not None else TASKS[self.task].rewards)


PRESETS: dict[str, GrpoConfig] = {
    "lecture": GrpoConfig(),
    "tiny": GrpoConfig(num_generations=3, steps=1, max_new_tokens=6),
}


def preset(name: str, **overrides) -> GrpoConfig:
    """A preset with some fields changed (checked): ``preset("tiny", steps=2)``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides)
