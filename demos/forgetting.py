"""Catastrophic forgetting, measured: SmolLM2 fine-tuned on a narrow task five ways, task loss vs general
perplexity at every step, and what it now says to general prompts."""

from __future__ import annotations

import functools
import threading

import gradio as gr

from demos import stage, ui
from toolkit import forgetting as fg
from toolkit import turns
from toolkit.forgetting import figures as views
from toolkit.forgetting.record import ASSET, COMMAND
from toolkit.trace import TraceError

VIEWS = [("task loss and general perplexity", "curves"), ("answers before and after", "answers")]
VIEW_NAMES = [v for _, v in VIEWS]
LIVE_METHODS = [(fg.METHOD_TITLES[m], m) for m in fg.METHODS]
LIVE_MAX_STEPS = 20
_live_stop: list[threading.Event] = []


@functools.cache
def recorded() -> fg.ForgettingTrace:
    try:
        return fg.ForgettingTrace.load(ASSET)
    except TraceError as err:
        raise ui.UserError(f"The recorded runs cannot be read ({err}). Re-record them: `{COMMAND}`.") from None


def summary(trace: fg.ForgettingTrace) -> str:
    """One short line (the figure has the numbers; the drawer has the command)."""
    before = trace.summary(trace.methods[0])["ppl_before"]
    worst = max(trace.methods, key=lambda m: trace.summary(m)["ppl_rise_pct"])
    rise = trace.summary(worst)["ppl_rise_pct"]
    return (
        f"{trace.steps} recorded steps · general perplexity {before:.1f} at the start · "
        f"most forgetting: **{fg.METHOD_TITLES[worst]}** ({rise:+.0f} %)"
    )


@ui.safe(lane="cheap")  # recorded runs
def show(view, request: gr.Request | None = None):
    """(status, hero plot update, hero html update) of the recorded runs."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    return _views(view, ui.is_dark(request))


@ui.memo(maxsize=8)
def _views(view: str, dark: bool):
    trace = recorded()
    if view == "answers":
        return summary(trace), gr.update(visible=False), gr.update(value=views.answers(trace, dark), visible=True)
    fig = stage.fill(views.curves(trace, dark))
    return summary(trace), gr.update(value=fig, visible=True), gr.update(visible=False)


@ui.safe
def live(method, steps, request: gr.Request | None = None):
    """Train one method live on a private copy of the model; each step streams in beside the recorded runs."""
    method = ui.as_choice(method, "method", list(fg.METHODS))
    cfg = ui.config(fg.ForgettingConfig, base=fg.preset(method), steps=ui.as_int(steps, "steps", 1, LIVE_MAX_STEPS))
    dark = ui.is_dark(request)
    train = ui.training()  # the server's one training slot, shared with GRPO, LoRA and DPO
    train.__enter__()  # a second run is told at once
    stop = threading.Event()
    _live_stop[:] = [stop]
    try:
        yield f"Starting {fg.METHOD_TITLES[method]} for {cfg.steps} steps on a private copy ...", gr.skip(), gr.skip()
        trace, history, model = recorded(), [], None
        session = getattr(ui.current_request(request), "session_hash", None)
        run = fg.stream(ui.model(), cfg, stop)  # step 0 (before training), then cfg.steps steps
        steps = turns.each_in(lambda: ui.slot(session), run, count=cfg.steps + 1, stop=stop.is_set)  # a slot a step
        for step, trained in steps:
            history.append(step)
            model = trained
            extra = {
                "method": method,
                "task_loss": [s.task_loss for s in history],
                "general_ppl": [s.general_ppl for s in history],
            }
            note = (
                f"**live {fg.METHOD_TITLES[method]}**, step {step.step}/{cfg.steps}: task loss {step.task_loss:.2f}, "
                f"general perplexity {step.general_ppl:.1f} ({step.seconds:.0f} s)"
            )
            yield note, gr.update(value=stage.fill(views.curves(trace, dark, extra)), visible=True), gr.skip()
        if history and not stop.is_set():
            with ui.slot(session):
                said = fg.answers(ui.model(), model, fg.PROMPTS[:1])[0]
            yield f"{note} · asked *{fg.PROMPTS[0]}* it now says: {said!r}", gr.skip(), gr.skip()
    except gr.Error:
        raise
    except Exception as err:
        ui.log.exception("live forgetting run failed")
        raise ui.UserError(f"The live run failed: {type(err).__name__}: {str(err)[:300]}") from err
    finally:
        stop.set()
        train.__exit__(None, None, None)


@ui.safe(lane="cheap")  # sets a flag
def stop_live():
    for ev in _live_stop:
        ev.set()
    return "Stopped."


def on_load(request: gr.Request):
    view = ui.preset(ui.query(request), "view", "curves", str, VIEW_NAMES)
    try:
        out = show(view, request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", gr.update(visible=False), gr.update(visible=False))
    return gr.update(value=view), *out


with gr.Blocks(title="Catastrophic forgetting") as demo:
    ui.header("forgetting", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="curves", label="view", scale=3)
        method_in = gr.Dropdown(LIVE_METHODS, value="lora_replay", label="live run: method", scale=3)
        steps_in = gr.Number(8, label="steps", precision=0, minimum=1, maximum=LIVE_MAX_STEPS, scale=1)
        start_btn = gr.Button("Run live", variant="primary", scale=1)
        stop_btn = gr.Button("Stop", variant="stop", scale=1)
    status = stage.status()
    plot = stage.hero()
    table = stage.hero_html()
    with stage.options():
        gr.Markdown(
            "Task: *Which number is larger, a or b? Answer with just the number.* (64 training exchanges, 8 held "
            "out). General text: Python's reference topics, held out from training. Every run trains a private "
            f"copy; the shared model never changes. Re-record: `{COMMAND}`."
        )
    view_in.input(show, [view_in], [status, plot, table], api_name="show")
    run_event = start_btn.click(live, [method_in, steps_in], [status, plot, table], api_name="live")
    stop_btn.click(stop_live, None, status, cancels=[run_event], api_name="stop_live")
    demo.load(on_load, None, [view_in, status, plot, table], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
