"""bertviz interop: a trace as bertviz's head_view / model_view HTML that renders offline.

bertviz's HTML loads require.js from a CDN and asks it for d3 and jQuery from a CDN: offline it shows
nothing. Here the CDN script tag is dropped, d3 5.7.0 and jQuery 3.7.1 (toolkit/vendor/, with their licences)
are inlined, and a ten-line ``require`` shim hands them to bertviz's code. The page needs no network.
Gradio's gr.HTML does not run scripts, so a demo shows the page through ``<iframe srcdoc=...>`` (``iframe``).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from toolkit.attention.trace import AttentionTrace

VENDOR = Path(__file__).resolve().parents[1] / "vendor"
_CDN_TAG = re.compile(r'<script src="https?://[^"]*require[^"]*"></script>')
_REQUIRE_CONFIG = re.compile(r"require\.config\(\{.*?\}\);", re.S)
_SHIM = """<script>
// Minimal stand-in for require.js: d3 and jQuery are inlined above, so bertviz's require() gets them directly.
(function () {
  var mods = {d3: window.d3, jquery: window.jQuery};
  window.requirejs = window.require = function (deps, cb) {
    cb.apply(null, deps.map(function (d) { return mods[d]; }));
  };
  window.require.config = function () {};
})();
</script>"""


@lru_cache(maxsize=1)
def _libraries() -> str:
    parts = []
    for name in ("d3-5.7.0.min.js", "jquery-3.7.1.min.js"):
        js = (VENDOR / name).read_text(encoding="utf-8").replace("</script", "<\\/script")
        parts.append(f"<script>/* {name}: see toolkit/vendor/README.md for its licence */\n{js}\n</script>")
    return "\n".join(parts) + "\n" + _SHIM


def offline(page: str) -> str:
    """Rewrite bertviz HTML so it loads nothing from the network."""
    page = _CDN_TAG.sub("", page)
    page = _REQUIRE_CONFIG.sub("require.config({});", page)
    return (
        '<!doctype html><html><head><meta charset="utf-8">' + _libraries() + "</head>"
        '<body style="margin:0;background:#fff">' + page + "</body></html>"
    )


def _attention(trace: AttentionTrace, decimals: int | None):
    import torch

    w = trace.weights
    if decimals is not None:  # float64 after rounding prints short ("0.123"), so bertviz's JSON shrinks
        w = np.round(w.astype(np.float64), decimals)
    return tuple(torch.from_numpy(np.ascontiguousarray(x))[None] for x in w)  # per layer (1, head, query, key)


def head_view(trace: AttentionTrace, layers: list[int] | None = None, decimals: int | None = 3) -> str:
    """bertviz head_view of the trace (all layers, or only ``layers``) as one offline HTML page."""
    from bertviz import head_view as bv_head_view

    out = bv_head_view(_attention(trace, decimals), list(trace.tokens), include_layers=layers, html_action="return")
    return offline(out.data)


def model_view(trace: AttentionTrace, layers: list[int] | None = None, decimals: int | None = 3) -> str:
    """bertviz model_view (every layer × head thumbnail) as one offline HTML page."""
    from bertviz import model_view as bv_model_view

    out = bv_model_view(
        _attention(trace, decimals),
        list(trace.tokens),
        include_layers=layers,
        html_action="return",
        display_mode="light",
    )
    return offline(out.data)


def iframe(page: str, height: int = 720) -> str:
    """An iframe that runs the page's scripts (gr.HTML would not), for a gr.HTML component."""
    return (
        f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:{height}px;border:0" '
        'sandbox="allow-scripts"></iframe>'
    )
