"""KV cache: real generation with and without it, time per token measured live, cache memory vs the formula."""
from __future__ import annotations

import gradio as gr

from toolkit import kv_cache, ui
from toolkit.plots import kv_cache as views

TITLE = "KV cache"
ORDER = 80

DEFAULT_PROMPT = (
    "The Roman Empire was the post-Republican state of ancient Rome. It ruled the Mediterranean and much of "
    "Europe, Western Asia and North Africa. The Romans conquered most of this during the Republic, and it was "
    "ruled by emperors following Octavian's assumption of effective sole rule in 27 BC. The western empire "
    "collapsed in 476 AD, but the eastern empire lasted until the fall of Constantinople in 1453. In its long "
    "history, the most important thing about the empire was"
)
DEFAULT_STEPS = 16



@ui.safe
def run(prompt: str, steps, request: gr.Request | None = None):
    prompt = ui.as_text(prompt, "prompt", max_chars=6000)
    steps = ui.as_int(steps, "tokens to generate", 2, kv_cache.MAX_NEW_TOKENS)
    loaded = ui.model()
    t = kv_cache.compare(loaded, prompt, steps)
    d = t.dims
    last = int(t.lengths[-1])
    full = kv_cache.formula_bytes(loaded.config, t.max_positions, t.bytes_per_number)
    md = (f"Generated: `{''.join(t.tokens).strip()}` (identical with and without the cache: {t.same_tokens}).\n\n"
          f"After {last} tokens the real cache holds **{int(t.measured_bytes[-1]):,} bytes** = 2 × {d['layers']} × "
          f"{d['kv_heads']} × {d['head_dim']} × {last} × {t.bytes_per_number} = **{int(t.formula_bytes[-1]):,}**. "
          f"At the full context of {t.max_positions:,} tokens: {full / 2**20:.0f} MiB per sequence.")
    dark = ui.is_dark(request)
    return views.times(t, dark), views.memory(t, dark), md


def on_load(request: gr.Request):
    q = ui.query(request)
    prompt = ui.preset(q, "prompt", DEFAULT_PROMPT)
    steps = ui.preset(q, "steps", DEFAULT_STEPS, int, choices=list(range(2, kv_cache.MAX_NEW_TOKENS + 1)))
    return (prompt, steps, *run(prompt, steps, request))


with gr.Blocks(title=TITLE) as demo:
    ui.header(TITLE, __doc__)
    with gr.Row():
        prompt = gr.Textbox(DEFAULT_PROMPT, label="prompt (a longer prompt makes the gap wider)", lines=3, scale=4)
        with gr.Column(scale=1):
            steps = gr.Slider(2, kv_cache.MAX_NEW_TOKENS, DEFAULT_STEPS, step=1, label="tokens to generate")
            go_btn = gr.Button("Generate both ways", variant="primary")
    summary = gr.Markdown()
    with gr.Row():
        time_plot = gr.Plot(label="time per token")
        mem_plot = gr.Plot(label="cache memory")
    go_btn.click(run, [prompt, steps], [time_plot, mem_plot, summary], api_name="run")
    demo.load(on_load, None, [prompt, steps, time_plot, mem_plot, summary], api_name=False)
