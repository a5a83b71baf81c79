"""The demos' views from Python, in one line each (a notebook, a script, `lecture export`).

    from toolkit import views
    views.show("attention")                                  # the demo's hero with its defaults: a plotly Figure
    views.show("attention", "head", layer=5, head=2)          # any view, with the demo's URL preset names
    views.views("sampling")                                   # ['distribution', 'survivors', 'generate', 'compare']

Each concept's ``figures.VIEWS`` maps a view name (the demo's ``?view=``) to a function whose keywords are the
demo's presets with the demo's defaults: it captures with the embedded model (or loads the recorded run), then
draws. The first view is the demo's hero. Every registered concept has views. Some views are HTML, not plotly
(the MoE token view, the GRPO group table, bertviz, search results, RAG answers, agent episodes...): they return
a str, which ``IPython.display.HTML`` shows. Recorded runs are read once per file version (``recorded``).

Importing this module inside Jupyter also makes plotly render offline (``notebook()``; call it yourself to be
sure): the "lecture" renderer puts plotly.js into the notebook once, inline, and no figure loads a script from the
network (plotly's own notebook renderers fetch plotly.js or MathJax from a CDN).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit import registry

RENDERER = "lecture"


def _views(concept: str) -> dict[str, Callable[..., Any]]:
    registry.get(concept)  # KeyError with the known names for a typo
    module = importlib.import_module(f"toolkit.{concept}.figures")
    found = getattr(module, "VIEWS", None)
    if not found:
        raise KeyError(f"{concept} has no notebook views yet (toolkit/{concept}/figures.py defines no VIEWS)")
    return found


def recorded(cls: type, path: str | Path, command: str = "") -> Any:
    """A committed trace (``cls.load(path)``), read once per file version (path, size, mtime): the recorded runs
    the replay views open. A missing or unreadable file says which command records it."""
    p = Path(path).expanduser().resolve()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no recorded {cls.__name__} at {p}" + (f": record it with `{command}`" if command else "")
        ) from None
    return _recorded(cls, str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _recorded(cls: type, path: str, size: int, mtime_ns: int) -> Any:
    return cls.load(path)


def views(concept: str) -> list[str]:
    """The concept's view names, the demo's hero first."""
    return list(_views(concept))


def concepts() -> list[str]:
    """The registered concepts that offer notebook views, in deck order."""
    out = []
    for name in registry.CONCEPTS:
        try:
            _views(name)
        except (KeyError, ImportError):
            continue
        out.append(name)
    return out


def view(concept: str, name: str | None = None) -> Callable[..., Any]:
    """The function behind a view (default: the hero)."""
    found = _views(concept)
    name = name or next(iter(found))
    if name not in found:
        raise KeyError(f"{concept} has no view {name!r}; its views: {', '.join(found)}")
    return found[name]


def presets(concept: str, name: str | None = None) -> dict[str, Any]:
    """A view's presets and their defaults (the demo's URL presets), e.g. {"text": ..., "layer": 3, "dark": False}."""
    return {
        k: p.default for k, p in inspect.signature(view(concept, name)).parameters.items() if p.default is not p.empty
    }


def show(concept: str, view_name: str | None = None, **preset: Any) -> Any:
    """The view's figure (a plotly Figure; a str of HTML for the few HTML views). Unknown presets are refused with
    the list of those the view takes."""
    fn = view(concept, view_name)
    known = presets(concept, view_name)
    unknown = [k for k in preset if k not in known]
    if unknown:
        name = view_name or views(concept)[0]
        raise TypeError(f"{concept}/{name} takes no preset {', '.join(unknown)}; its presets: {', '.join(known)}")
    return fn(**preset)


def notebook(default: bool = True) -> str:
    """Register the offline notebook renderer ("lecture") and, unless ``default`` is False, make it plotly's
    default. It is plotly's "notebook" renderer with plotly.js inlined once when it is first used and without
    MathJax from a CDN; it also sends plotly's JSON, which JupyterLab and VS Code draw with their own plotly.js."""
    import plotly.io as pio
    from plotly.io.base_renderers import NotebookRenderer

    class Offline(NotebookRenderer):
        def to_mimebundle(self, fig_dict: dict) -> dict:
            from plotly.io import to_html

            html = to_html(
                fig_dict,
                config=self.config,
                include_plotlyjs=False,  # inlined once, by activate(), when the first figure is shown
                include_mathjax=False,  # plotly's notebook renderer would load MathJax from a CDN here
                full_html=False,
                default_width="100%",
                default_height=525,
                validate=False,
            )
            return {**pio.renderers["plotly_mimetype"].to_mimebundle(fig_dict), "text/html": html}

    if RENDERER not in pio.renderers:
        pio.renderers[RENDERER] = Offline(connected=False, config={"displaylogo": False})
    if default:
        pio.renderers.default = RENDERER
    return RENDERER


def _in_kernel() -> bool:
    """Running inside a Jupyter kernel (not a plain script, where plotly's browser renderer stays the default)."""
    import sys

    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return bool(get and getattr(get(), "kernel", None) is not None)


notebook(default=_in_kernel())
