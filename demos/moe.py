"""Mixture of experts: which expert each token goes to, how balanced the load is, and how the router learned."""

from __future__ import annotations

import functools

import gradio as gr

from demos import ui
from toolkit import moe
from toolkit.moe import PRESETS, MoeConfig, runs
from toolkit.moe import figures as views

STEPS = PRESETS["lecture"].steps
DEFAULT_TEXT = (
    "def mean(xs):\n    return sum(xs) / len(xs)\n\n"
    "The mean of 3, 5 and 10 is 6. A router sends every token to two of eight experts."
)


def _layer(value, n_layers: int) -> int:
    layer = ui.as_int(value, "layer")
    if not 0 <= layer < n_layers:
        raise ui.UserError(f"Unknown layer {layer}: this model has layers 0 to {n_layers - 1}.")
    return layer


def _run(value) -> str:
    return ui.as_choice((value or "balanced").strip(), "run", runs.RUNS)


@ui.safe
def route(text: str, run: str, layer, top_k, request: gr.Request | None = None):
    """Route the text through the trained MoE model: summary + six views."""
    text = ui.as_text(text)
    run = _run(run)
    trained = runs.model(run).cfg
    layer = _layer(layer, trained.n_layers)
    k = ui.config(MoeConfig, trained, top_k=top_k).top_k  # 1 <= k <= n_experts: MoeConfig's range and checks
    trace = moe.capture(run, text, top_k=k)
    dark = ui.is_dark(request)
    note = f" (the text was cut to its first {len(trace.tokens)} bytes)" if trace.truncated else ""
    loss = ", ".join(f"{x:.2f}" for x in trace.balance_loss)
    summary = (
        f"**{len(trace.tokens)} byte tokens**{note}, {trained.n_experts} experts, top-{k}"
        f"{' (trained with k=' + str(trained.top_k) + ')' if k != trained.top_k else ''}, "
        f"{trained.shared_experts} shared expert(s), {trained.score} router. Balance loss per layer: {loss} "
        f"(perfectly balanced = {k})."
    )
    nxt = min(layer + 1, trained.n_layers - 1)
    return (
        summary,
        views.token_experts(trace, layer, dark),
        views.router_heatmap(trace, layer, dark),
        views.expert_load(trace, layer, dark),
        views.load_heatmap(trace, dark),
        views.coactivation(trace, layer, nxt, dark),
        views.shared_vs_routed(trace, dark),
    )


@ui.safe
def replay(step, layer, run: str = "balanced", request: gr.Request | None = None):
    """Training replay at a step: load and balance loss over training for every run, the probe text's routing."""
    reps = {name: runs.replay(name) for name in runs.RUNS}
    run = _run(run)
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
    return views.replay(reps, step, layer, dark), views.replay_tokens(reps[run], step, layer, dark), "\n".join(lines)


@functools.lru_cache(maxsize=1)
def _counts():
    count = moe.params
    return count.count_ours(runs.model("balanced").cfg), count.count_hf(count.mixtral_8x7b_config(), "Mixtral 8x7B")


@ui.safe
def parameters(request: gr.Request | None = None):
    """Total vs active parameters of this model and of Mixtral 8x7B (counted from its config)."""
    counts = _counts()
    text = "\n".join(
        f"- **{c.name}**: {c.total:,} total, {c.active:,} active per token ({c.active_share:.0%})" for c in counts
    )
    return views.parameters(counts, ui.is_dark(request)), text


def on_load(request: gr.Request):
    q = ui.query(request)
    text = ui.preset(q, "text", DEFAULT_TEXT)
    run = ui.preset(q, "run", "balanced", str, list(runs.RUNS))
    layer = ui.preset(q, "layer", 0, int)
    k = ui.preset(q, "k", MoeConfig.default("top_k"), int)
    step = ui.preset(q, "step", STEPS, int)
    return (text, run, layer, k, step, *route(text, run, layer, k, request), *replay(step, layer, run, request))


with gr.Blocks(title="Mixture of experts") as demo:
    ui.header("moe", __doc__)
    with gr.Row():
        text_in = gr.Textbox(
            DEFAULT_TEXT,
            label=f"text (bytes are the tokens; first {PRESETS['lecture'].block_size} are routed)",
            lines=4,
            scale=4,
        )
        with gr.Column(scale=1):
            run_in = gr.Dropdown(list(runs.RUNS), value="balanced", label="trained run")
            layer_in = gr.Number(0, label="layer", precision=0)
            k_in = ui.number(MoeConfig, "top_k")
            go_btn = gr.Button("Route", variant="primary")
    summary = gr.Markdown()
    with gr.Tab("Tokens by expert"):
        tokens_plot = gr.HTML(padding=True)
    with gr.Tab("Router probabilities"):
        router_plot = gr.Plot()
    with gr.Tab("Load"):
        load_plot = gr.Plot()
        load_map = gr.Plot()
    with gr.Tab("Co-activation"):
        coact_plot = gr.Plot()
    with gr.Tab("Shared vs routed"):
        shared_plot = gr.Plot()
    with gr.Tab("Training replay"):
        step_in = gr.Slider(0, STEPS, value=STEPS, step=PRESETS["lecture"].snapshot_every, label="training step")
        replay_plot = gr.Plot()
        probe_plot = gr.HTML(padding=True)
        replay_table = gr.Markdown()
    with gr.Tab("Total vs active parameters"):
        params_btn = gr.Button("Count parameters")
        params_plot = gr.Plot()
        params_text = gr.Markdown()
    route_out = [summary, tokens_plot, router_plot, load_plot, load_map, coact_plot, shared_plot]
    go_btn.click(route, [text_in, run_in, layer_in, k_in], route_out, api_name="route")
    step_in.release(replay, [step_in, layer_in, run_in], [replay_plot, probe_plot, replay_table], api_name="replay")
    params_btn.click(parameters, None, [params_plot, params_text], api_name="parameters")
    presets = [text_in, run_in, layer_in, k_in, step_in]
    demo.load(on_load, None, [*presets, *route_out, replay_plot, probe_plot, replay_table], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
