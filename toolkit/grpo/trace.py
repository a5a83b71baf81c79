"""GrpoTrace: a GRPO run step by step, down to each completion's tokens (deck: "GRPO objective", "GRPO vs PPO").

A step holds its groups, a group its G completions, a completion its per-token log-probs, ratios, KL and clip
flags: typed frozen records (GrpoStep > GrpoGroup > GrpoCompletion) whose field names are the keys of the
trace file's JSON header, so runs recorded before these classes existed (``assets/grpo/lecture.npz``) load as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.trace import Trace, register


@dataclass(frozen=True)
class GrpoCompletion:
    """One sampled completion. Per-token lists all have one entry per token (len(token_ids)); ``ratio`` is
    π_θ/π_old at the last update of the step, ``kl`` the k3 estimate against the reference, ``clipped_low/high``
    where clipping removed that token's gradient."""

    text: str
    token_ids: list[int]
    tokens: list[str]
    rewards: dict[str, float]  # {reward name: value}, before weighting
    reward: float  # the weighted total
    advantage: float
    logprob: list[float]
    old_logprob: list[float]
    ref_logprob: list[float]
    ratio: list[float]
    kl: list[float]
    entropy: list[float]
    clipped_low: list[bool]
    clipped_high: list[bool]


@dataclass(frozen=True)
class GrpoGroup:
    """One prompt, its known answer and its G completions; mean/std of their rewards; zero_std: no spread, so no
    learning signal from this group."""

    prompt: str
    answer: str
    mean: float
    std: float
    zero_std: bool
    completions: list[GrpoCompletion]


@dataclass(frozen=True)
class GrpoStep:
    """One training step. metrics: TRL's names (reward, reward_std, kl, clip_ratio/low_mean, ...) averaged over
    the step's updates; updates: the same per optimiser update; time: seconds {"generate", "train", "total"}."""

    step: int
    loss: float
    metrics: dict[str, float]
    updates: list[dict[str, float]]
    groups: list[GrpoGroup]
    time: dict[str, float]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GrpoStep:
        """A step from its JSON form (what ``dataclasses.asdict`` wrote)."""
        groups = [
            GrpoGroup(**{**g, "completions": [GrpoCompletion(**c) for c in g["completions"]]}) for g in data["groups"]
        ]
        return cls(**{**data, "groups": groups})


def metric_series(steps: list[GrpoStep]) -> dict[str, list[float]]:
    """{metric name: [value per step]} over the metrics of the first step."""
    names = list(steps[0].metrics) if steps else []
    return {k: [float(s.metrics[k]) for s in steps] for k in names}


@register
@dataclass(frozen=True)
class GrpoTrace(Trace):
    """A GRPO run, step by step.

    rewards, advantages: (step, completion) for the completions of each step's group(s), group after group.
    metrics: {name: [value per step]} with TRL's names (reward, reward_std, kl, clip_ratio/low_mean, ...).
    steps: one GrpoStep per step (prompts, completions, per-reward values, per-token log-probs, ratios, ...).
    config: the run's GrpoConfig as a dict (``GrpoConfig.to_dict()``).
    """

    kind: ClassVar[str] = "grpo"
    rewards: np.ndarray
    advantages: np.ndarray
    metrics: dict[str, list[float]]
    steps: list[GrpoStep]
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def decode(cls, fields: dict[str, Any]) -> dict[str, Any]:
        return {**fields, "steps": [GrpoStep.from_dict(s) for s in fields.get("steps", [])]}

    @property
    def group_size(self) -> int:
        """G, completions per prompt (from the config; all completions of a step form one group if absent)."""
        return int(self.config.get("num_generations") or self.rewards.shape[1])

    @property
    def epsilon(self) -> tuple[float, float]:
        """(ε_low, ε_high) of the run, for the clip band of the token view."""
        return float(self.config.get("epsilon_low", 0.2)), float(self.config.get("epsilon_high", 0.2))

    def check(self) -> GrpoTrace:
        self._require(self.rewards.shape == self.advantages.shape, "rewards and advantages differ in shape")
        self._require(len(self.steps) == self.rewards.shape[0], "one step record per row of rewards")
        self._require(all(isinstance(s, GrpoStep) for s in self.steps), "steps must be GrpoStep records")
        self._require(self.rewards.ndim == 2, f"rewards must be (step, completion), got {self.rewards.shape}")
        s, b = self.rewards.shape
        g = self.group_size
        self._require(g >= 2 and b % g == 0, f"{b} completions per step do not split into groups of G={g}")
        self._require(
            bool(np.isfinite(self.rewards).all() and np.isfinite(self.advantages).all()),
            "rewards or advantages contain NaN or inf",
        )
        group_mean = self.advantages.reshape(s, b // g, g).mean(-1)  # (step, completion) -> (step, group)
        self._require(bool(np.allclose(group_mean, 0.0, atol=1e-3)), "advantages must average 0 within each group")
        for name, values in self.metrics.items():
            self._require(len(values) == s, f"metric {name!r} has {len(values)} values for {s} steps")
        for step in self.steps:
            n = sum(len(grp.completions) for grp in step.groups)
            self._require(n == b, f"step {step.step} has {n} completions, the arrays {b}")
            for grp in step.groups:
                for c in grp.completions:
                    t = len(c.token_ids)
                    per_token = (
                        c.tokens,
                        c.logprob,
                        c.old_logprob,
                        c.ref_logprob,
                        c.ratio,
                        c.kl,
                        c.entropy,
                        c.clipped_low,
                        c.clipped_high,
                    )
                    self._require(all(len(x) == t for x in per_token), "per-token lists must match token_ids")
        return self


__all__ = ["GrpoCompletion", "GrpoGroup", "GrpoStep", "GrpoTrace", "metric_series"]
