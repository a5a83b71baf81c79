"""Mixture of experts: which expert each token goes to, how balanced the load is, and how the router learned."""

from __future__ import annotations

import functools
import threading

import gradio as gr

from demos import stage, ui
from toolkit import arch, models, moe
from toolkit.moe import PRESETS, MoeConfig, runs
from toolkit.moe import figures as views

STEPS = PRESETS["lecture"].steps
DEFAULT_TEXT = (
    "def mean(xs):\n    return sum(xs) / len(xs)\n\n"
    "The mean of 3, 5 and 10 is 6. A router sends every token to two of eight experts."
)
# What the hero shows (the ?view= preset); each view has its own hero component, only the chosen one is visible.
VIEWS = [
    ("Tokens by top-1 expert", "tokens"),
    ("Router probabilities", "router"),
    ("Expert load, one layer", "load"),
    ("Expert load, every layer", "layers"),
    ("Co-activation of neighbouring layers", "coactivation"),
    ("Shared vs routed experts", "shared"),
    ("The router learning (training replay)", "replay"),
    ("Total vs active parameters", "parameters"),
]
VIEW_NAMES = [v for _, v in VIEWS]
ROUTE_VIEWS = VIEW_NAMES[:6]  # in the order route() returns them


def _layer(value, n_layers: int) -> int:
    layer = ui.as_int(value, "layer")
    if not 0 <= layer < n_layers:
        raise ui.UserError(f"Unknown layer {layer}: this model has layers 0 to {n_layers - 1}.")
    return layer


def checkpoints() -> list[str]:
    """Transformers MoE models this server holds (`lecture serve --model FOLDER`: Mixtral, Qwen-MoE, OLMoE,
    DeepSeek-V3 folders), offered beside the committed runs."""
    found = []
    for name in models.loaded_names():
        try:
            if arch.experts(models.load(name).model.config):
                found.append(name)
        except Exception:  # a model that cannot be had now is simply not offered
            continue
    return found


def run_choices() -> list[str]:
    return [*runs.RUNS, *checkpoints()]


def _run(value) -> str:
    return ui.as_choice((value or "balanced").strip(), "run", run_choices())


def _route_checkpoint(text: str, name: str, layer) -> tuple:
    """A transformers MoE checkpoint: its own router and top-k (no k to change), the same views."""
    loaded = ui.model(name)
    trace = moe.capture(loaded, text)
    layer = _layer(layer, trace.probs.shape[0])
    n_experts = trace.probs.shape[2]
    note = f" (the text was cut to its first {len(trace.tokens)} tokens)" if trace.truncated else ""
    loss = ", ".join(f"{x:.2f}" for x in trace.balance_loss[:8]) + (" ..." if len(trace.balance_loss) > 8 else "")
    summary = (
        f"**{ui.escape(name)}**: {len(trace.tokens)} tokens{note} · {n_experts} experts, top-{trace.top_k} "
        f"(the model's own) · {trace.score} router · balance loss per layer {loss} (balanced = {trace.top_k})"
    )
    return trace, layer, summary


def _view(value) -> str:
    return value if value in VIEW_NAMES else "tokens"


@ui.safe(lane="cheap")
def route(text: str, run: str, layer, top_k, request: gr.Request | None = None):
    """Route the text through the trained MoE model: summary + six views (tokens HTML first: the hero)."""
    text = ui.as_text(text)
    run = _run(run)
    if run not in runs.RUNS:  # a transformers checkpoint the server was started with
        trace, layer, summary = _route_checkpoint(text, run, layer)
        return _views(trace, layer, summary, ui.is_dark(request))
    trained = runs.model(run).cfg
    layer = _layer(layer, trained.n_layers)
    k = ui.config(MoeConfig, trained, top_k=top_k).top_k  # 1 <= k <= n_experts: MoeConfig's range and checks
    trace = moe.capture(run, text, top_k=k)
    dark = ui.is_dark(request)
    note = f" (the text was cut to its first {len(trace.tokens)} bytes)" if trace.truncated else ""
    loss = ", ".join(f"{x:.2f}" for x in trace.balance_loss)
    summary = (
        f"**{len(trace.tokens)} byte tokens**{note} · {trained.n_experts} experts, top-{k}"
        f"{' (trained with k=' + str(trained.top_k) + ')' if k != trained.top_k else ''} · "
        f"{trained.shared_experts} shared · {trained.score} router · balance loss per layer {loss} "
        f"(balanced = {k})"
    )
    return _views(trace, layer, summary, dark)


def _views(trace, layer: int, summary: str, dark: bool) -> tuple:
    last = trace.probs.shape[0] - 1
    a, b = (layer, layer + 1) if layer < last else (max(layer - 1, 0), layer)  # the last layer: with the one before
    return (
        summary,
        views.token_experts(trace, layer, dark),
        stage.fill(views.router_heatmap(trace, layer, dark)),
        stage.fill(views.expert_load(trace, layer, dark)),
        stage.fill(views.load_heatmap(trace, dark)),
        stage.fill(views.coactivation(trace, a, b, dark)),
        stage.fill(views.shared_vs_routed(trace, dark)),
    )


@ui.safe(lane="cheap")
def replay(step, layer, run: str = "balanced", request: gr.Request | None = None):
    """Training replay at a step: load and balance loss over training for every run, the probe text's routing."""
    reps = {name: runs.replay(name) for name in runs.RUNS}
    run = _run(run)
    run = run if run in runs.RUNS else "balanced"  # a checkpoint has no training replay: show the committed one
    cfg = MoeConfig.from_dict(reps[run]["config"])
    layer = _layer(layer, cfg.n_layers)
    step = ui.as_int(step, "step", 0, cfg.steps)
    lines = [
        "| run | step | LM loss | largest share per layer | MI(class; expert) bits per layer | shuffled |",
        "|---|---|---|---|---|---|",
    ]
    for name, rep in reps.items():
        s = runs.snapshot(rep, step)
        lines.append(
            f"| {name} | {s['step']} | {s['lm_loss']:.2f} | {', '.join(f'{max(x):.2f}' for x in s['load'])} | "
            f"{', '.join(f'{x:.3f}' for x in s['mi'])} | {', '.join(f'{x:.3f}' for x in s['mi_shuffled'])} |"
        )
    dark = ui.is_dark(request)
    return (
        stage.fill(views.replay(reps, step, layer, dark)),
        views.replay_tokens(reps[run], step, layer, dark),
        "\n".join(lines),
    )


_counting = threading.Lock()


def _counts():
    """Counted once. One at a time: two first requests at once (a view change can send two) would import
    transformers' Mixtral config in two threads, and its lazy import then fails in one of them."""
    with _counting:
        return _counted()


@functools.lru_cache(maxsize=1)
def _counted():
    count = moe.params
    return count.count_ours(runs.model("balanced").cfg), count.count_hf(count.mixtral_8x7b_config(), "Mixtral 8x7B")


@ui.safe(lane="cheap")
def parameters(request: gr.Request | None = None):
    """Total vs active parameters of this model and of Mixtral 8x7B (counted from its config)."""
    counts = _counts()
    text = "\n".join(
        f"- **{c.name}**: {c.total:,} total, {c.active:,} active per token ({c.active_share:.0%})" for c in counts
    )
    return stage.fill(views.parameters(counts, ui.is_dark(request))), text


def _shown(view: str) -> list:
    """Visibility of the heroes (one per view) and of the tabs under the hero, and which tab is open."""
    return [
        *(gr.update(visible=v == view) for v in VIEW_NAMES),
        gr.update(visible=view == "replay"),  # tab: the probe text at that step
        gr.update(visible=view == "replay"),  # tab: every run at that step
        gr.update(visible=view == "parameters"),  # tab: the counts
        gr.update(selected="counts" if view == "parameters" else "probe"),  # the tabs: open the first shown
    ]


@ui.safe(lane="cheap")
def show_view(view, request: gr.Request | None = None):
    """The view dropdown: show that view's hero (the parameter counts are computed when first asked for)."""
    view = _view(view)
    shown, text = _shown(view), gr.skip()
    if view == "parameters":
        shown[VIEW_NAMES.index("parameters")]["value"], text = parameters(request)
    return *shown, gr.update(visible=view == "replay"), text  # the step slider only moves the replay


def on_load(request: gr.Request):
    """URL presets: ?view=&text=&run=&layer=&k=&step=. Returns the presets, the summary, the probe text and the
    table of the replay, the parameter counts, then one update (value and visibility) per hero and tab."""
    q = ui.query(request)
    text = ui.preset(q, "text", DEFAULT_TEXT)
    run = ui.preset(q, "run", "balanced", str, run_choices())
    layer = ui.preset(q, "layer", 0, int)
    k = ui.preset(q, "k", MoeConfig.default("top_k"), int)
    step = ui.preset(q, "step", STEPS, int)
    view = ui.preset(q, "view", "tokens", str, VIEW_NAMES)
    try:
        routed = route(text, run, layer, k, request)
    except gr.Error as err:  # an unusable preset (layer 9, k 0, a text too long): say so, show the defaults
        text, layer, k = DEFAULT_TEXT, 0, MoeConfig.default("top_k")
        routed = route(text, run, layer, k, request)
        routed = (f"⚠️ {err.message} Showing the defaults.\n\n{routed[0]}", *routed[1:])
    replayed = replay(step, layer, run, request)
    counts = parameters(request) if view == "parameters" else (None, "")
    heroes = _shown(view)
    for update, value in zip(heroes, [*routed[1:], replayed[0], counts[0]]):  # in VIEW_NAMES' order
        if value is not None:
            update["value"] = value
    return (
        text,
        gr.update(choices=run_choices(), value=run),
        layer,
        k,
        gr.update(value=step, visible=view == "replay"),
        view,
        routed[0],
        *replayed[1:],
        counts[1],
        *heroes,
    )


with gr.Blocks(title="Mixture of experts") as demo:
    ui.header("moe", __doc__)
    with stage.strip():
        text_in = gr.Textbox(
            DEFAULT_TEXT,
            label=f"text (bytes are tokens; first {PRESETS['lecture'].block_size} routed; Enter)",
            lines=1,
            max_lines=2,  # a textarea: an <input> would drop the text's line breaks (Enter still routes)
            scale=3,
        )
        view_in = gr.Dropdown(VIEWS, value="tokens", label="view", scale=2, min_width=260)
        run_in = gr.Dropdown(run_choices(), value="balanced", label="trained run", scale=1, min_width=170)
        layer_in = gr.Slider(0, PRESETS["lecture"].n_layers - 1, value=0, step=1, label="layer", scale=1)
        k_in = gr.Slider(
            1, PRESETS["lecture"].n_experts, value=MoeConfig.default("top_k"), step=1, label="top-k", scale=1
        )
        step_in = gr.Slider(
            0,
            STEPS,
            value=STEPS,
            step=PRESETS["lecture"].snapshot_every,
            label="training step",
            visible=False,
            scale=2,
        )
    summary = stage.status()
    tokens_html = stage.hero_html()
    router_plot = stage.hero(visible=False)
    load_plot = stage.hero(visible=False)
    load_map = stage.hero(visible=False)
    coact_plot = stage.hero(visible=False)
    shared_plot = stage.hero(visible=False)
    replay_plot = stage.hero(visible=False)
    params_plot = stage.hero(visible=False)
    with stage.more() as more_tabs:
        with gr.Tab("the probe text at this step", visible=False, id="probe") as probe_tab:
            probe_html = gr.HTML(padding=True)
        with gr.Tab("every run at this step", visible=False, id="table") as table_tab:
            replay_table = gr.Markdown()
        with gr.Tab("parameter counts", visible=False, id="counts") as params_tab:
            params_text = gr.Markdown()
            params_btn = gr.Button("Count parameters")
    heroes = [tokens_html, router_plot, load_plot, load_map, coact_plot, shared_plot, replay_plot, params_plot]
    shown = [*heroes, probe_tab, table_tab, params_tab, more_tabs]
    route_out = [summary, tokens_html, router_plot, load_plot, load_map, coact_plot, shared_plot]
    replay_out = [replay_plot, probe_html, replay_table]
    # cheap (a ~10 ms forward of the tiny MoE and its views): every control re-renders, no button
    gr.on(
        [text_in.submit, run_in.input, layer_in.release, k_in.release],
        route,
        [text_in, run_in, layer_in, k_in],
        route_out,
        api_name="route",
    )
    gr.on(
        [step_in.release, run_in.input, layer_in.release],
        replay,
        [step_in, layer_in, run_in],
        replay_out,
        api_name="replay",
    )
    params_btn.click(parameters, None, [params_plot, params_text], api_name="parameters")
    view_in.input(show_view, [view_in], [*shown, step_in, params_text], api_name=False)
    presets = [text_in, run_in, layer_in, k_in, step_in, view_in]
    demo.load(on_load, None, [*presets, summary, probe_html, replay_table, params_text, *shown], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
