"""Prompt and context engineering: the context window as a token budget (system prompt, tool schemas, retrieved
passages, history, question) with what is dropped when it overflows, and zero-shot vs few-shot accuracy."""

from __future__ import annotations

import functools

import gradio as gr

from demos import stage, ui
from toolkit import context as cx
from toolkit.context import figures as views
from toolkit.context.record import ASSET, COMMAND
from toolkit.trace import TraceError

VIEWS = [("the window as a budget", "budget"), ("zero-shot vs few-shot", "fewshot")]
VIEW_NAMES = [v for _, v in VIEWS]


@functools.cache
def recorded() -> cx.FewShotTrace:
    try:
        return cx.FewShotTrace.load(ASSET)
    except TraceError as err:
        raise ui.UserError(f"The recorded measurement cannot be read ({err}). Re-record it: `{COMMAND}`.") from None


def _budget_note(t: cx.BudgetTrace) -> str:
    gone = t.dropped()
    cut = ", ".join(p["name"] for p in gone) if gone else "nothing"
    verdict = "fits" if t.fits else "**does not fit**: the system prompt, tools and question alone are too long"
    return f"{t.total} tokens + {t.reserve} for the answer in a window of {t.window}: {verdict}. Dropped: {cut}."


def _fewshot_note(t: cx.FewShotTrace) -> str:
    parts = []
    for k in t.shots:
        acc, lo, hi, right, n = t.accuracy(k)
        parts.append(f"**{k}-shot** {100 * acc:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}]")
    return " · ".join(parts) + f" · recorded by `{COMMAND}`"


@ui.safe(lane="cheap")  # the tokenizer only (no forward pass) or the recorded accuracy
def show(view, question, window, passages, history, reserve, request: gr.Request | None = None):
    """(status, hero plot) of the budget (computed now, on the real tokenizer) or the recorded few-shot accuracy."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    dark = ui.is_dark(request)
    if view == "fewshot":
        return _fewshot(dark)
    text = ui.as_text(question, "question", cx.ContextConfig.default("max_question_chars"))
    cfg = ui.config(cx.ContextConfig, window=window, passages=passages, history=history, reserve=reserve)
    trace = cx.budget(ui.model(), text, cfg)
    return _budget_note(trace), stage.fill(views.budget(trace, dark))


@functools.lru_cache(maxsize=2)
def _fewshot(dark: bool):
    trace = recorded()
    return _fewshot_note(trace), stage.fill(views.fewshot(trace, dark))


def on_load(request: gr.Request):
    p = ui.query(request)
    view = ui.preset(p, "view", "budget", str, VIEW_NAMES)
    question = ui.preset(p, "question", cx.DEFAULT_QUESTION)
    window = ui.preset(p, "window", cx.ContextConfig.default("window"), int)
    passages = ui.preset(p, "passages", cx.ContextConfig.default("passages"), int)
    history = ui.preset(p, "history", cx.ContextConfig.default("history"), int)
    reserve = ui.preset(p, "reserve", cx.ContextConfig.default("reserve"), int)
    values = (view, question, window, passages, history, reserve)
    try:
        out = show(*values, request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", None)
    return *(gr.update(value=v) for v in values), *out


with gr.Blocks(title="Prompt and context engineering") as demo:
    ui.header("context", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="budget", label="view", scale=2)
        question_in = gr.Textbox(cx.DEFAULT_QUESTION, label="question", lines=1, max_lines=1, scale=4)
        window_in = ui.slider(cx.ContextConfig, "window", scale=2)
        passages_in = ui.slider(cx.ContextConfig, "passages", scale=1)
        history_in = ui.slider(cx.ContextConfig, "history", scale=1)
    status = stage.status()
    plot = stage.hero()
    with stage.options():
        reserve_in = ui.slider(cx.ContextConfig, "reserve")
        gr.Markdown(
            "Passages: the Python reference topics sharing most words with the question. Dropping order: the "
            "oldest turn first, then the lowest-ranked passage; the system prompt, tool schemas and question stay. "
            "Few-shot: 48 bundled reviews, the label read from the next-token log-probabilities of ' positive' "
            f"and ' negative'. Re-record: `{COMMAND}`."
        )
    inputs = [view_in, question_in, window_in, passages_in, history_in, reserve_in]
    view_in.input(show, inputs, [status, plot], api_name="show")
    question_in.submit(show, inputs, [status, plot], api_name=False)
    for widget in (window_in, passages_in, history_in, reserve_in):
        widget.release(show, inputs, [status, plot], api_name=False)
    demo.load(on_load, None, [*inputs, status, plot], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
