"""Next-token sampling figures: slides "Next-token prediction" and "Sampling strategies" (the distribution
through the filters, the vocabulary left after each, greedy vs sampled continuations step by step). One function
per view."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.sampling.trace import DecodeTrace, NextTokenCompareTrace, NextTokenTrace


def _shown(piece: str) -> str:
    return repr(piece)[1:-1].replace(" ", "␣") or "∅"


def distribution(t: NextTokenTrace, dark: bool = False) -> go.Figure:
    """Model probabilities (T = 1) beside the renormalised probabilities after every filter; removed = grey."""
    pal = style.palette(dark)
    labels = [style.plain(_shown(s)) for s in t.tokens]
    final = t.probs[-1]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=t.probs[0], name="model (T = 1)", marker_color=pal[1]))
    fig.add_trace(
        go.Bar(
            x=labels,
            y=final,
            name=f"after filters ({int(t.survivors[-1])} token{'' if t.survivors[-1] == 1 else 's'} left)",
            marker_color=[pal[0] if p > 0 else style.MASKED for p in final],
            text=[f"{p:.2f}" if p > 0 else "✗" for p in final],
            textposition="outside",
            textangle=-90,
            textfont=dict(size=style.MIN_FONT),
            cliponaxis=False,
        )
    )
    fig.update_layout(uniformtext=dict(minsize=style.MIN_FONT, mode="show"))
    c = t.config
    sub = f"T={c['temperature']:g}, top-k={c['top_k'] or 'off'}, top-p={c['top_p']:g}, min-p={c['min_p']:g}"
    fig.update_layout(barmode="group", legend=dict(orientation="v", y=0.98, x=0.99, xanchor="right", yanchor="top"))
    fig.update_yaxes(title="probability", range=[0, float(np.max(t.probs)) * 1.18 + 0.02])
    fig.update_xaxes(title="next token (most likely first)", tickangle=-45)
    return style.apply(fig, dark, title=f"Next token: {sub}", height=520)


def survivors(t: NextTokenTrace, dark: bool = False) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=t.stages,
            y=t.survivors,
            text=[f"{n:,}" for n in t.survivors],
            textposition="outside",
            marker_color=style.palette(dark)[4],
        )
    )
    fig.update_yaxes(type="log", dtick=1, title="tokens left")
    fig.update_layout(uniformtext=dict(minsize=style.MIN_FONT, mode="show"))
    return style.apply(fig, dark, title="Vocabulary left after each stage", height=380)


def _step_cells(d: DecodeTrace) -> tuple[list[list[str]], list[str]]:
    """Cell texts (★ = the token chosen, then its p) and row labels (step: chosen token) of one continuation."""
    n, k = d.step_probs.shape
    text = [
        [
            "✗"  # filtered out: p = 0 exactly (its name would only crowd the cell)
            if d.step_probs[i, j] == 0
            else ("★ " if d.step_ids[i, j] == d.ids[i] else "")
            + style.plain(_shown(d.step_tokens[i][j]))
            + f"<br>{d.step_probs[i, j]:.2f}"
            for j in range(k)
        ]
        for i in range(n)
    ]
    rows = [
        f"{i + 1}: {style.plain(_shown(d.tokens[i]))}"
        + ("" if d.ids[i] in d.step_ids[i] else f" (p={d.chosen_prob[i]:.3f})")
        for i in range(n)
    ]
    return text, rows


def _step_heatmap(d: DecodeTrace, showscale: bool = True) -> go.Heatmap:
    text, rows = _step_cells(d)
    return go.Heatmap(
        z=d.step_probs,
        x=[f"#{j + 1}" for j in range(d.step_probs.shape[1])],
        y=rows,
        text=text,
        texttemplate="%{text}",
        textfont=dict(size=style.MIN_FONT + 1),
        colorscale=style.SEQUENTIAL,
        zmin=0,
        zmax=1,
        showscale=showscale,
        colorbar=dict(title="p"),
        hovertemplate="%{y}, rank %{x}: p = %{z:.3f}<extra></extra>",
    )


def steps(d: DecodeTrace, dark: bool = False) -> go.Figure:
    """Rows = steps; cells = the most likely tokens of the distribution drawn from; ★ = the token chosen."""
    fig = go.Figure(_step_heatmap(d))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="rank in the distribution drawn from")
    name = "greedy (argmax)" if d.mode == "greedy" else f"sampled, seed {d.seed}"
    return style.apply(fig, dark, title=name, height=90 + 48 * len(d.tokens))


def greedy_vs_sampled(greedy: DecodeTrace, sampled: DecodeTrace, dark: bool = False) -> go.Figure:
    """The two continuations side by side, step by step: the same prompt, argmax vs a seeded draw."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.2,
        subplot_titles=["greedy (argmax)", f"sampled, seed {sampled.seed}"],
    )
    fig.add_trace(_step_heatmap(greedy, showscale=False), 1, 1)
    fig.add_trace(_step_heatmap(sampled), 1, 2)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="rank in the distribution drawn from (★ = chosen)")
    for a in fig.layout.annotations:  # subplot titles: plotly makes them 16 px
        a.font = dict(size=style.FONT_SIZE + 2)
    return style.apply(fig, dark, title=None, height=120 + 48 * max(len(greedy.tokens), len(sampled.tokens)))


def shift(t: NextTokenCompareTrace, dark: bool = False) -> go.Figure:
    """Two models' next-token distributions side by side (bars), the change p_B − p_A under them, KL in the title."""
    pal = style.palette(dark)
    labels = [style.plain(_shown(s)) for s in t.tokens]
    a, b = (style.plain(m) for m in t.models)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.06)
    fig.add_trace(go.Bar(x=labels, y=t.probs[0], name=a, marker_color=pal[1]), 1, 1)
    fig.add_trace(go.Bar(x=labels, y=t.probs[1], name=b, marker_color=pal[0]), 1, 1)
    delta = (t.probs[1] - t.probs[0]).astype(np.float32)
    fig.add_trace(
        go.Bar(
            x=labels,
            y=delta,
            name=f"{b} − {a}",
            marker_color=[pal[5] if d > 0 else pal[4] for d in delta],
            hovertemplate="%{x}: %{y:+.3f}<extra></extra>",
            showlegend=False,
        ),
        2,
        1,
    )
    fig.update_layout(barmode="group", legend=dict(orientation="v", y=0.98, x=0.99, xanchor="right", yanchor="top"))
    fig.update_yaxes(title="p (T = 1)", row=1, col=1)
    fig.update_yaxes(title="change", zeroline=True, row=2, col=1)
    fig.update_xaxes(tickangle=-45, row=2, col=1)
    kl_ab, kl_ba = t.kl
    title = f"Next-token shift: KL({a} ‖ {b}) = {kl_ab:.3f} nats, KL back {kl_ba:.3f}"
    return style.apply(fig, dark, title=title, height=560)


# ---- the demo's views from Python: toolkit.views.show("sampling", view, **preset) ------------------------------

PROMPT = "Once upon a time, in a small village,"
MODEL = "smollm2-135m"
COMPARE = "smollm2-135m-nf4"  # toolkit.variants: the same model, linear weights in NF4 (built once per process)


def _knobs(temperature: float, top_k: int, top_p: float, min_p: float, **more):
    """The demo's defaults (5 tokens shown per step, 5 decode steps) with these knobs."""
    from toolkit.sampling.capture import SamplingConfig

    return SamplingConfig(
        temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, step_shown=5, **{"steps": 5, **more}
    )


def view_distribution(
    prompt: str = PROMPT,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.9,
    min_p: float = 0.0,
    model: str = MODEL,
    dark: bool = False,
) -> go.Figure:
    from toolkit.sampling.capture import next_token

    return distribution(next_token(model, prompt, _knobs(temperature, top_k, top_p, min_p)), dark)


def view_survivors(
    prompt: str = PROMPT,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.9,
    min_p: float = 0.0,
    model: str = MODEL,
    dark: bool = False,
) -> go.Figure:
    from toolkit.sampling.capture import next_token

    return survivors(next_token(model, prompt, _knobs(temperature, top_k, top_p, min_p)), dark)


def view_generate(
    prompt: str = PROMPT,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.9,
    min_p: float = 0.0,
    steps: int = 5,
    seed: int = 0,
    model: str = MODEL,
    dark: bool = False,
) -> go.Figure:
    from toolkit.sampling.capture import greedy_and_sampled

    cfg = _knobs(temperature, top_k, top_p, min_p, steps=steps, seed=seed)
    return greedy_vs_sampled(*greedy_and_sampled(model, prompt, cfg), dark)


def view_compare(prompt: str = PROMPT, model: str = MODEL, compare: str = COMPARE, dark: bool = False) -> go.Figure:
    """Two models on the same prompt: their next-token distributions and the KL between them."""
    from toolkit import variants  # noqa: F401  (registers the embedded model's variants)
    from toolkit.sampling.capture import compare as both

    return shift(both(model, compare, prompt), dark)


VIEWS = {  # the demo's hero first
    "distribution": view_distribution,
    "survivors": view_survivors,
    "generate": view_generate,
    "compare": view_compare,
}
