"""The committed training runs in assets/moe/<run>/ (config.json, weights.pt, replay.json), loaded once.

Serves "the router learning" (the replay) and every routing view of the trained model: ``moe.capture("balanced",
text)`` routes through the run of that name. ``record`` re-trains them (``lecture train-moe``).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

RUNS = ("balanced", "no_balance", "aux_free")  # the committed runs in assets/moe/


def assets_dir() -> Path:
    return Path(os.environ.get("LECTURE_MOE_ASSETS", Path(__file__).resolve().parents[2] / "assets" / "moe"))


@functools.cache
def model(run: str = "balanced"):
    """The trained MoeTransformer of a committed run (eval mode, shared by every caller)."""
    from toolkit.moe.model import load

    if run not in RUNS:
        raise KeyError(f"unknown MoE run {run!r} (known: {', '.join(RUNS)})")
    return load(assets_dir() / run)


@functools.cache
def replay(run: str = "balanced") -> dict:
    if run not in RUNS:
        raise KeyError(f"unknown MoE run {run!r} (known: {', '.join(RUNS)})")
    path = assets_dir() / run / "replay.json"
    if not path.is_file():
        raise FileNotFoundError(f"no replay at {path}: run `lecture train-moe`")
    return json.loads(path.read_text())


def snapshot(rep: dict, step: int) -> dict:
    """The replay's snapshot nearest to ``step`` (snapshots are every ``snapshot_every`` steps)."""
    return min(rep["snapshots"], key=lambda s: abs(s["step"] - step))


# What each committed run changes from the preset (`lecture train-moe` re-records them).
RUN_OVERRIDES: dict[str, dict] = {
    "balanced": {},
    "no_balance": {"balance_coef": 0.0},
    "aux_free": {"balance_coef": 0.0, "aux_free_rate": 1e-3},
}


def record(base, out: str | Path, names: list[str], overrides: dict | None = None, threads: int = 1):
    """Train each named run from ``base`` (a MoeConfig) into out/<run>/; yield one summary dict per run.
    ``overrides`` apply to every run, except ``balance_coef``, which applies to the balanced run only."""
    from toolkit.moe.train import train

    overrides = dict(overrides or {})
    balance = overrides.pop("balance_coef", None)
    for name in names:
        cfg = base.replace(**overrides).replace(**RUN_OVERRIDES[name])
        if balance is not None and name == "balanced":
            cfg = cfg.replace(balance_coef=balance)
        _, rep = train(cfg, Path(out) / name, label=name, threads=threads)
        f = rep["final"]
        yield {
            "run": name,
            "seconds": round(rep["seconds"], 1),
            "tokens_per_s": round(rep["tokens_per_s"]),
            "lm_loss": round(f["lm_loss"], 3),
            "max_load": [round(max(x), 3) for x in f["load"]],
            "mi_bits": [round(x, 3) for x in f["mi"]],
            "mi_shuffled_bits": [round(x, 4) for x in f["mi_shuffled"]],
        }
