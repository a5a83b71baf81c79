"""PagedAttention: SmolLM2's KV cache in fixed-size blocks; KV memory contiguous vs paged; shared prefixes."""

from __future__ import annotations

import gradio as gr

from demos import cache, stage, ui
from toolkit import paged_attention as pa
from toolkit.paged_attention import PagedConfig, SimConfig
from toolkit.paged_attention import figures as views

VIEWS = [
    ("Memory: contiguous vs paged", "map"),
    ("Block tables", "tables"),
    ("Memory over time", "waste"),
    ("SmolLM2 on a paged cache: shared prefix", "sharing"),
]
VIEW_NAMES = [v for _, v in VIEWS]
WORKLOADS = list(pa.PRESETS)
SIM_FIELDS = ("block_size", "memory_mib", "max_len", "mean_prompt", "mean_output", "requests", "rate", "seed")
DEFAULT_STEP = 200


@cache.bytes_cached()
def cached_simulation(cfg: SimConfig) -> pa.PagingTrace:
    return pa.simulate(ui.model(), cfg)


@cache.bytes_cached()
def cached_run(system: str, users: tuple[str, ...], cfg: PagedConfig) -> pa.PagedRunTrace:
    return pa.generate(ui.model(), users, cfg, system=system)


@ui.safe
def show(
    view,
    step,
    block_size,
    memory_mib,
    max_len=256,
    mean_prompt=32,
    mean_output=64,
    requests=40,
    rate=0.3,
    seed=0,
    system=pa.DEFAULT_SYSTEM,
    user_a=pa.DEFAULT_USERS[0],
    user_b=pa.DEFAULT_USERS[1],
    new_tokens=8,
    request: gr.Request | None = None,
):
    """Returns (status markdown, figure, step slider update)."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    dark = ui.is_dark(request)
    raw = dict(zip(SIM_FIELDS, (block_size, memory_mib, max_len, mean_prompt, mean_output, requests, rate, seed)))
    if view == "sharing":
        texts = [
            ui.as_text(t, name, max_chars=2000)
            for t, name in ((system, "system prompt"), (user_a, "first request"), (user_b, "second request"))
        ]
        cfg = ui.config(PagedConfig, block_size=block_size, new_tokens=new_tokens)
        try:
            run = cached_run(texts[0], tuple(texts[1:]), cfg)
        except ValueError as err:
            raise ui.UserError(str(err)) from None
        return run_status(run), views.sharing(run, dark), gr.update()
    cfg = ui.config(SimConfig, **raw)
    try:
        sim = cached_simulation(cfg)
    except ValueError as err:
        raise ui.UserError(str(err)) from None
    last = int(sim.frame_steps[-1])
    step = ui.as_int(step, "step", 0, last)
    if view == "map":
        fig = views.memory_map(sim, step, dark)
    elif view == "tables":
        fig = views.tables(sim, step, dark)
    else:
        fig = views.waste(sim, step, dark)
    return sim_status(sim), fig, gr.update(maximum=last, step=sim.frame_every, value=step)


def sim_status(sim: pa.PagingTrace) -> str:
    w, r = sim.waste, sim.mean_running
    return (
        f"{len(sim.requests)} requests, KV memory {sim.capacity:,} tokens × {sim.bytes_per_token:,} B "
        f"(2 × layers × kv heads × head dim × 4 B). Memory holding no token: contiguous **{100 * w[0]:.0f}%**, "
        f"paged **{100 * w[1]:.1f}%**; requests at once {r[0]:.1f} vs **{r[1]:.1f}** "
        f"(paged preempted {sim.preempted[1]} to make room)."
    )


def run_status(run: pa.PagedRunTrace) -> str:
    answers = " · ".join(f"{i}: “{ui.escape(t.strip())}”" for i, t in enumerate(run.texts))
    same = "identical" if run.same else "DIFFERENT"
    return (
        f"Greedy answers on the paged cache: {answers}. Token for token **{same}** to transformers' default cache. "
        f"{run.bytes_per_block / 1024:.0f} KiB per block of {run.block_size} tokens."
    )


@ui.answers
def show_ui(*args, request: gr.Request | None = None):
    status, fig, slider = show(*args, request=request)
    return status, stage.fill(fig), slider


@ui.safe(lane="cheap")
def load_workload(name):
    """The preset's values into the simulation's widgets."""
    cfg = pa.PRESETS[ui.as_choice(name, "workload", WORKLOADS)]
    return tuple(gr.update(value=getattr(cfg, f)) for f in SIM_FIELDS)


def on_load(request: gr.Request):
    p = ui.query(request)
    view = ui.preset(p, "view", "map", str, VIEW_NAMES)
    workload = ui.preset(p, "workload", "lecture", str, WORKLOADS)
    step = ui.preset(p, "step", DEFAULT_STEP, int)
    cfg = pa.PRESETS[workload]
    values = [getattr(cfg, f) for f in SIM_FIELDS]
    try:
        out = show_ui(view, step, *values, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", None, gr.update())
    return gr.update(value=view), gr.update(value=workload), *(gr.update(value=v) for v in values), *out


with gr.Blocks(title="PagedAttention") as demo:
    ui.header("paged_attention", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="map", label="view", scale=3)
        workload_in = gr.Dropdown(WORKLOADS, value="lecture", label="workload", scale=1)
        step_in = gr.Slider(0, 900, value=DEFAULT_STEP, step=5, label="step", scale=3)
        block_in = gr.Slider(1, 64, value=SimConfig.default("block_size"), step=1, label="block size", scale=2)
        memory_in = ui.number(SimConfig, "memory_mib", scale=1)
    with stage.options():
        gr.Markdown("**Simulated request stream**")
        max_len_in = ui.number(SimConfig, "max_len")
        prompt_in = ui.number(SimConfig, "mean_prompt")
        output_in = ui.number(SimConfig, "mean_output")
        requests_in = ui.number(SimConfig, "requests")
        rate_in = ui.number(SimConfig, "rate")
        seed_in = ui.number(SimConfig, "seed")
        gr.Markdown("**SmolLM2 on a paged cache** (view: shared prefix)")
        system_in = gr.Textbox(pa.DEFAULT_SYSTEM, label="system prompt (shared)", lines=3)
        user_a_in = gr.Textbox(pa.DEFAULT_USERS[0], label="first request")
        user_b_in = gr.Textbox(pa.DEFAULT_USERS[1], label="second request")
        new_in = ui.slider(PagedConfig, "new_tokens")
        run_btn = gr.Button("Show", variant="primary")
    status = stage.status()
    hero = stage.hero()
    sim_inputs = [block_in, memory_in, max_len_in, prompt_in, output_in, requests_in, rate_in, seed_in]
    inputs = [view_in, step_in, *sim_inputs, system_in, user_a_in, user_b_in, new_in]
    outputs = [status, hero, step_in]
    run_btn.click(show_ui, inputs, outputs, api_name="show")
    view_in.input(show_ui, inputs, outputs, api_name=False)
    for widget in (step_in, block_in, new_in):
        widget.release(show_ui, inputs, outputs, api_name=False)
    for widget in (memory_in, max_len_in, prompt_in, output_in, requests_in, rate_in, seed_in):
        widget.submit(show_ui, inputs, outputs, api_name=False)
    for widget in (system_in, user_a_in, user_b_in):
        widget.submit(show_ui, inputs, outputs, api_name=False)
    workload_in.input(load_workload, [workload_in], sim_inputs, api_name=False).then(
        show_ui, inputs, outputs, api_name=False
    )
    demo.load(on_load, None, [view_in, workload_in, *sim_inputs, *outputs], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
