"""The recorded GRPO run the replay views open (deck: "GRPO objective"): the committed asset, or any GrpoTrace
file, e.g. one recorded from TRL's GRPOTrainer with ``toolkit.grpo.trl.GrpoRecorder``.

    from toolkit.grpo import replay
    trace = replay.load()                  # assets/grpo/lecture.npz (SmolLM2 with LoRA, 20 steps)
    trace = replay.load("run/grpo.npz")    # a run of yours
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from toolkit.grpo.trace import GrpoTrace

ASSET = Path(__file__).resolve().parents[2] / "assets" / "grpo" / "lecture.npz"
COMMAND = "lecture grpo --preset lecture --steps 20 --threads 1 --out assets/grpo/lecture.npz"


def load(path: str | Path | None = None) -> GrpoTrace:
    """A GrpoTrace file (default: the committed run), read once per file version (path, size, mtime)."""
    p = Path(path).expanduser().resolve() if path else ASSET
    st = os.stat(p)  # FileNotFoundError names the path
    return _load(str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(path: str, size: int, mtime_ns: int) -> GrpoTrace:
    return GrpoTrace.load(path)
