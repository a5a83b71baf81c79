"""Speculative decoding on SmolLM2: a draft (prompt lookup, or SmolLM2's own first layers) proposes k tokens, the
full model checks them in one pass; the output is plain greedy's, token for token. Distillation makes the draft
agree more often."""

from __future__ import annotations

import functools

import gradio as gr

from demos import stage, ui
from toolkit import speculative as spec
from toolkit.speculative import figures as plots

VIEWS = [
    ("Text: who wrote each token", "text"),
    ("Target passes per token", "passes"),
    ("Acceptance and speed-up vs k", "k"),
    ("Distillation: soft targets", "soft-targets"),
    ("Distillation run", "distillation"),
]
VIEW_NAMES = [v for _, v in VIEWS]
DRAFT_CHOICES = [(plots.DRAFT_LABELS[d], d) for d in spec.DRAFTS]
SOFT_TEXT = "The capital of France is Paris"
Config = spec.SpeculativeConfig
DEFAULT_NEW = Config.default("max_new_tokens")


@functools.lru_cache(maxsize=8)
def _recorded(name: str):
    path = spec.assets_dir() / name
    try:
        return spec.load(path)
    except Exception as err:
        raise ui.UserError(
            f"No recorded {name} ({err}). Record it with `lecture distill` then `lecture speculative`."
        ) from None


@functools.lru_cache(maxsize=8)
def _run(prompt: str, cfg: spec.SpeculativeConfig):
    default = spec.SpeculativeConfig(draft=cfg.draft)
    if prompt == spec.DEFAULT_PROMPT and cfg == default and (spec.assets_dir() / f"run-{cfg.draft}.npz").is_file():
        return _recorded(f"run-{cfg.draft}.npz")  # the preset opens instantly
    return ui.offload(spec.capture, ui.model().name, prompt, cfg)  # in a worker process, if any


@functools.lru_cache(maxsize=8)
def _targets(prompt: str, cfg: spec.TargetsConfig):
    return ui.offload(spec.targets, ui.model().name, prompt, cfg)


def _status(trace) -> str:
    # one line on the slide's frame: the hero below must stay whole
    same = {True: ": the same tokens ✓", False: ": **other tokens** ✗", None: ""}
    plain = f", plain greedy {trace.greedy_seconds:.1f} s" if trace.greedy_seconds else ""
    mode = "" if trace.mode == "greedy" else f", sampling at T = {trace.temperature:g}"  # greedy: the check says so
    return (
        f"**{plots.DRAFT_LABELS[trace.draft]}**, k = {trace.k}{mode}: {len(trace.new_ids)} tokens in "
        f"{len(trace.accepted)} target passes, {100 * trace.acceptance:.0f}% of drafts accepted, "
        f"{trace.seconds:.1f} s{plain}{same[trace.same_as_greedy]}"
    )


@ui.safe(lane="heavy")
def show(
    prompt,
    draft,
    k,
    view,
    mode="greedy",
    temperature=1.0,
    max_new=DEFAULT_NEW,
    ngram=2,
    layers=spec.DRAFT_LAYERS,
    soft_text=SOFT_TEXT,
    soft_t=2.0,
    request: gr.Request | None = None,
):
    """Returns (notice, main figure, HTML view, second figure, second tab)."""
    dark = ui.is_dark(request)
    view = ui.as_choice(view, "view", VIEW_NAMES)
    main = html = second = None
    if view == "k":
        sweep = _recorded("sweep.npz")
        main = plots.acceptance(sweep, dark)
        best = sweep.speedup().max()
        notice = f"Recorded on {len(sweep.prompts)} bundled prompts (`lecture speculative`); best speed-up {best:.2f}×."
    elif view == "distillation":
        run = _recorded("distillation.npz")
        main = plots.distillation(run, dark)
        notice = (
            f"Recorded by `lecture distill`: acceptance {100 * run.acceptance[0]:.0f}% → "
            f"{100 * run.acceptance[1]:.0f}%, "
            f"held-out KL {run.eval_loss[0]:.2f} → {run.eval_loss[1]:.2f}."
        )
    elif view == "soft-targets":
        cfg = ui.config(spec.TargetsConfig, temperature=soft_t, layers=layers)
        t = _targets(ui.as_text(soft_text, "text for the soft targets", 2000), cfg)
        main = plots.soft_targets(t, dark)
        notice = f"Teacher: all {ui.model().config.num_hidden_layers} layers; student: the first {cfg.layers}."
    else:
        cfg = ui.config(
            Config,
            draft=draft,
            k=k,
            mode=mode,
            temperature=temperature,
            max_new_tokens=max_new,
            ngram=ngram,
            layers=layers,
        )
        trace = _run(ui.as_text(prompt, "prompt", 4000), cfg)
        notice = _status(trace)
        if view == "text":
            html, second = plots.text_html(trace, dark), plots.passes(trace, dark)
        else:
            main = plots.passes(trace, dark)
    return notice, main, html, second


@ui.answers
def show_ui(*args, request: gr.Request | None = None):
    notice, main, html, second = show(*args, request=request)
    return (
        notice,
        gr.update(value=stage.fill(main), visible=main is not None),
        gr.update(value=html or "", visible=html is not None),
        gr.update(value=second, visible=second is not None),
        gr.update(visible=second is not None),
    )


def on_load(request: gr.Request):
    p = ui.query(request)
    prompt = ui.preset(p, "prompt", spec.DEFAULT_PROMPT)
    draft = ui.preset(p, "draft", "lookup", str, list(spec.DRAFTS))
    k = ui.preset(p, "k", Config.default("k"), int)
    view = ui.preset(p, "view", "text", str, VIEW_NAMES)
    widgets = [gr.update(value=v) for v in (prompt, draft, k, view)]
    try:
        out = show_ui(prompt, draft, k, view, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", *(gr.update(visible=False),) * 4)
    return *widgets, *out


with gr.Blocks(title="Speculative decoding") as demo:
    ui.header("speculative", __doc__)
    with stage.strip():
        prompt_in = gr.Textbox(spec.DEFAULT_PROMPT, label="prompt", lines=1, max_lines=3, scale=4)
        draft_in = gr.Dropdown(DRAFT_CHOICES, value="lookup", label="draft", scale=2)
        k_in = ui.slider(Config, "k", scale=1)
        view_in = gr.Dropdown(VIEWS, value="text", label="view", scale=2)
        go_btn = gr.Button("Generate", variant="primary", scale=1)
    notice = stage.status()
    main_plot = stage.hero()
    text_view = stage.hero_html()
    with stage.more() as more:
        with gr.Tab("target passes"):
            second_plot = gr.Plot(show_label=False)
    with stage.options():
        mode_in = ui.dropdown(Config, "mode")
        temp_in = ui.slider(Config, "temperature")
        new_in = ui.slider(Config, "max_new_tokens")
        ngram_in = ui.slider(Config, "ngram")
        layers_in = gr.Slider(1, 29, value=spec.DRAFT_LAYERS, step=1, label="draft layers")
        soft_in = gr.Textbox(SOFT_TEXT, label="text for the soft targets (last token = label)")
        soft_t_in = ui.slider(spec.TargetsConfig, "temperature", label="distillation T")
    inputs = [prompt_in, draft_in, k_in, view_in, mode_in, temp_in, new_in, ngram_in, layers_in, soft_in, soft_t_in]
    outputs = [notice, main_plot, text_view, second_plot, more]
    go_btn.click(show_ui, inputs, outputs, api_name="show")
    view_in.input(show_ui, inputs, outputs, api_name=False)
    prompt_in.submit(show_ui, inputs, outputs, api_name=False)
    soft_t_in.release(show_ui, inputs, outputs, api_name=False)
    demo.load(on_load, None, [prompt_in, draft_in, k_in, view_in, *outputs], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
