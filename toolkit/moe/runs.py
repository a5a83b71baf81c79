"""The committed training runs in assets/moe/<run>/ (config.json, weights.pt, replay.json), loaded once."""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

RUNS = ("balanced", "no_balance", "aux_free")


def assets_dir() -> Path:
    return Path(os.environ.get("LECTURE_MOE_ASSETS", Path(__file__).resolve().parents[2] / "assets" / "moe"))


@functools.lru_cache(maxsize=None)
def model(run: str = "balanced"):
    """The trained MoeTransformer of a committed run (eval mode, shared by every caller)."""
    from toolkit.moe.model import load

    if run not in RUNS:
        raise KeyError(f"unknown MoE run {run!r} (known: {', '.join(RUNS)})")
    return load(assets_dir() / run)


@functools.lru_cache(maxsize=None)
def replay(run: str = "balanced") -> dict:
    if run not in RUNS:
        raise KeyError(f"unknown MoE run {run!r} (known: {', '.join(RUNS)})")
    path = assets_dir() / run / "replay.json"
    if not path.is_file():
        raise FileNotFoundError(f"no replay at {path}: run `lecture train-moe`")
    return json.loads(path.read_text())
