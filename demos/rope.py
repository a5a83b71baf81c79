"""RoPE rotations: each q/k dimension pair turns by position × θᵢ, on a real model, with sinusoidal PE beside it."""

from __future__ import annotations

import gradio as gr
import numpy as np

from demos import cache, stage, ui
from toolkit import models, rope
from toolkit.rope import figures as plots

MAX_POSITION = 1_000_000
MIN_HEAD_DIM = 4  # two pairs at least: dynamic NTK's exponent d / (d - 2) has no value at d = 2
MAX_HEAD_DIM = 1024
MAX_THETA = 1e12
MAX_FACTOR = 64.0
MAX_CONTEXT = 10_000_000
GRID = 32  # positions in the relative-position grids
MATHS_CACHE_BYTES = 32 * 2**20  # the maths tab's kept answers (figures)
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
    d = _int(value, "head dimension", MIN_HEAD_DIM, MAX_HEAD_DIM)
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


@ui.safe(lane="cheap")
def pair_range(head_dim):
    try:
        d = _head_dim(head_dim)
    except gr.Error:
        return gr.update()
    return gr.update(maximum=d // 2 - 1)


@ui.safe(lane="cheap")
def explore(theta, head_dim, position, pair, scaling, factor, context, request: gr.Request | None = None):
    """Maths tab: (notes, rotation, angles, relative, decay, extension, sinusoidal) for chosen θ, d, scaling."""
    theta, d, kind, fac = _theta(theta), _head_dim(head_dim), _scaling(scaling), _factor(factor)
    ctx = _int(context, "trained context", 16, MAX_CONTEXT)
    pos = _int(position, "position", 0, MAX_POSITION)
    p = _int(pair, "pair", 0, d // 2 - 1)
    return _maths(theta, d, kind, fac, ctx, pos, p, ui.is_dark(request))


# Pure maths of checked values: students who open the same slide share one answer. Bounded by bytes: at d = 256 and
# position 4,096 one answer's figures hold about 7 MB of numbers (32 of them were 0.6 GB under a hostile client).
@cache.bytes_cached(MATHS_CACHE_BYTES, size=cache.answer_size)
def _maths(theta: float, d: int, kind: str, fac: float, ctx: int, pos: int, p: int, dark: bool) -> tuple:
    f = rope.scaled_frequencies(theta, d, kind, 1.0 if kind == "default" else fac, ctx)
    rng = np.random.default_rng(EXAMPLE_SEED)
    q, k = rng.standard_normal(d), rng.standard_normal(d)
    pairs = (0, p) if p else (0, d // 2 - 1)
    wl = f.wavelength
    notes = (
        f"θ = {plots.base_text(theta)}, d = {d}: pair 0 turns every {plots.turn(wl[0])} positions, "
        f"pair {d // 2 - 1} every "
        f"{plots.turn(wl[-1])}. {int((wl < f.context).sum())} of {d // 2} pairs complete a turn within "
        f"{f.context:,} positions ({kind}{'' if kind == 'default' else f' ×{fac:g}'})."
    )
    return (
        notes,
        plots.rotation(q, f.inv_freq, pos, pairs, None, dark),
        plots.angles(f.inv_freq, min(max(pos + 1, 256), 2048), f.context, dark),
        plots.relative(q, k, f.inv_freq, GRID, dark=dark),
        plots.decay(theta, d, 256, dark),
        plots.extension(theta, d, ctx, fac, dark),
        plots.sinusoidal(min(max(64, pos + 8), 2048), d, theta, dark, pos),
    )


@cache.bytes_cached()  # a 512-token trace is about 100 MB: kept while it fits the cache's byte budget
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
    name = ui.model_name(model_name)
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


# ---- the page: one view in the hero; the strip shows the controls of that view's group ----------------------

MATHS_VIEWS = [
    ("rotation of one pair", "rotation"),
    ("angles and wavelengths", "angles"),
    ("relative position: RoPE vs sinusoidal", "relative"),
    ("long-range decay", "decay"),
    ("context extension", "extension"),
    ("sinusoidal PE matrix", "sinusoidal"),
]
MODEL_VIEWS = [
    ("real model: a token's query, rotated", "model-rotation"),
    ("real model: per-pair norms", "norms"),
    ("real model: relative position", "model-relative"),
    ("real model: embedding + PE", "embedding"),
]
VIEWS = MATHS_VIEWS + MODEL_VIEWS
VIEW_NAMES = [v for _, v in VIEWS]
MATHS_NAMES = [v for _, v in MATHS_VIEWS]
MODEL_NAMES = [v for _, v in MODEL_VIEWS]


@ui.safe(lane="cheap")
def show_ui(view, theta, head_dim, position, pair, scaling, factor, context, *real, request: gr.Request | None = None):
    """The page: (status, hero, then the visibility of the maths controls and of the real-model controls)."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    if view in MATHS_NAMES:
        notes, *figs = explore(theta, head_dim, position, pair, scaling, factor, context, request)
        order = ["rotation", "angles", "relative", "decay", "extension", "sinusoidal"]
    else:
        notes, *figs = show_model(*real, request)
        order = MODEL_NAMES
    hero = figs[order.index(view)]
    if view == "sinusoidal":  # the notes above are RoPE's; this view's are about PE
        theta, d, pos = _theta(theta), _head_dim(head_dim), _int(position, "position", 0, MAX_POSITION)
        wl = rope.wavelengths(rope.inv_freq(theta, d))
        notes = (
            f"The outlined row is PE({pos}), added to the embedding of the token at position {pos}. "
            f"Pair i has period 2π·{plots.base_text(theta)}^(2i/d): {plots.turn(wl[0])} positions for i = 0, "
            f"{plots.turn(wl[-1])} for i = {d // 2 - 1}."
        )
    if hero is None:  # a model without token embeddings to add PE to
        notes += "\n\nThis model gives no input embedding to show; pick another view."
    maths = view in MATHS_NAMES
    return (
        notes,
        stage.fill(hero),
        *(gr.update(visible=maths) for _ in MATHS_STRIP),
        *(gr.update(visible=not maths) for _ in MODEL_STRIP),
    )


def on_load(request: gr.Request):
    """URL presets (?view=&theta=&d=&pos=&pair=&scaling=&factor=&context=&model=&text=&token=&layer=&head=);
    the older ?tab=model opens the real model's rotation."""
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
    view = ui.preset(qp, "view", "model-rotation" if tab == "model" else "rotation", str, VIEW_NAMES)
    try:
        notes, hero, *shown = show_ui(view, *maths, *real, request=request)
    except gr.Error as err:
        notes, hero, shown = f"⚠️ {err.message}", None, [gr.update()] * len(STRIP)
    visible = dict(zip(STRIP_KEYS, shown))  # the strip's widgets: their preset value and their visibility
    updates = [{"__type__": "update", **visible.get(key, {}), "value": v} for key, v in zip(INPUT_KEYS, maths + real)]
    return (view, notes, hero, *updates)


# on_load merges each strip widget's preset value with its visibility (a component is output once per event)
INPUT_KEYS = ["theta", "d", "pos", "pair", "scaling", "factor", "context"]
INPUT_KEYS += ["model", "text", "token", "layer", "head", "real_pos", "real_pair"]
STRIP_KEYS = ["theta", "d", "pos", "pair", "text", "token", "layer", "head", "real_pos"]

with gr.Blocks(title="RoPE rotations") as demo:
    ui.header("rope", __doc__)
    with stage.strip():
        view = gr.Dropdown(VIEWS, value="rotation", label="view", scale=3)
        # minimum 1, not the first allowed value: the arrows step from it (10,000 -> 10,001); 1 itself gets a message
        theta = gr.Number(10000, label="θ (base)", minimum=1, scale=1)
        head_dim = gr.Number(64, label="head dim d", minimum=MIN_HEAD_DIM, maximum=256, step=2, precision=0, scale=1)
        position = gr.Slider(0, 4096, 10, step=1, label="position", scale=3)
        pair = gr.Number(8, label="pair i", minimum=0, maximum=127, precision=0, scale=1)
        text = gr.Textbox(DEFAULT_TEXT, label="text", lines=1, max_lines=1, scale=3, visible=False)
        token = gr.Number(1, label="token index", precision=0, scale=1, visible=False)
        layer = gr.Number(0, label="layer", precision=0, scale=1, visible=False)
        head = gr.Number(0, label="head", precision=0, scale=1, visible=False)
        real_pos = gr.Slider(0, 8191, 10, step=1, label="rotate to position", scale=2, visible=False)
        go_btn = gr.Button("Show", variant="primary", scale=1)
    with stage.options():
        scaling = gr.Dropdown(list(rope.SCALINGS), value="default", label="context extension: scaling type")
        factor = gr.Slider(1, 32, 4, step=0.5, label="scaling factor")
        context = gr.Number(8192, label="trained context", precision=0)
        model = gr.Dropdown(
            models.choices("causal"), value=models.default("causal"), label="model", allow_custom_value=True
        )
        real_pair = gr.Slider(0, 127, 8, step=1, label="real model: pair i")
    notes = stage.status()
    hero = stage.hero()
    MATHS_STRIP = [theta, head_dim, position, pair]
    MODEL_STRIP = [text, token, layer, head, real_pos]
    STRIP = MATHS_STRIP + MODEL_STRIP
    # The API, as before: every maths figure at once, every real-model figure at once (hidden outputs)
    with gr.Row(visible=False):
        maths_btn, real_btn = gr.Button(), gr.Button()
        api_md = gr.Markdown()
        api_plots = [gr.Plot() for _ in range(6)]
    maths_in = [theta, head_dim, position, pair, scaling, factor, context]
    real_in = [model, text, token, layer, head, real_pos, real_pair]
    maths_btn.click(explore, maths_in, [api_md, *api_plots], api_name="rope")
    real_btn.click(show_model, real_in, [api_md, *api_plots[:4]], api_name="rope_model")

    inputs = [view, *maths_in, *real_in]
    outputs = [notes, hero, *MATHS_STRIP, *MODEL_STRIP]
    go_btn.click(show_ui, inputs, outputs, api_name=False)
    for widget in (position, factor):  # cheap maths: re-render when let go
        widget.release(show_ui, inputs, outputs, api_name=False)
    for widget in (view, scaling):
        widget.input(show_ui, inputs, outputs, api_name=False)
    head_dim.change(pair_range, head_dim, pair, api_name=False)  # pair i goes up to d/2 - 1, no further
    for widget in (theta, head_dim, pair, context, text, token, layer, head):
        widget.submit(show_ui, inputs, outputs, api_name=False)
    for slider in (real_pos, real_pair):  # the real model's trace is cached: moving a slider is cheap
        slider.release(show_ui, inputs, outputs, api_name=False)
    demo.load(on_load, None, [view, notes, hero, *maths_in, *real_in], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
