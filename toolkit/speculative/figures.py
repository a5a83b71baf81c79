"""Speculative decoding and distillation figures: slides "Speculative decoding" (the text coloured by who wrote
each token, acceptance against k, target passes per token) and "Small models and distillation" (soft targets,
the distillation run). One function per view."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.speculative.capture import SpeculativeConfig
from toolkit.speculative.maths import expected_tokens
from toolkit.speculative.trace import DistillationTrace, SpeculativeTrace, SweepTrace, TargetsTrace

DRAFT_LABELS = {"lookup": "prompt lookup", "layers": "first layers", "distilled": "first layers, distilled"}


def _token(t: str) -> str:
    """A token as HTML: escaped, a newline shown as ⏎ and a break."""
    return html.escape(t).replace("\n", "⏎<br>").replace(" ", "&nbsp;") or "∅"


def text_html(t: SpeculativeTrace, dark: bool = False) -> str:
    """The output, step by step: draft tokens the target accepted, the first one it rejected (struck through) and
    the token it wrote itself (the correction, or a bonus after a fully accepted draft)."""
    pal = style.palette(dark)
    ink, soft = ("#eee", "#999") if dark else ("#111", "#666")
    css = (
        f".sd {{ font-size: 20px; line-height: 2.1; color: {ink}; font-family: ui-monospace, monospace; }}"
        f".sd .acc {{ background: {pal[4]}55; border-bottom: 3px solid {pal[4]}; padding: 1px 1px; }}"
        f".sd .rej {{ color: {pal[5]}; text-decoration: line-through 2px; padding: 1px 1px; }}"
        f".sd .tgt {{ background: {pal[0]}44; border-bottom: 3px dashed {pal[0]}; font-weight: 700; "
        "padding: 1px 1px; }"
        f".sd .sep {{ color: {soft}; padding: 0 2px; }}"
        f".sd .legend {{ font-family: system-ui, sans-serif; font-size: 18px; margin-bottom: 6px; }}"
    )
    parts = []
    produced = 0
    total = len(t.new_ids)
    for step, n in enumerate(t.accepted):
        if produced >= total:
            break
        drafted = t.drafted_text[step]
        for _ in range(int(n)):
            if produced < total:
                parts.append(f'<span class="acc">{_token(t.tokens[produced])}</span>')
                produced += 1
        if n < len(drafted) and t.drafted[step, n] >= 0:
            parts.append(f'<span class="rej" title="rejected draft">{_token(drafted[n])}</span>')
        if produced < total:
            parts.append(f'<span class="tgt">{_token(t.tokens[produced])}</span>')
            produced += 1
        parts.append('<span class="sep">|</span>')
    legend = (
        '<div class="legend"><span class="acc">accepted draft</span> &nbsp; '
        '<span class="rej">rejected draft</span> &nbsp; <span class="tgt">target\'s own token</span> &nbsp; '
        '<span class="sep">|</span> one target pass</div>'
    )
    return f'<div class="sd" data-lecture-view="speculative"><style>{css}</style>{legend}{"".join(parts)}</div>'


def _two(titles: list[str], widths: list[float] | None = None, spacing: float = 0.12) -> go.Figure:
    """Two panels side by side."""
    return make_subplots(rows=1, cols=2, column_widths=widths, horizontal_spacing=spacing, subplot_titles=titles)


def passes(t: SpeculativeTrace, dark: bool = False) -> go.Figure:
    """Output tokens against target forward passes: plain decoding makes one per pass (the diagonal)."""
    pal = style.palette(dark)
    made = np.minimum(np.cumsum(t.accepted + 1), len(t.new_ids))  # (step,) tokens after each pass
    x = np.arange(1, len(made) + 1)
    fig = _two(["tokens after each target pass", "tokens per pass"], widths=[0.55, 0.45])
    fig.add_trace(
        go.Scatter(
            x=[0, len(t.new_ids)],
            y=[0, len(t.new_ids)],
            mode="lines",
            name="plain decoding",
            line=dict(color="gray", dash="dash", width=3),
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(
            x=np.r_[0, x],
            y=np.r_[0, made],
            mode="lines+markers",
            name="speculative",
            line=dict(color=pal[4], width=4),
            line_shape="hv",
        ),
        1,
        1,
    )
    counts = np.bincount(np.minimum(t.accepted + 1, t.k + 1), minlength=t.k + 2)[1:]  # (k + 1,)
    fig.add_trace(
        go.Bar(
            x=np.arange(1, t.k + 2),
            y=counts,
            marker_color=pal[0],
            showlegend=False,
            hovertemplate="%{y} passes made %{x} tokens<extra></extra>",
        ),
        1,
        2,
    )
    fig.update_xaxes(title="target forward passes", row=1, col=1)
    fig.update_yaxes(title="output tokens", row=1, col=1)
    fig.update_xaxes(title="tokens made by one pass", dtick=1, row=1, col=2)
    fig.update_yaxes(title="passes", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0))
    title = (
        f"{len(t.new_ids)} tokens in {len(t.accepted)} target passes ({t.tokens_per_pass:.2f} per pass), "
        f"{DRAFT_LABELS.get(t.draft, t.draft)}, k = {t.k}"
    )
    return style.apply(fig, dark, title=title, height=520)


def acceptance(s: SweepTrace, dark: bool = False) -> go.Figure:
    """Acceptance rate and wall-time speed-up over plain greedy decoding against k, one line per draft."""
    pal = style.palette(dark)
    fig = _two(["draft tokens accepted", "speed-up over plain greedy (wall time)"])
    speed = s.speedup()
    for d, name in enumerate(s.drafts):
        colour = pal[[4, 5, 2, 0][d % 4]]
        label = DRAFT_LABELS.get(name, name)
        fig.add_trace(
            go.Scatter(
                x=s.ks,
                y=100 * s.acceptance[d],
                name=label,
                mode="lines+markers",
                line=dict(color=colour, width=4),
                marker=dict(size=10),
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=s.ks,
                y=speed[d],
                name=label,
                mode="lines+markers",
                showlegend=False,
                line=dict(color=colour, width=4),
                marker=dict(size=10),
                customdata=s.tokens_per_pass[d],
                hovertemplate="k = %{x}: %{y:.2f}×, %{customdata:.2f} tokens per pass<extra></extra>",
            ),
            1,
            2,
        )
    fig.add_hline(y=1, line_dash="dash", line_color="gray", row=1, col=2)
    fig.update_xaxes(title="k (tokens drafted per pass)", dtick=1)
    fig.update_yaxes(title="accepted (%)", range=[0, 100], row=1, col=1)
    fig.update_yaxes(title="× faster", rangemode="tozero", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0))
    same = "every output identical to plain greedy" if bool(s.same.all()) else "SOME OUTPUTS DIFFER"
    title = f"{len(s.prompts)} bundled prompts, {s.new_tokens} tokens each run; {same}"
    return style.apply(fig, dark, title=title, height=520)


def expected(dark: bool = False, ks: int = 10) -> go.Figure:
    """Leviathan et al.'s expected tokens per target pass, (1 - a^(k+1)) / (1 - a), for a few acceptance rates."""
    pal = style.palette(dark)
    k = np.arange(0, ks + 1)
    fig = go.Figure()
    for i, a in enumerate((0.3, 0.5, 0.7, 0.9)):
        fig.add_trace(
            go.Scatter(
                x=k, y=expected_tokens(a, k), name=f"α = {a}", mode="lines+markers", line=dict(color=pal[i], width=3)
            )
        )
    fig.update_xaxes(title="k", dtick=1)
    fig.update_yaxes(title="tokens per target pass")
    return style.apply(fig, dark, title="Expected tokens per target pass", height=480)


def soft_targets(t: TargetsTrace, dark: bool = False) -> go.Figure:
    """The teacher's top tokens: its distribution at T = 1 and at T, the student's at T, and the one-hot label."""
    pal = style.palette(dark)
    labels = [style.plain(repr(x)[1:-1] or "∅") for x in t.top_tokens]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=t.teacher_1, name="teacher, T = 1", marker_color=pal[7], opacity=0.45))
    fig.add_trace(
        go.Bar(x=labels, y=t.teacher, name=f"teacher, T = {t.temperature:g} (soft targets)", marker_color=pal[4])
    )
    fig.add_trace(go.Bar(x=labels, y=t.student, name=f"student, T = {t.temperature:g}", marker_color=pal[5]))
    one_hot = [1.0 if int(i) == t.label else 0.0 for i in t.top_ids]
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=one_hot,
            mode="markers",
            name="one-hot label",
            marker=dict(symbol="star", size=[22 if v else 0 for v in one_hot], color=pal[0]),
        )
    )
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.3, x=0))
    fig.update_xaxes(title="teacher's most likely next tokens", tickangle=-35)
    fig.update_yaxes(title="probability", range=[0, 1.05])
    context = style.plain("".join(t.context[-8:]).replace("\n", " ⏎ "))
    title = (
        f"…{context} → next: {style.plain(repr(t.label_token))}<br>"
        f"T²·KL = {t.kl:.2f} · CE to teacher {t.ce_teacher:.2f} · CE to label {t.ce_label:.2f}"
    )
    return style.apply(fig, dark, title=title, height=560)


def distillation(t: DistillationTrace, dark: bool = False) -> go.Figure:
    """The distillation loss per step, and acceptance and speed-up of the draft before and after."""
    pal = style.palette(dark)
    titles = [f"T²·KL(teacher ‖ student), T = {t.temperature:g}", f"the draft in use (k = {t.k})"]
    fig = _two(titles, widths=[0.55, 0.45], spacing=0.14)
    steps = np.arange(1, len(t.losses) + 1)
    width = max(1, len(t.losses) // 20)
    smooth = np.convolve(t.losses, np.ones(width) / width, mode="valid")
    fig.add_trace(
        go.Scatter(x=steps, y=t.losses, mode="lines", name="batch loss", line=dict(color=pal[1], width=1), opacity=0.6),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(
            x=steps[width - 1 :], y=smooth, mode="lines", name=f"mean of {width}", line=dict(color=pal[4], width=4)
        ),
        1,
        1,
    )
    groups = ["accepted (%)", "tokens / pass", "speed-up (×)"]
    before = [100 * t.acceptance[0], t.tokens_per_pass[0], t.speedup[0]]
    after = [100 * t.acceptance[1], t.tokens_per_pass[1], t.speedup[1]]
    fig.add_trace(
        go.Bar(
            x=groups,
            y=before,
            name="before",
            marker_color=pal[5],
            text=[f"{v:.2f}" if v < 10 else f"{v:.0f}" for v in before],
            textposition="outside",
        ),
        1,
        2,
    )
    fig.add_trace(
        go.Bar(
            x=groups,
            y=after,
            name="after",
            marker_color=pal[2],
            text=[f"{v:.2f}" if v < 10 else f"{v:.0f}" for v in after],
            textposition="outside",
        ),
        1,
        2,
    )
    fig.update_xaxes(title="step", row=1, col=1)
    ticks = [v for v in (0.5, 1, 2, 5, 10, 20, 50, 100) if t.losses.min() / 2 <= v <= t.losses.max() * 2]
    fig.update_yaxes(title="loss", type="log", tickvals=ticks, row=1, col=1)  # major ticks only: readable
    shown = [v for v in before + after if v > 0]
    top = np.log10(max(shown) * 3)  # headroom for the labels above the bars
    fig.update_yaxes(type="log", range=[np.log10(min(shown) / 2), top], row=1, col=2, showticklabels=False)
    fig.update_traces(cliponaxis=False, selector=dict(type="bar"))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.25, x=0))
    title = (
        f"Distilling the first {t.layers} layers: {len(t.losses)} steps, {t.trainable / 1e6:.2f} M trainable, "
        f"{t.seconds / 60:.0f} min"
    )
    return style.apply(fig, dark, title=title, height=540)


# ---- the demo's views from Python (demos/speculative.py: same names, presets and defaults) ---------------
SPEC_COMMAND = "lecture distill, then lecture speculative"
SOFT_TEXT = "The capital of France is Paris"


def _spec_recorded(name: str):
    from toolkit import speculative, views

    return views.recorded(speculative.Trace, speculative.assets_dir() / name, SPEC_COMMAND)


def _spec_run(prompt: str | None, draft: str, k: int, max_new: int, model: str):
    """The recorded run of the demo's preset when it exists (it opens instantly), else a run now."""
    from toolkit import speculative

    prompt = speculative.DEFAULT_PROMPT if prompt is None else prompt
    cfg = speculative.SpeculativeConfig(draft=draft, k=k, max_new_tokens=max_new)
    recorded = speculative.assets_dir() / f"run-{draft}.npz"
    if prompt == speculative.DEFAULT_PROMPT and cfg == speculative.SpeculativeConfig(draft=draft):
        if recorded.is_file():
            return _spec_recorded(recorded.name)
    return speculative.capture(model, prompt, cfg)


def _on_run(draw: Callable[[SpeculativeTrace, bool], Any], doc: str) -> Callable[..., Any]:
    """A view of one run with the demo's presets and defaults (``max_new``: the demo's new tokens)."""

    def view(
        prompt: str | None = None,
        draft: str = "lookup",
        k: int = SpeculativeConfig.default("k"),
        max_new: int = SpeculativeConfig.default("max_new_tokens"),
        model: str = "smollm2-135m",
        dark: bool = False,
    ):
        return draw(_spec_run(prompt, draft, k, max_new, model), dark)

    view.__doc__ = doc + " prompt None: the demo's (a spelling correction, which prompt lookup drafts well)."
    return view


spec_text = _on_run(text_html, "The generated text, each token marked by who wrote it: the draft or the target (HTML).")
spec_passes = _on_run(passes, "Output tokens against target passes, and how many tokens each pass made.")


def spec_k(dark: bool = False):
    """Acceptance and speed-up against k, recorded on the bundled prompts (`lecture speculative`)."""
    return acceptance(_spec_recorded("sweep.npz"), dark)


def spec_soft_targets(
    soft_text: str = SOFT_TEXT, soft_t: float = 2.0, layers: int = 4, model: str = "smollm2-135m", dark: bool = False
):
    """The teacher's and the student's (the first ``layers`` blocks) soft targets at temperature ``soft_t``."""
    from toolkit import speculative

    return soft_targets(speculative.targets(model, soft_text, temperature=soft_t, layers=layers), dark)


def spec_distillation(dark: bool = False):
    """The recorded distillation run (`lecture distill`): loss, and acceptance before and after."""
    return distillation(_spec_recorded("distillation.npz"), dark)


VIEWS = {  # the notebook API (toolkit.views) and `lecture export`: the demo's views, its hero first
    "text": spec_text,
    "passes": spec_passes,
    "k": spec_k,
    "soft-targets": spec_soft_targets,
    "distillation": spec_distillation,
}
