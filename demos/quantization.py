"""Every linear layer of SmolLM2 quantised (int8, int4, NF4, GGUF Q4_1, GPTQ, bf16): perplexity against memory,
error by layer, weight histograms, and the outlier channels that make W8A8 hard (SmoothQuant)."""

from __future__ import annotations

import functools
import html
from pathlib import Path

import gradio as gr

from demos import stage, ui
from toolkit import quantization as qz
from toolkit.quantization import corpus
from toolkit.quantization import figures as plots

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "quantization"
VIEWS = [
    ("Perplexity vs memory", "tradeoff"),
    ("Summary table", "table"),
    ("Error by layer", "layers"),
    ("Weight histogram", "histogram"),
    ("Outlier channels (W8A8)", "outliers"),
]
VIEW_NAMES = [v for _, v in VIEWS]
SCHEME_NAMES = list(qz.SCHEMES)
SCHEME_CHOICES = [(qz.SCHEMES[s].label, s) for s in SCHEME_NAMES]
SITES = list(qz.SITES)


@functools.lru_cache(maxsize=1)
def recorded() -> qz.QuantizationTrace:
    try:
        return qz.QuantizationTrace.load(ASSETS / "schemes.npz")
    except Exception as err:  # a missing or stale asset is a message, not a crash
        raise ui.UserError(f"No recorded results ({err}). Record them with `lecture quantization`.") from None


@functools.lru_cache(maxsize=1)
def recorded_activations() -> qz.ActivationTrace:
    try:
        return qz.ActivationTrace.load(ASSETS / "activations.npz")
    except Exception as err:
        raise ui.UserError(f"No recorded activations ({err}). Record them with `lecture quantization`.") from None


def _live(scheme: str) -> qz.QuantizationTrace:
    """One scheme run now over every linear layer, scored on the same tokens as the recorded ones."""
    rec = recorded()
    cfg = qz.QuantizationConfig(
        schemes=(scheme,),
        eval_tokens=rec.eval_tokens,
        window=int(rec.meta.get("window", 512)),
        module=rec.hist_module,
        bins=len(rec.hist_before),
    )
    return qz.capture(ui.model(), config=cfg)


@functools.lru_cache(maxsize=8)  # looked up before the lane: a kept capture costs no slot
@ui.safe  # a forward pass: the model lane
def _activations(prompt: str, alpha: float) -> qz.ActivationTrace:
    return qz.activations(ui.model(), prompt, qz.ActivationConfig(alpha=alpha))


_live_cache: dict[str, qz.QuantizationTrace] = {}  # scheme -> its live run (deterministic: one per process)


def _trace() -> qz.QuantizationTrace:
    """The recorded schemes, with the ones run live so far beside them."""
    trace = recorded()
    for run in list(_live_cache.values()):
        trace = trace.merged(run)
    return trace


def _render(view, scheme, layer, site, acts, request) -> tuple[str, object, object]:
    dark = ui.is_dark(request)
    view = ui.as_choice(view, "view", VIEW_NAMES)
    scheme = ui.as_choice(scheme, "scheme", SCHEME_NAMES)
    notes = []
    if view == "outliers":
        site = ui.as_choice(site, "site", SITES)
        n_layers = acts.x_absmax.shape[1]
        i = ui.as_int(layer, "layer")
        if not 0 <= i < n_layers:
            notes.append(f"layer {i} does not exist (0–{n_layers - 1}); showing layer {max(0, min(i, n_layers - 1))}.")
        i = max(0, min(i, n_layers - 1))
        s = acts.sites.index(site)
        notes.insert(
            0,
            f"**{site} input of layer {i}**: largest channel {acts.outlier_ratio(s, i):.0f}× the median one; "
            f"W8A8 error {100 * acts.error[s, i]:.1f}% → {100 * acts.error_smooth[s, i]:.1f}% with SmoothQuant "
            f"(α = {acts.alpha:g}), {len(acts.tokens)} tokens.",
        )
        return " ".join(notes), plots.outliers(acts, site, i, dark), plots.w8a8_by_layer(acts, dark)
    trace = _trace()
    if scheme not in trace.schemes:
        notes.append(f"{html.escape(scheme)} is not recorded; press **Run live** to run it.")
        scheme = "nf4" if "nf4" in trace.schemes else trace.schemes[-1]
    r = trace.row(scheme)
    base = trace.ppl[trace.row("fp32")] if "fp32" in trace.schemes else float("nan")
    live = " (run live)" if scheme in _live_cache else ""
    notes.insert(
        0,
        f"**{qz.SCHEMES[scheme].label}**{live}: perplexity {trace.ppl[r]:.3f} (fp32 {base:.3f}), "
        f"linear weights {trace.linear_bytes[r] / 1e6:.0f} MB (fp32 {trace.linear_bytes[0] / 1e6:.0f} MB), "
        f"{trace.eval_tokens:,} held-out tokens. SmolLM2 ships as GGUF Q4_1: "
        "its fp32 weights are already on a 4-bit grid.",
    )
    if view == "tradeoff":
        main = plots.tradeoff(trace, dark, selected=scheme)
    elif view == "table":
        main = plots.table(trace, dark)
    elif view == "layers":
        main = plots.layer_errors(trace, scheme, dark)
    else:
        main = plots.histogram(trace, scheme, dark)
        # the layer controls are the outliers view's: say so, or the histogram looks as if it ignored them
        notes.append(
            f"The histogram is one recorded weight, `{trace.hist_module}`; **layer** and **input of** pick what the "
            "outliers view shows."
        )
    return " ".join(notes), main, None


def _outputs(notice, main, second):
    return (
        notice,
        gr.update(value=stage.fill(main)),
        gr.update(value=second, visible=second is not None),
        gr.update(visible=second is not None),
    )


@ui.safe(lane="cheap")  # recorded results and live runs (so no ui.answers); new captures: _activations
def show(view, scheme, layer, site, prompt="", alpha=0.5, request: gr.Request | None = None):
    """Returns (notice, main figure, second figure, second tab). Recorded results; the outlier view captures the
    activations of ``prompt`` (empty: the recorded held-out text) when a text or another α is asked for."""
    acts = recorded_activations()
    if view == "outliers":
        cfg = ui.config(qz.ActivationConfig, alpha=alpha)
        if (prompt or "").strip() or cfg.alpha != acts.alpha:
            text = ui.as_text(prompt, "text for the activations") if (prompt or "").strip() else corpus.held_out()
            acts = _activations(text, cfg.alpha)
    return _outputs(*_render(view, scheme, layer, site, acts, request))


@ui.safe(lane="train")  # tens of seconds: one live run at a time, the model lane stays free
def run_live(view, scheme, layer, site, prompt="", alpha=0.5, request: gr.Request | None = None):
    """Quantise every linear layer in ``scheme`` now and score it; shown beside the recorded schemes."""
    scheme = ui.as_choice(scheme, "scheme", SCHEME_NAMES)
    if qz.SCHEMES[scheme].needs_calibration:
        raise ui.UserError(
            "GPTQ calibrates block by block for minutes on two cores: its result here is the recorded one "
            "(`lecture quantization`). Run another scheme live."
        )
    if scheme not in _live_cache:
        _live_cache[scheme] = _live(scheme)
    if view == "outliers":
        view = "tradeoff"
    return (view, *show(view, scheme, layer, site, prompt, alpha, request=request))


def on_load(request: gr.Request):
    p = ui.query(request)
    view = ui.preset(p, "view", "tradeoff", str, VIEW_NAMES)
    scheme = ui.preset(p, "scheme", "nf4", str, SCHEME_NAMES)
    layer = ui.preset(p, "layer", 3, int)
    site = ui.preset(p, "site", "attention", str, SITES)
    try:
        out = show(view, scheme, layer, site, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", gr.update(), gr.update(visible=False), gr.update(visible=False))
    return view, scheme, layer, site, *out


with gr.Blocks(title="Quantising the whole model") as demo:
    ui.header("quantization", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="tradeoff", label="view", scale=2)
        scheme_in = gr.Dropdown(SCHEME_CHOICES, value="nf4", label="scheme", scale=2)
        layer_in = gr.Number(3, label="layer", precision=0, minimum=0, scale=1)
        site_in = gr.Dropdown(SITES, value="attention", label="input of", scale=1)
        live_btn = gr.Button("Run live", variant="primary", scale=1)
    notice = stage.status()
    main_plot = stage.hero()
    with stage.more() as more:
        with gr.Tab("W8A8 error by layer"):
            second_plot = gr.Plot(show_label=False)
    with stage.options():
        text_in = gr.Textbox("", label="text for the activations", placeholder="empty: the held-out text", lines=3)
        alpha_in = ui.slider(qz.ActivationConfig, "alpha")
        rescan = gr.Button("Capture activations")
    inputs = [view_in, scheme_in, layer_in, site_in, text_in, alpha_in]
    outputs = [notice, main_plot, second_plot, more]
    for widget in (view_in, scheme_in, layer_in, site_in):
        widget.input(show, inputs, outputs, api_name=False)
    rescan.click(show, inputs, outputs, api_name="show")
    live_btn.click(run_live, inputs, [view_in, *outputs], api_name="run_live")
    demo.load(on_load, None, [view_in, scheme_in, layer_in, site_in, *outputs], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
