"""FlashAttention: one real head of SmolLM2 computed tile by tile with the online softmax, equal to eager attention."""

from __future__ import annotations

import gradio as gr

from demos import cache, stage, ui
from toolkit import flash_attention as fa
from toolkit import models
from toolkit.flash_attention import FlashConfig
from toolkit.flash_attention import figures as views

DEFAULT_TEXT = "FlashAttention never writes the attention matrix to memory: it computes it tile by tile."
VIEWS = [("Tiles, step by step", "tiles"), ("One query row", "row"), ("Memory traffic (paper's count)", "traffic")]
VIEW_NAMES = [v for _, v in VIEWS]
DEFAULTS = {"layer": 3, "head": 0, "block_q": 4, "block_k": 4, "step": 9, "row": 12}
SRAM = (16, 1024)  # KB of on-chip memory the traffic view accepts
TRAFFIC_N = 4096  # sequence length the traffic view reads its ratio at (the benchmark's largest N)


@cache.bytes_cached()
def cached_capture(name: str, prompt: str, cfg: FlashConfig) -> fa.FlashTrace:
    return fa.capture(ui.model(name), prompt, cfg)


@ui.safe
def show(
    prompt,
    view,
    layer,
    block_q,
    block_k,
    step,
    row,
    head=0,
    order="kv-outer",
    max_tokens=64,
    sram_kb=100,
    model_name="",
    request: gr.Request | None = None,
):
    """Returns (status markdown, figure, step slider update)."""
    prompt = ui.as_text(prompt)
    view = ui.as_choice(view, "view", VIEW_NAMES)
    name = ui.model_name(model_name)
    cfg = ui.config(
        FlashConfig, layer=layer, head=head, block_q=block_q, block_k=block_k, order=order, max_tokens=max_tokens
    )
    sram = ui.as_float(sram_kb, "on-chip memory (KB)")
    if not SRAM[0] <= sram <= SRAM[1]:
        raise ui.UserError(f"on-chip memory must be between {SRAM[0]} and {SRAM[1]} KB, got {sram:g}.")
    trace = cached_capture(name, prompt, cfg)
    step = ui.as_int(step, "step", 0, trace.n_tiles)
    row = ui.as_int(row, "query row", 0, trace.n - 1)
    dark = ui.is_dark(request)
    status = _status(trace, cfg, name)
    if view == "tiles":
        fig = views.tiles(trace, step, dark)
    elif view == "row":
        fig = views.row(trace, row, dark)
    else:
        d = trace.q.shape[-1]
        fig = views.traffic(d, TRAFFIC_N, sram, dark=dark)
        b_r, b_c = fa.block_sizes(d, fa.on_chip(sram))  # as the figure's title
        status += (
            f"\n\nThe traffic curve uses the paper's block sizes for {sram:g} KB on chip (B_r={b_r}, B_c={b_c}), "
            f"not the tiles view's B_r × B_c ({trace.block_q}×{trace.block_k})."
        )
    return status, fig, gr.update(maximum=trace.n_tiles, value=step)


def _status(trace: fa.FlashTrace, cfg: FlashConfig, name: str) -> str:
    notes = []
    if trace.meta.get("truncated"):
        notes.append(f"⚠️ the text has {trace.meta['n_tokens_in_text']} tokens; the first {trace.n} are used.")
    if (trace.layer, trace.head) != (cfg.layer, cfg.head):
        notes.append(f"layer/head clamped to the model's last: layer {trace.layer}, head {trace.head}.")
    skipped = int(trace.skipped.sum())
    moved, std = trace.moved(), fa.io_standard(trace.n, trace.q.shape[-1])
    win = " (tiles win once N ≫ B_c: traffic view)" if moved > std else ""
    notes.append(
        f"**{name}**, {trace.n} tokens, layer {trace.layer} head {trace.head} (kv head {trace.kv_head}): "
        f"{trace.n_tiles} tiles of {trace.block_q}×{trace.block_k}, {skipped} masked ones skipped. Tiled = eager "
        f"attention to **{trace.error:.1e}**. Slow-memory traffic {moved:,} numbers vs {std:,} for S and P{win}."
    )
    return "\n\n".join(notes)


@ui.answers
def show_ui(*args, request: gr.Request | None = None):
    status, fig, slider = show(*args, request=request)
    return status, stage.fill(fig), slider


def on_load(request: gr.Request):
    p = ui.query(request)
    prompt = ui.preset(p, "text", DEFAULT_TEXT)
    view = ui.preset(p, "view", "tiles", str, VIEW_NAMES)
    v = {k: ui.preset(p, k, d, int) for k, d in DEFAULTS.items()}
    try:
        out = show_ui(
            prompt, view, v["layer"], v["block_q"], v["block_k"], v["step"], v["row"], v["head"], request=request
        )
    except gr.Error as err:
        out = (f"⚠️ {err.message}", None, gr.update())
    widgets = [prompt, view, v["layer"], v["block_q"], v["block_k"], v["row"], v["head"]]
    return *(gr.update(value=w) for w in widgets), *out


with gr.Blocks(title="FlashAttention") as demo:
    ui.header("flash_attention", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="tiles", label="view", scale=2)
        layer_in = gr.Number(DEFAULTS["layer"], label="layer", precision=0, minimum=0, scale=1)
        bq_in = ui.number(FlashConfig, "block_q", value=DEFAULTS["block_q"], label="B_r", scale=1)
        bk_in = ui.number(FlashConfig, "block_k", value=DEFAULTS["block_k"], label="B_c", scale=1)
        step_in = gr.Slider(0, 16, value=DEFAULTS["step"], step=1, label="tiles done", scale=3)
        row_in = gr.Number(DEFAULTS["row"], label="query row", precision=0, minimum=0, scale=1)
    with stage.options():
        text_in = gr.Textbox(DEFAULT_TEXT, label="text", lines=3)
        run_btn = gr.Button("Run this text", variant="primary")
        head_in = gr.Number(DEFAULTS["head"], label="head", precision=0, minimum=0)
        order_in = ui.dropdown(FlashConfig, "order", label="loop order")
        max_in = ui.number(FlashConfig, "max_tokens")
        sram_in = gr.Number(100, label="on-chip memory (KB, traffic view)", minimum=SRAM[0], maximum=SRAM[1])
        model_in = gr.Dropdown(models.choices(), value=models.default("causal"), label="model", allow_custom_value=True)
    status = stage.status()
    hero = stage.hero()
    inputs = [text_in, view_in, layer_in, bq_in, bk_in, step_in, row_in, head_in, order_in, max_in, sram_in, model_in]
    outputs = [status, hero, step_in]
    run_btn.click(show_ui, inputs, outputs, api_name="show")
    text_in.submit(show_ui, inputs, outputs, api_name=False)
    for widget in (view_in, order_in):
        widget.input(show_ui, inputs, outputs, api_name=False)
    step_in.release(show_ui, inputs, outputs, api_name=False)
    for widget in (layer_in, bq_in, bk_in, row_in, head_in, max_in, sram_in):
        widget.submit(show_ui, inputs, outputs, api_name=False)
    demo.load(on_load, None, [text_in, view_in, layer_in, bq_in, bk_in, row_in, head_in, *outputs], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
