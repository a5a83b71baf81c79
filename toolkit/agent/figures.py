"""Agent views: one episode as a timeline of thought / action / observation / answer (slide "Agents: ReAct on
SmolLM2"), accuracy with and without tools by kind of question ("Tool use"), and the tool as the model and an
MCP server see it ("MCP"). One function per view; HTML views return a string."""

from __future__ import annotations

import html
import json

import plotly.graph_objects as go

from toolkit import style
from toolkit.agent.tools import TOOLS
from toolkit.agent.trace import AgentTrace
from toolkit.reasoning.problems import KIND_TITLES

STEP_TITLES = {
    "question": "question",
    "thought": "thought",
    "action": "action",
    "error": "unparsed call",
    "observation": "observation",
    "answer": "answer",
    "gave_up": "gave up",
}
CONDITION_TITLES = {"tools": "with tools", "no_tools": "without tools"}


def _ink(dark: bool) -> str:
    return "#e5e7eb" if dark else "#111827"


def timeline(episode: dict, answer: str, dark: bool = False) -> str:
    """One episode top to bottom: each step a coloured badge and its text (a call that did not parse is shown as
    text with the parser's reason; it was never run)."""
    pal = style.palette(dark)
    colour = {
        "question": "#9ca3af",
        "thought": pal[1],
        "action": pal[0],
        "error": pal[5],
        "observation": pal[2],
        "answer": pal[4],
        "gave_up": pal[5],
    }
    rows = []
    for i, step in enumerate(episode["steps"]):
        kind = step["kind"]
        text = html.escape(step["text"]).replace("\n", "<br>")
        if kind == "error":
            text = f"<code>{text}</code><br><i>not run: {html.escape(step.get('reason', ''))}</i>"
        elif kind == "action":
            text = f"<code>{text}</code>" + ("" if step.get("ok", True) else " <i>(the tool refused it)</i>")
        badge = (
            f'<span style="display:inline-block;min-width:150px;padding:3px 10px;border-radius:6px;'
            f"background:{colour[kind]};color:#000;"
            f'font-weight:600">{i}. {STEP_TITLES[kind]}</span>'
        )
        rows.append(
            f'<div style="display:flex;gap:12px;align-items:flex-start;margin:5px 0">{badge}'
            f'<div style="flex:1;line-height:1.3">{text}</div></div>'
        )
    verdict = "✓ right" if episode["correct"] else "✗ wrong"
    foot = f'<p style="margin:8px 0 0;font-size:20px"><b>{verdict}</b> (expected {html.escape(str(answer))})</p>'
    return (
        f'<div data-lecture-view="timeline" style="color:{_ink(dark)};font-size:18px;padding:2px 6px">'
        f"{''.join(rows)}{foot}</div>"
    )


def accuracy(trace: AgentTrace, dark: bool = False) -> go.Figure:
    """Grouped bars: accuracy with and without tools on each kind of question and on all, Wilson 95 % intervals."""
    pal = style.palette(dark)
    groups = [*trace.kinds(), None]
    titles = {**KIND_TITLES, "lookup": "Python lookups"}
    labels = [titles.get(k, k) if k else f"all {len(trace.questions)}" for k in groups]
    fig = go.Figure()
    for c, cond in enumerate(trace.conditions):
        stats = [trace.accuracy(cond, k) for k in groups]
        fig.add_bar(
            name=CONDITION_TITLES.get(cond, cond),
            x=labels,
            y=[100 * s[0] for s in stats],
            marker_color=pal[[2, 6][c % 2]],
            error_y=dict(
                type="data",
                symmetric=False,
                array=[100 * (s[2] - s[0]) for s in stats],
                arrayminus=[100 * (s[0] - s[1]) for s in stats],
                thickness=2,
                width=6,
            ),
            text=[f"{s[3]}/{s[4]}" for s in stats],
            textposition="inside",
            insidetextanchor="start",
        )
    calls, failed = trace.calls("tools")
    fig.update_yaxes(title="accuracy (%) · 95 % interval", range=[0, 105])
    fig.update_layout(
        barmode="group",
        legend=dict(orientation="h", y=-0.2, x=0),
        uniformtext=dict(minsize=style.MIN_FONT, mode="hide"),
    )
    return style.apply(
        fig, dark, title=f"ReAct on {trace.meta.get('model', '')}: {calls} tool calls, {failed} did not parse"
    )


def tool_card(name: str, dark: bool = False) -> str:
    """The same tool twice: the function-calling schema the prompt carries and the MCP tool definition."""
    tool = TOOLS[name]
    block = 'style="font-size:16px;line-height:1.25;white-space:pre-wrap;margin:0"'
    return (
        f'<div data-lecture-view="tool" style="color:{_ink(dark)};display:flex;gap:16px;padding:2px 6px">'
        f'<div style="flex:1"><b>in the prompt (function calling)</b><pre {block}>'
        f"{html.escape(json.dumps(tool.schema(), indent=1))}</pre></div>"
        f'<div style="flex:1"><b>MCP: tools/list</b><pre {block}>{html.escape(json.dumps(tool.mcp(), indent=1))}</pre>'
        "</div></div>"
    )


# ---- the demo's views from Python: toolkit.views.show("agent", view, **preset) ---------------------------------
# The recorded episodes (`lecture agent --threads 1`). "timeline" and "tool" are HTML (a str). question None: as in
# the demo, the first question the agent got right with a tool call.


def recorded() -> AgentTrace:
    from toolkit import views
    from toolkit.agent.record import ASSET, COMMAND

    return views.recorded(AgentTrace, ASSET, COMMAND)


def first_tool_success(trace: AgentTrace) -> int:
    """The first recorded question answered right with a tool call and no unparsed one, else 0."""
    for i, ep in enumerate(trace.episodes["tools"]):
        if ep["correct"] and ep["calls"] and not ep["parse_failures"]:
            return i
    return 0


def view_timeline(question: int | None = None, condition: str = "tools", dark: bool = False) -> str:
    """One recorded episode step by step: thoughts, tool calls, results, the answer (condition tools/no_tools)."""
    trace = recorded()
    i = first_tool_success(trace) if question is None else question
    if not 0 <= i < len(trace.questions):
        raise ValueError(f"question {i} does not exist: choose 0 to {len(trace.questions) - 1}")
    if condition not in trace.episodes:
        raise ValueError(f"unknown condition {condition!r}; choose one of {', '.join(trace.episodes)}")
    return timeline(trace.episodes[condition][i], trace.questions[i]["answer"], dark)


def view_accuracy(dark: bool = False) -> go.Figure:
    return accuracy(recorded(), dark)


def view_tool(name: str = "calculator", dark: bool = False) -> str:
    """A tool's JSON schema in the system prompt beside its MCP definition."""
    return tool_card(name, dark)


VIEWS = {"timeline": view_timeline, "accuracy": view_accuracy, "tool": view_tool}  # the demo's hero first
