"""Shared look for every figure: large text for the back of the room, colour-blind-safe colours, dark mode."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
CATEGORICAL = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
CATEGORICAL_DARK = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#FFFFFF"]
SEQUENTIAL = "Viridis"  # perceptually uniform and colour-blind safe
DIVERGING = "RdBu"  # use with zmid=0 for signed values (advantages, differences)
MASKED = "rgba(128,128,128,0.25)"  # cells that do not exist (causal mask), drawn apart from data
FONT_SIZE = 18
MIN_FONT = 16  # no text in a figure is smaller: 16 px in a demo frame at zoom 0.75 is >= 14 px on a 1280x720 projector


def plain(text: str) -> str:
    """User text for a plotly label, title or hover: plotly renders a subset of HTML (<a href>, <b>, <br>, <img>
    is dropped...), so '<', '>' and '&' are escaped and the text shows as typed, never as markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def palette(dark: bool = False) -> list[str]:
    return CATEGORICAL_DARK if dark else CATEGORICAL


def _set_template(fig: go.Figure, dark: bool) -> None:
    """plotly's own templates, assigned the way plotly assigns its default one: without validating them again
    (they were validated when plotly built them). Validating costs about 9 ms per figure, most of a view's time."""
    layout = fig.layout
    layout._validate = False
    try:
        layout.template = pio.templates["plotly_dark" if dark else "plotly_white"]
    finally:
        layout._validate = fig._validate


def _titled_panels(fig: go.Figure) -> bool:
    """Titles above the plot area (make_subplots' subplot_titles): plotly's toolbar would cover the right one."""
    return any(
        a.yref == "paper" and a.y is not None and a.y >= 1 and a.yanchor == "bottom" for a in fig.layout.annotations
    )


def apply(fig: go.Figure, dark: bool = False, title: str | None = None, height: int | None = None) -> go.Figure:
    """Set template, fonts and margins in place; returns the figure for chaining."""
    _set_template(fig, dark)
    top = 70 if title else 60 if _titled_panels(fig) else 30  # room for the toolbar above the panels' titles
    layout = dict(font=dict(size=FONT_SIZE), margin=dict(l=60, r=30, t=top, b=60), colorway=palette(dark))
    if dark:
        layout.update(paper_bgcolor="#0b0f19", plot_bgcolor="#0b0f19")
    if title:
        layout["title"] = dict(text=title, font=dict(size=FONT_SIZE + 4))
    if height:
        layout["height"] = height
    return fig.update_layout(**layout)
