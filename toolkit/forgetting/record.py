"""The committed forgetting runs (``lecture forgetting`` re-records them): assets/forgetting/lecture.npz."""

from __future__ import annotations

from pathlib import Path

ASSET = Path(__file__).resolve().parents[2] / "assets" / "forgetting" / "lecture.npz"
COMMAND = "lecture forgetting --threads 1"


def record(out: str | Path = ASSET, model: str = "smollm2-135m", threads: int = 1, **overrides):
    """Every method's run (progress bars), saved to ``out``; returns the trace."""
    import torch

    from toolkit.forgetting.capture import RECORDED, train

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        methods = overrides.pop("methods", None) or list(RECORDED)
        trace = train(model, methods, progress=True, **overrides)
        trace.save(out)
        return trace
    finally:
        torch.set_num_threads(before)
