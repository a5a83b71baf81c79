"""Reasoning on a 135M model: direct answer vs chain of thought vs self-consistency on 60 checkable problems,
outcome vs process rewards on one chain, and tree of thought as a search scored by a checker."""

from __future__ import annotations

import functools
import threading

import gradio as gr

from demos import stage, ui
from toolkit import reasoning as rs
from toolkit.reasoning import figures as views
from toolkit.reasoning.record import COMMAND, MEASUREMENT, TREE
from toolkit.trace import TraceError

VIEWS = [
    ("accuracy with 95 % intervals", "accuracy"),
    ("one problem, every method", "problem"),
    ("outcome vs process reward", "supervision"),
    ("tree of thought", "tree"),
]
VIEW_NAMES = [v for _, v in VIEWS]
PLOT_VIEWS = {"accuracy", "tree"}
_live = threading.Lock()


@functools.cache
def measurement() -> rs.ReasoningTrace:
    return _load(rs.ReasoningTrace, MEASUREMENT)


@functools.cache
def recorded_tree() -> rs.TreeTrace:
    return _load(rs.TreeTrace, TREE)


def _load(cls, path):
    try:
        return cls.load(path)
    except TraceError as err:
        raise ui.UserError(f"The recorded measurement cannot be read ({err}). Re-record it: `{COMMAND}`.") from None


chains = views.chains  # (label, chain, final) of every recorded chain of one problem


@functools.cache
def disagreement() -> tuple[int, int]:
    """The default (problem, chain): the first whose outcome and process rewards disagree."""
    return views.disagreement(measurement())


def _accuracy_note(trace: rs.ReasoningTrace) -> str:
    parts = []
    for m in trace.methods:
        acc, lo, hi, k, n = trace.accuracy(m)
        parts.append(f"**{rs.METHOD_TITLES[m]}** {100 * acc:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}] ({k}/{n})")
    return " · ".join(parts) + f" · recorded by `{COMMAND}`"


@ui.safe(lane="cheap")  # recorded measurement and tree
def show(view, problem, chain, request: gr.Request | None = None):
    """(status, hero plot update, hero html update) of one view of the recorded measurement and tree."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    trace = measurement()
    i = ui.as_int(problem, "problem")
    if not 0 <= i < trace.n:
        raise ui.UserError(f"Problem {i} does not exist: choose 0 to {trace.n - 1}.")
    k = ui.as_int(chain, "chain")
    n_chains = len(chains(trace, i))  # checked in every view, as the problem is
    if not n_chains and view == "supervision":
        raise ui.UserError(f"Problem {i} has no recorded chain of thought: choose another problem.")
    if n_chains and not 0 <= k < n_chains:
        raise ui.UserError(f"Chain {k} does not exist: problem {i} has chains 0 to {n_chains - 1}.")
    return _view(view, i, k, ui.is_dark(request))


@ui.memo(maxsize=64)  # recorded data: one answer per (view, problem, chain, theme)
def _view(view: str, i: int, k: int, dark: bool):
    trace = measurement()
    hide = gr.update(visible=False)
    if view == "accuracy":
        return _accuracy_note(trace), gr.update(value=stage.fill(views.accuracy(trace, dark)), visible=True), hide
    if view == "tree":
        tree = recorded_tree()
        note = f"Recorded search on *{tree.question}* ({tree.seconds:.0f} s); **Search live** runs it again."
        return note, gr.update(value=stage.fill(views.tree(tree, dark)), visible=True), hide
    if view == "problem":
        html = views.outputs(trace, i, dark)
        return f"Problem {i} of {trace.n}: every method's text and the number read from it.", hide, _html(html)
    label, chain, final = chains(trace, i)[k]  # show() checked k
    p = trace.problems[i]
    html = views.supervision(p["question"], float(p["answer"]), chain, final, dark)
    return f"Problem {i}, {label}: one reward for the outcome, one per checked step.", hide, _html(html)


def _html(value: str):
    return gr.update(value=value, visible=True)


@ui.safe(lane="heavy")  # a tree search generates for tens of seconds
def search_live(problem, request: gr.Request | None = None):
    """The tree search again on one bundled problem, on this machine (a few sampled steps per node)."""
    trace = measurement()
    i = ui.as_int(problem, "problem")
    if not 0 <= i < trace.n:
        raise ui.UserError(f"Problem {i} does not exist: choose 0 to {trace.n - 1}.")
    if not _live.acquire(blocking=False):
        raise ui.UserError("Busy: a live search is already running on this server; try again in a moment.")
    try:
        tree = rs.search(ui.model(), rs.problem(trace.problems[i]["id"]))
    finally:
        _live.release()
    note = f"Live search on problem {i}: {len(tree.nodes) - 1} proposed steps in {tree.seconds:.0f} s."
    fig = stage.fill(views.tree(tree, ui.is_dark(request)))
    return note, gr.update(value=fig, visible=True), gr.update(visible=False)


def on_load(request: gr.Request):
    p = ui.query(request)
    view = ui.preset(p, "view", "accuracy", str, VIEW_NAMES)
    try:
        default_i, default_k = disagreement()
        i = ui.preset(p, "problem", default_i, int)
        k = ui.preset(p, "chain", default_k, int)
        out = show(view, i, k, request)
    except gr.Error as err:
        i, k = 0, 0
        out = (f"⚠️ {err.message}", gr.update(visible=False), gr.update(visible=False))
    return gr.update(value=view), gr.update(value=i), gr.update(value=k), *out


with gr.Blocks(title="Reasoning") as demo:
    ui.header("reasoning", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="accuracy", label="view", scale=3)
        problem_in = gr.Number(0, label="problem (0-59)", precision=0, minimum=0, scale=1)
        chain_in = gr.Number(0, label="chain (0 = greedy)", precision=0, minimum=0, scale=1)
        search_btn = gr.Button("Search live", scale=1)
    status = stage.status()
    plot = stage.hero()
    html = stage.hero_html()
    with stage.options():
        gr.Markdown(
            "Sixty bundled problems (one-digit sums, two-digit sums, two-step word problems, which is larger). "
            "Direct: the answer right after *The answer is*. Chain of thought: *Let's think step by step.*, then "
            "*Therefore, the answer is*. Self-consistency: sampled chains, majority vote. Intervals: Wilson 95 %. "
            f"Re-record: `{COMMAND}`."
        )
    inputs = [view_in, problem_in, chain_in]
    for widget in inputs:
        widget.input(show, inputs, [status, plot, html], api_name="show" if widget is view_in else False)
    search_btn.click(search_live, [problem_in], [status, plot, html], api_name="search_live")
    demo.load(on_load, None, [view_in, problem_in, chain_in, status, plot, html], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
