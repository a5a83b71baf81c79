"""Static export (`lecture export`, lecture/export.py): every concept's default view as vector SVG with its text as
<text> and as HTML that loads nothing from the network; PNG and PDF for a few; HTML views through chromium; the
deck's static figures through the same renderer at the same size."""

from __future__ import annotations

import re
import struct

import pytest

from lecture import export
from lecture.cli import main
from toolkit import registry, views

SHORT = "The cat sat on the mat"
PRESETS = {  # small inputs: the default view of each concept, quickly
    "attention": {"text": SHORT},
    "sampling": {"prompt": "The capital of France is"},
    "kv_cache": {"prompt": "The Roman Empire was", "steps": 2},
    "flash_attention": {"text": SHORT, "step": 4},
    "rag": {"max_new_tokens": 4, "k": 2},
    "speculative": {"prompt": SHORT, "max_new": 6},
}
CONCEPTS = views.concepts()


@pytest.fixture(scope="module")
def renderer():
    with export.Renderer() as r:
        yield r


@pytest.fixture(scope="module")
def shown():
    """concept -> its default view (drawn once for every format)."""
    return {c: export.figure(c, None, PRESETS.get(c)) for c in CONCEPTS}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_every_concept_offers_views():
    assert CONCEPTS == list(registry.CONCEPTS)


@pytest.mark.slow
@pytest.mark.parametrize("concept", CONCEPTS)
def test_default_view_in_every_format(renderer, shown, concept):
    """HTML that loads nothing remote for every default view; a plotly one also as vector SVG (text as <text>), PNG
    and PDF. An HTML view (the MoE tokens, the GRPO group table...) has no SVG form: asked for one, it says so."""
    fig = shown[concept]
    page = export.render(fig, "html", title=concept).decode()
    assert page.lstrip().lower().startswith(("<html", "<!doctype")) and not export.remote_references(page)
    if isinstance(fig, str):
        with pytest.raises(export.ExportError, match="html, png or pdf"):
            export.render(fig, "svg")
        return
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js inlined: it opens offline
    svg = export.render(fig, "svg").decode()
    heatmaps = sum(t.type == "heatmap" for t in fig.data)
    assert svg.startswith("<svg") and svg.count("<image") <= heatmaps  # vector; plotly draws a heatmap as one image
    assert "<path" in svg  # axes, bars, lines and markers are paths
    texts = re.findall(r"<text\b[^>]*>([^<]+)</text>", svg)
    title = re.sub(r"<[^>]+>", "", fig.layout.title.text or "")
    assert len(texts) >= 3 and (not title or any(t in title for t in texts if len(t) > 3)), texts[:5]
    assert png_size(export.render(fig, "png", width=400, height=250)) == (400, 250)
    assert export.render(fig, "pdf", width=400, height=250).startswith(b"%PDF")


@pytest.mark.slow
@pytest.mark.parametrize("concept", ["attention", "moe", "grpo"])  # a plotly view and two HTML views
def test_every_format(renderer, shown, concept, tmp_path):
    fig = shown[concept]
    png = export.render(fig, "png", width=800, height=500, scale=2)
    w, h = png_size(png)
    assert w == 1600 and (h == 1000 or isinstance(fig, str))  # an HTML view is as tall as its page
    assert export.render(fig, "pdf", width=800, height=500).startswith(b"%PDF")
    path = export.export(concept, None, PRESETS.get(concept), "html", dark=True, out=tmp_path / "v.html")
    assert path.is_file() and not export.remote_references(path.read_text())


def test_cli(tmp_path, capsys):
    out = tmp_path / "bt.svg"
    assert main(["export", "dpo", "bradley-terry", "--preset", '{"rw": 2, "rl": 0}', "--out", str(out)]) == 0
    assert out.read_text().startswith("<svg") and "σ" in out.read_text()
    assert main(["export", "dpo", "--preset", "{not json", "--out", str(out)]) == 2
    assert main(["export", "dpo", "--preset", '{"layer": 3}', "--out", str(out)]) == 2
    assert main(["export", "moe", "--format", "svg", "--out", str(out)]) == 2
    assert main(["export", "no_such_concept"]) == 2
    err = capsys.readouterr().err
    assert "not JSON" in err and "takes no preset layer" in err and "html, png or pdf" in err


def test_remote_references_are_found():
    assert export.remote_references('<script src="https://cdn.plot.ly/plotly.js"></script><link href="//x/y.css">')
    assert not export.remote_references("<script>var a = 'https://example.org';</script><img src='data:x'>")


def test_deck_figures_use_the_same_renderer(tmp_path):
    from lecture import figures

    (path,) = figures.export(tmp_path, ["bradley_terry"])
    assert png_size(path.read_bytes()) == (2 * figures.WIDTH, 2 * figures.HEIGHT)
