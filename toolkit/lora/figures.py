"""LoRA and QLoRA figures: slides "LoRA" (trainable parameters by rank, loss per step, singular values of ΔW)
and "QLoRA" (the quantisation error histogram). One function per view."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from toolkit import style
from toolkit.lora.trace import LoraTrace, QuantTrace


def parameters(rows: list[dict], dark: bool = False, r: int | None = None) -> go.Figure:
    """rows: {"r", "trainable", "frozen"} per rank; bars of trainable parameters with % of the total, the bar of
    rank ``r`` (the one being trained) highlighted."""
    pal = style.palette(dark)
    pct = [100 * x["trainable"] / (x["trainable"] + x["frozen"]) for x in rows]
    fig = go.Figure(
        go.Bar(
            x=[f"r={x['r']}" for x in rows],
            y=[x["trainable"] / 1e6 for x in rows],
            marker_color=[pal[4] if x["r"] == r else pal[0] for x in rows],
            text=[f"{x['trainable'] / 1e6:.2f} M<br>{p:.2f}%" for x, p in zip(rows, pct)],
            textposition="outside",
            cliponaxis=False,
        )
    )
    fig.update_yaxes(title="trainable (millions)", range=[0, max(x["trainable"] for x in rows) / 1e6 * 1.3])
    fig.update_xaxes(title="LoRA rank r")
    fig.update_layout(uniformtext=dict(minsize=style.MIN_FONT, mode="show"))
    total = (rows[0]["trainable"] + rows[0]["frozen"]) / 1e6
    return style.apply(
        fig,
        dark,
        title=f"LoRA trainable parameters (frozen model: {rows[0]['frozen'] / 1e6:.1f} M; {total:.0f} M in all)",
        height=460,
    )


def waiting(message: str, dark: bool = False) -> go.Figure:
    """An empty figure that says what to press: a view whose computation waits for its button."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=22))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style.apply(fig, dark)


def losses(t: LoraTrace, dark: bool = False) -> go.Figure:
    """The training loss before each step and after the last."""
    fig = go.Figure(
        go.Scatter(
            x=list(range(len(t.losses))),
            y=t.losses,
            mode="lines+markers+text",
            text=[f"{v:.2f}" for v in t.losses],
            textposition="top center",
            cliponaxis=False,
            line=dict(color=style.palette(dark)[5], width=3),
            marker=dict(size=10),
        )
    )
    fig.update_xaxes(title="optimizer step", dtick=1)
    fig.update_yaxes(title="loss on the answer tokens")
    return style.apply(
        fig, dark, title=f"LoRA r={t.r}, α={t.alpha:g} on {', '.join(t.targets)}: {t.seconds:.1f} s", height=420
    )


def spectra(t: LoraTrace, dark: bool = False) -> go.Figure:
    """Singular values on a log axis: the delta's fall off a cliff after r, the full weight's do not."""
    pal = style.palette(dark)
    k = min(len(t.sv_weight), 4 * max(t.r, 8))
    floor = float(t.sv_weight.max()) * 1e-9
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=np.arange(1, k + 1), y=t.sv_weight[:k], name="frozen W", mode="lines+markers", marker_color=pal[4])
    )
    fig.add_trace(
        go.Scatter(
            x=np.arange(1, k + 1),
            y=np.maximum(t.sv_delta[:k], floor),
            name="learnt ΔW = (α/r)·BA",
            mode="lines+markers",
            marker_color=pal[5],
        )
    )
    fig.add_vline(x=t.r + 0.5, line_dash="dash", annotation_text=f"r = {t.r}")
    fig.update_yaxes(type="log", title="singular value")
    fig.update_xaxes(title="index")
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0))
    return style.apply(fig, dark, title=f"Spectrum of {t.module}: ΔW has rank {t.rank} ≤ r", height=460)


def errors(q: QuantTrace, dark: bool = False) -> go.Figure:
    """Histogram of ŵ − w (log counts) with the storage and the relative error in the title."""
    centres = (q.edges[:-1] + q.edges[1:]) / 2
    fig = go.Figure(go.Bar(x=centres, y=q.counts, marker_color=style.palette(dark)[2]))
    fig.update_xaxes(title="ŵ − w (dequantised minus original)")
    fig.update_yaxes(title="weights", type="log")
    mb = q.bytes / 2**20
    return style.apply(
        fig,
        dark,
        title=f"{q.scheme}: {mb:.2f} MiB vs {q.fp32_bytes / 2**20:.2f} MiB in fp32, "
        f"relative error {100 * q.rel_error:.1f}%",
        height=440,
    )


# ---- the demo's views from Python: toolkit.views.show("lora", view, **preset) ----------------------------------
# "loss" and "spectrum" train (``steps`` real AdamW steps on the bundled example: a few seconds each).

TARGETS = "q_proj,v_proj"


def view_parameters(targets: str = TARGETS, r: int = 8, model: str = "smollm2-135m", dark: bool = False):
    """Trainable parameters at each rank (peft's count), rank ``r`` highlighted."""
    from toolkit.lora.capture import RANKS, LoraConfig, counts

    cfg = LoraConfig(targets=targets, r=r)
    return parameters(counts(model, cfg, ranks=tuple(sorted(set(RANKS) | {cfg.r}))), dark, r=cfg.r)


def view_quant(
    module: str = "model.layers.0.self_attn.q_proj",
    scheme: str = "nf4",
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    from toolkit.lora.capture import quant_trace

    return errors(quant_trace(model, module, scheme=scheme), dark)


def _tuned(r: int, alpha: float, targets: str, steps: int, layer: int, model: str):
    from toolkit.lora.capture import EXAMPLE, finetune

    return finetune(model, EXAMPLE, r=r, alpha=alpha, targets=targets, steps=steps, layer=layer)


def view_loss(
    r: int = 8,
    alpha: float = 16.0,
    targets: str = TARGETS,
    steps: int = 3,
    layer: int = 0,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    return losses(_tuned(r, alpha, targets, steps, layer, model), dark)


def view_spectrum(
    r: int = 8,
    alpha: float = 16.0,
    targets: str = TARGETS,
    steps: int = 3,
    layer: int = 0,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    return spectra(_tuned(r, alpha, targets, steps, layer, model), dark)


VIEWS = {"parameters": view_parameters, "quant": view_quant, "loss": view_loss, "spectrum": view_spectrum}
