"""Sparse attention and attention sinks: SmolLM2 attending through sliding, dilated and global + local masks."""

from __future__ import annotations

from functools import lru_cache

import gradio as gr

from demos import cache, stage, ui
from toolkit import sparse_attention as sa
from toolkit.sparse_attention import SparseConfig
from toolkit.sparse_attention import figures as views
from toolkit.trace import TraceError

VIEWS = [
    ("Perplexity vs window (recorded)", "curves"),
    ("The masks", "masks"),
    ("Attention to the first token", "sink"),
    ("Loss along the text", "loss"),
]
VIEW_NAMES = [v for _, v in VIEWS]
DEFAULTS = {"window": 64, "sinks": 4}
MASK_WINDOW = 8  # the masks view draws 48 tokens: over 24, a window of 8 shows its shape (the status says so)


@lru_cache(maxsize=1)
def curves() -> sa.SparseCurveTrace:
    """The committed replay (`lecture sparse-curves`): loaded once per process."""
    try:
        return sa.SparseCurveTrace.load(sa.ASSET)
    except TraceError as err:
        raise ui.UserError(f"{err}. Record it with `lecture sparse-curves` (a few minutes).") from None


@cache.bytes_cached()  # looked up before the lane: a kept run costs no slot
@ui.safe(lane="heavy")
def cached_live(cfg: SparseConfig) -> sa.SparseTrace:
    return sa.capture(ui.model(), None, cfg)


def _used(cfg: SparseConfig) -> SparseConfig:
    """Only the knobs the pattern reads (a dilation changes nothing on a sliding window): one live run serves the
    rest, from the cache."""
    default = SparseConfig.default
    local = cfg.pattern == "global+local"
    return cfg.replace(
        dilation=cfg.dilation if cfg.pattern == "dilated" else default("dilation"),
        random=cfg.random if local else default("random"),
        seed=cfg.seed if local and cfg.random else default("seed"),
    )


def _config(pattern, window, sinks, dilation, random, seed, n: int) -> SparseConfig:
    return ui.config(
        SparseConfig,
        pattern=pattern,
        window=window,
        sinks=sinks,
        dilation=dilation,
        random=random,
        seed=seed,
        max_tokens=n,
    )


@ui.safe(lane="cheap")
def show(view, pattern, window, sinks, dilation=2, random=2, seed=0, live=None, request: gr.Request | None = None):
    """Returns (status markdown, figure). ``live``: the last live run of this page (a SparseTrace), if any."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    rec = curves()
    cfg = _config(pattern, window, sinks, dilation, random, seed, len(rec.ids))
    dark = ui.is_dark(request)
    live = live if isinstance(live, sa.SparseTrace) and len(live.ids) == len(rec.ids) else None
    note = ""
    if view == "curves":
        fig = views.curves(rec, live, dark)
    elif view == "masks":
        w = cfg.window if cfg.window <= 24 else MASK_WINDOW
        fig = views.masks(w, cfg.dilation, cfg.sinks, cfg.random, cfg.seed, len(rec.ids), dark=dark)
        recorded = int(rec.windows[rec.at(cfg.window)])  # the window the status's numbers are read at
        if w != recorded:  # the drawing is not that window: say so
            note = (
                f"\n\nThe masks view draws {views.SHOWN} tokens with a window of {w} to show the shape; "
                f"the numbers above are for window {recorded}."
            )
    elif view == "sink":
        fig = views.sink(rec, cfg.window, dark)
    else:
        fig = views.loss(rec, cfg.window, live, dark=dark)
    return _status(rec, cfg, live) + note, fig


def _status(rec: sa.SparseCurveTrace, cfg: SparseConfig, live: sa.SparseTrace | None) -> str:
    ppl = rec.ppl
    b = rec.at(cfg.window)
    w = int(rec.windows[b])
    parts = [f"{ppl[a, b]:.1f} with {int(s)} sinks" for a, s in enumerate(rec.sinks)]
    text = f"Recorded on {len(rec.ids):,} tokens: full attention **{rec.full_ppl:.2f}**; window {w}: " + ", ".join(
        parts
    )
    text += ". "
    if live is not None:
        c = live.config
        text += (
            f"Live run: {c['pattern']}, window {c['window']}, {c['sinks']} sinks, keeping {100 * live.density:.1f}% "
            f"of the pairs: perplexity **{live.ppl:.2f}** ({live.seconds:.1f} s)."
        )
    else:
        text += "“Run live” scores the text with the mask above (one forward pass of the whole text)."
    return text


@ui.safe(lane="cheap")  # the live pass itself takes the heavy lane (cached_live)
def run_live(view, pattern, window, sinks, dilation=2, random=2, seed=0, request: gr.Request | None = None):
    """One forward pass of the recorded text under the chosen mask; returns (status, figure, the live trace)."""
    rec = curves()
    cfg = _config(pattern, window, sinks, dilation, random, seed, len(rec.ids))
    live = cached_live(_used(cfg))
    status, fig = show(view, pattern, window, sinks, dilation, random, seed, live, request=request)
    return status, fig, live


def show_ui(*args, request: gr.Request | None = None):
    status, fig = show(*args, request=request)
    return status, stage.fill(fig)


@ui.answers
def run_ui(*args, request: gr.Request | None = None):
    status, fig, live = run_live(*args, request=request)
    return status, stage.fill(fig), live


def on_load(request: gr.Request):
    p = ui.query(request)
    view = ui.preset(p, "view", "curves", str, VIEW_NAMES)
    pattern = ui.preset(p, "pattern", "sliding", str, list(sa.PATTERNS))
    window = ui.preset(p, "window", DEFAULTS["window"], int)
    sinks = ui.preset(p, "sinks", DEFAULTS["sinks"], int)
    try:
        out = show_ui(view, pattern, window, sinks, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", None)
    return *(gr.update(value=v) for v in (view, pattern, window, sinks)), *out


with gr.Blocks(title="Sparse attention") as demo:
    ui.header("sparse_attention", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="curves", label="view", scale=3)
        pattern_in = ui.dropdown(SparseConfig, "pattern", scale=2)
        window_in = gr.Number(DEFAULTS["window"], label="window", precision=0, minimum=1, scale=1)
        sinks_in = gr.Number(DEFAULTS["sinks"], label="sinks", precision=0, minimum=0, scale=1)
        live_btn = gr.Button("Run live", variant="primary", scale=1)
    with stage.options():
        dilation_in = ui.number(SparseConfig, "dilation")
        random_in = ui.number(SparseConfig, "random", label="random keys (global+local)")
        seed_in = ui.number(SparseConfig, "seed")
    status = stage.status()
    hero = stage.hero()
    live_state = gr.State(None)
    inputs = [view_in, pattern_in, window_in, sinks_in, dilation_in, random_in, seed_in]
    live_btn.click(run_ui, inputs, [status, hero, live_state], api_name="run_live")
    view_in.input(show_ui, [*inputs, live_state], [status, hero], api_name="show")
    pattern_in.input(show_ui, [*inputs, live_state], [status, hero], api_name=False)
    for widget in (window_in, sinks_in, dilation_in, random_in, seed_in):
        widget.submit(show_ui, [*inputs, live_state], [status, hero], api_name=False)
    demo.load(on_load, None, [view_in, pattern_in, window_in, sinks_in, status, hero], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
