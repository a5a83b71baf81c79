"""GRPO figures (deck: "GRPO objective", "GRPO vs PPO"): training curves, a group's completions coloured by
advantage, token-level ratio/KL heat, the advantage calculator and the clipped surrogate min(ρÂ, clip(ρ)Â).
One function per view; the records come from ``toolkit.grpo.trace`` (GrpoGroup, GrpoCompletion)."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.grpo.maths import clipped_surrogate
from toolkit.grpo.trace import GrpoCompletion, GrpoGroup


def curves(metrics: dict[str, list[float]], dark: bool = False, at: int | None = None) -> go.Figure:
    """Reward mean ± std band, KL, clip fractions and completion length per step (TRL metric names)."""
    pal = style.palette(dark)
    n = len(metrics.get("reward", []))
    x = list(range(n))
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "reward (mean ± std)",
            "KL to reference (k3)",
            "clipped tokens (fraction)",
            "completion length (tokens)",
        ),
        vertical_spacing=0.18,
        horizontal_spacing=0.1,
    )
    if n:
        r, s = np.array(metrics["reward"]), np.array(metrics["reward_std"])
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=list(r + s) + list((r - s)[::-1]),
                fill="toself",
                line=dict(width=0),
                fillcolor="rgba(86,180,233,0.25)",
                hoverinfo="skip",
                showlegend=False,
            ),
            1,
            1,
        )
        fig.add_trace(go.Scatter(x=x, y=r, name="reward", mode="lines+markers", line=dict(color=pal[4], width=3)), 1, 1)
        fig.add_trace(
            go.Scatter(x=x, y=metrics["kl"], name="KL", mode="lines+markers", line=dict(color=pal[5], width=3)), 1, 2
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=metrics["clip_ratio/low_mean"],
                name="clipped low (ρ < 1−ε, Â < 0)",
                mode="lines+markers",
                line=dict(color=pal[0], width=3),
            ),
            2,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=metrics["clip_ratio/high_mean"],
                name="clipped high (ρ > 1+ε, Â > 0)",
                mode="lines+markers",
                line=dict(color=pal[2], width=3, dash="dash"),
            ),
            2,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=metrics["completions/mean_length"],
                name="length",
                mode="lines+markers",
                line=dict(color=pal[6], width=3),
            ),
            2,
            2,
        )
        if at is not None:
            for row in (1, 2):
                for col in (1, 2):
                    fig.add_vline(x=at, line=dict(color="gray", dash="dot"), row=row, col=col)
    fig.update_xaxes(title="step", row=2)
    fig.update_layout(legend=dict(orientation="h", y=-0.18))
    style.apply(fig, dark, height=620)
    return fig.update_layout(margin=dict(t=50))  # room for the subplot titles under the plot's toolbar


def _advantage_colour(a: float, scale: float) -> str:
    t = 0.5 + 0.5 * max(-1.0, min(1.0, a / scale)) if scale > 0 else 0.5
    rgb = sample_colorscale(style.DIVERGING, [t])[0]  # "rgb(r, g, b)"
    return rgb.replace("rgb(", "rgba(").replace(")", ", 0.45)")  # a tint: the text stays readable, light or dark


def group_table(group: GrpoGroup, dark: bool = False) -> str:
    """HTML table of one group's completions, best advantage first, each row coloured by its advantage
    (blue > 0 > red); ``#`` is the completion's number in the group. Large type: it is a demo's main view."""
    comps = group.completions
    scale = max([abs(c.advantage) for c in comps] + [1e-9])
    names = list(comps[0].rewards) if comps else []
    head = "".join(
        f'<th style="text-align:left;padding:2px 8px">{html.escape(n)}</th>'
        for n in ["#", "completion", *names, "reward", "Â"]
    )
    rows = []
    order = sorted(range(len(comps)), key=lambda i: -comps[i].advantage)  # stable: ties keep the sample order
    for i in order:
        c = comps[i]
        bg = _advantage_colour(c.advantage, scale)
        cells = [str(i), html.escape(c.text).replace("\n", "⏎")]
        cells += [f"{c.rewards[n]:g}" for n in names] + [f"{c.reward:g}", f"<b>{c.advantage:+.2f}</b>"]
        rows.append(
            f'<tr style="background:{bg}">' + "".join(f'<td style="padding:2px 8px">{x}</td>' for x in cells) + "</tr>"
        )
    note = " · all rewards equal: every Â = 0, no signal from this group" if group.zero_std else ""
    caption = (
        f'<p style="font-size:20px;margin:0 0 6px"><b>{html.escape(group.prompt)}</b> '
        f"→ {html.escape(str(group.answer))} · mean {group.mean:.2f} · std {group.std:.2f}{note}</p>"
    )
    table = (
        '<table style="border-collapse:collapse;width:100%;font-size:20px;line-height:1.25">'
        f"<tr>{head}</tr>{''.join(rows)}</table>"
    )
    return f'<div data-lecture-view="group" style="padding:2px 6px">{caption}{table}</div>'


def token_heat(comp: GrpoCompletion, eps_low: float = 0.2, eps_high: float = 0.2, dark: bool = False) -> go.Figure:
    """Per-token ratio ρ (diverging around 1, ring where clipped) and k3 KL (sequential) on one completion."""
    if not comp.token_ids:  # a run recorded from TRL's logs: text, rewards and advantages, no per-token record
        fig = go.Figure()
        fig.add_annotation(
            text=f"No per-token record in this trace (Â = {comp.advantage:+.2f}):<br>{html.escape(comp.text[:80])}",
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            showarrow=False,
            font=dict(size=style.FONT_SIZE + 2),
        )
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return style.apply(fig, dark, title="token by token", height=430)
    toks = [t.replace("\n", "⏎") or "∅" for t in comp.tokens]
    x = [f"{i}:{t}" for i, t in enumerate(toks)]
    ratio, kl = np.array(comp.ratio), np.array(comp.kl)  # (token,)
    span = max(float(np.abs(ratio - 1).max(initial=0)), eps_high, eps_low)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(f"ratio ρ = π_θ / π_old (Â = {comp.advantage:+.2f})", "k3 KL to reference"),
    )
    fig.add_trace(
        go.Heatmap(
            z=[ratio],
            x=x,
            y=["ρ"],
            colorscale=style.DIVERGING,
            zmid=1,
            zmin=1 - span,
            zmax=1 + span,
            text=[[f"{v:.3f}" for v in ratio]],
            texttemplate="%{text}",
            colorbar=dict(y=0.8, len=0.45, title="ρ", nticks=3),
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Heatmap(
            z=[kl],
            x=x,
            y=["KL"],
            colorscale=style.SEQUENTIAL,
            zmin=0,
            text=[[f"{v:.3f}" for v in kl]],
            texttemplate="%{text}",
            colorbar=dict(y=0.2, len=0.45, title="KL", nticks=3),
        ),
        2,
        1,
    )
    clipped = [i for i, (lo, hi) in enumerate(zip(comp.clipped_low, comp.clipped_high)) if lo or hi]
    if clipped:
        fig.add_trace(
            go.Scatter(
                x=[x[i] for i in clipped],
                y=["ρ"] * len(clipped),
                mode="markers",
                name="clipped",
                marker=dict(symbol="square-open", size=34, line=dict(width=3, color="black")),
            ),
            1,
            1,
        )
    fig.update_xaxes(tickangle=-45)
    return style.apply(fig, dark, title="token by token: " + html.escape(comp.text[:60]), height=430)


def advantage_bars(rewards: list[float], advantages: dict[str, list[float]], dark: bool = False) -> go.Figure:
    """Advantages of one typed group under each scaling option (group std, batch std, none = Dr. GRPO)."""
    pal = style.palette(dark)
    x = [f"#{i} (r={r:g})" for i, r in enumerate(rewards)]
    fig = go.Figure(
        [
            go.Bar(
                x=x,
                y=adv,
                name=name,
                marker_color=pal[i % len(pal)],
                text=[f"{a:+.2f}" for a in adv],
                textposition="outside",
            )
            for i, (name, adv) in enumerate(advantages.items())
        ]
    )
    fig.add_hline(y=0, line=dict(color="gray"))
    # a label that would have to shrink below the smallest legible size is left out, not shrunk
    fig.update_layout(
        barmode="group", legend=dict(orientation="h", y=-0.25), uniformtext=dict(minsize=style.MIN_FONT, mode="hide")
    )
    fig.update_yaxes(title="advantage Â")
    return style.apply(fig, dark, title="advantage of each completion", height=460)


def surrogate(eps_low: float, eps_high: float, dark: bool = False) -> go.Figure:
    """min(ρÂ, clip(ρ, 1−ε_low, 1+ε_high)Â) against ρ for Â = +1 and Â = −1; flat where the gradient is cut."""
    import torch

    pal = style.palette(dark)
    r = torch.linspace(0.0, 2.0, 401)
    x = r.tolist()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Â = +1 (good answer)", "Â = −1 (bad answer)"))
    for col, a in ((1, 1.0), (2, -1.0)):
        obj = clipped_surrogate(r, torch.tensor(a), eps_low, eps_high)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=(r * a).tolist(),
                name="ρÂ (unclipped)",
                line=dict(color="gray", dash="dot", width=2),
                showlegend=col == 1,
            ),
            1,
            col,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=obj.tolist(),
                name="min(ρÂ, clip(ρ)Â)",
                line=dict(color=pal[4 if a > 0 else 5], width=4),
                showlegend=col == 1,
            ),
            1,
            col,
        )
        fig.add_vrect(x0=1 - eps_low, x1=1 + eps_high, fillcolor="rgba(128,128,128,0.15)", line_width=0, row=1, col=col)
    fig.update_xaxes(title="ratio ρ = π_θ / π_old")
    fig.update_yaxes(title="objective", col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return style.apply(fig, dark, title=f"clipped surrogate, ε_low = {eps_low:g}, ε_high = {eps_high:g}", height=440)


# ---- the demo's views from Python: toolkit.views.show("grpo", view, **preset) ----------------------------------
# The replay views read a recorded run: ``trace`` is a GrpoTrace file (default: the committed run, assets/grpo/),
# e.g. one recorded from TRL with toolkit.grpo.trl. "group" returns HTML (a str), the others plotly figures.

REWARDS = "1, 0, 0, 1, 0.5, 0, 0, 0; 1, 1, 1, 1, 1, 1, 1, 1"  # the advantage calculator's example


def _step(trace, step: int | None):
    from toolkit.grpo import replay

    run = replay.load(trace)
    return run, run.steps[-1 if step is None else step]


def view_group(step: int | None = None, trace: str | None = None, dark: bool = False) -> str:
    """The step's first group, its completions by advantage (HTML). ``step`` None: the last step."""
    return group_table(_step(trace, step)[1].groups[0], dark)


def view_curves(step: int | None = None, trace: str | None = None, dark: bool = False) -> go.Figure:
    run, _ = _step(trace, step)
    return curves(run.metrics, dark, at=len(run.steps) - 1 if step is None else step)


def view_tokens(step: int | None = None, completion: int = 0, trace: str | None = None, dark: bool = False):
    run, s = _step(trace, step)
    return token_heat(s.groups[0].completions[completion], *run.epsilon, dark)


def view_advantages(rewards: str = REWARDS, dark: bool = False) -> go.Figure:
    """Typed rewards ('1, 0, 0.5; 1 1 1': groups split by ';') under each advantage scaling."""
    from toolkit.grpo import maths

    groups = maths.parse_groups(rewards) if isinstance(rewards, str) else rewards
    adv = {maths.SCALING_LABELS[k]: a.flat() for k, a in maths.by_scaling(groups).items()}
    return advantage_bars([v for g in groups for v in g], adv, dark)


def view_surrogate(eps_low: float = 0.2, eps_high: float = 0.2, dark: bool = False) -> go.Figure:
    return surrogate(eps_low, eps_high, dark)


VIEWS = {  # the demo's hero first
    "group": view_group,
    "curves": view_curves,
    "tokens": view_tokens,
    "advantages": view_advantages,
    "surrogate": view_surrogate,
}
