"""SFT loss masking: the real chat template, the labels row with -100 on the prompt, the loss of each answer token."""

from __future__ import annotations

import html

import gradio as gr

from demos import ui
from toolkit import sft

DEFAULT_USER = "What is the capital of France?"
DEFAULT_ANSWER = "The capital of France is Paris."
LIMITS = sft.SftConfig()  # the demo runs the library's defaults: character and token limits


@ui.safe
def show(user: str, answer: str, system: str = "", request: gr.Request | None = None):
    user = ui.as_text(user, "user message", LIMITS.max_chars)
    answer = ui.as_text(answer, "assistant answer", LIMITS.max_chars)
    system = (system or "").strip()
    loaded = ui.model()
    try:
        t = sft.capture(loaded, sft.Exchange(user, answer, system or None), LIMITS)
    except ValueError as err:  # too long, no chat template, no answer tokens
        raise ui.UserError(f"{loaded.name}: {err}.") from None
    n_prompt = int((t.labels == sft.IGNORE).sum())
    md = (
        f"**{len(t.tokens)} tokens**: {n_prompt} prompt tokens labelled −100, "
        f"{len(t.tokens) - n_prompt} answer tokens learnt.\n\n"
        f"mean loss on the answer **{t.loss:.4f}** = transformers' `model(ids, labels=labels).loss` "
        f"**{t.reference_loss:.4f}**; with labels = ids (no mask) it would be {t.unmasked_loss:.4f}."
    )
    templated = f"<pre style='white-space: pre-wrap; font-size: 16px'>{html.escape(t.text)}</pre>"
    return templated, sft.figures.labels_and_loss(t, ui.is_dark(request)), md


def on_load(request: gr.Request):
    """URL presets: ?user=&answer=&system=."""
    q = ui.query(request)
    user = ui.preset(q, "user", DEFAULT_USER)
    answer = ui.preset(q, "answer", DEFAULT_ANSWER)
    system = ui.preset(q, "system", "")
    return (user, answer, system, *show(user, answer, system, request))


with gr.Blocks(title="SFT loss masking") as demo:
    ui.header("sft", __doc__)
    with gr.Row():
        user = gr.Textbox(DEFAULT_USER, label="user", scale=2)
        answer = gr.Textbox(DEFAULT_ANSWER, label="assistant (the answer to learn)", scale=2)
        system = gr.Textbox("", label="system (empty = the template's default)", scale=2)
        go_btn = gr.Button("Compute loss", variant="primary", scale=1)
    with gr.Row():
        templated = gr.HTML(label="the chat template's output")
        summary = gr.Markdown()
    plot = gr.Plot(label="labels and loss")
    go_btn.click(show, [user, answer, system], [templated, plot, summary], api_name="show")
    demo.load(on_load, None, [user, answer, system, templated, plot, summary], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
