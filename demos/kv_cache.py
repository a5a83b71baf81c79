"""KV cache: real generation with and without it, time per token measured live, cache memory vs the formula."""

from __future__ import annotations

import gradio as gr

from demos import stage, ui
from toolkit import kv_cache
from toolkit.kv_cache import KvCacheConfig
from toolkit.kv_cache import figures as views

DEFAULT_PROMPT = views.PROMPT
DEFAULT_STEPS = KvCacheConfig.default("steps")  # the slide's preset


def _capture(prompt: str, steps) -> kv_cache.KvCacheTrace:
    prompt = ui.as_text(prompt, "prompt", max_chars=6000)
    cfg = ui.config(KvCacheConfig, steps=steps)
    return ui.offload(kv_cache.capture, ui.model().name, prompt, cfg)  # in a worker process, if any


@ui.answers
@ui.safe(lane="heavy")
def run(prompt: str, steps, request: gr.Request | None = None):
    t = _capture(prompt, steps)
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


# ---- the page: one view in the hero; switching views reuses the run (the timings are measured, not replayed) --

VIEWS = [("time per token", "times"), ("cache memory", "memory")]
VIEW_NAMES = [v for _, v in VIEWS]
LABELS = {v: label for label, v in VIEWS}


def _status(t: kv_cache.KvCacheTrace) -> str:
    d, last = t.dims, int(t.lengths[-1])
    same = "the same tokens both ways" if t.same_tokens else "⚠️ the two runs generated different tokens"
    cut = f"⚠️ prompt cut to its first {t.n_prompt} tokens. " if t.meta.get("truncated") else ""
    ok = "✓" if int(t.measured_bytes[-1]) == int(t.formula_bytes[-1]) else "≠ measured"
    return (
        f"{cut}**{t.n_prompt}-token prompt, {len(t.tokens)} new tokens**, {same}. Cache after {last} tokens: "
        f"2 × {d['layers']} × {d['kv_heads']} × {d['head_dim']} × {last} × {t.bytes_per_number} = "
        f"{int(t.formula_bytes[-1]):,} bytes {ok} (measured {int(t.measured_bytes[-1]):,})."
    )


@ui.answers
@ui.safe(lane="heavy")
def run_ui(view, prompt, steps, request: gr.Request | None = None):
    """The page: generate both ways, then (status, hero, second plot, its tab, the run's figures for view changes)."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    t = _capture(prompt, steps)
    dark = ui.is_dark(request)
    shown = {"times": views.times(t, dark), "memory": views.memory(t, dark), "status": _status(t)}
    return (*show_view(view, shown), shown)


@ui.safe(lane="cheap")  # swaps figures the run already made: no model work
def show_view(view, shown):
    """A view change: the hero and the tab swap figures of the last run (no new generation)."""
    if view not in VIEW_NAMES or not shown:
        return (gr.skip(),) * 4
    other = "memory" if view == "times" else "times"
    return (
        shown["status"],
        stage.fill(shown[view]),
        shown[other],
        gr.update(label=LABELS[other]),
    )


def on_load(request: gr.Request):
    """URL presets: ?view=times|memory&prompt=&steps=."""
    q = ui.query(request)
    view = ui.preset(q, "view", "times", str, VIEW_NAMES)
    prompt = ui.preset(q, "prompt", DEFAULT_PROMPT)
    spec = KvCacheConfig.spec("steps")
    steps = ui.preset(q, "steps", DEFAULT_STEPS, int, choices=list(range(int(spec.lo), int(spec.hi) + 1)))
    try:
        out = run_ui(view, prompt, steps, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", None, None, gr.update(), None)
    return (prompt, steps, view, *out)


with gr.Blocks(title="KV cache") as demo:
    ui.header("kv_cache", __doc__)
    with stage.strip():
        view = gr.Dropdown(VIEWS, value="times", label="view", scale=2)
        prompt = gr.Textbox(DEFAULT_PROMPT, label="prompt (longer: wider gap)", lines=1, max_lines=1, scale=5)
        steps = ui.slider(KvCacheConfig, "steps", scale=2)
        go_btn = gr.Button("Generate", variant="primary", scale=1)
    status = stage.status()
    hero = stage.hero()
    with stage.more():
        with gr.Tab("cache memory") as second_tab:
            second_plot = gr.Plot(show_label=False)
    shown = gr.State(None)
    # The API, as before (hidden outputs; the page uses run_ui)
    with gr.Row(visible=False):
        api_btn, api_md = gr.Button(), gr.Markdown()
        api_plots = [gr.Plot() for _ in range(2)]
    api_btn.click(run, [prompt, steps], [*api_plots, api_md], api_name="run")
    outputs = [status, hero, second_plot, second_tab]
    go_btn.click(run_ui, [view, prompt, steps], [*outputs, shown], api_name=False)
    prompt.submit(run_ui, [view, prompt, steps], [*outputs, shown], api_name=False)
    view.input(show_view, [view, shown], outputs, api_name=False)
    demo.load(on_load, None, [prompt, steps, view, *outputs, shown], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
