"""KV-cache figures: slide "KV cache: why generation is fast" (time per token with and without the cache; its
memory measured against the formula and against multi-head attention). One function per view."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from toolkit import style
from toolkit.kv_cache.trace import KvCacheTrace


def times(t: KvCacheTrace, dark: bool = False) -> go.Figure:
    """Per-token wall time after the prefill (token 1, the whole prompt, is the same work in both and left out)."""
    pal = style.palette(dark)
    x = np.arange(2, len(t.tokens) + 1)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=1000 * t.seconds_uncached[1:],
            name="no cache: re-run all tokens",
            mode="lines+markers",
            line=dict(color=pal[5], width=3),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=1000 * t.seconds_cached[1:],
            name="KV cache: run the new token only",
            mode="lines+markers",
            line=dict(color=pal[2], width=3),
        )
    )
    unit = "token" if t.n_prompt == 1 else "tokens"
    fig.update_xaxes(title=f"generated token (prompt: {t.n_prompt} {unit})", dtick=max(1, len(x) // 8))
    fig.update_yaxes(title="milliseconds (measured now)", rangemode="tozero")
    total_c, total_u = t.seconds_cached[1:].sum(), t.seconds_uncached[1:].sum()
    ratio = total_u / max(total_c, 1e-9)
    if ratio >= 1.05:
        gain = f"{ratio:.1f}× faster with the cache"
    else:  # a text this short leaves little to recompute: the measurement says so
        gain = f"no faster with the cache ({ratio:.1f}×) on a {t.n_prompt}-token prompt"
    title = f"Time per token: {gain} (prefill {1000 * t.seconds_cached[0]:.0f} ms, not shown)"
    style.apply(fig, dark, title=title, height=460)
    return fig.update_layout(legend=dict(orientation="h", y=1.0, x=0, yanchor="bottom"), margin=dict(t=100))


def memory(t: KvCacheTrace, dark: bool = False) -> go.Figure:
    pal = style.palette(dark)
    d = t.dims
    per_token = t.bytes_per_token  # 2 x layers x kv_heads x head_dim x bytes
    lengths = np.unique(np.geomspace(1, t.max_positions, 200).astype(int))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=lengths, y=lengths * per_token / 2**20, name="formula", mode="lines", line=dict(color=pal[4], width=3)
        )
    )
    mha = per_token * d["heads"] // d["kv_heads"]
    if mha != per_token:
        fig.add_trace(
            go.Scatter(
                x=lengths,
                y=lengths * mha / 2**20,
                name=f"if all {d['heads']} heads had K, V (MHA)",
                mode="lines",
                line=dict(color=pal[6], width=2, dash="dash"),
            )
        )
    fig.add_trace(
        go.Scatter(
            x=t.lengths,
            y=t.measured_bytes / 2**20,
            name="measured in the real cache",
            mode="markers",
            marker=dict(color=pal[0], size=11, symbol="diamond"),
        )
    )
    fig.update_xaxes(title="tokens in the cache", type="log", dtick=1)
    fig.update_yaxes(title="MiB", type="log", dtick=1)
    title = (
        f"2 × {d['layers']} layers × {d['kv_heads']} kv-heads × {d['head_dim']} × length × {t.bytes_per_number} B"
        f" = {per_token / 1024:.0f} KiB per token"
    )
    style.apply(fig, dark, title=title, height=460)
    return fig.update_layout(legend=dict(orientation="h", y=1.0, x=0, yanchor="bottom"), margin=dict(t=100))


# ---- the demo's views from Python: toolkit.views.show("kv_cache", view, **preset) ------------------------------
# Generates with and without the cache on this machine: the timings are measured, not replayed.

# The demo's preset too. Short enough that a student's own question costs under 2 s of a core on a shared 2-core
# server (issue #15); a longer prompt widens the gap.
PROMPT = (
    "The Roman Empire ruled the Mediterranean and much of Europe, Western Asia and North Africa. The western "
    "empire fell in 476 AD; the eastern empire lasted until 1453. The most important thing about the empire was"
)


def _run(prompt: str, steps: int | None, model: str):
    from toolkit.kv_cache.capture import KvCacheConfig, capture

    return capture(model, prompt, KvCacheConfig() if steps is None else KvCacheConfig(steps=steps))


def view_times(prompt: str = PROMPT, steps: int | None = None, model: str = "smollm2-135m", dark: bool = False):
    """Time per generated token with and without the cache (``steps`` None: the slide's preset)."""
    return times(_run(prompt, steps, model), dark)


def view_memory(prompt: str = PROMPT, steps: int | None = None, model: str = "smollm2-135m", dark: bool = False):
    return memory(_run(prompt, steps, model), dark)


VIEWS = {"times": view_times, "memory": view_memory}  # the demo's hero first
