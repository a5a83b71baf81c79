"""RAG figures, one function per view, each reading a RagTrace.

answers: slides "RAG" and "Garbage in, garbage out"   the answer with the passages beside the answer without them,
                                                       and the passages the prompt held (HTML)
budget:  slide "RAG"                                    the prompt's tokens by segment against the budget
rerank:  slide "Reranking"                              rank before and after the second signal, what moved
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from toolkit import style
from toolkit.rag.trace import RagTrace


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def answers(t: RagTrace, dark: bool = False) -> str:
    """HTML: two answer cards side by side, then the numbered passages that were in the prompt."""
    ink, card = ("#eee", "#1d2536") if dark else ("#111", "#eef3f8")
    warn = "#5a2a14" if dark else "#fbe3d6"
    fed = "unrelated passages (the least similar in the corpus)" if t.wrong else f"the top {len(t.passage_ids)}"
    if not len(t.passage_ids):
        fed = f"no passages (none fit the {t.budget}-token budget)"
    rows = []
    for n, (i, text) in enumerate(zip(t.passage_ids.tolist(), t.passage_texts), start=1):
        score = ""
        where = np.flatnonzero(t.cand_ids == i)
        if len(where):
            score = f" · retrieval score {t.cand_scores[where[0]]:.3f}"
        rows.append(
            f'<p style="margin:3px 0"><b>[{n}] {html.escape(t.titles[str(i)])}</b>'
            f'<span style="opacity:.75">{score}</span> {html.escape(_short(text, 200))}</p>'
        )
    box = f"background:{card};border-radius:6px;padding:6px 10px;flex:1;min-width:0"
    bg = f"background:{warn};" if t.wrong else ""
    return (
        f'<div data-lecture-view="answers" style="color:{ink};font-size:18px;padding:2px 6px">'
        f'<p style="margin:2px 0 6px;font-size:20px"><b>{html.escape(_short(t.question, 120))}</b></p>'
        f'<div style="display:flex;gap:10px">'
        f'<div style="{box};{bg}"><b>With {fed}</b> ({t.prompt_tokens} prompt tokens)'
        f'<p style="margin:4px 0">{html.escape(t.answer_with) or "<i>(no answer)</i>"}</p></div>'
        f'<div style="{box}"><b>Without passages</b>'
        f'<p style="margin:4px 0">{html.escape(t.answer_without) or "<i>(no answer)</i>"}</p></div></div>'
        f'<div style="font-size:17px;margin-top:6px">{"".join(rows)}</div></div>'
    )


def budget(t: RagTrace, dark: bool = False) -> go.Figure:
    """One horizontal bar: template, system, each passage, question, the answer, and what is left of the budget."""
    pal = style.palette(dark)
    parts = list(zip(t.segments, t.segment_tokens.tolist())) + [("answer", t.answer_tokens[0])]
    colours = {"template": "rgba(128,128,128,0.7)", "system": pal[6], "question": pal[5], "answer": pal[2]}
    fig = go.Figure()
    for name, n in parts:
        fig.add_trace(
            go.Bar(
                y=["prompt"],
                x=[n],
                orientation="h",
                name=f"{name} ({n})",
                marker_color=colours.get(name, pal[1] if name.endswith(("1", "3", "5", "7")) else pal[4]),
                text=[name if n >= 40 else ""],
                textposition="inside",
                insidetextanchor="middle",
                textfont=dict(size=style.MIN_FONT),
            )
        )
    used = t.prompt_tokens + t.answer_tokens[0]
    fig.add_trace(
        go.Bar(
            y=["prompt"],
            x=[max(t.budget - used, 0)],
            orientation="h",
            name=f"left in the budget ({max(t.budget - used, 0)})",
            marker=dict(color="rgba(0,0,0,0)", line=dict(color="gray", width=1.5)),
        )
    )
    fig.update_layout(barmode="stack", legend=dict(orientation="h", y=-0.3, font=dict(size=style.MIN_FONT)))
    fig.update_xaxes(title="tokens")
    fig.update_yaxes(showticklabels=False)
    passages = int(sum(n for s, n in parts if s.startswith("passage")))
    title = (
        f"Prompt budget: {t.prompt_tokens} prompt tokens of {t.budget} "
        f"({100 * passages / max(t.prompt_tokens, 1):.0f}% passages), answer {t.answer_tokens[0]}; "
        f"the model's context is {t.context_window:,}"
    )
    if t.dropped:
        title += f"; {t.dropped} passage{'' if t.dropped == 1 else 's'} dropped"
    return style.apply(fig, dark, title=title, height=360)


def rerank(t: RagTrace, dark: bool = False) -> go.Figure:
    """Slope chart: each candidate's rank by the index (left) and after reranking (right); the prompt's k lit."""
    pal = style.palette(dark)
    fig = go.Figure()
    k = len(t.passage_ids)
    moved = t.moved()
    c = len(moved)
    for pid, before, after in moved:
        chosen = after <= k and not t.wrong
        col = pal[5] if chosen else ("rgba(140,140,140,0.8)")
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[before, after],
                mode="lines+markers",
                line=dict(color=col, width=3.5 if chosen else 1.5),
                marker=dict(size=10, color=col),
                hovertext=style.plain(t.titles[str(pid)]),
                hoverinfo="text",
                showlegend=False,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[1.02] * c,
            y=[a for _, _, a in moved],
            mode="text",
            text=[style.plain(_short(t.titles[str(p)], 34)) + (f"  (was {b})" if a != b else "") for p, b, a in moved],
            textposition="middle right",
            textfont=dict(size=style.MIN_FONT),
            showlegend=False,
            hoverinfo="skip",
        )
    )
    fig.update_xaxes(
        tickvals=[0, 1], ticktext=[f"{t.index} retrieval", "after " + t.rerank], range=[-0.08, 2.1], showgrid=False
    )
    fig.update_yaxes(autorange="reversed", title="rank", dtick=1 if c <= 12 else 2, showgrid=False, zeroline=False)
    n_moved = sum(1 for _, b, a in moved if a != b)
    cands = f"{c} candidate{'' if c == 1 else 's'}"
    if t.rerank == "none":
        title = f"{cands}, not reranked: the order is the retriever's"
    else:
        title = f"Reranking {cands} by {t.rerank}: {n_moved} of {c} moved"
    return style.apply(fig, dark, title=f"{title}; {_fed(t)}", height=560)


def _fed(t: RagTrace) -> str:
    """What went into the prompt, for the rerank title: the top k, unrelated passages, or none within the budget."""
    k = len(t.passage_ids)
    if k == 0:
        return f"no passage fits the {t.budget}-token budget"
    verb = "goes" if k == 1 else "go"
    if t.wrong:
        return f"{k} unrelated passage{'' if k == 1 else 's'} {verb} in instead"
    return f"the top {k} {verb} into the prompt"  # one line at 1280 px: the budget view tells what was dropped


# ---- the demo's views from Python: toolkit.views.show("rag", view, **preset) -----------------------------------
# One function per view of demos/rag.py, with its URL presets as keywords and its defaults: retrieve, rerank, put
# the passages into the prompt, answer with and without them; then one view. "answers" is HTML (a str).
# corpus "stdlib" is Python's docs once `lecture index` has embedded them, else the committed 3,000-passage sample.

QUESTION = "How can I wrap a long paragraph of text to a fixed width?"  # the deck's question (the demo's default)
rerank_figure = rerank  # the views take a ``rerank`` preset (the demo's name), which hides the function


def _answered(question: str, k: int, rerank: str, wrong: bool, corpus: str, max_new_tokens: int, model: str):
    from toolkit.rag.capture import capture
    from toolkit.vector_search import corpus as corpora

    if corpus == "stdlib" and corpora.state("stdlib") != "ready":
        corpus = "sample"
    return capture(model, question, k=k, rerank=rerank, wrong=wrong, corpus=corpus, max_new_tokens=max_new_tokens)


def view_answers(
    question: str = QUESTION,
    k: int = 3,
    rerank: str = "none",
    wrong: bool = False,
    corpus: str = "stdlib",
    max_new_tokens: int = 40,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> str:
    """The answer with the passages beside the answer without them, and the passages (HTML)."""
    return answers(_answered(question, k, rerank, wrong, corpus, max_new_tokens, model), dark)


def view_budget(
    question: str = QUESTION,
    k: int = 3,
    rerank: str = "none",
    wrong: bool = False,
    corpus: str = "stdlib",
    max_new_tokens: int = 40,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    return budget(_answered(question, k, rerank, wrong, corpus, max_new_tokens, model), dark)


def view_rerank(
    question: str = QUESTION,
    k: int = 3,
    rerank: str = "none",
    wrong: bool = False,
    corpus: str = "stdlib",
    max_new_tokens: int = 40,
    model: str = "smollm2-135m",
    dark: bool = False,
) -> go.Figure:
    return rerank_figure(_answered(question, k, rerank, wrong, corpus, max_new_tokens, model), dark)


VIEWS = {"answers": view_answers, "budget": view_budget, "rerank": view_rerank}  # the demo's hero first
