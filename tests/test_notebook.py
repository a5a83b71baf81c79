"""notebooks/tutorial.ipynb: committed without outputs, executed here with nbclient (as `make test` runs it), and
its figures render offline: plotly.js inlined once, no output loads a script from the network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tutorial.ipynb"
REMOTE = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def _html(output: dict) -> str:
    html = output.get("data", {}).get("text/html", "")
    return "".join(html) if isinstance(html, list) else html


def test_committed_notebook_has_no_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 15
    assert all(not c.outputs and c.execution_count is None for c in code), "strip the notebook's outputs"


@pytest.mark.slow
def test_notebook_runs_and_renders_offline():
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pages = [_html(o) for o in outputs if _html(o)]
    assert not [m for p in pages for m in REMOTE.findall(p)]
    assert sum(len(p) > 1_000_000 and "plotly" in p.lower() for p in pages) == 1  # plotly.js, once, inline
    plots = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plots) >= 15 and all("Plotly.newPlot" in _html(o) for o in plots)
