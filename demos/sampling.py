"""Next-token sampling: the real distribution, temperature / top-k / top-p / min-p, greedy vs seeded sampling."""

from __future__ import annotations

import gradio as gr

from demos import stage, ui
from toolkit import models, sampling, variants
from toolkit.sampling import SamplingConfig
from toolkit.sampling import figures as views

DEFAULT_PROMPT = views.PROMPT  # the notebook API (toolkit.views) has the same defaults
# The page's defaults: 5 decode steps keep it under 1 s on 2 cores; 5 tokens shown per step fit a slide.
DEFAULTS = SamplingConfig(temperature=0.8, top_k=50, top_p=0.9, min_p=0.0, steps=5, seed=0, step_shown=5)
KNOBS = ("temperature", "top_k", "top_p", "min_p")
PRESETS = KNOBS + ("steps", "seed")


@ui.answers
@ui.safe
def distribution(prompt: str, temperature, top_k, top_p, min_p, request: gr.Request | None = None):
    prompt = ui.as_text(prompt, "prompt", max_chars=4000)
    cfg = ui.config(SamplingConfig, DEFAULTS, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    t = sampling.next_token(ui.model(), prompt, cfg)
    dark = ui.is_dark(request)
    return views.distribution(t, dark), views.survivors(t, dark)


def _flat(text: str) -> str:
    """One line for a Markdown code span: newlines shown as ⏎, backticks replaced."""
    return text.replace("\n", "⏎").replace("`", "'")


def _continuation(prompt: str, temperature, top_k, top_p, min_p, steps, seed):
    """(markdown, greedy trace, sampled trace) for the knobs, checked."""
    prompt = ui.as_text(prompt, "prompt", max_chars=4000)
    cfg = ui.config(
        SamplingConfig, DEFAULTS, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, steps=steps, seed=seed
    )
    greedy, sampled = sampling.greedy_and_sampled(ui.model(), prompt, cfg)
    text = (
        f"**greedy:** `{_flat(prompt)}` → `{_flat(''.join(greedy.tokens))}`\n\n"
        f"**sampled (seed {cfg.seed}):** `{_flat(prompt)}` → `{_flat(''.join(sampled.tokens))}`"
    )
    if greedy.meta.get("truncated"):
        text = (
            f"⚠️ The prompt has {greedy.meta['n_tokens_in_text']} tokens; only the first {cfg.max_tokens} are "
            f"used.\n\n{text}"
        )
    return text, greedy, sampled


@ui.answers
@ui.safe
def continue_(prompt: str, temperature, top_k, top_p, min_p, steps, seed, request: gr.Request | None = None):
    text, greedy, sampled = _continuation(prompt, temperature, top_k, top_p, min_p, steps, seed)
    dark = ui.is_dark(request)
    return text, views.steps(greedy, dark), views.steps(sampled, dark)


# ---- the page: one view in the hero -------------------------------------------------------------------------

VIEWS = [
    ("distribution", "distribution"),
    ("tokens left", "survivors"),
    ("greedy vs sampled", "generate"),
    ("compare two models: next-token shift", "compare"),
]
VIEW_NAMES = [v for _, v in VIEWS]


def compare_choices() -> list[str]:
    """ "Compare with": the default model's variants (fine-tuned, quantised), then the other causal models."""
    base = models.default("causal")
    return list(dict.fromkeys(models.derived(base) + [n for n in models.choices("causal") if n != base]))


def _compare(prompt: str, other) -> tuple[str, sampling.NextTokenCompareTrace]:
    """(status, trace) of the default model against ``other`` on the prompt (two forwards, the model lane)."""
    prompt = ui.as_text(prompt, "prompt", max_chars=4000)
    other = (other or "").strip()
    base = ui.model()
    if not other or other == base.name:
        raise ui.UserError(f"Choose another model to compare {base.name} with, e.g. {views.COMPARE}.")
    try:
        t = sampling.compare(base, ui.model(other), prompt, DEFAULTS)
    except ValueError as err:
        raise ui.UserError(str(err)) from None
    what = variants.describe(other)
    a, b = (ui.escape(_flat(x)) or "∅" for x in t.top)
    status = (
        f"**{ui.escape(base.name)}** vs **{ui.escape(other)}**{f' ({ui.escape(what)})' if what else ''}, "
        f"next token at T = 1: KL = **{t.kl[0]:.4f}** nats (back: {t.kl[1]:.4f}), total variation "
        f"{t.total_variation:.3f}; most likely `{a}` vs `{b}`."
    )
    return status, t


def _status(t: sampling.NextTokenTrace) -> str:
    """One line: how many tokens each knob leaves, and the most likely one."""
    left = int(t.survivors[-1])
    top = ui.escape(_flat(t.tokens[0])) or "∅"
    cut = f" (prompt cut to {t.meta.get('n_tokens_in_text')} → first tokens)" if t.meta.get("truncated") else ""
    return (
        f"**{t.meta.get('model', '')}**: {left:,} of {int(t.survivors[0]):,} tokens survive the filters; "
        f"most likely next token `{top}` (p = {t.probs[0, 0]:.2f} at T = 1, {t.probs[-1, 0]:.2f} after){cut}."
    )


@ui.answers
@ui.safe
def show_ui(
    view,
    prompt,
    temperature,
    top_k,
    top_p,
    min_p,
    steps,
    seed,
    compare=views.COMPARE,
    request: gr.Request | None = None,
):
    """The page: (status, hero, second plot, its tab)."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    dark = ui.is_dark(request)
    second = None
    if view == "compare":
        status, t = _compare(prompt, compare)
        main = views.shift(t, dark)
    elif view == "generate":
        status, greedy, sampled = _continuation(prompt, temperature, top_k, top_p, min_p, steps, seed)
        main = views.greedy_vs_sampled(greedy, sampled, dark)
    else:
        prompt = ui.as_text(prompt, "prompt", max_chars=4000)
        cfg = ui.config(SamplingConfig, DEFAULTS, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
        t = sampling.next_token(ui.model(), prompt, cfg)
        dist, surv = views.distribution(t, dark), views.survivors(t, dark)
        main, second = (dist, surv) if view == "distribution" else (surv, dist)
        status = _status(t)
    label = "vocabulary left per filter" if view == "distribution" else "next-token distribution"
    return (
        status,
        stage.fill(main),
        gr.update(value=second, visible=second is not None),
        gr.update(visible=second is not None, label=label),
    )


@ui.safe
def live_ui(view, *args, request: gr.Request | None = None):
    """A knob moved: the next-token views re-render at once (one forward); a continuation waits for the button
    (and the comparison, at T = 1 with no filter, does not move with the knobs)."""
    if view in ("generate", "compare"):
        return (gr.skip(),) * 4
    return show_ui(view, *args, request=request)


def compare_changed(view, *args, request: gr.Request | None = None):
    """ "Compare with" changed: re-render when the hero shows the comparison."""
    if view != "compare":
        return (gr.skip(),) * 4
    return show_ui(view, *args, request=request)


def on_load(request: gr.Request):
    """URL presets: ?view=distribution|survivors|generate&prompt=&temperature=&top_k=&top_p=&min_p=&steps=&seed=."""
    q = ui.query(request)
    view = ui.preset(q, "view", "distribution", str, VIEW_NAMES)
    prompt = ui.preset(q, "prompt", DEFAULT_PROMPT)
    v = {k: ui.preset(q, k, getattr(DEFAULTS, k), type(getattr(DEFAULTS, k))) for k in PRESETS}
    try:
        ui.config(SamplingConfig, DEFAULTS, **v)
    except ui.UserError:  # a preset out of range: fall back to the defaults
        v = {k: getattr(DEFAULTS, k) for k in PRESETS}
    compare = ui.preset(q, "compare", views.COMPARE)
    values = (prompt, *(v[k] for k in KNOBS), v["steps"], v["seed"])
    try:
        out = show_ui(view, *values, compare, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", None, gr.update(visible=False), gr.update(visible=False))
    return (view, *values, *out)


def compare_preset(request: gr.Request):
    """The ?compare= preset into its dropdown (on_load already drew the view with it)."""
    return ui.preset(ui.query(request), "compare", views.COMPARE)


def _slider(name: str, label: str | None = None, **kw) -> gr.Slider:
    return ui.slider(SamplingConfig, name, value=getattr(DEFAULTS, name), **({"label": label} if label else {}), **kw)


with gr.Blocks(title="Next-token sampling") as demo:
    ui.header("sampling", __doc__)
    with stage.strip():
        view = gr.Dropdown(VIEWS, value="distribution", label="view", scale=2)
        prompt = gr.Textbox(DEFAULT_PROMPT, label="prompt", lines=1, max_lines=1, scale=3)
        temperature = _slider("temperature", scale=2)
        top_k = ui.number(SamplingConfig, "top_k", value=DEFAULTS.top_k, label="top-k (0: off)", scale=1)
        top_p = _slider("top_p", "top-p (1 = off)", scale=2)
        min_p = _slider("min_p", "min-p (0 = off)", scale=2)
        gen_btn = gr.Button("Show", variant="primary", scale=1)
    with stage.options():
        steps = _slider("steps")
        seed = ui.number(SamplingConfig, "seed", value=DEFAULTS.seed)
        compare = gr.Dropdown(
            compare_choices(),
            value=views.COMPARE,
            label="compare with (view: compare two models)",
            info="a variant of the model (LoRA fine-tune, int4, NF4) or another model with the same tokenizer",
            allow_custom_value=True,
        )
    status = stage.status()
    hero = stage.hero()
    with stage.more():
        with gr.Tab("vocabulary left per filter") as second_tab:
            second_plot = gr.Plot(show_label=False)
    # The API, as before (hidden outputs; the page uses show_ui)
    with gr.Row(visible=False):
        dist_btn, api_md = gr.Button(), gr.Markdown()
        api_plots = [gr.Plot() for _ in range(2)]
    knobs = [prompt, temperature, top_k, top_p, min_p]
    dist_btn.click(distribution, knobs, api_plots, api_name="distribution")
    api_gen = gr.Button(visible=False)
    api_gen.click(continue_, knobs + [steps, seed], [api_md, *api_plots], api_name="generate")

    inputs = [view, *knobs, steps, seed, compare]
    outputs = [status, hero, second_plot, second_tab]
    gen_btn.click(show_ui, inputs, outputs, api_name=False)
    prompt.submit(show_ui, inputs, outputs, api_name=False)
    view.input(show_ui, inputs, outputs, api_name=False)
    compare.input(compare_changed, inputs, outputs, api_name=False)
    for ctl in (temperature, top_p, min_p):
        ctl.release(live_ui, inputs, outputs, api_name=False)
    top_k.submit(live_ui, inputs, outputs, api_name=False)
    demo.load(on_load, None, [view, *knobs, steps, seed, *outputs], api_name=False)
    demo.load(compare_preset, None, compare, api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
