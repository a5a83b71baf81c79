"""Model card: layers, heads, grouped-query attention, RoPE theta and where the parameters live."""

from __future__ import annotations

import gradio as gr

from demos import stage, ui
from toolkit import model_card, models
from toolkit.model_card import figures

MAX_NAME_CHARS = 255


def _name(value) -> str:
    """The model's name as typed: text, not empty (the card names no default), not too long."""
    name = ui.model_name(value, kind=None)
    return ui.as_text(name, "model name", max_chars=MAX_NAME_CHARS)  # longer is no hub id, nor a path the OS takes


@ui.safe(lane="cheap")
def show(model_name: str, request: gr.Request | None = None):
    c = model_card.card(ui.model(_name(model_name)))
    gqa = f"{c.heads} query heads share {c.kv_heads} key/value heads" if c.kv_heads != c.heads else f"{c.heads} heads"
    rope = f"{c.rope_theta:,.0f}" if c.rope_theta else "none (learned absolute positions)"
    text = (
        f"### {c.name} ({c.architecture}, {c.kind})\n\n"
        f"| | |\n|---|---|\n| layers | {c.layers} |\n| attention | {gqa} |\n| hidden size | {c.hidden} |\n"
        f"| head dimension | {c.head_dim} |\n| vocabulary | {c.vocab:,} |\n| context length | {c.max_positions:,} |\n"
        f"| RoPE theta | {rope} |\n| parameters | {c.total_params:,} |"
    )
    return text, figures.parameters(c, dark=ui.is_dark(request))


@ui.safe(lane="cheap")
def show_ui(model_name: str, request: gr.Request | None = None):
    """The page: (status, hero = the card: facts and where the parameters live)."""
    loaded = ui.model(_name(model_name))
    c = model_card.card(loaded)
    entry = models.EMBEDDED.get(loaded.name)
    if entry is not None and entry.gguf:
        status = (
            f"**{entry.title}**: fp32 weights dequantised from `{entry.gguf}`, the 4-bit file in the "
            f"`{entry.package.replace('_', '-')}` package."
        )
    else:
        status = f"**{ui.escape(c.name)}**: {c.kind} model, weights as stored ({c.architecture})."
    return status, stage.fill(figures.card(c, ui.is_dark(request)))


def on_load(request: gr.Request):
    """URL preset: ?model=."""
    name = ui.preset(ui.query(request), "model", models.default("causal"))
    try:
        out = show_ui(name, request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", None)
    return gr.update(value=name), *out


with gr.Blocks(title="Model card") as demo:
    ui.header("model_card", __doc__)
    with stage.strip():
        model = gr.Dropdown(
            models.choices(), value=models.default("causal"), label="model", allow_custom_value=True, scale=4
        )
        go_btn = gr.Button("Show", variant="primary", scale=1)
    status = stage.status()
    hero = stage.hero()
    # The API, as before (hidden outputs; the page uses show_ui)
    with gr.Row(visible=False):
        api_btn, api_md, api_plot = gr.Button(), gr.Markdown(), gr.Plot()
    api_btn.click(show, [model], [api_md, api_plot], api_name="show")
    go_btn.click(show_ui, [model], [status, hero], api_name=False)
    model.input(show_ui, [model], [status, hero], api_name=False)
    demo.load(on_load, None, [model, status, hero], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
