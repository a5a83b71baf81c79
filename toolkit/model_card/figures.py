"""Model card figure (slide "What are large language models?"): where the parameters live."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

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


def facts(c: ModelCard) -> list[tuple[str, str]]:
    """The card's rows as the slide reads them: (what, value)."""
    gqa = f"{c.heads} query / {c.kv_heads} K,V heads" if c.kv_heads != c.heads else f"{c.heads} heads"
    rope = f"RoPE, θ = {c.rope_theta:,.0f}" if c.rope_theta else "learned absolute"
    return [
        ("layers", str(c.layers)),
        ("attention", gqa),
        ("hidden size", f"{c.hidden}"),
        ("head dimension", f"{c.head_dim}"),
        ("vocabulary", f"{c.vocab:,} tokens"),
        ("context", f"{c.max_positions:,} tokens"),
        ("positions", rope),
    ]  # the parameter count is the card's title


def card(c: ModelCard, dark: bool = False) -> go.Figure:
    """The model card in one picture: the facts as a table (left), where the parameters live (right)."""
    pal = style.palette(dark)
    ink = "#f2f2f2" if dark else "#111111"
    rows = facts(c)
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.52, 0.48],
        horizontal_spacing=0.13,
        specs=[[{"type": "table"}, {"type": "xy"}]],
    )
    fill = "#1b2130" if dark else "#f3f4f6"
    fig.add_trace(
        go.Table(
            columnwidth=[0.42, 0.58],
            header=dict(values=["", ""], height=4, fill_color="rgba(0,0,0,0)", line_color="rgba(0,0,0,0)"),
            cells=dict(
                values=[[r[0] for r in rows], [f"<b>{style.plain(r[1])}</b>" for r in rows]],
                align=["left", "left"],
                font=dict(size=18, color=ink),
                height=32,
                fill_color=[[fill if i % 2 else "rgba(0,0,0,0)" for i in range(len(rows))]] * 2,
                line_color="rgba(0,0,0,0)",
            ),
        ),
        1,
        1,
    )
    parts = list(c.params_by_part)
    millions = [c.params_by_part[p] / 1e6 for p in parts]
    fig.add_trace(
        go.Bar(
            x=millions,
            y=parts,
            orientation="h",
            marker_color=pal[: len(parts)],
            text=[f"{m:.1f} M" if m >= 1 else f"{1000 * m:,.0f} k" for m in millions],
            textposition="outside",
            textfont=dict(size=18),
            cliponaxis=False,
            showlegend=False,
        ),
        1,
        2,
    )
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_xaxes(title="parameters (millions)", range=[0, max(millions) * 1.3], row=1, col=2)
    title = f"{style.plain(c.name)} ({style.plain(c.architecture)}, {c.kind}): {c.total_params / 1e6:.1f} M parameters"
    return style.apply(fig, dark, title=title, height=440)


# ---- the demo's views from Python: toolkit.views.show("model_card", view, **preset) -------------------------------


def view_card(model: str = "smollm2-135m", dark: bool = False) -> go.Figure:
    """The demo's hero: facts and where the parameters live (any embedded name, Hugging Face id or folder)."""
    from toolkit.model_card.capture import card as capture

    return card(capture(model), dark)


def view_parameters(model: str = "smollm2-135m", dark: bool = False) -> go.Figure:
    from toolkit.model_card.capture import card as capture

    return parameters(capture(model), dark)


VIEWS = {"card": view_card, "parameters": view_parameters}  # the demo's hero first
