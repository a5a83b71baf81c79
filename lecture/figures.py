"""Static figures for deck slides that have no live demo (sinusoidal PE, cross-entropy, Bradley-Terry): drawn by
their concepts' figure functions, rendered to PNG by headless chromium into slides/public/figures/.

Run `lecture export-figures` after changing a figure; the PNGs are committed so the deck builds without Python.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from toolkit import dpo, rope, sft

WIDTH, HEIGHT = 900, 560  # CSS px of each PNG (rendered at 2x for a projector)


FIGURES = {  # name -> (dark) -> figure, each made by its concept's figures module
    "sinusoidal": lambda dark=False: rope.figures.sinusoidal(64, 128, dark=dark),
    "cross_entropy": lambda dark=False: sft.figures.cross_entropy_curve(dark),
    "bradley_terry": lambda dark=False: dpo.figures.bradley_terry_curve(dark),
}


def export(out_dir: str | Path, names: list[str] | None = None, dark: bool = False) -> list[Path]:
    """Render the named figures (all by default) to out_dir/<name>.png with headless chromium."""
    from lecture.chromium import Browser

    out = Path(out_dir)
    written = []
    with tempfile.TemporaryDirectory() as tmp, Browser(WIDTH, HEIGHT, scale=2) as browser:
        for name in names or list(FIGURES):
            fig = FIGURES[name](dark)
            fig.update_layout(width=WIDTH, height=HEIGHT)
            page = Path(tmp) / f"{name}.html"
            # plotly.js inline: the page loads nothing from the network
            page.write_text(fig.to_html(include_plotlyjs=True, full_html=True, config={"staticPlot": True}))
            browser.goto(page.as_uri())
            browser.wait_for("document.querySelectorAll('.main-svg').length > 0")
            browser.evaluate("document.body.style.margin = '0'")
            written.append(
                browser.screenshot(out / f"{name}.png", clip={"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT})
            )
    return written
