"""Static figures for deck slides that have no live demo (sinusoidal PE, cross-entropy, Bradley-Terry): computed
here, rendered to PNG by headless chromium into slides/public/figures/.

Run `lecture export-figures` after changing a figure; the PNGs are committed so the deck builds without Python.
Each `fig_*` function is pure maths -> plotly Figure through `style.apply`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from toolkit import style

WIDTH, HEIGHT = 900, 560  # CSS px of each PNG (rendered at 2x for a projector)


def sinusoidal_pe(positions: int, dim: int) -> np.ndarray:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...)  (Vaswani et al. 2017, eq. in section 3.5)."""
    pos = np.arange(positions)[:, None]  # (P, 1)
    i = np.arange(0, dim, 2)[None, :]  # (1, d/2)
    angle = pos / (10000 ** (i / dim))  # (P, d/2)
    pe = np.zeros((positions, dim))
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle)
    return pe


def fig_sinusoidal(dark: bool = False) -> go.Figure:
    pe = sinusoidal_pe(64, 128)
    fig = go.Figure(go.Heatmap(z=pe, colorscale=style.DIVERGING, zmid=0, zmin=-1, zmax=1,
                               colorbar=dict(title="value")))
    fig.update_xaxes(title="embedding dimension")
    fig.update_yaxes(title="position", autorange="reversed")
    return style.apply(fig, dark, "Sinusoidal positional encoding (d = 128)")


def fig_cross_entropy(dark: bool = False) -> go.Figure:
    p = np.linspace(0.005, 1, 400)
    fig = go.Figure(go.Scatter(x=p, y=-np.log(p), mode="lines", line=dict(width=4), name="-log p"))
    fig.add_vline(x=1 / 49152, line_dash="dot")
    fig.add_annotation(x=0.12, y=4.6, text="uniform over 49,152 tokens: loss = 10.8", showarrow=False, xanchor="left")
    fig.update_xaxes(title="probability the model gives the right next token")
    fig.update_yaxes(title="loss = -log p", range=[0, 5.5])
    return style.apply(fig, dark, "Cross-entropy of one token")


def fig_bradley_terry(dark: bool = False) -> go.Figure:
    margin = np.linspace(-6, 6, 400)  # r(x, y_w) - r(x, y_l)
    prob = 1 / (1 + np.exp(-margin))
    fig = go.Figure()
    fig.add_scatter(x=margin, y=prob, mode="lines", line=dict(width=4), name="P(y_w preferred) = σ(margin)")
    fig.add_scatter(x=margin, y=-np.log(prob), mode="lines", line=dict(width=4, dash="dash"),
                    name="loss = -log σ(margin)")
    fig.update_xaxes(title="reward margin r(x, y_w) - r(x, y_l)")
    fig.update_yaxes(range=[0, 3])
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0))
    return style.apply(fig, dark, "Bradley-Terry: preference from a reward difference")


FIGURES = {
    "sinusoidal": fig_sinusoidal,
    "cross_entropy": fig_cross_entropy,
    "bradley_terry": fig_bradley_terry,
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
            written.append(browser.screenshot(out / f"{name}.png", clip={"x": 0, "y": 0, "width": WIDTH,
                                                                         "height": HEIGHT}))
    return written
