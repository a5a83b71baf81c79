"""Token chips: tokens drawn as boxes laid out like the text they came from, left to right, wrapping into lines,
each with a second, smaller line under it (its id, its label). Used by the tokenization view (slide "Tokenization:
the real input to LLMs") and the SFT labels view (slide "SFT loss masking").

Plotly cannot wrap text, so the layout is done here in monospace cells: a line holds ``cells_per_line(font)``
cells, sized so that a slide's demo frame (a plot about 1100 px wide) fits it; a narrower plot lets text overflow
its chip rather than shrink it. Text is never drawn below style.MIN_FONT.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from toolkit import style
from toolkit.tokens import maths

MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
PLOT_PX = 1110  # the plot's width the lines are sized for (a slide's demo frame at zoom 0.75)
SUB_FONT = style.MIN_FONT  # px: the second line of a chip
GAP = 0.5  # cells between two chips


@dataclass(frozen=True)
class Chip:
    text: str  # what the chip says (plain text; escaped here)
    sub: str = ""  # the smaller line under it
    colour: str = "#888888"  # border; the fill is the same colour, light
    hover: str = ""  # plotly hover text (already escaped by the caller)
    newline: bool = False  # the text breaks the line after this chip (a "\n" token)
    fill: float = 0.3  # fill opacity


def cells_per_line(font_px: int) -> int:
    """Monospace cells one line holds at ``font_px`` (a cell is about 0.6 em, plus room between chips)."""
    return int(PLOT_PX / (0.71 * font_px))


def tint(colour: str, alpha: float) -> str:
    """'#E69F00' -> 'rgba(230,159,0,alpha)': a chip's fill, light enough for text in either theme."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def layout(chips: list[Chip], font_px: int) -> list[tuple[float, int, float]]:
    """(x, line, width) in cells of each chip: left to right, wrapping when a line is full or after a newline."""
    width = cells_per_line(font_px)
    out, x, line = [], 0.0, 0
    for c in chips:
        w = max(maths.cells(c.text), len(c.sub) * SUB_FONT / font_px, 1) + 1.2  # room either side
        if x > 0 and x + w > width:
            x, line = 0.0, line + 1
        out.append((x, line, w))
        x += w + GAP
        if c.newline:
            x, line = 0.0, line + 1
    return out


def draw(
    fig: go.Figure, chips: list[Chip], top: float, font_px: int, dark: bool, max_lines: int | None = None
) -> tuple[float, int, list[dict]]:
    """Add ``chips`` to ``fig`` from row ``top`` down (one row per line); returns (the row under the last line,
    how many chips were drawn, the chips' rectangle shapes for layout.shapes)."""
    ink = "#f2f2f2" if dark else "#111111"
    placed = layout(chips, font_px)
    keep = [i for i, (_, line, _) in enumerate(placed) if max_lines is None or line < max_lines]
    shapes, cx, cy = [], [], []
    for i in keep:
        x, line, w = placed[i]
        row = top + line
        shapes.append(
            dict(
                type="rect",
                x0=x,
                x1=x + w,
                y0=row + 0.06,
                y1=row + 0.94,
                line=dict(color=chips[i].colour, width=3),
                fillcolor=tint(chips[i].colour, chips[i].fill),
                layer="below",
            )
        )
        cx.append(x + w / 2)
        cy.append(row + 0.5)
    drawn = [chips[i] for i in keep]
    fig.add_trace(
        go.Scatter(
            x=cx,
            y=[c - 0.14 for c in cy],
            mode="text",
            text=[style.plain(c.text) for c in drawn],
            textfont=dict(size=font_px, family=MONO, color=ink),
            hovertext=[c.hover for c in drawn],
            hoverinfo="text",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=cx,
            y=[c + 0.27 for c in cy],
            mode="text",
            text=[style.plain(c.sub) for c in drawn],
            textfont=dict(size=SUB_FONT, color=ink),
            hoverinfo="skip",
            showlegend=False,
        )
    )
    n_lines = placed[keep[-1]][1] + 1 if keep else 1
    return top + n_lines, len(keep), shapes


def frame(fig: go.Figure, font_px: int, rows: float, min_rows: float, shapes: list[dict]) -> go.Figure:
    """Axes for a chips figure: hidden, fixed, x = cells of a line, y = rows (at least ``min_rows``, so a few
    chips keep their size instead of stretching to the plot's height)."""
    fig.update_xaxes(visible=False, range=[-0.3, cells_per_line(font_px) + 0.3], fixedrange=True)
    fig.update_yaxes(visible=False, range=[max(rows, min_rows), -0.05], fixedrange=True)
    return fig.update_layout(shapes=shapes)
