"""The committed agent measurement (``lecture agent`` re-records it): assets/agent/lecture.npz."""

from __future__ import annotations

from pathlib import Path

ASSET = Path(__file__).resolve().parents[2] / "assets" / "agent" / "lecture.npz"
COMMAND = "lecture agent --threads 1"


def record(out: str | Path = ASSET, model: str = "smollm2-135m", threads: int = 1):
    """Every bundled question with and without tools (progress bars), saved to ``out``; returns the trace."""
    import torch

    from toolkit.agent.capture import evaluate

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trace = evaluate(model, progress=True)
        trace.save(out)
        return trace
    finally:
        torch.set_num_threads(before)
