"""Tool use and agents: a ReAct loop on SmolLM2-135M-Instruct with a safe calculator and a Python-docs lookup,
step by step, and its accuracy with and without tools; the same tool as an MCP definition."""

from __future__ import annotations

import functools
import json
import threading

import gradio as gr

from demos import stage, ui
from toolkit import agent as ag
from toolkit.agent import figures as views
from toolkit.agent.record import ASSET, COMMAND
from toolkit.trace import TraceError

VIEWS = [("one episode, step by step", "timeline"), ("accuracy with vs without tools", "accuracy"),
         ("the tool: prompt schema and MCP", "tool")]  # fmt: skip
VIEW_NAMES = [v for _, v in VIEWS]
CONDITIONS = [("with tools", "tools"), ("without tools", "no_tools")]
MAX_QUESTION_CHARS = 300
DEFAULT_CALL = '{"name": "calculator", "arguments": {"expression": "__import__(\'os\').system(\'ls\')"}}'
_live = threading.Lock()


@functools.cache
def recorded() -> ag.AgentTrace:
    try:
        return ag.AgentTrace.load(ASSET)
    except TraceError as err:
        raise ui.UserError(f"The recorded episodes cannot be read ({err}). Re-record them: `{COMMAND}`.") from None


@functools.cache
def first_tool_success() -> int:
    """The default episode: the first recorded question the agent got right with a tool call."""
    return views.first_tool_success(recorded())


def _note(trace: ag.AgentTrace) -> str:
    parts = []
    for c, title in (("tools", "with tools"), ("no_tools", "without tools")):
        acc, lo, hi, k, n = trace.accuracy(c)
        parts.append(f"**{title}** {100 * acc:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}] ({k}/{n})")
    calls, failed = trace.calls()
    return " · ".join(parts) + f" · {calls} tool calls, {failed} unparsed · `{COMMAND}`"


@ui.safe(lane="cheap")  # recorded episodes: never behind model work
def show(view, question, condition, request: gr.Request | None = None):
    """(status, hero plot update, hero html update) of the recorded episodes."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    condition = ui.as_choice(condition, "condition", [c for _, c in CONDITIONS])
    trace = recorded()
    i = ui.as_int(question, "question")
    if not 0 <= i < len(trace.questions):
        raise ui.UserError(f"Question {i} does not exist: choose 0 to {len(trace.questions) - 1}.")
    return _view(view, i, condition, ui.is_dark(request))


@ui.memo(maxsize=64)
def _view(view: str, i: int, condition: str, dark: bool):
    trace = recorded()
    hide = gr.update(visible=False)
    if view == "accuracy":
        return _note(trace), gr.update(value=stage.fill(views.accuracy(trace, dark)), visible=True), hide
    if view == "tool":
        note = "One tool, two descriptions: the JSON schema in the system prompt and the MCP `tools/list` entry."
        return note, hide, gr.update(value=views.tool_card("calculator", dark), visible=True)
    q, ep = trace.questions[i], trace.episodes[condition][i]
    title = dict((c, t) for t, c in CONDITIONS)[condition]
    note = f"Question {i} of {len(trace.questions)}, {title} (recorded): " + ("right" if ep["correct"] else "wrong")
    return note, hide, gr.update(value=views.timeline(ep, q["answer"], dark), visible=True)


@ui.safe(lane="heavy")  # a live episode generates for seconds
def ask(question, condition, request: gr.Request | None = None):
    """Run the loop live on a typed question (the text goes to the model only; tool calls are parsed, never run
    as code)."""
    text = ui.as_text(question, "question", MAX_QUESTION_CHARS)
    condition = ui.as_choice(condition, "condition", [c for _, c in CONDITIONS])
    if not _live.acquire(blocking=False):
        raise ui.UserError("Busy: a live episode is already running on this server; try again in a moment.")
    try:
        q = ag.Question(-1, "live", text.strip(), "")
        episode = ag.run(ui.model(), [q], condition == "tools")[0]
    finally:
        _live.release()
    episode["correct"] = False
    html = views.timeline(episode, "not checked", ui.is_dark(request))
    note = "Live episode (not checked against an answer)."
    return note, gr.update(visible=False), gr.update(value=html, visible=True)


@ui.safe(lane="cheap")  # a JSON parse and the calculator's tree walk
def try_call(raw):
    """Parse a tool call as the agent does and run it: code in an argument is refused, never executed."""
    raw = ui.as_text(raw, "tool call", 2000)
    call = ag.parse_call(raw.strip(), set(ag.TOOLS))
    if isinstance(call, ag.ParseFailure):
        return f"Not a tool call: {call.reason}. Nothing was run."
    try:
        result = ag.TOOLS[call.name](call.arguments)
    except ag.ToolError as err:
        return f"`{call.name}` refused it: {err}. Nothing was run."
    return f"`{call.name}({json.dumps(call.arguments)})` → {result[:300]}"


def on_load(request: gr.Request):
    p = ui.query(request)
    view = ui.preset(p, "view", "timeline", str, VIEW_NAMES)
    condition = ui.preset(p, "condition", "tools", str, [c for _, c in CONDITIONS])
    try:
        i = ui.preset(p, "question", first_tool_success(), int)
        out = show(view, i, condition, request)
    except gr.Error as err:
        i = 0
        out = (f"⚠️ {err.message}", gr.update(visible=False), gr.update(visible=False))
    return gr.update(value=view), gr.update(value=i), gr.update(value=condition), *out


with gr.Blocks(title="Tool use and agents") as demo:
    ui.header("agent", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="timeline", label="view", scale=3)
        question_in = gr.Number(0, label="question (0-67)", precision=0, minimum=0, scale=1)
        condition_in = gr.Dropdown(CONDITIONS, value="tools", label="tools", scale=2)
        ask_in = gr.Textbox("", label="ask live", placeholder="What is 123 + 456?", scale=3)
        ask_btn = gr.Button("Run live", variant="primary", scale=1)
    status = stage.status()
    plot = stage.hero()
    html = stage.hero_html()
    with stage.options():
        gr.Markdown(
            "Tools: `calculator` (the expression is parsed with `ast`; only numbers and + - * / ** are computed) "
            "and `lookup` (the first paragraph of a Python reference topic). Try a tool call the way the model "
            f"writes one; code in an argument is refused. Re-record the measurement: `{COMMAND}`."
        )
        call_in = gr.Textbox(DEFAULT_CALL, label="a tool call (JSON)", lines=3)
        call_btn = gr.Button("Parse and run")
        call_out = gr.Markdown()
    inputs = [view_in, question_in, condition_in]
    for widget in inputs:
        widget.input(show, inputs, [status, plot, html], api_name="show" if widget is view_in else False)
    ask_btn.click(ask, [ask_in, condition_in], [status, plot, html], api_name="ask")
    ask_in.submit(ask, [ask_in, condition_in], [status, plot, html], api_name=False)
    call_btn.click(try_call, [call_in], [call_out], api_name="try_call")
    demo.load(on_load, None, [view_in, question_in, condition_in, status, plot, html], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
