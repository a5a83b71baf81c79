"""Next-token sampling: the real distribution, temperature / top-k / top-p / min-p, greedy vs seeded sampling."""

from __future__ import annotations

import gradio as gr

from demos import ui
from toolkit import sampling
from toolkit.sampling import SamplingConfig
from toolkit.sampling import figures as views

DEFAULT_PROMPT = "Once upon a time, in a small village,"
# The page's defaults: 5 decode steps keep it under 1 s on 2 cores; 5 tokens shown per step fit a slide.
DEFAULTS = SamplingConfig(temperature=0.8, top_k=50, top_p=0.9, min_p=0.0, steps=5, seed=0, step_shown=5)
KNOBS = ("temperature", "top_k", "top_p", "min_p")
PRESETS = KNOBS + ("steps", "seed")


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


@ui.safe
def continue_(prompt: str, temperature, top_k, top_p, min_p, steps, seed, request: gr.Request | None = None):
    prompt = ui.as_text(prompt, "prompt", max_chars=4000)
    cfg = ui.config(
        SamplingConfig, DEFAULTS, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, steps=steps, seed=seed
    )
    greedy, sampled = sampling.greedy_and_sampled(ui.model(), prompt, cfg)
    dark = ui.is_dark(request)
    text = (
        f"**greedy:** `{_flat(prompt)}` → `{_flat(''.join(greedy.tokens))}`\n\n"
        f"**sampled (seed {cfg.seed}):** `{_flat(prompt)}` → `{_flat(''.join(sampled.tokens))}`"
    )
    if greedy.meta.get("truncated"):
        text = (
            f"⚠️ The prompt has {greedy.meta['n_tokens_in_text']} tokens; only the first {cfg.max_tokens} are "
            f"used.\n\n{text}"
        )
    return text, views.steps(greedy, dark), views.steps(sampled, dark)


def on_load(request: gr.Request):
    q = ui.query(request)
    prompt = ui.preset(q, "prompt", DEFAULT_PROMPT)
    v = {k: ui.preset(q, k, getattr(DEFAULTS, k), type(getattr(DEFAULTS, k))) for k in PRESETS}
    knobs = tuple(v[k] for k in KNOBS)
    try:
        shown = distribution(prompt, *knobs, request)
    except ui.UserError:  # a preset out of range: fall back to the defaults
        v = {k: getattr(DEFAULTS, k) for k in PRESETS}
        knobs = tuple(v[k] for k in KNOBS)
        shown = distribution(prompt, *knobs, request)
    return (prompt, *knobs, v["steps"], v["seed"], *shown, *continue_(prompt, *knobs, v["steps"], v["seed"], request))


def _slider(name: str, label: str | None = None) -> gr.Slider:
    return ui.slider(SamplingConfig, name, value=getattr(DEFAULTS, name), **({"label": label} if label else {}))


with gr.Blocks(title="Next-token sampling") as demo:
    ui.header("sampling", __doc__)
    prompt = gr.Textbox(DEFAULT_PROMPT, label="prompt")
    with gr.Row():
        temperature = _slider("temperature")
        top_k = _slider("top_k", "top-k (0 = off)")
        top_p = _slider("top_p", "top-p (1 = off)")
        min_p = _slider("min_p", "min-p (0 = off)")
    with gr.Row():
        dist_plot = gr.Plot(label="next-token distribution", scale=3)
        surv_plot = gr.Plot(label="survivors", scale=2)
    with gr.Row():
        steps = _slider("steps")
        seed = ui.number(SamplingConfig, "seed", value=DEFAULTS.seed)
        gen_btn = gr.Button("Greedy vs sampled", variant="primary")
    text = gr.Markdown()
    with gr.Row():
        greedy_plot = gr.Plot(label="greedy")
        sample_plot = gr.Plot(label="sampled")
    knobs = [prompt, temperature, top_k, top_p, min_p]
    for ctl in knobs[1:]:
        ctl.release(distribution, knobs, [dist_plot, surv_plot], api_name=False)
    prompt.submit(distribution, knobs, [dist_plot, surv_plot], api_name="distribution")
    gen_btn.click(continue_, knobs + [steps, seed], [text, greedy_plot, sample_plot], api_name="generate")
    demo.load(
        on_load, None, knobs + [steps, seed, dist_plot, surv_plot, text, greedy_plot, sample_plot], api_name=False
    )

if __name__ == "__main__":
    ui.launch(demo)
