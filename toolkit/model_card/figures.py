"""Model card figure (slide "What are large language models?"): where the parameters live."""

from __future__ import annotations

import plotly.graph_objects as go

from toolkit import style
from toolkit.model_card.capture import ModelCard


def parameters(c: ModelCard, dark: bool = False) -> go.Figure:
    parts = list(c.params_by_part)
    millions = [c.params_by_part[p] / 1e6 for p in parts]
    fig = go.Figure(
        go.Bar(
            x=millions,
            y=parts,
            orientation="h",
            marker_color=style.palette(dark)[: len(parts)],
            text=[f"{m:.1f} M" for m in millions],
            textposition="auto",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="parameters (millions)")
    return style.apply(fig, dark, title=f"{c.name}: {c.total_params / 1e6:.1f} M parameters", height=420)
