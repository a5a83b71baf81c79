"""Model card: layers, heads, grouped-query attention, RoPE theta and where the parameters live."""

from __future__ import annotations

import gradio as gr

from demos import ui
from toolkit import model_card, models
from toolkit.model_card import figures

MAX_NAME_CHARS = 255


@ui.safe
def show(model_name: str, request: gr.Request | None = None):
    name = (model_name or "").strip()
    if not name:
        raise ui.UserError("Choose a model or type a Hugging Face id / local folder.")
    name = ui.as_text(name, "model name", max_chars=MAX_NAME_CHARS)  # longer is no hub id, nor a path the OS takes
    c = model_card.card(ui.model(name))
    gqa = f"{c.heads} query heads share {c.kv_heads} key/value heads" if c.kv_heads != c.heads else f"{c.heads} heads"
    rope = f"{c.rope_theta:,.0f}" if c.rope_theta else "none (learned absolute positions)"
    text = (
        f"### {c.name} ({c.architecture}, {c.kind})\n\n"
        f"| | |\n|---|---|\n| layers | {c.layers} |\n| attention | {gqa} |\n| hidden size | {c.hidden} |\n"
        f"| head dimension | {c.head_dim} |\n| vocabulary | {c.vocab:,} |\n| context length | {c.max_positions:,} |\n"
        f"| RoPE theta | {rope} |\n| parameters | {c.total_params:,} |"
    )
    return text, figures.parameters(c, dark=ui.is_dark(request))


def on_load(request: gr.Request):
    name = ui.preset(ui.query(request), "model", models.default("causal"))
    return gr.update(value=name), *show(name, request)


with gr.Blocks(title="Model card") as demo:
    ui.header("model_card", __doc__)
    with gr.Row():
        model = gr.Dropdown(
            models.choices(), value=models.default("causal"), label="model", allow_custom_value=True, scale=3
        )
        go_btn = gr.Button("Show", variant="primary", scale=1)
    with gr.Row():
        facts = gr.Markdown()
        plot = gr.Plot(label="parameters")
    go_btn.click(show, [model], [facts, plot], api_name="show")
    demo.load(on_load, None, [model, facts, plot], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
