"""The committed reasoning assets (``lecture reasoning`` re-records them): the measurement over the sixty bundled
problems (assets/reasoning/lecture.npz) and one tree-of-thought search (assets/reasoning/tree.npz)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "reasoning"
MEASUREMENT = ASSETS / "lecture.npz"
TREE = ASSETS / "tree.npz"
TREE_PROBLEM = 2  # a two-step word problem of the bundled set
COMMAND = "lecture reasoning --threads 1"


def record(out: str | Path = ASSETS, model: str = "smollm2-135m", threads: int = 1, tree_only: bool = False):
    """Run the measurement (progress bars) and the tree search; save both into ``out``; return their paths."""
    import torch

    from toolkit.reasoning.capture import evaluate
    from toolkit.reasoning.problems import problem
    from toolkit.reasoning.tree import search

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = Path(out)
        paths = []
        if not tree_only:
            paths.append(evaluate(model, progress=True).save(out / MEASUREMENT.name))
        paths.append(search(model, problem(TREE_PROBLEM)).save(out / TREE.name))
        return paths
    finally:
        torch.set_num_threads(before)
