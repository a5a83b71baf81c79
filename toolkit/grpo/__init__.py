"""GRPO with LoRA, every quantity of the objective traced (slides "RLVR: rewards you can check", "GRPO objective",
"GRPO vs PPO").

    from toolkit import grpo
    trace = grpo.train(grpo.preset("tiny"), steps=2)            # GrpoTrace, one GrpoStep per step
    grpo.figures.group_table(trace.steps[-1].groups[0])

config: GrpoConfig (TRL's field names) and presets; maths: advantages, clipped surrogate, k3 KL, loss aggregation
(pure torch); rewards: verifiable rewards and the bundled task; trainer: run / stream / train (loaded on first
use: it imports the models); trace: GrpoTrace > GrpoStep > GrpoGroup > GrpoCompletion; figures: one plotly
figure per view.
"""

from toolkit.grpo import figures, maths
from toolkit.grpo.config import PRESETS, GrpoConfig, preset
from toolkit.grpo.maths import LOSS_TYPES, SCALINGS, Advantages, group_advantages
from toolkit.grpo.rewards import REWARDS, TASKS, reward, score
from toolkit.grpo.trace import GrpoCompletion, GrpoGroup, GrpoStep, GrpoTrace, metric_series

__all__ = [
    "GrpoConfig",
    "PRESETS",
    "preset",
    "REWARDS",
    "TASKS",
    "reward",
    "score",
    "GrpoTrace",
    "GrpoStep",
    "GrpoGroup",
    "GrpoCompletion",
    "metric_series",
    "Advantages",
    "group_advantages",
    "SCALINGS",
    "LOSS_TYPES",
    "figures",
    "maths",
    "run",
    "stream",
    "train",
    "to_trace",
    "Busy",
    "is_busy",
    "exclusive",
]
_TRAINER = ("run", "stream", "train", "to_trace", "Busy", "is_busy", "exclusive")


def __getattr__(name):  # the trainer imports the models and peft: load it on first use
    if name in _TRAINER:
        from toolkit.grpo import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'toolkit.grpo' has no attribute {name!r}")
