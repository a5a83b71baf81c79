"""GRPO (deck: RLVR and GRPO slides): config, pure maths, verifiable rewards, a LoRA trainer that traces every step."""
from toolkit.grpo.config import PRESETS, GrpoConfig, preset
from toolkit.grpo.rewards import REWARDS, TASKS, reward, score

__all__ = ["GrpoConfig", "PRESETS", "preset", "REWARDS", "TASKS", "reward", "score", "run", "train", "Busy"]


def __getattr__(name):  # the trainer imports torch and the models: load it on first use
    if name in ("run", "train", "Busy", "to_trace"):
        from toolkit.grpo import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
