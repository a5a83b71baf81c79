"""Reasoning views: accuracy with 95 % intervals by method and kind (slide "Chain of thought on a 135M model"),
one problem's completions, outcome vs process rewards side by side ("Outcome vs process supervision"), the
tree-of-thought search ("Tree of thought"). One function per view; HTML views return a string."""

from __future__ import annotations

import html

import plotly.graph_objects as go

from toolkit import style
from toolkit.grpo.rewards import exact
from toolkit.reasoning.maths import check_steps, first_number, majority, process_score
from toolkit.reasoning.problems import KIND_TITLES
from toolkit.reasoning.trace import METHOD_TITLES, ReasoningTrace, TreeTrace

VERDICT_MARK = {"correct": "✓", "wrong": "✗", "unchecked": "–"}


def _ink(dark: bool) -> str:
    return "#e5e7eb" if dark else "#111827"


def accuracy(trace: ReasoningTrace, dark: bool = False) -> go.Figure:
    """Grouped bars: accuracy of each method on each kind of problem and on all, with Wilson 95 % intervals."""
    pal = style.palette(dark)
    kinds = list(dict.fromkeys(p["kind"] for p in trace.problems))
    groups = [*kinds, None]
    labels = [KIND_TITLES.get(k, k) if k else f"all {trace.n}" for k in groups]
    fig = go.Figure()
    for m, method in enumerate(trace.methods):
        stats = [trace.accuracy(method, k) for k in groups]
        fig.add_bar(
            name=METHOD_TITLES.get(method, method),
            x=labels,
            y=[100 * s[0] for s in stats],
            marker_color=pal[[0, 4, 2][m % 3]],
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
    fig.update_yaxes(title="accuracy (%) · 95 % interval", range=[0, 105])
    fig.update_layout(
        barmode="group",
        legend=dict(orientation="h", y=-0.2, x=0),
        uniformtext=dict(minsize=style.MIN_FONT, mode="hide"),
    )
    samples = trace.config.get("samples", "n")
    return style.apply(
        fig, dark, title=f"{trace.meta.get('model', '')}: direct vs chain of thought vs self-consistency (n={samples})"
    )


def _cell(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def outputs(trace: ReasoningTrace, index: int, dark: bool = False) -> str:
    """One problem: what each method wrote, the answer read from it and whether it is right."""
    p = trace.problems[index]
    ink = _ink(dark)
    rows = []
    for m, method in enumerate(trace.methods):
        texts, finals = trace.completions[method][index], trace.finals[method][index]
        for s, (t, f) in enumerate(zip(texts, finals)):
            read = first_number(f)
            ok = read is not None and float(read) == float(p["answer"])
            name = METHOD_TITLES.get(method, method) + (f" #{s + 1}" if len(texts) > 1 else "")
            body = _cell(t) if method == "direct" else f"{_cell(t)}<br><i>Therefore, the answer is</i>{_cell(f)}"
            rows.append(
                f'<tr><td style="padding:4px 8px;white-space:nowrap;vertical-align:top"><b>{html.escape(name)}</b></td>'
                f'<td style="padding:4px 8px">{body}</td>'
                f'<td style="padding:4px 8px;vertical-align:top;white-space:nowrap">{read} {"✓" if ok else "✗"}'
                "</td></tr>"
            )
        if len(texts) > 1:
            vote, n = majority([first_number(f) for f in finals])
            verdict = "✓" if trace.correct[m, index] else "✗"
            rows.append(
                f'<tr><td style="padding:4px 8px"><b>majority vote</b></td><td style="padding:4px 8px">'
                f"{vote} with {n} of {len(texts)} votes</td><td style='padding:4px 8px'>{verdict}</td></tr>"
            )
    head = (
        f'<p style="font-size:20px;margin:0 0 6px"><b>{html.escape(p["question"])}</b> → {p["answer"]} '
        f"({html.escape(KIND_TITLES.get(p['kind'], p['kind']))}, problem {index})</p>"
    )
    table = f'<table style="border-collapse:collapse;width:100%;font-size:18px;line-height:1.3">{"".join(rows)}</table>'
    return f'<div data-lecture-view="outputs" style="color:{ink};padding:2px 6px">{head}{table}</div>'


def supervision(question: str, answer: float, chain: str, final: str, dark: bool = False) -> str:
    """Outcome vs process supervision of one chain: one reward for the final answer (GRPO's rule reward
    ``exact``) beside a reward per rule-checked step (its equations recomputed by the calculator tool)."""
    ink = _ink(dark)
    steps = check_steps(chain)
    read = first_number(final)
    outcome = exact(str(read) if read is not None else "", str(int(answer) if float(answer).is_integer() else answer))
    colour = {"correct": "rgba(0,158,115,0.25)", "wrong": "rgba(213,94,0,0.3)", "unchecked": "transparent"}
    step_rows = "".join(
        f'<tr style="background:{colour[s.verdict]}"><td style="padding:3px 8px">{_cell(s.text)}</td>'
        f'<td style="padding:3px 8px;white-space:nowrap;text-align:center">{VERDICT_MARK[s.verdict]} '
        f"{'' if s.reward is None else int(s.reward)}</td></tr>"
        for s in steps
    )
    score = process_score(steps)
    score_text = "no checkable step" if score is None else f"{score:.2f} (mean over checked steps)"
    cell = "vertical-align:top;padding:6px 10px;width:50%"
    return (
        f'<div data-lecture-view="supervision" style="color:{ink};padding:2px 6px;font-size:18px">'
        f'<p style="font-size:20px;margin:0 0 6px"><b>{html.escape(question)}</b> → {answer:g}</p>'
        f'<table style="border-collapse:collapse;width:100%"><tr>'
        f'<td style="{cell}"><h3 style="margin:0 0 4px">Outcome reward</h3>'
        f"<p>The whole chain gets one number: is the final answer right?</p>"
        f'<p style="font-size:22px">answer read: <b>{read}</b> → reward <b>{outcome:g}</b></p>'
        f"<p style='opacity:0.8'>GRPO's rule reward <code>exact</code> (the GRPO demo) on the final answer.</p></td>"
        f'<td style="{cell}"><h3 style="margin:0 0 4px">Process reward</h3>'
        f'<table style="border-collapse:collapse;width:100%;font-size:18px">{step_rows}</table>'
        f'<p style="font-size:20px">process score: <b>{score_text}</b></p></td></tr></table></div>'
    )


def tree(trace: TreeTrace, dark: bool = False) -> go.Figure:
    """The search drawn as a tree: a column per depth, nodes coloured by the checker's verdict, pruned branches
    faded and unlabelled, the chosen path thick."""
    pal = style.palette(dark)
    colour = {"question": pal[7], "correct": pal[2], "wrong": pal[5], "unchecked": "#888888"}
    by_depth: dict[int, list[dict]] = {}
    for n in trace.nodes:
        by_depth.setdefault(n["depth"], []).append(n)
    pos = {}
    for depth, nodes in by_depth.items():
        for k, n in enumerate(nodes):
            pos[n["id"]] = (depth, (len(nodes) - 1) / 2 - k)
    fig = go.Figure()
    for n in trace.nodes[1:]:
        (x0, y0), (x1, y1) = pos[n["parent"]], pos[n["id"]]
        fig.add_scatter(
            x=[x0, x1],
            y=[y0, y1],
            mode="lines",
            line=dict(color=pal[0] if n["chosen"] else "#999999", width=6 if n["chosen"] else 1.5),
            opacity=1.0 if n["kept"] or n["chosen"] else 0.45,
            hoverinfo="skip",
            showlegend=False,
        )
    for verdict in ("question", "correct", "unchecked", "wrong"):
        nodes = [n for n in trace.nodes if n["verdict"] == verdict]
        if not nodes:
            continue
        fig.add_scatter(
            x=[pos[n["id"]][0] for n in nodes],
            y=[pos[n["id"]][1] for n in nodes],
            mode="markers+text",
            marker=dict(size=18, color=colour[verdict], line=dict(width=2, color=_ink(dark))),
            opacity=1.0,
            text=[_label(n) for n in nodes],
            textposition="middle right",
            textfont=dict(size=style.MIN_FONT),
            hovertext=[style.plain(n["text"]) for n in nodes],
            hoverinfo="text",
            name={"question": "question", "correct": "right step", "unchecked": "nothing to check",
                  "wrong": "wrong step (pruned)"}[verdict],
        )  # fmt: skip
    depth = max(by_depth)
    fig.update_xaxes(range=[-0.1, depth + 0.95], tickvals=list(range(depth + 1)), title="depth (steps)")
    fig.update_yaxes(visible=False)
    found = trace.final
    end = f"chosen path answers {found:g}" if found is not None else "the chosen path gives no number"
    fig.update_layout(legend=dict(orientation="h", y=-0.12))
    return style.apply(
        fig,
        dark,
        title=f"Tree of thought: {trace.proposals} proposals, beam {trace.beam} · {end} (truth {trace.answer:g})",
    )


def _label(n: dict) -> str:
    """Kept steps are labelled (shortened; the whole step is in the hover); pruned ones only by their colour."""
    if n["verdict"] == "question":
        return "question"
    if not (n["kept"] or n["chosen"]):
        return ""
    text = n["text"].replace("\n", " ")
    short = text if len(text) <= 24 else text[:22] + "…"
    return f"{style.plain(short)} ({n['score']:+g})"


# ---- the demo's views from Python: toolkit.views.show("reasoning", view, **preset) -----------------------------
# The recorded measurement and tree search (`lecture reasoning --threads 1`). "problem" and "supervision" are HTML
# (a str). problem / chain None: as in the demo, the first recorded chain whose outcome and process rewards
# disagree.


def recorded() -> ReasoningTrace:
    from toolkit import views
    from toolkit.reasoning.record import COMMAND, MEASUREMENT

    return views.recorded(ReasoningTrace, MEASUREMENT, COMMAND)


def chains(trace: ReasoningTrace, index: int) -> list[tuple[str, str, str]]:
    """(label, chain, final) of every chain of thought recorded for one problem: greedy first, then the samples."""
    out = []
    for method in ("cot", "self_consistency"):
        if method in trace.methods:
            for s, (c, f) in enumerate(zip(trace.completions[method][index], trace.finals[method][index])):
                out.append(("greedy chain" if method == "cot" else f"sample {s + 1}", c, f))
    return out


def disagreement(trace: ReasoningTrace) -> tuple[int, int]:
    """The first (problem, chain) whose outcome and process rewards disagree (a right answer through a wrong step,
    or a wrong answer after only right steps); else (0, 0)."""
    for i, p in enumerate(trace.problems):
        for k, (_, chain, final) in enumerate(chains(trace, i)):
            read = first_number(final)
            outcome = read is not None and float(read) == float(p["answer"])
            score = process_score(check_steps(chain))
            if score is not None and ((outcome and score < 1) or (not outcome and score == 1)):
                return i, k
    return 0, 0


def view_accuracy(dark: bool = False) -> go.Figure:
    return accuracy(recorded(), dark)


def view_problem(problem: int | None = None, dark: bool = False) -> str:
    trace = recorded()
    i = disagreement(trace)[0] if problem is None else problem
    if not 0 <= i < trace.n:
        raise ValueError(f"problem {i} does not exist: choose 0 to {trace.n - 1}")
    return outputs(trace, i, dark)


def view_supervision(problem: int | None = None, chain: int | None = None, dark: bool = False) -> str:
    trace = recorded()
    default = disagreement(trace)
    i = default[0] if problem is None else problem
    k = (default[1] if problem is None else 0) if chain is None else chain
    if not 0 <= i < trace.n:
        raise ValueError(f"problem {i} does not exist: choose 0 to {trace.n - 1}")
    options = chains(trace, i)
    if not 0 <= k < len(options):
        raise ValueError(f"chain {k} does not exist: problem {i} has chains 0 to {len(options) - 1}")
    _, text, final = options[k]
    p = trace.problems[i]
    return supervision(p["question"], float(p["answer"]), text, final, dark)


def view_tree(dark: bool = False) -> go.Figure:
    from toolkit import views
    from toolkit.reasoning.record import COMMAND, TREE

    return tree(views.recorded(TreeTrace, TREE, COMMAND), dark)


VIEWS = {  # the demo's hero first
    "accuracy": view_accuracy,
    "problem": view_problem,
    "supervision": view_supervision,
    "tree": view_tree,
}
