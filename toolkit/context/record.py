"""The committed few-shot measurement (``lecture context`` re-records it): assets/context/fewshot.npz."""

from __future__ import annotations

from pathlib import Path

ASSET = Path(__file__).resolve().parents[2] / "assets" / "context" / "fewshot.npz"
COMMAND = "lecture context --threads 1"


def record(out: str | Path = ASSET, model: str = "smollm2-135m", threads: int = 1):
    """Zero-shot and few-shot accuracy on the bundled reviews (progress bar), saved to ``out``."""
    import torch

    from toolkit.context.capture import fewshot

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trace = fewshot(model, progress=True)
        trace.save(out)
        return trace
    finally:
        torch.set_num_threads(before)
