"""MoE views, one function per view (trace -> plotly Figure; the two token views -> HTML, text that reads and wraps
as text). Slides: "a router picks k experts per token", "load balancing", "experts specialise", "shared experts",
"total vs active parameters", "the router learning" (replay). Colours: Okabe-Ito per expert (colour-blind safe),
Viridis scales.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.moe import corpus
from toolkit.moe.runs import snapshot
from toolkit.moe.trace import MoeTrace


def expert_colors(n: int, dark: bool = False) -> list[str]:
    """Okabe-Ito for up to 8 experts (its black/white swapped for grey so dark text stays readable on it)."""
    base = style.palette(dark)[:-1] + ["#AAAAAA"]
    if n <= len(base):
        return base[:n]
    import plotly.colors as pc

    return pc.sample_colorscale("Cividis", [0.35 + 0.65 * i / max(n - 1, 1) for i in range(n)])  # light half only


def ink(color: str) -> str:
    """Black or white text, whichever reads better on ``color`` ("#RRGGBB" or "rgb(r, g, b)"): WCAG luminance."""
    if color.startswith("#"):
        rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    else:
        rgb = [float(v) for v in color[color.index("(") + 1 : color.index(")")].split(",")[:3]]
    lin = [(c / 255 / 12.92) if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "#000" if luminance > 0.18 else "#FFF"  # 0.18: equal contrast with black and with white


def _shown(t: str) -> str:
    return {"\n": "⏎", " ": "·", "\t": "⇥"}.get(t, t)


def _token_html(tokens: list[str], top1: np.ndarray, hover: list[str], n_experts: int, title: str, dark: bool) -> str:
    """The text as it reads, each token on a background of its top-1 expert's colour (as in the Mixtral paper),
    with a legend; hovering a token shows `hover` (a tooltip). HTML, so it wraps and stays sharp on a projector."""
    colors = expert_colors(n_experts, dark)
    legend = " ".join(
        f'<span style="background:{colors[x]};color:{ink(colors[x])};padding:2px 10px;border-radius:4px">'
        f"expert {x}</span>"
        for x in range(n_experts)
    )
    spans = []
    for t, e, h in zip(tokens, top1, hover):
        shown, bg = {"\n": "⏎\n", "\t": "⇥"}.get(t, t), colors[int(e)]
        spans.append(
            f'<span style="background:{bg};color:{ink(bg)}" title="{html.escape(h, quote=True)}">'
            f"{html.escape(shown)}</span>"
        )
    size = 32 if len(tokens) <= 140 else 26 if len(tokens) <= 200 else 22  # as large as the frame holds
    return (
        '<div class="moe-tokens" data-lecture-view="tokens" style="padding:2px 8px">'
        f'<p style="font-size:22px;margin:2px 0 6px"><b>{html.escape(title)}</b></p>'
        f'<p style="font-size:20px;margin:4px 0 10px;line-height:1.9">{legend}</p>'
        f'<div style="font-family:ui-monospace,Menlo,Consolas,monospace;font-size:{size}px;line-height:1.6;'
        f'white-space:pre-wrap;overflow-wrap:anywhere;color:#000">{"".join(spans)}</div></div>'
    )


def token_experts(trace: MoeTrace, layer: int, dark: bool = False) -> str:
    """HTML: the text, each token coloured by its top-1 expert; hover: top-k experts and gate weights."""
    e, g = trace.experts[layer], trace.gates[layer]  # (token, k)
    hover = [
        "\n".join([f"token {i}: {t!r}"] + [f"expert {e[i, j]}: gate {g[i, j]:.2f}" for j in range(trace.top_k)])
        for i, t in enumerate(trace.tokens)
    ]
    title = f"Top-1 expert per token, layer {layer} (hover a token: its top-{trace.top_k} experts and gates)"
    return _token_html(trace.tokens, e[:, 0], hover, trace.n_experts, title, dark)


def replay_tokens(rep: dict, step: int, layer: int, dark: bool = False) -> str:
    """HTML: the replay's probe text coloured by top-1 expert as the router saw it at the snapshot nearest `step`."""
    snap = snapshot(rep, step)
    tokens = corpus.token_strings(corpus.encode(rep["probe"]))[: len(snap["probe_top1"][layer])]
    top1 = np.asarray(snap["probe_top1"][layer])
    hover = [f"token {i}: {t!r}\ntop-1 expert {top1[i]}" for i, t in enumerate(tokens)]
    title = f"{rep.get('label') or 'run'}: top-1 expert at step {snap['step']}, layer {layer}"
    return _token_html(tokens, top1, hover, rep["config"]["n_experts"], title, dark)


def router_heatmap(trace: MoeTrace, layer: int, dark: bool = False) -> go.Figure:
    """Router probabilities (experts x tokens) with the chosen experts marked."""
    p = trace.probs[layer].T  # (expert, token)
    x = list(range(len(trace.tokens)))
    fig = go.Figure(
        go.Heatmap(
            z=p,
            x=x,
            y=list(range(trace.n_experts)),
            colorscale=style.SEQUENTIAL,
            zmin=0,
            colorbar=dict(title="p"),
            customdata=np.array([[_shown(t) for t in trace.tokens]] * trace.n_experts),
            hovertemplate="token %{x} %{customdata}<br>expert %{y}: p=%{z:.3f}<extra></extra>",
        )
    )
    tok, slot = np.nonzero(np.ones_like(trace.experts[layer]))
    fig.add_trace(
        go.Scatter(
            x=tok,
            y=trace.experts[layer][tok, slot],
            mode="markers",
            name="chosen",
            marker=dict(symbol="circle", size=6, color="white", line=dict(width=1, color="black")),
            hoverinfo="skip",
        )
    )
    fig.update_xaxes(
        title="token",
        tickvals=x if len(x) <= 40 else None,
        ticktext=[_shown(t) for t in trace.tokens] if len(x) <= 40 else None,
    )
    fig.update_yaxes(title="expert", dtick=1)
    return style.apply(fig, dark, f"Router probabilities, layer {layer} ({trace.score})", height=420)


def expert_load(trace: MoeTrace, layer: int, dark: bool = False) -> go.Figure:
    """f_i (share of routed slots) and P_i (mean probability) per expert against the uniform line 1/N."""
    n = trace.n_experts
    fig = go.Figure()
    fig.add_bar(
        x=list(range(n)), y=trace.expert_load[layer], name="f_i / k (load)", marker_color=expert_colors(n, dark)
    )
    fig.add_scatter(
        x=list(range(n)),
        y=trace.importance[layer],
        name="P_i (mean prob)",
        mode="markers",
        marker=dict(symbol="diamond", size=14, color=style.palette(dark)[-1]),
    )
    fig.add_hline(y=1 / n, line_dash="dash", annotation_text=f"uniform 1/{n}")
    fig.update_xaxes(title="expert", dtick=1)
    fig.update_yaxes(title="share", rangemode="tozero")
    loss = float(trace.balance_loss[layer])
    return style.apply(
        fig, dark, f"Layer {layer} load: L_bal = N·Σ f_i P_i = {loss:.3f} (balanced = {trace.top_k})", height=420
    )


def load_heatmap(trace: MoeTrace, dark: bool = False) -> go.Figure:
    """Load share of each expert in each layer."""
    fig = go.Figure(
        go.Heatmap(
            z=trace.expert_load,
            colorscale=style.SEQUENTIAL,
            zmin=0,
            x=list(range(trace.n_experts)),
            y=list(range(trace.n_layers)),
            colorbar=dict(title="load"),
            hovertemplate="layer %{y}, expert %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="expert", dtick=1)
    fig.update_yaxes(title="layer", dtick=1, autorange="reversed")
    return style.apply(fig, dark, f"Expert load per layer (uniform = {1 / trace.n_experts:.3f})", height=380)


def coactivation(trace: MoeTrace, layer_a: int, layer_b: int, dark: bool = False) -> go.Figure:
    """Share of tokens whose top-1 expert is i in layer_a and j in layer_b."""
    n = trace.n_experts
    m = np.zeros((n, n))
    np.add.at(m, (trace.experts[layer_a, :, 0], trace.experts[layer_b, :, 0]), 1.0)
    m /= max(m.sum(), 1.0)
    fig = go.Figure(
        go.Heatmap(
            z=m,
            colorscale=style.SEQUENTIAL,
            zmin=0,
            colorbar=dict(title="share"),
            hovertemplate=f"L{layer_a} expert %{{y}} → L{layer_b} expert %{{x}}: %{{z:.3f}}<extra></extra>",
        )
    )
    fig.update_xaxes(title=f"top-1 expert in layer {layer_b}", dtick=1)
    fig.update_yaxes(title=f"top-1 expert in layer {layer_a}", dtick=1, autorange="reversed")
    return style.apply(fig, dark, f"Co-activation: layer {layer_a} → layer {layer_b}", height=420)


def shared_vs_routed(trace: MoeTrace, dark: bool = False) -> go.Figure:
    """Mean output norm of the shared expert and of the routed experts, per layer."""
    layers = list(range(trace.n_layers))
    fig = go.Figure()
    if trace.routed_norm is None:  # a transformers model: its trace holds the router's decisions, not the outputs
        fig.add_annotation(
            text=f"{style.plain(trace.meta.get('model', 'This model'))}: expert outputs are not recorded<br>"
            "(transformers MoE models: the router's decisions only)",
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            showarrow=False,
            font=dict(size=style.FONT_SIZE + 2),
        )
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return style.apply(fig, dark, "Shared vs routed contribution to the layer output", height=400)
    fig.add_bar(x=layers, y=trace.routed_norm.mean(1), name="routed experts (gated sum)")
    if trace.shared_norm is not None:
        fig.add_bar(x=layers, y=trace.shared_norm.mean(1), name="shared expert (every token)")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="layer", dtick=1)
    fig.update_yaxes(title="mean |output|")
    return style.apply(fig, dark, "Shared vs routed contribution to the layer output", height=400)


def parameters(counts, dark: bool = False) -> go.Figure:
    """Total vs active parameters for each ParamCount (one panel each: scales differ by 10^5)."""
    fig = make_subplots(rows=1, cols=len(counts), subplot_titles=[c.name for c in counts])
    pal = style.palette(dark)
    for i, c in enumerate(counts, start=1):
        scale, unit = (1e9, "B") if c.total > 1e9 else (1e6, "M") if c.total > 1e6 else (1e3, "k")
        vals = [c.total / scale, c.active / scale]
        fig.add_bar(
            x=["total", "active per token"],
            y=vals,
            marker_color=[pal[4], pal[0]],
            showlegend=False,
            text=[f"{v:.1f}{unit}" for v in vals],
            textposition="outside",
            row=1,
            col=i,
        )
        fig.update_yaxes(title=f"parameters ({unit})", range=[0, vals[0] * 1.2], row=1, col=i)
    return style.apply(fig, dark, "Total vs active parameters (active = shared + k/N of routed experts)", height=420)


def _load_summary(snap: dict) -> tuple[float, float]:
    """Mean over layers of the largest expert share, and of the balance loss, at one snapshot."""
    return float(np.mean([max(x) for x in snap["load"]])), float(np.mean(snap["balance_loss"]))


def replay(replays: dict[str, dict], step: int, layer: int = 0, dark: bool = False) -> go.Figure:
    """Training replay: balance loss and largest expert share over steps for each run; load bars at `step`.
    The balance loss is measured in every run, also where it was not trained on."""
    fig = make_subplots(
        rows=1,
        cols=3,
        column_widths=[0.33, 0.33, 0.34],
        subplot_titles=[
            "balance loss (mean over layers)",
            "largest expert share",
            f"layer {layer} load at step {step}",
        ],
    )
    pal = style.palette(dark)
    for i, (name, rep) in enumerate(replays.items()):
        snaps = rep["snapshots"]
        steps = [s["step"] for s in snaps]
        maxl, bal = zip(*(_load_summary(s) for s in snaps))
        color = pal[i * 5 % len(pal)]
        fig.add_scatter(x=steps, y=bal, name=name, line=dict(color=color), row=1, col=1)
        fig.add_scatter(x=steps, y=maxl, name=name, line=dict(color=color), showlegend=False, row=1, col=2)
        load = snapshot(rep, step)["load"][layer]
        fig.add_bar(x=list(range(len(load))), y=load, name=name, marker_color=color, showlegend=False, row=1, col=3)
        n, k = len(load), rep["config"]["top_k"]
    for col in (1, 2):
        fig.add_vline(x=step, line_dash="dot", row=1, col=col)
    fig.add_hline(
        y=k, line_dash="dash", row=1, col=1, annotation_text=f"balanced = k = {k}", annotation_position="top left"
    )
    fig.add_hline(y=1 / n, line_dash="dash", row=1, col=2, annotation_text="uniform")
    fig.add_hline(y=1 / n, line_dash="dash", row=1, col=3)
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="step", row=1, col=1)
    fig.update_xaxes(title="step", row=1, col=2)
    fig.update_xaxes(title="expert", dtick=1, row=1, col=3)
    return style.apply(fig, dark, "The router learning: balance loss on, off, or the aux-loss-free bias", height=460)


# ---- the demo's views from Python: toolkit.views.show("moe", view, **preset) -----------------------------------
# ``run``: a committed run ("balanced", "no_balance", "aux_free") or any transformers MoE model (an embedded name,
# a local folder, a Hugging Face id): models.load(folder) then toolkit.moe.capture's transformers path. "tokens"
# returns HTML (a str), every other view a plotly figure. ``k``: None routes with the model's own top-k.

TEXT = (
    "def mean(xs):\n    return sum(xs) / len(xs)\n\n"
    "The mean of 3, 5 and 10 is 6. A router sends every token to two of eight experts."
)


def _routed(text: str, run: str, k: int | None):
    from toolkit.moe.capture import capture

    return capture(run, text, top_k=k)


def view_tokens(text: str = TEXT, run: str = "balanced", layer: int = 0, k: int | None = None, dark: bool = False):
    """Each token coloured by its top-1 expert (HTML)."""
    return token_experts(_routed(text, run, k), layer, dark)


def view_router(text: str = TEXT, run: str = "balanced", layer: int = 0, k: int | None = None, dark: bool = False):
    return router_heatmap(_routed(text, run, k), layer, dark)


def view_load(text: str = TEXT, run: str = "balanced", layer: int = 0, k: int | None = None, dark: bool = False):
    return expert_load(_routed(text, run, k), layer, dark)


def view_layers(text: str = TEXT, run: str = "balanced", k: int | None = None, dark: bool = False):
    return load_heatmap(_routed(text, run, k), dark)


def view_coactivation(
    text: str = TEXT, run: str = "balanced", layer: int = 0, k: int | None = None, dark: bool = False
) -> go.Figure:
    """Layer → the next one (the last layer with itself)."""
    trace = _routed(text, run, k)
    return coactivation(trace, layer, min(layer + 1, trace.probs.shape[0] - 1), dark)


def view_shared(text: str = TEXT, run: str = "balanced", k: int | None = None, dark: bool = False):
    return shared_vs_routed(_routed(text, run, k), dark)


def view_replay(step: int | None = None, layer: int = 0, dark: bool = False) -> go.Figure:
    """Every committed run's training at ``step`` (None: the last)."""
    from toolkit.moe import runs

    reps = {name: runs.replay(name) for name in runs.RUNS}
    last = int(next(iter(reps.values()))["config"]["steps"])
    return replay(reps, last if step is None else step, layer, dark)


def view_parameters(dark: bool = False) -> go.Figure:
    """Total vs active parameters of the committed model and of Mixtral 8x7B (counted from its config)."""
    from toolkit.moe import params, runs

    counts = [
        params.count_ours(runs.model("balanced").cfg),
        params.count_hf(params.mixtral_8x7b_config(), "Mixtral 8x7B"),
    ]
    return parameters(counts, dark)


VIEWS = {  # the demo's hero first
    "tokens": view_tokens,
    "router": view_router,
    "load": view_load,
    "layers": view_layers,
    "coactivation": view_coactivation,
    "shared": view_shared,
    "replay": view_replay,
    "parameters": view_parameters,
}
