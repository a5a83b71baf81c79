"""Static export: any view of any concept as SVG, PNG, PDF or self-contained HTML, for handouts and papers.

    lecture export attention head --preset '{"layer": 5, "head": 2}' --format svg --theme dark --out head.svg

The figure comes from ``toolkit.views`` (the demo's view with the demo's defaults, presets by the demo's URL
names). Plotly figures are drawn by plotly's kaleido driving Debian's chromium (no browser download: kaleido is
pointed at the installed binary, and MathJax, which kaleido would load from a CDN, is off); the SVG keeps its text
as <text>. The HTML inlines plotly.js, so it opens offline. The few HTML views (the MoE token view, the GRPO group
table, bertviz) export as HTML, or as PNG / PDF through headless chromium; they have no SVG form.
``lecture export-figures`` (the deck's static figures) renders through the same ``Renderer``.
"""

from __future__ import annotations

import base64
import contextlib
import html
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMATS = ("svg", "png", "pdf", "html")
WIDTH, HEIGHT = 1200, 700  # CSS px when the figure sets no size of its own
REMOTE = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


class ExportError(ValueError):
    """A view or format that cannot be exported as asked: the message says what can."""


def remote_references(page: str) -> list[str]:
    """Tags of an HTML page that would load something from the network (a script, stylesheet, image, frame)."""
    return [m.group(0) for m in REMOTE.finditer(page)]


def figure(concept: str, view: str | None = None, preset: dict[str, Any] | None = None, dark: bool = False) -> Any:
    """The view's figure (plotly) or HTML (a str), from toolkit.views with the demo's defaults."""
    from toolkit import views

    return views.show(concept, view, **{**(preset or {}), "dark": dark})


def html_page(body: str, title: str = "", dark: bool = False) -> str:
    """An HTML view as a page of its own (system fonts; nothing loaded from the network)."""
    bg, ink = ("#0b0f19", "#f2f2f2") if dark else ("#ffffff", "#111111")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>body {{ margin: 12px; background: {bg}; color: {ink}; "
        'font-family: ui-sans-serif, system-ui, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }</style>'
        f"</head><body>\n{body}\n</body></html>\n"
    )


def _size(fig: Any, width: int | None, height: int | None) -> tuple[int, int]:
    return int(width or fig.layout.width or WIDTH), int(height or fig.layout.height or HEIGHT)


class Renderer:
    """Renders figures; a ``with Renderer():`` block keeps one kaleido browser for every figure inside it (kaleido
    otherwise starts chromium for each). Thread-safe: kaleido's server renders one figure at a time."""

    _depth = 0
    _lock = threading.Lock()

    def __enter__(self) -> Renderer:
        import kaleido

        with Renderer._lock:
            if Renderer._depth == 0:
                kaleido.start_sync_server(silence_warnings=True, **_kopts())
            Renderer._depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        import kaleido

        with Renderer._lock:
            Renderer._depth -= 1
            if Renderer._depth == 0:
                kaleido.stop_sync_server(silence_warnings=True)

    @staticmethod
    def image(fig: Any, fmt: str, width: int | None = None, height: int | None = None, scale: float = 1) -> bytes:
        """A plotly figure as svg, png or pdf bytes (kaleido + the installed chromium)."""
        import kaleido

        w, h = _size(fig, width, height)
        opts = {"format": fmt, "width": w, "height": h, "scale": scale}
        if Renderer._depth:
            return kaleido.calc_fig_sync(fig, opts=opts)
        return kaleido.calc_fig_sync(fig, opts=opts, kopts=_kopts())


def _kopts() -> dict[str, Any]:
    """kaleido's options: Debian's chromium (never a downloaded one), no MathJax (kaleido loads it from a CDN)."""
    from lecture.chromium import executable

    return {"path": executable(), "mathjax": False}


def render(
    shown: Any,
    fmt: str,
    dark: bool = False,
    width: int | None = None,
    height: int | None = None,
    scale: float = 1,
    title: str = "",
) -> bytes:
    """A view's figure (plotly) or HTML (str) in ``fmt``: svg, png, pdf or html."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if isinstance(shown, str):
        page = html_page(shown, title, dark)
        if fmt == "html":
            return page.encode()
        if fmt == "svg":
            raise ExportError(f"{title or 'this view'} is HTML, not a plotly figure: export it as html, png or pdf")
        return _html_to(page, fmt, width or WIDTH, height, scale)
    if fmt == "html":
        page = shown.to_html(
            include_plotlyjs=True, full_html=True, include_mathjax=False, config={"displaylogo": False}
        )
        return page.encode()
    return Renderer.image(shown, fmt, width, height, scale)


def _html_to(page: str, fmt: str, width: int, height: int | None, scale: float) -> bytes:
    """An HTML page as png (its whole height unless ``height``) or pdf, through headless chromium."""
    from lecture.chromium import Browser

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "view.html"
        path.write_text(page)
        with Browser(width, height or HEIGHT, scale=scale) as browser:
            browser.goto(path.as_uri())
            browser.wait_for("document.readyState === 'complete' && !!document.body")
            # the page's own height (not the window's): the body's bottom edge plus its margin
            h = height or int(
                browser.evaluate("Math.ceil(document.body.getBoundingClientRect().bottom + 12)") or HEIGHT
            )
            if fmt == "pdf":
                data = browser.send(
                    "Page.printToPDF",
                    {"printBackground": True, "paperWidth": width / 96, "paperHeight": h / 96, "pageRanges": "1"},
                )["data"]
                return base64.b64decode(data)
            browser.resize(width, h)
            out = Path(tmp) / "view.png"
            browser.screenshot(out, clip={"x": 0, "y": 0, "width": width, "height": h})
            return out.read_bytes()


def default_name(concept: str, view: str | None, fmt: str, dark: bool) -> str:
    from toolkit import views

    name = view or views.views(concept)[0]
    return f"{concept}-{name}{'-dark' if dark else ''}.{fmt}"


def export(
    concept: str,
    view: str | None = None,
    preset: dict[str, Any] | None = None,
    fmt: str = "svg",
    dark: bool = False,
    out: str | Path | None = None,
    width: int | None = None,
    height: int | None = None,
    scale: float = 1,
) -> Path:
    """Write one view to ``out`` (default: ``<concept>-<view>[-dark].<fmt>`` here) and return its path."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    from toolkit import views

    view = view or views.views(concept)[0]
    shown = figure(concept, view, preset, dark)
    data = render(shown, fmt, dark, width, height, scale, title=f"{concept}/{view}")
    path = Path(out) if out else Path(default_name(concept, view, fmt, dark))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@contextlib.contextmanager
def session() -> Iterator[Renderer]:
    """``with export.session(): ...`` renders every figure inside with one browser."""
    with Renderer() as r:
        yield r
