"""Next-token sampling: the real distribution, temperature / top-k / top-p / min-p, greedy vs seeded sampling."""
from __future__ import annotations

import gradio as gr

from toolkit import sampling, ui
from toolkit.plots import sampling as views

TITLE = "Next-token sampling"
ORDER = 50

DEFAULT_PROMPT = "Once upon a time, in a small village,"
DEFAULTS = dict(temperature=0.8, top_k=50, top_p=0.9, min_p=0.0, steps=5, seed=0)  # 5 decode steps keep the page under 1 s on 2 cores



def _config(temperature, top_k, top_p, min_p) -> sampling.SamplingConfig:
    t = ui.as_float(temperature, "temperature")
    if not 0.01 <= t <= 5.0:
        raise ui.UserError(f"temperature must be between 0.01 and 5, got {t:g} (T = 0 is greedy: use the greedy column).")
    p = ui.as_float(top_p, "top-p")
    m = ui.as_float(min_p, "min-p")
    if not 0.0 < p <= 1.0:
        raise ui.UserError(f"top-p must be in (0, 1], got {p:g}.")
    if not 0.0 <= m < 1.0:
        raise ui.UserError(f"min-p must be in [0, 1), got {m:g}.")
    return sampling.SamplingConfig(t, ui.as_int(top_k, "top-k", 0, 1000), p, m)


@ui.safe
def distribution(prompt: str, temperature, top_k, top_p, min_p, request: gr.Request | None = None):
    prompt = ui.as_text(prompt, "prompt", max_chars=4000)
    t = sampling.next_token(ui.model(), prompt, _config(temperature, top_k, top_p, min_p))
    dark = ui.is_dark(request)
    return views.distribution(t, dark), views.survivors(t, dark)


def _flat(text: str) -> str:
    """One line for a Markdown code span: newlines shown as ⏎, backticks replaced."""
    return text.replace("\n", "⏎").replace("`", "'")


@ui.safe
def continue_(prompt: str, temperature, top_k, top_p, min_p, steps, seed, request: gr.Request | None = None):
    prompt = ui.as_text(prompt, "prompt", max_chars=4000)
    cfg = _config(temperature, top_k, top_p, min_p)
    steps = ui.as_int(steps, "steps", 1, sampling.MAX_STEPS)
    seed = ui.as_int(seed, "seed", 0, 2**31 - 1)
    model = ui.model()
    greedy, sampled = sampling.greedy_and_sampled(model, prompt, cfg, steps, seed, n_show=5)
    dark = ui.is_dark(request)
    text = (f"**greedy:** `{_flat(prompt)}` → `{_flat(''.join(greedy.tokens))}`\n\n"
            f"**sampled (seed {seed}):** `{_flat(prompt)}` → `{_flat(''.join(sampled.tokens))}`")
    return text, views.steps(greedy, dark), views.steps(sampled, dark)


def on_load(request: gr.Request):
    q = ui.query(request)
    prompt = ui.preset(q, "prompt", DEFAULT_PROMPT)
    v = {k: ui.preset(q, k, d, type(d)) for k, d in DEFAULTS.items()}
    knobs = (v["temperature"], v["top_k"], v["top_p"], v["min_p"])
    try:
        shown = distribution(prompt, *knobs, request)
    except ui.UserError:  # a preset out of range: fall back to the defaults
        v = dict(DEFAULTS)
        knobs = (v["temperature"], v["top_k"], v["top_p"], v["min_p"])
        shown = distribution(prompt, *knobs, request)
    return (prompt, *knobs, v["steps"], v["seed"], *shown,
            *continue_(prompt, *knobs, v["steps"], v["seed"], request))


with gr.Blocks(title=TITLE) as demo:
    ui.header(TITLE, __doc__)
    prompt = gr.Textbox(DEFAULT_PROMPT, label="prompt")
    with gr.Row():
        temperature = gr.Slider(0.05, 3.0, DEFAULTS["temperature"], step=0.05, label="temperature")
        top_k = gr.Slider(0, 200, DEFAULTS["top_k"], step=1, label="top-k (0 = off)")
        top_p = gr.Slider(0.05, 1.0, DEFAULTS["top_p"], step=0.01, label="top-p (1 = off)")
        min_p = gr.Slider(0.0, 0.5, DEFAULTS["min_p"], step=0.01, label="min-p (0 = off)")
    with gr.Row():
        dist_plot = gr.Plot(label="next-token distribution", scale=3)
        surv_plot = gr.Plot(label="survivors", scale=2)
    with gr.Row():
        steps = gr.Slider(1, sampling.MAX_STEPS, DEFAULTS["steps"], step=1, label="tokens to generate")
        seed = gr.Number(DEFAULTS["seed"], label="seed", precision=0)
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
    demo.load(on_load, None, knobs + [steps, seed, dist_plot, surv_plot, text, greedy_plot, sample_plot],
              api_name=False)
