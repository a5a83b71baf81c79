"""RoPE rotations: each q/k dimension pair turns by position × θᵢ, on a real model, with sinusoidal PE beside it."""

from __future__ import annotations

from functools import lru_cache

import gradio as gr
import numpy as np

from demos import ui
from toolkit import models, rope
from toolkit.rope import figures as plots

MAX_POSITION = 1_000_000
MAX_HEAD_DIM = 1024
MAX_THETA = 1e12
MAX_FACTOR = 64.0
MAX_CONTEXT = 10_000_000
GRID = 32  # positions in the relative-position grids
DEFAULT_TEXT = "The cat sat on the mat because the cat was tired after chasing the mouse all day."
EXAMPLE_SEED = 0  # the maths tab rotates fixed random vectors: same picture every time


def _int(value, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]; outside it is a message, not a silent clamp."""
    i = ui.as_int(value, name)
    if not lo <= i <= hi:
        raise ui.UserError(f"{name} must be between {lo:,} and {hi:,}; got {i:,}.")
    return i


def _theta(value) -> float:
    theta = ui.as_float(value, "θ (base)")
    if not 1 < theta <= MAX_THETA:
        raise ui.UserError(
            f"θ (base) must be greater than 1 (and at most {MAX_THETA:.0e}); got {theta:g}. "
            "With θ ≤ 1 the frequencies θ^(−2i/d) stop decreasing."
        )
    return theta


def _head_dim(value) -> int:
    d = _int(value, "head dimension", 2, MAX_HEAD_DIM)
    if d % 2:
        raise ui.UserError(f"head dimension must be even: RoPE rotates pairs of dimensions; got {d}.")
    return d


def _scaling(value) -> str:
    return ui.as_choice((value or "").strip(), "scaling", rope.SCALINGS)


def _factor(value) -> float:
    f = ui.as_float(value, "scaling factor")
    if not 1 <= f <= MAX_FACTOR:
        raise ui.UserError(f"scaling factor must be between 1 and {MAX_FACTOR:g}; got {f:g}.")
    return f


@ui.safe
def explore(theta, head_dim, position, pair, scaling, factor, context, request: gr.Request | None = None):
    """Maths tab: (notes, rotation, angles, relative, decay, extension, sinusoidal) for chosen θ, d, scaling."""
    theta, d, kind, fac = _theta(theta), _head_dim(head_dim), _scaling(scaling), _factor(factor)
    ctx = _int(context, "trained context", 16, MAX_CONTEXT)
    pos = _int(position, "position", 0, MAX_POSITION)
    p = _int(pair, "pair", 0, d // 2 - 1)
    return _maths(theta, d, kind, fac, ctx, pos, p, ui.is_dark(request))


@lru_cache(maxsize=32)  # pure maths of checked values: students who open the same slide share one answer
def _maths(theta: float, d: int, kind: str, fac: float, ctx: int, pos: int, p: int, dark: bool) -> tuple:
    f = rope.scaled_frequencies(theta, d, kind, 1.0 if kind == "default" else fac, ctx)
    rng = np.random.default_rng(EXAMPLE_SEED)
    q, k = rng.standard_normal(d), rng.standard_normal(d)
    pairs = (0, p) if p else (0, d // 2 - 1)
    wl = f.wavelength
    notes = (
        f"θ = {theta:g}, d = {d}: pair 0 turns every {wl[0]:,.1f} positions, pair {d // 2 - 1} every "
        f"{wl[-1]:,.0f}. {int((wl < f.context).sum())} of {d // 2} pairs complete a turn within "
        f"{f.context:,} positions ({kind}{'' if kind == 'default' else f' ×{fac:g}'})."
    )
    return (
        notes,
        plots.rotation(q, f.inv_freq, pos, pairs, None, dark),
        plots.angles(f.inv_freq, min(max(pos + 1, 256), 2048), f.context, dark),
        plots.relative(q, k, f.inv_freq, GRID, dark=dark),
        plots.decay(theta, d, 256, dark),
        plots.extension(theta, d, ctx, fac, dark),
        plots.sinusoidal(128, d, dark=dark),
    )


@lru_cache(maxsize=2)  # a 512-token trace is about 100 MB
def _capture(name: str, text: str) -> rope.RopeTrace:
    loaded = ui.model(name)
    try:
        return rope.capture(loaded, text, max_tokens=rope.RopeConfig.spec("max_tokens").hi)
    except ValueError as err:  # no RoPE in this model, no tokens
        raise ui.UserError(f"{name}: {err}.") from None


@ui.safe
def show_model(model_name, text, token, layer, head, position, pair, request: gr.Request | None = None):
    """Real-model tab: (notes, rotation of the token's query, per-pair norms, relative grid, embedding + PE)."""
    text = ui.as_text(text)
    name = (model_name or "").strip() or models.default("causal")
    trace = _capture(name, text)
    n_layers, n_heads, n_tokens, d = trace.q_pre.shape
    t = _int(token, "token", 0, n_tokens - 1)
    lay = _int(layer, "layer", 0, n_layers - 1)
    hd = _int(head, "head", 0, n_heads - 1)
    context = int(trace.meta.get("context") or MAX_POSITION)
    pos = _int(position, "position", 0, context - 1)
    p = _int(pair, "pair", 0, d // 2 - 1)
    dark = ui.is_dark(request)
    q = trace.query(lay, hd, t)
    k = trace.key(lay, hd, max(t - 1, 0))
    pairs = (0, p) if p else (0, d // 2 - 1)
    word = trace.tokens[t]
    cut = trace.meta.get("n_tokens_in_text", n_tokens) - n_tokens
    notes = (
        "⚠️ " + f"The text has {cut + n_tokens} tokens; only the first {n_tokens} are used. " if cut > 0 else ""
    ) + (
        f"**{name}**: {n_tokens} tokens, {n_layers} layers, {n_heads} query heads sharing "
        f"{trace.k_pre.shape[1]} key/value heads, head dimension {d}, θ = {trace.meta.get('rope_theta'):,.0f}. "
        f"Token {t} = {word!r} (really at position {t}); its layer-{lay} head-{hd} query is drawn rotated to "
        f"position {pos}. The grid pairs that query with the key of token {max(t - 1, 0)}."
    )
    embed = plots.embedding_plus_pe(trace.embed[t], t, word, dark=dark) if trace.embed is not None else None
    return (
        notes,
        plots.rotation(q, trace.inv_freq, pos, pairs, word, dark),
        plots.pair_norms(trace, lay, hd, dark),
        plots.relative(q, k, trace.inv_freq, GRID, dark=dark),
        embed,
    )


def on_load(request: gr.Request):
    """URL presets (?theta=&d=&pos=&pair=&scaling=&factor=&context=&model=&text=&token=&layer=&head=&tab=model)."""
    qp = ui.query(request)
    maths = [
        ui.preset(qp, "theta", 10000.0, float),
        ui.preset(qp, "d", 64, int),
        ui.preset(qp, "pos", 10, int),
        ui.preset(qp, "pair", 8, int),
        ui.preset(qp, "scaling", "default", str, list(rope.SCALINGS)),
        ui.preset(qp, "factor", 4.0, float),
        ui.preset(qp, "context", 8192, int),
    ]
    real = [
        ui.preset(qp, "model", models.default("causal")),
        ui.preset(qp, "text", DEFAULT_TEXT),
        ui.preset(qp, "token", 1, int),
        ui.preset(qp, "layer", 0, int),
        ui.preset(qp, "head", 0, int),
        ui.preset(qp, "pos", 10, int),
        ui.preset(qp, "pair", 8, int),
    ]
    tab = ui.preset(qp, "tab", "maths", str, ["maths", "model"])
    try:
        out_maths = explore(*maths, request)
    except gr.Error as err:
        out_maths = (f"⚠️ {err.message}",) + (None,) * 6
    out_real: tuple = ("Press **Show** to capture q and k from the model.",) + (None,) * 4
    if tab == "model":
        try:
            out_real = show_model(*real, request)
        except gr.Error as err:
            out_real = (f"⚠️ {err.message}",) + (None,) * 4
    updates = [gr.update(value=v) for v in maths + real[:5]]
    return (gr.update(selected=tab), *updates, *out_maths, *out_real)


with gr.Blocks(title="RoPE rotations") as demo:
    ui.header("rope", __doc__)
    with gr.Tabs() as tabs:
        with gr.Tab("Rotation maths", id="maths"):
            with gr.Row():
                theta = gr.Number(10000, label="θ (base)", minimum=1.0001)
                head_dim = gr.Slider(2, 256, 64, step=2, label="head dimension d")
                scaling = gr.Dropdown(list(rope.SCALINGS), value="default", label="scaling type")
                factor = gr.Slider(1, 32, 4, step=0.5, label="scaling factor")
                context = gr.Number(8192, label="trained context", precision=0)
            with gr.Row():
                position = gr.Slider(0, 4096, 10, step=1, label="position")
                pair = gr.Slider(0, 127, 8, step=1, label="pair i (shown beside pair 0)")
            maths_btn = gr.Button("Show", variant="primary")
            maths_notes = gr.Markdown()
            rot_plot = gr.Plot(label="rotation")
            angle_plot = gr.Plot(label="angles and wavelengths")
            rel_plot = gr.Plot(label="relative position")
            ext_plot = gr.Plot(label="context extension")
            with gr.Row():
                decay_plot = gr.Plot(label="long-range decay")
                sin_plot = gr.Plot(label="sinusoidal PE")
        with gr.Tab("Real model", id="model"):
            with gr.Row():
                model = gr.Dropdown(
                    models.choices("causal"), value=models.default("causal"), label="model", allow_custom_value=True
                )
                text = gr.Textbox(DEFAULT_TEXT, label="text", lines=2, scale=3)
            with gr.Row():
                token = gr.Number(1, label="token index", precision=0)
                layer = gr.Number(0, label="layer", precision=0)
                head = gr.Number(0, label="head", precision=0)
                real_pos = gr.Slider(0, 8191, 10, step=1, label="rotate to position")
                real_pair = gr.Slider(0, 127, 8, step=1, label="pair i")
            real_btn = gr.Button("Show", variant="primary")
            real_notes = gr.Markdown()
            real_rot = gr.Plot(label="the token's query, rotated")
            norm_plot = gr.Plot(label="per-pair norms")
            real_rel = gr.Plot(label="relative position, real q and k")
            embed_plot = gr.Plot(label="embedding + position encoding")
    maths_in = [theta, head_dim, position, pair, scaling, factor, context]
    maths_out = [maths_notes, rot_plot, angle_plot, rel_plot, decay_plot, ext_plot, sin_plot]
    real_in = [model, text, token, layer, head, real_pos, real_pair]
    real_out = [real_notes, real_rot, norm_plot, real_rel, embed_plot]
    maths_btn.click(explore, maths_in, maths_out, api_name="rope")
    for slider in (position, pair):
        slider.release(explore, maths_in, maths_out, api_name=False)
    real_btn.click(show_model, real_in, real_out, api_name="rope_model")
    for slider in (real_pos, real_pair):
        slider.release(show_model, real_in, real_out, api_name=False)
    demo.load(on_load, None, [tabs, *maths_in, model, text, token, layer, head, *maths_out, *real_out], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
