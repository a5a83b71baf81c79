"""Static figures for deck slides that have no live demo (sinusoidal PE, cross-entropy, Bradley-Terry): drawn by
their concepts' figure functions, rendered to PNG by plotly's kaleido with Debian's chromium into
slides/public/figures/ (the same path as `lecture export`, lecture/export.py).

Run `lecture export-figures` after changing a figure; the PNGs are committed so the deck builds without Python.
"""

from __future__ import annotations

from pathlib import Path

from toolkit import dpo, rope, sft

WIDTH, HEIGHT = 900, 560  # CSS px of each PNG (rendered at 2x for a projector)


FIGURES = {  # name -> (dark) -> figure, each made by its concept's figures module
    "sinusoidal": lambda dark=False: rope.figures.sinusoidal(64, 128, dark=dark),
    "cross_entropy": lambda dark=False: sft.figures.cross_entropy_curve(dark),
    "bradley_terry": lambda dark=False: dpo.figures.bradley_terry_curve(dark),
}


def export(out_dir: str | Path, names: list[str] | None = None, dark: bool = False) -> list[Path]:
    """Render the named figures (all by default) to out_dir/<name>.png, WIDTH x HEIGHT CSS px at scale 2."""
    from lecture.export import Renderer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with Renderer() as renderer:
        for name in names or list(FIGURES):
            fig = FIGURES[name](dark)
            fig.update_layout(width=WIDTH, height=HEIGHT)
            path = out / f"{name}.png"
            path.write_bytes(renderer.image(fig, "png", WIDTH, HEIGHT, scale=2))
            written.append(path)
    return written
