"""Mixture of experts: which expert each token goes to, how balanced the load is, and how the router learned."""
from __future__ import annotations

import functools

import gradio as gr

from toolkit import ui
from toolkit.moe import PRESETS, capture, runs
from toolkit.plots import moe as views

TITLE = "Mixture of experts"
ORDER = 60
STEPS = PRESETS["lecture"].steps
DEFAULT_TEXT = ("def mean(xs):\n    return sum(xs) / len(xs)\n\n"
                "The mean of 3, 5 and 10 is 6. A router sends every token to two of eight experts.")


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
    model = runs.model(_run(run))
    cfg = model.cfg
    layer = _layer(layer, cfg.n_layers)
    k = ui.as_int(top_k, "top-k")
    if not 1 <= k <= cfg.n_experts:
        raise ui.UserError(f"top-k must be between 1 and {cfg.n_experts} (the number of experts), got {k}.")
    trace = capture.trace(model, text, top_k=k, model_name=f"moe/{run}")
    dark = ui.is_dark(request)
    cut = len(text.encode("utf-8")) - len(trace.tokens)
    note = f" (the text was cut to its first {cfg.block_size} bytes)" if cut > 0 else ""
    loss = ", ".join(f"{x:.2f}" for x in trace.balance_loss)
    summary = (f"**{len(trace.tokens)} byte tokens**{note}, {cfg.n_experts} experts, top-{k}"
               f"{' (trained with k=' + str(cfg.top_k) + ')' if k != cfg.top_k else ''}, "
               f"{cfg.shared_experts} shared expert(s), {cfg.score} router. Balance loss per layer: {loss} "
               f"(perfectly balanced = {k}).")
    nxt = min(layer + 1, cfg.n_layers - 1)
    return (summary, views.token_experts(trace, layer, dark), views.router_heatmap(trace, layer, dark),
            views.expert_load(trace, layer, dark), views.load_heatmap(trace, dark),
            views.coactivation(trace, layer, nxt, dark), views.shared_vs_routed(trace, dark))


@ui.safe
def replay(step, layer, run: str = "balanced", request: gr.Request | None = None):
    """Training replay at a step: load and balance loss over training for every run, the probe text's routing."""
    reps = {name: runs.replay(name) for name in runs.RUNS}
    run = _run(run)
    cfg = reps[run]["config"]
    layer = _layer(layer, cfg["n_layers"])
    step = ui.as_int(step, "step", 0, cfg["steps"])
    lines = ["| run | step | LM loss | largest share per layer | MI(class; expert) bits per layer | shuffled |",
             "|---|---|---|---|---|---|"]
    for name, rep in reps.items():
        s = min(rep["snapshots"], key=lambda s: abs(s["step"] - step))
        lines.append(f"| {name} | {s['step']} | {s['lm_loss']:.2f} | {', '.join(f'{max(x):.2f}' for x in s['load'])} | "
                     f"{', '.join(f'{x:.3f}' for x in s['mi'])} | {', '.join(f'{x:.3f}' for x in s['mi_shuffled'])} |")
    dark = ui.is_dark(request)
    return views.replay(reps, step, layer, dark), views.replay_tokens(reps[run], step, layer, dark), "\n".join(lines)


@functools.lru_cache(maxsize=1)
def _counts():
    from toolkit.moe import params

    return params.count_ours(runs.model("balanced").cfg), params.count_hf(params.mixtral_8x7b_config(), "Mixtral 8x7B")


@ui.safe
def parameters(request: gr.Request | None = None):
    """Total vs active parameters of this model and of Mixtral 8x7B (counted from its config)."""
    counts = _counts()
    text = "\n".join(f"- **{c.name}**: {c.total:,} total, {c.active:,} active per token ({c.active_share:.0%})"
                     for c in counts)
    return views.parameters(counts, ui.is_dark(request)), text


def on_load(request: gr.Request):
    q = ui.query(request)
    text = ui.preset(q, "text", DEFAULT_TEXT)
    run = ui.preset(q, "run", "balanced", str, list(runs.RUNS))
    layer = ui.preset(q, "layer", 0, int)
    k = ui.preset(q, "k", 2, int)
    step = ui.preset(q, "step", STEPS, int)
    return (text, run, layer, k, step, *route(text, run, layer, k, request), *replay(step, layer, run, request))


with gr.Blocks(title=TITLE) as demo:
    ui.header(TITLE, __doc__)
    with gr.Row():
        text_in = gr.Textbox(DEFAULT_TEXT, label="text (bytes are the tokens; first 256 are routed)", lines=4, scale=4)
        with gr.Column(scale=1):
            run_in = gr.Dropdown(list(runs.RUNS), value="balanced", label="trained run")
            layer_in = gr.Number(0, label="layer", precision=0)
            k_in = gr.Number(2, label="top-k", precision=0)
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
    demo.load(on_load, None, [*presets, *route_out, replay_plot, probe_plot, replay_table],
              api_name=False)
