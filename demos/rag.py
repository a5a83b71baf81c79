"""Retrieval-augmented generation: the question's nearest passages of Python's docs go into SmolLM2-Instruct's
prompt; its answer with them beside its answer without them."""

from __future__ import annotations

from functools import lru_cache

import gradio as gr

from demos import stage, ui
from toolkit import models, rag
from toolkit.rag import figures as views
from toolkit.vector_search import corpus as corpora

DECK_QUESTION = "How can I wrap a long paragraph of text to a fixed width?"
VIEWS = [
    ("Answers: with and without passages", "answers"),
    ("Prompt token budget", "budget"),
    ("Reranking: what moved", "rerank"),
]
VIEW_NAMES = [v for _, v in VIEWS]
Config = rag.RagConfig
DEFAULT_NEW_TOKENS = Config.default("max_new_tokens")


def _corpus(raw, notes: list[str]) -> str:
    name = ui.as_text(raw if raw is not None else "stdlib", "corpus", 1_000).strip()
    if name == "sample":
        return name
    if name == "stdlib":
        if corpora.state("stdlib") == "ready":
            return name
        notes.append("⚠️ The full corpus is not embedded yet (`lecture index`): retrieving from the 3,000 sample.")
        return "sample"
    if corpora.canonical(name) in corpora.indexed():
        return corpora.canonical(name)
    raise ui.UserError(f"{name[:80]!r} is not an indexed corpus: choose stdlib or sample, or `lecture index PATH`.")


@lru_cache(maxsize=8)  # the same question and settings twice (a reload, a view change) answer at once
def _answer(model_name: str, question: str, cfg: rag.RagConfig) -> rag.RagTrace:
    return ui.offload(rag.capture, ui.model(model_name).name, question, cfg)  # in a worker process, if any


@ui.safe(lane="heavy")
def ask(
    question,
    k,
    rerank,
    wrong,
    view,
    corpus="stdlib",
    index="hnsw",
    candidates=10,
    max_new_tokens=DEFAULT_NEW_TOKENS,
    budget=1024,
    model_name=None,
    request: gr.Request | None = None,
):
    """Returns (status, hero HTML, hero figure, budget figure, rerank figure)."""
    question = ui.as_text(question, "question", rag.MAX_QUESTION_CHARS)
    view = view if view in VIEW_NAMES else "answers"
    notes: list[str] = []
    name = _corpus(corpus, notes)
    cfg = ui.config(
        Config, corpus=name, index=index, k=k, candidates=candidates, rerank=rerank, wrong=bool(wrong),
        max_new_tokens=max_new_tokens, budget=budget,
    )  # fmt: skip
    model_name = ui.model_name(model_name)
    try:
        trace = _answer(model_name, question.strip(), cfg)
    except (ValueError, corpora.CorpusError) as err:
        raise ui.UserError(str(err)) from None
    dark = ui.is_dark(request)
    if trace.dropped:
        n, s = trace.dropped, "" if trace.dropped == 1 else "s"
        notes.append(f"⚠️ {n} passage{s} did not fit the {trace.budget}-token budget: left out of the prompt.")
    how = "as retrieved" if trace.rerank == "none" else f"reranked by {trace.rerank}"
    cached = int(trace.meta.get("prefix_cached") or 0)
    reused = f" ({cached} from the prefix cache)" if cached else ""
    n = len(trace.passage_ids)
    head = (
        f"**{model_name}** · {n or 'no'} passage{'' if n == 1 else 's'} from {trace.index} "
        f"({'unrelated, on purpose' if trace.wrong else how}) · prompt {trace.prompt_tokens} tokens{reused} · "
        f"both answers in {trace.seconds['generate']:.1f} s"
    )
    status = "\n\n".join([head, *notes])
    fig = {"budget": views.budget, "rerank": views.rerank}.get(view)
    hero_fig = stage.fill(fig(trace, dark)) if fig else None
    answers = views.answers(trace, dark) if fig is None else ""
    return status, answers, hero_fig, views.budget(trace, dark), views.rerank(trace, dark)


@ui.answers
def ask_ui(*args, request: gr.Request | None = None):
    status, html_out, fig, budget, rerank = ask(*args, request=request)
    return (
        status,
        gr.update(value=html_out, visible=fig is None),
        gr.update(value=fig, visible=fig is not None),
        budget,
        rerank,
    )


def on_load(request: gr.Request):
    p = ui.query(request)
    question = ui.preset(p, "question", DECK_QUESTION)
    k = ui.preset(p, "k", Config.default("k"), int)
    rerank = ui.preset(p, "rerank", "none", str, list(rag.RERANKERS))
    wrong = ui.preset(p, "wrong", "0") in ("1", "true", "yes")
    view = ui.preset(p, "view", "answers", str, VIEW_NAMES)
    widgets = [gr.update(value=v) for v in (question, k, rerank, wrong, view)]
    try:
        out = ask_ui(question, k, rerank, wrong, view, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", gr.update(visible=False), gr.update(visible=False), None, None)
    return *widgets, *out


with gr.Blocks(title="RAG") as demo:
    ui.header("rag", __doc__)
    with stage.strip():
        question_in = gr.Textbox(DECK_QUESTION, label="question", lines=1, max_lines=1, scale=4)
        k_in = ui.slider(Config, "k", scale=1)
        rerank_in = ui.dropdown(Config, "rerank", scale=1)
        wrong_in = gr.Checkbox(False, label="wrong passages", scale=1)
        view_in = gr.Dropdown(VIEWS, value="answers", label="view", scale=2)
        go_btn = gr.Button("Ask", variant="primary", scale=1)
    with stage.options():
        corpus_in = gr.Dropdown(
            ["stdlib", "sample", *[c for c in corpora.indexed() if c != "stdlib"]],
            value="stdlib",
            label="corpus",
            allow_custom_value=True,
        )
        index_in = ui.dropdown(Config, "index")
        cand_in = ui.number(Config, "candidates")
        new_in = ui.slider(Config, "max_new_tokens")
        budget_in = ui.number(Config, "budget")
        model_in = gr.Dropdown(
            models.choices("causal"), value=models.default("causal"), label="model", allow_custom_value=True
        )
    status = stage.status()
    hero_html = stage.hero_html()
    hero = stage.hero()
    with stage.more():
        with gr.Tab("prompt token budget"):
            budget_out = gr.Plot(show_label=False)
        with gr.Tab("reranking"):
            rerank_out = gr.Plot(show_label=False)
    options = [corpus_in, index_in, cand_in, new_in, budget_in, model_in]
    inputs = [question_in, k_in, rerank_in, wrong_in, view_in, *options]
    outputs = [status, hero_html, hero, budget_out, rerank_out]
    go_btn.click(ask_ui, inputs, outputs, api_name="ask")
    question_in.submit(ask_ui, inputs, outputs, api_name=False)
    view_in.input(ask_ui, inputs, outputs, api_name=False)  # cached: a view change costs no new answer
    demo.load(on_load, None, [question_in, k_in, rerank_in, wrong_in, view_in, *outputs], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
