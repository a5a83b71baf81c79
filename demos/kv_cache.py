"""KV cache: real generation with and without it, time per token measured live, cache memory vs the formula."""

from __future__ import annotations

import gradio as gr

from demos import ui
from toolkit import kv_cache
from toolkit.kv_cache import KvCacheConfig
from toolkit.kv_cache import figures as views

DEFAULT_PROMPT = (
    "The Roman Empire was the post-Republican state of ancient Rome. It ruled the Mediterranean and much of "
    "Europe, Western Asia and North Africa. The Romans conquered most of this during the Republic, and it was "
    "ruled by emperors following Octavian's assumption of effective sole rule in 27 BC. The western empire "
    "collapsed in 476 AD, but the eastern empire lasted until the fall of Constantinople in 1453. In its long "
    "history, the most important thing about the empire was"
)
DEFAULT_STEPS = KvCacheConfig.default("steps")  # the slide's preset


@ui.safe
def run(prompt: str, steps, request: gr.Request | None = None):
    prompt = ui.as_text(prompt, "prompt", max_chars=6000)
    cfg = ui.config(KvCacheConfig, steps=steps)
    t = kv_cache.capture(ui.model(), prompt, cfg)
    d = t.dims
    last = int(t.lengths[-1])
    full = t.bytes_per_token * t.max_positions
    md = (
        f"Generated: `{''.join(t.tokens).strip()}` (identical with and without the cache: {t.same_tokens}).\n\n"
        f"After {last} tokens the real cache holds **{int(t.measured_bytes[-1]):,} bytes** = 2 × {d['layers']} × "
        f"{d['kv_heads']} × {d['head_dim']} × {last} × {t.bytes_per_number} = **{int(t.formula_bytes[-1]):,}**. "
        f"At the full context of {t.max_positions:,} tokens: {full / 2**20:.0f} MiB per sequence."
    )
    if t.meta.get("truncated"):
        cut = f"⚠️ The prompt has {t.meta['n_tokens_in_text']} tokens; only the first {t.n_prompt} are used."
        md = f"{cut}\n\n{md}"
    dark = ui.is_dark(request)
    return views.times(t, dark), views.memory(t, dark), md


def on_load(request: gr.Request):
    q = ui.query(request)
    prompt = ui.preset(q, "prompt", DEFAULT_PROMPT)
    spec = KvCacheConfig.spec("steps")
    steps = ui.preset(q, "steps", DEFAULT_STEPS, int, choices=list(range(int(spec.lo), int(spec.hi) + 1)))
    return (prompt, steps, *run(prompt, steps, request))


with gr.Blocks(title="KV cache") as demo:
    ui.header("kv_cache", __doc__)
    with gr.Row():
        prompt = gr.Textbox(DEFAULT_PROMPT, label="prompt (a longer prompt makes the gap wider)", lines=3, scale=4)
        with gr.Column(scale=1):
            steps = ui.slider(KvCacheConfig, "steps")
            go_btn = gr.Button("Generate both ways", variant="primary")
    summary = gr.Markdown()
    with gr.Row():
        time_plot = gr.Plot(label="time per token")
        mem_plot = gr.Plot(label="cache memory")
    go_btn.click(run, [prompt, steps], [time_plot, mem_plot, summary], api_name="run")
    demo.load(on_load, None, [prompt, steps, time_plot, mem_plot, summary], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
