"""SFT loss masking: the real chat template, the labels row with -100 on the prompt, the loss of each answer token."""

from __future__ import annotations

import html

import gradio as gr

from demos import stage, ui
from toolkit import sft

DEFAULT_USER = "What is the capital of France?"
DEFAULT_ANSWER = "The capital of France is Paris."
LIMITS = sft.SftConfig()  # the demo runs the library's defaults: character and token limits


def _capture(user: str, answer: str, system: str = "") -> sft.SftTrace:
    user = ui.as_text(user, "user message", LIMITS.max_chars)
    answer = ui.as_text(answer, "assistant answer", LIMITS.max_chars)
    system = (system or "").strip()
    loaded = ui.model()
    try:
        return sft.capture(loaded, sft.Exchange(user, answer, system or None), LIMITS)
    except ValueError as err:  # too long, no chat template, no answer tokens
        raise ui.UserError(f"{loaded.name}: {err}.") from None


def _summary(t: sft.SftTrace) -> str:
    n_prompt = int((t.labels == sft.IGNORE).sum())
    return (
        f"**{len(t.tokens)} tokens**: {n_prompt} prompt tokens labelled −100, "
        f"{len(t.tokens) - n_prompt} answer tokens learnt.\n\n"
        f"mean loss on the answer **{t.loss:.4f}** = transformers' `model(ids, labels=labels).loss` "
        f"**{t.reference_loss:.4f}**; with labels = ids (no mask) it would be {t.unmasked_loss:.4f}."
    )


def _templated(t: sft.SftTrace) -> str:
    return f"<pre style='white-space: pre-wrap; font-size: 18px'>{html.escape(t.text)}</pre>"


@ui.answers
@ui.safe
def show(user: str, answer: str, system: str = "", request: gr.Request | None = None):
    t = _capture(user, answer, system)
    return _templated(t), sft.figures.labels_and_loss(t, ui.is_dark(request)), _summary(t)


# ---- the page: one view in the hero -------------------------------------------------------------------------

VIEWS = [("labels", "labels"), ("loss per answer token", "loss")]
VIEW_NAMES = [v for _, v in VIEWS]


@ui.answers
@ui.safe
def show_ui(view, user, answer, system="", request: gr.Request | None = None):
    """The page: (status, hero, the other view, the templated text)."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    t = _capture(user, answer, system)
    dark = ui.is_dark(request)
    figs = {"labels": sft.figures.labels_view(t, dark), "loss": sft.figures.answer_loss(t, dark)}
    other = "loss" if view == "labels" else "labels"
    n_prompt = int((t.labels == sft.IGNORE).sum())
    status = (
        f"{n_prompt} of {len(t.tokens)} tokens are prompt (−100, no loss). Loss on the {len(t.tokens) - n_prompt} "
        f"answer tokens **{t.loss:.4f}** = transformers' **{t.reference_loss:.4f}** (no mask: {t.unmasked_loss:.2f})."
    )
    return (
        status,
        stage.fill(figs[view]),
        figs[other],
        gr.update(label=dict((v, label) for label, v in VIEWS)[other]),
        _templated(t),
    )


def on_load(request: gr.Request):
    """URL presets: ?view=labels|loss&user=&answer=&system=."""
    q = ui.query(request)
    view = ui.preset(q, "view", "labels", str, VIEW_NAMES)
    user = ui.preset(q, "user", DEFAULT_USER)
    answer = ui.preset(q, "answer", DEFAULT_ANSWER)
    system = ui.preset(q, "system", "")
    try:
        out = show_ui(view, user, answer, system, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", None, None, gr.update(), "")
    return (user, answer, system, view, *out)


with gr.Blocks(title="SFT loss masking") as demo:
    ui.header("sft", __doc__)
    with stage.strip():
        view = gr.Dropdown(VIEWS, value="labels", label="view", scale=2)
        user = gr.Textbox(DEFAULT_USER, label="user", max_lines=1, scale=3)
        answer = gr.Textbox(DEFAULT_ANSWER, label="assistant (the answer to learn)", max_lines=1, scale=3)
        go_btn = gr.Button("Show", variant="primary", scale=1)
    with stage.options():
        system = gr.Textbox("", label="system (empty = the template's default)")
    status = stage.status()
    hero = stage.hero()
    with stage.more():
        with gr.Tab("loss per answer token") as second_tab:
            second_plot = gr.Plot(show_label=False)
        with gr.Tab("the chat template's text"):
            templated = gr.HTML()
    # The API, as before (hidden outputs; the page uses show_ui)
    with gr.Row(visible=False):
        api_btn, api_html, api_plot, api_md = gr.Button(), gr.HTML(), gr.Plot(), gr.Markdown()
    api_btn.click(show, [user, answer, system], [api_html, api_plot, api_md], api_name="show")
    inputs = [view, user, answer, system]
    outputs = [status, hero, second_plot, second_tab, templated]
    go_btn.click(show_ui, inputs, outputs, api_name=False)
    view.input(show_ui, inputs, outputs, api_name=False)  # one forward pass: cheap
    for box in (user, answer, system):
        box.submit(show_ui, inputs, outputs, api_name=False)
    demo.load(on_load, None, [user, answer, system, view, *outputs], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
