"""Quantisation figures: slides "Quantisation: fewer bits per weight" (trade-off, error by layer, histograms,
table) and "Outliers: why W8A8 is hard" (channel ranges before and after SmoothQuant). One function per view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style
from toolkit.quantization.maths import SCHEMES
from toolkit.quantization.trace import ActivationTrace, QuantizationTrace

_ASSETS = Path(__file__).resolve().parents[2] / "assets"

MB = 1e6
FAMILY_COLOUR = {"fp32": 7, "bf16": 6, "fp16": 6, "int8": 4, "int4": 0, "int4zp": 1, "nf4": 2, "q4_1": 5, "gptq": 3}


def _colour(name: str, dark: bool) -> str:
    return style.palette(dark)[FAMILY_COLOUR.get(SCHEMES[name].family if name in SCHEMES else "", 7)]


def _short(name: str) -> str:
    return name.replace("int4zp-", "zp-").replace("int4-", "int4 ").replace("gptq-", "GPTQ ")


def _labels(t: QuantizationTrace, selected: str | None) -> dict[str, str]:
    """Point labels a room can read: the 8- to 32-bit schemes and any scheme as good as fp32 (one label where two
    share a point), and the selected scheme; the crowded 4-bit points are told apart by colour (legend) and hover."""
    out, seen = {}, {}
    base = t.ppl[t.row("fp32")] if "fp32" in t.schemes else None
    for i, n in enumerate(t.schemes):
        key = (round(float(t.linear_bytes[i]) / MB), round(float(t.ppl[i]), 1))
        lossless = base is not None and abs(t.ppl[i] - base) <= 0.01 * base  # on the fp32 line: out of the crowd
        wide = SCHEMES[n].bits >= 8 or lossless
        if wide and key in seen:
            out[seen[key]] += f" = {_short(n)}"
            out[n] = ""
            continue
        out[n] = _short(n) if wide or n == selected else ""
        if wide:
            seen[key] = n
    if selected in out and not out[selected]:
        out[selected] = _short(selected)
    return out


def tradeoff(t: QuantizationTrace, dark: bool = False, selected: str | None = None) -> go.Figure:
    """Perplexity of the held-out text against the megabytes of the linear weights, one marker per scheme."""
    fig = go.Figure()
    base = t.ppl[t.row("fp32")] if "fp32" in t.schemes else None
    labels = _labels(t, selected)
    for family in dict.fromkeys(SCHEMES[s].family for s in t.schemes):
        rows = [i for i, s in enumerate(t.schemes) if SCHEMES[s].family == family]
        names = [t.schemes[i] for i in rows]
        fig.add_trace(
            go.Scatter(
                x=[t.linear_bytes[i] / MB for i in rows],
                y=[t.ppl[i] for i in rows],
                mode="markers+text" if len(rows) < 3 else "lines+markers+text",
                text=[labels[n] for n in names],
                textposition=["top center" if k % 2 == 0 else "bottom center" for k in range(len(rows))],
                textfont=dict(size=style.FONT_SIZE - 1),
                marker=dict(
                    size=[22 if n == selected else 14 for n in names],
                    color=_colour(names[0], dark),
                    line=dict(width=[3 if n == selected else 0 for n in names], color="black" if not dark else "white"),
                ),
                line=dict(color=_colour(names[0], dark), width=2),
                cliponaxis=False,
                name=family,
                customdata=[[SCHEMES[n].label, SCHEMES[n].bits] for n in names],
                hovertemplate="%{customdata[0]}: %{x:.0f} MB, %{customdata[1]:.2f} bits/weight, "
                "perplexity %{y:.3f}<extra></extra>",
            )
        )
    if base is not None:
        fig.add_hline(y=base, line_dash="dash", line_color="gray")
    fig.update_xaxes(title="linear weights (MB, log scale)", type="log")
    fig.update_yaxes(title="perplexity (lower is better)")
    fig.update_layout(legend=dict(orientation="h", y=-0.22, font=dict(size=style.MIN_FONT)), showlegend=True)
    title = f"{t.meta.get('model', '')}: every linear layer quantised, {t.eval_tokens:,} held-out tokens"
    return style.apply(fig, dark, title=style.plain(title), height=520)


def layer_errors(t: QuantizationTrace, scheme: str, dark: bool = False) -> go.Figure:
    """Relative error ||W_hat - W|| / ||W|| of every linear weight: layers down, modules across."""
    err = 100 * t.layer_error[t.row(scheme)]  # (layer, module)
    fig = go.Figure(
        go.Heatmap(
            z=err,
            x=[m.replace("_proj", "") for m in t.modules],
            y=np.arange(err.shape[0]),
            colorscale=style.SEQUENTIAL,
            zmin=0,
            colorbar=dict(
                title=dict(text="error %", font=dict(size=style.MIN_FONT)), tickfont=dict(size=style.MIN_FONT)
            ),
            hovertemplate="layer %{y} %{x}: %{z:.2f}%<extra></extra>",
        )
    )
    fig.update_yaxes(title="layer", autorange="reversed", dtick=5)
    fig.update_xaxes(title="linear layer")
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    title = (
        f"{SCHEMES[scheme].label}: weight error by layer (mean {err.mean():.2f}%, "
        f"worst {err.max():.2f}% at layer {worst[0]} {t.modules[worst[1]]})"
    )
    return style.apply(fig, dark, title=title, height=560)


def histogram(t: QuantizationTrace, scheme: str, dark: bool = False) -> go.Figure:
    """The values of one weight before (fp32) and after the scheme, on a log count axis."""
    centres = (t.hist_edges[:-1] + t.hist_edges[1:]) / 2
    pal = style.palette(dark)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=centres, y=t.hist_before, name="fp32", line=dict(shape="hvh", width=4, color=pal[7]), mode="lines")
    )
    fig.add_trace(
        go.Scatter(
            x=centres,
            y=t.hist_after[t.row(scheme)],
            name=SCHEMES[scheme].label,
            line=dict(shape="hvh", width=3, color=_colour(scheme, dark), dash="dot"),
            mode="lines",
        )
    )
    fig.update_yaxes(type="log", title="weights per bin")
    fig.update_xaxes(title="weight value")
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    return style.apply(fig, dark, title=f"{t.hist_module}: values before and after", height=520)


def table(t: QuantizationTrace, dark: bool = False) -> go.Figure:
    """One row per scheme: bits per weight, MB of the linear weights, perplexity and its change from fp32."""
    base = t.ppl[t.row("fp32")] if "fp32" in t.schemes else np.nan
    rows = np.argsort(-t.linear_bytes, kind="stable")
    cells = [
        [SCHEMES[t.schemes[i]].label for i in rows],
        [f"{8 * t.linear_bytes[i] / _weights(t):.2f}" for i in rows],
        [f"{t.linear_bytes[i] / MB:.0f}" for i in rows],
        [f"{t.ppl[i]:.3f}" for i in rows],
        [f"{100 * (t.ppl[i] / base - 1):+.2f}%" for i in rows],
    ]
    ink = "#eee" if dark else "#111"
    fig = go.Figure(
        go.Table(
            header=dict(
                values=["scheme", "bits / weight", "MB", "perplexity", "vs fp32"],
                font=dict(size=style.FONT_SIZE, color=ink),
                fill_color="rgba(128,128,128,0.25)",
                align="left",
            ),
            cells=dict(
                values=cells,
                font=dict(size=style.MIN_FONT + 1, color=ink),
                height=30,
                align="left",
                fill_color="rgba(0,0,0,0)",
            ),
            columnwidth=[3.2, 1.2, 0.9, 1.2, 1.1],
        )
    )
    return style.apply(fig, dark, title="Linear weights of every layer, quantised", height=560)


def _weights(t: QuantizationTrace) -> int:
    """Number of linear weights (fp32 bytes / 4)."""
    return int(t.linear_bytes[t.row("fp32")] // 4) if "fp32" in t.schemes else int(t.meta.get("n_linear_weights", 1))


def outliers(a: ActivationTrace, site: str, layer: int, dark: bool = False) -> go.Figure:
    """Per-channel max |X| (top) and max |W| (bottom), before and after SmoothQuant's scaling, in one layer."""
    s = a.sites.index(site)
    x, w, scale = a.x_absmax[s, layer], a.w_absmax[s, layer], a.scales[s, layer]
    ch = np.arange(len(x))
    pal = style.palette(dark)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=["activations: max |X| per channel", "weights: max |W| per input channel"],
    )
    for r, (before, after) in enumerate(((x, x / scale), (w, w * scale)), start=1):
        fig.add_trace(go.Bar(x=ch, y=before, name="before", marker_color=pal[5], showlegend=r == 1), r, 1)
        fig.add_trace(
            go.Bar(
                x=ch,
                y=after,
                name=f"after SmoothQuant (α = {a.alpha:g})",
                marker_color=pal[4],
                showlegend=r == 1,
                opacity=0.8,
            ),
            r,
            1,
        )
        fig.update_yaxes(type="log", dtick=1, row=r, col=1)  # decades only: minor labels are unreadable
    fig.update_xaxes(title="input channel", row=2, col=1)
    fig.update_layout(barmode="overlay", bargap=0, legend=dict(orientation="h", y=-0.2, x=0, yanchor="top"))
    title = (
        f"Layer {layer} {site} input: W8A8 error {100 * a.error[s, layer]:.1f}% → "
        f"{100 * a.error_smooth[s, layer]:.1f}% after smoothing"
    )
    return style.apply(fig, dark, title=title, height=600)


def w8a8_by_layer(a: ActivationTrace, dark: bool = False) -> go.Figure:
    """W8A8 error of every layer's product, before and after SmoothQuant, for each site."""
    pal = style.palette(dark)
    fig = go.Figure()
    layers = np.arange(a.error.shape[1])
    for s, site in enumerate(a.sites):
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=100 * a.error[s],
                name=f"{site}, before",
                mode="lines+markers",
                line=dict(color=pal[5 - 4 * s], width=3),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=100 * a.error_smooth[s],
                name=f"{site}, smoothed",
                mode="lines+markers",
                line=dict(color=pal[5 - 4 * s], width=3, dash="dot"),
            )
        )
    fig.update_yaxes(type="log", title="relative error of X Wᵀ (%)")
    fig.update_xaxes(title="layer")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return style.apply(fig, dark, title=f"W8A8 error by layer, SmoothQuant α = {a.alpha:g}", height=520)


# ---- the demo's views from Python (demos/quantization.py: same names, presets and defaults) ---------------
QUANT_COMMAND = "lecture quantization"


def _schemes():
    from toolkit import views

    return views.recorded(QuantizationTrace, _ASSETS / "quantization" / "schemes.npz", QUANT_COMMAND)


def _recorded_scheme(scheme: str) -> tuple[Any, str]:
    trace = _schemes()
    if scheme not in trace.schemes:
        raise ValueError(
            f"scheme {scheme!r} is not recorded ({', '.join(trace.schemes)}); run it with "
            "toolkit.quantization.capture(model, schemes=(scheme,)) and draw that trace"
        )
    return trace, scheme


def quant_tradeoff(scheme: str = "nf4", dark: bool = False):
    """Perplexity against the linear weights' memory, every recorded scheme (``scheme`` marked)."""
    trace, scheme = _recorded_scheme(scheme)
    return tradeoff(trace, dark, selected=scheme)


def quant_table(dark: bool = False):
    return table(_schemes(), dark)


def quant_layers(scheme: str = "nf4", dark: bool = False):
    return layer_errors(*_recorded_scheme(scheme), dark)


def quant_histogram(scheme: str = "nf4", dark: bool = False):
    return histogram(*_recorded_scheme(scheme), dark)


def quant_outliers(
    layer: int = 3,
    site: str = "attention",
    prompt: str = "",
    alpha: float | None = None,
    model: str = "smollm2-135m",
    dark: bool = False,
):
    """The input channels of one layer's linear (site: attention or mlp), largest first: recorded on the
    held-out text, or captured now on ``prompt`` / with another SmoothQuant ``alpha``."""
    from toolkit import views
    from toolkit.quantization import ActivationConfig, activations, corpus

    acts = views.recorded(ActivationTrace, _ASSETS / "quantization" / "activations.npz", QUANT_COMMAND)
    if prompt.strip() or (alpha is not None and alpha != acts.alpha):
        cfg = ActivationConfig(alpha=acts.alpha if alpha is None else alpha)
        acts = activations(model, prompt if prompt.strip() else corpus.held_out(), cfg)
    n_layers = acts.x_absmax.shape[1]
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} does not exist: choose 0 to {n_layers - 1}")
    return outliers(acts, site, layer, dark)


VIEWS = {  # the notebook API (toolkit.views) and `lecture export`: the demo's views, its hero first
    "tradeoff": quant_tradeoff,
    "table": quant_table,
    "layers": quant_layers,
    "histogram": quant_histogram,
    "outliers": quant_outliers,
}
