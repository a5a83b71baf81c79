"""Tokens and embeddings: two real tokenizers side by side, cosine similarity, PCA, king − man + woman."""

from __future__ import annotations

import gradio as gr
import numpy as np

from demos import stage, ui
from toolkit import models, tokens, variants
from toolkit.tokens import TokensConfig
from toolkit.tokens import figures as views

# The notebook API (toolkit.views) has the same defaults: they live in toolkit.tokens.figures.
# The leading space is part of a byte-level BPE piece: the same word splits differently mid-sentence.
DEFAULT_TEXT = views.TEXT
DEFAULT_WORDS = views.WORDS  # one SmolLM2 token each
SOURCES = views.EMBEDDINGS
COMPARE = "minilm-l6"  # "compare with": another model's embeddings of the same words
MAX_WORD_CHARS = 40
VIEWS = [
    ("tokens", "pieces"),
    ("embedding space", "embedding"),
    ("cosine similarity", "similarity"),
    ("king − man + woman", "analogy"),
    ("compare two models: similarity change", "compare"),
]
VIEW_NAMES = [v for _, v in VIEWS]
ANALOGY = views.ANALOGY


def compare_choices() -> list[str]:
    """ "Compare with": every other model (encoders and causal ones), then the default model's variants."""
    names = models.choices() + models.derived(models.default("causal"))
    return list(dict.fromkeys(names))


@ui.safe  # the model lane: loading a variant builds it (a quantised or fine-tuned copy), once per process
def _compare(words: str, source: str, other, text: str, dark: bool):
    """(status, the similarity change, both tokenizers' pieces) for the source's model against ``other``."""
    ui.as_choice(source, "embedding source", SOURCES)
    base = SOURCES[source][0]
    other = (other or "").strip()
    if not other or other == base:
        raise ui.UserError(f"Choose another model to compare {base} with, e.g. {COMPARE}.")
    ws = _words(words)
    a, b = tokens.embed(ui.model(base), ws), tokens.embed(ui.model(other), ws)
    diff = b.similarity - a.similarity
    what = variants.describe(other)
    status = (
        f"Input embeddings of the same {len(ws)} words, **{ui.escape(other)}**"
        f"{f' ({ui.escape(what)})' if what else ''} − **{ui.escape(base)}**: the largest change in a pair's cosine "
        f"is {abs(diff).max():.3f}"
        + (" (LoRA and weight quantisation leave the input embeddings as they were)." if what else ".")
    )
    pieces = views.pieces(tokens.compare([ui.model(base), ui.model(other)], ui.as_text(text, "text", 2000)), dark)
    return status, views.similarity_difference(a, b, dark), pieces


@ui.safe(lane="cheap")
def tokenize(text: str, request: gr.Request | None = None):
    text = ui.as_text(text, "text", max_chars=2000)
    t = tokens.compare([ui.model("smollm2-135m"), ui.model("minilm-l6")], text)
    rows = ["| word | " + " | ".join(v["model"] for v in t.views) + " |", "|---|" + "---|" * len(t.views)]
    counts = [tokens.tokens_per_word(v, len(t.words)) for v in t.views]
    for i, w in enumerate(t.words[:30]):
        rows.append(f"| {ui.escape(w)} | " + " | ".join(str(c[i]) for c in counts) + " |")
    notes = []
    for v in t.views:
        fb, unk = sum(v["partial"]), sum(v["unknown"])
        notes.append(
            f"**{v['model']}**: {len(v['ids'])} tokens, {len(v['ids']) / max(len(t.words), 1):.2f} per word"
            + (f", {fb} byte-fallback pieces" if fb else "")
            + (f", {unk} unknown" if unk else "")
            + (" (truncated)" if v["truncated"] else "")
        )
    md = " · ".join(notes) + "\n\n**Tokens per word**\n\n" + "\n".join(rows)
    return views.pieces(t, ui.is_dark(request)), md


def _words(raw: str) -> list[str]:
    text = ui.as_text(raw, "words", max_chars=2000)
    words = [w.strip() for w in text.replace("\n", ",").split(",") if w.strip()]
    long = [w for w in words if len(w) > MAX_WORD_CHARS]
    if long:
        raise ui.UserError(f"Words are limited to {MAX_WORD_CHARS} characters: {long[0][:50]!r}…")
    try:
        return tokens.check_words(words, TokensConfig())
    except ValueError as err:
        raise ui.UserError(f"{err}. Type them separated by commas (e.g. cat, dog, kitten).") from None


def _embed(words: str, source: str, dims: int) -> tuple[tokens.EmbeddingTrace, int]:
    ui.as_choice(source, "embedding source", SOURCES)
    name, kind = SOURCES[source]
    cfg = ui.config(TokensConfig, source=kind, dims=dims)
    return tokens.embed(ui.model(name), _words(words), cfg), cfg.dims


@ui.safe(lane="cheap")
def embed(words: str, source: str, dims: int, request: gr.Request | None = None):
    e, dims = _embed(words, source, dims)
    dark = ui.is_dark(request)
    return views.similarity(e, dark), views.projection(e, dark, dims)


def _nearest(e: tokens.EmbeddingTrace) -> str:
    """The status line of the embedding views: the closest and the farthest pair of words."""
    sim = e.similarity.astype(float).copy()
    n = len(e.words)
    off = ~np.eye(n, dtype=bool)
    i, j = np.unravel_index(np.where(off, sim, -np.inf).argmax(), sim.shape)
    k, m = np.unravel_index(np.where(off, sim, np.inf).argmin(), sim.shape)
    w = [ui.escape(x) for x in e.words]
    kind = "sentence" if e.source == "sentence" else "input"
    return (
        f"**{e.meta.get('model', '')}** {kind} embeddings, {e.vectors.shape[1]} numbers per word: closest pair "
        f"**{w[i]}–{w[j]}** (cos {sim[i, j]:.2f}), farthest **{w[k]}–{w[m]}** (cos {sim[k, m]:.2f})."
    )


@ui.safe(lane="cheap")
def analogy(a: str, b: str, c: str, expected: str, source: str, request: gr.Request | None = None):
    if source not in SOURCES or SOURCES[source][1] != "input":
        raise ui.UserError("The analogy searches the vocabulary, so it needs input embeddings (SmolLM2 or MiniLM).")
    parts = [
        ui.as_text(x, label, max_chars=MAX_WORD_CHARS).strip()
        for x, label in ((a, "word a"), (b, "word b"), (c, "word c"))
    ]
    expected = (expected or "").strip()[:MAX_WORD_CHARS]
    r = tokens.analogy(ui.model(SOURCES[source][0]), *parts, expected=expected)
    shown = ui.escape(expected)
    if r.expected_rank > 0:
        md = (
            f"**{shown}** ranks **{r.expected_rank:,}** of the whole vocabulary (cos {r.expected_score:.3f}); "
            f"with the three input words removed, as the word2vec demos do, it ranks "
            f"**{r.expected_rank_without_inputs:,}**."
        )
    elif expected:
        md = f"**{shown}** is not a single token for this tokenizer, so it has no row to rank."
    else:
        md = ""
    return views.neighbours(r, ui.is_dark(request)), md


# ---- the page: one view in the hero, the controls that view uses in the strip ---------------------------------

STRIP = {  # which strip controls each view uses: text, words, a, b, c, source
    "pieces": (True, False, False, False, False, False),
    "embedding": (False, True, False, False, False, True),
    "similarity": (False, True, False, False, False, True),
    "analogy": (False, False, True, True, True, True),
    "compare": (False, True, False, False, False, True),
}
SECOND_LABEL = {"similarity": "PCA map", "embedding": "cosine similarity", "compare": "both tokenizers on the text"}


@ui.safe(lane="cheap")
def show_ui(view, text, words, source, dims, a, b, c, expected, compare=COMPARE, request: gr.Request | None = None):
    """The page: (status, hero, second plot, its tab, table, its tab, the strip controls' visibility, then the
    analogy tab's plot, text and visibility)."""
    view = ui.as_choice(view, "view", VIEW_NAMES)
    second = table = king = None
    if view == "compare":  # two models' embedding rows and tokenizers: cheap (no forward pass)
        status, main, second = _compare(words, source, compare, text, ui.is_dark(request))
    elif view == "pieces":
        main, md = tokenize(text, request)
        status, _, table = md.partition("\n\n")
    elif view == "analogy":
        src = source if source in SOURCES and SOURCES[source][1] == "input" else list(SOURCES)[0]
        main, status = analogy(a, b, c, expected, src, request)
        if src != source:
            status = f"The analogy needs input embeddings: showing {src}. " + status
    else:
        e, dims = _embed(words, source, dims)
        dark = ui.is_dark(request)
        sim, proj = views.similarity(e, dark), views.projection(e, dark, dims)
        main, second = (proj, sim) if view == "embedding" else (sim, proj)
        status = _nearest(e)
        if SOURCES[source][1] == "input":  # the same embeddings' arithmetic, one tab away (it searches 49k rows: fast)
            king = analogy(a, b, c, expected, source, request)
    return (
        status,
        stage.fill(main),
        gr.update(value=second, visible=second is not None),
        gr.update(visible=second is not None, label=SECOND_LABEL.get(view, "cosine similarity")),
        gr.update(value=table or "", visible=table is not None),
        gr.update(visible=table is not None),
        *(gr.update(visible=v) for v in STRIP[view]),
        gr.update(value=king[0] if king else None),
        gr.update(value=king[1] if king else ""),
        gr.update(visible=king is not None),
    )


def on_load(request: gr.Request):
    """URL presets: ?view=pieces|embedding|similarity|analogy&text=&words=&source=&dims=&a=&b=&c=&expected=."""
    q = ui.query(request)
    view = ui.preset(q, "view", "pieces", str, VIEW_NAMES)
    text = ui.preset(q, "text", DEFAULT_TEXT)
    words = ui.preset(q, "words", DEFAULT_WORDS)
    source = ui.preset(q, "source", list(SOURCES)[0], choices=list(SOURCES))
    dims = ui.preset(q, "dims", TokensConfig.default("dims"), int, choices=list(TokensConfig.spec("dims").choices))
    a, b, c, expected = (ui.preset(q, key, value) for key, value in zip(("a", "b", "c", "expected"), ANALOGY))
    compare = ui.preset(q, "compare", COMPARE)
    try:
        out = show_ui(view, text, words, source, dims, a, b, c, expected, compare, request=request)
    except gr.Error as err:
        out = (f"⚠️ {err.message}", None, *(gr.update(visible=False),) * 4, *(gr.update(),) * 6)
        out += (None, "", gr.update(visible=False))
    strip = out[6:12]
    values = (text, words, a, b, c, source)  # the strip's widgets: their preset value and their visibility
    return (view, dims, expected, *out[:6], *({**u, "value": v} for v, u in zip(values, strip)), *out[12:])


def compare_preset(request: gr.Request):
    """The ?compare= preset into its dropdown (on_load already drew the view with it)."""
    return ui.preset(ui.query(request), "compare", COMPARE)


with gr.Blocks(title="Tokens and embeddings") as demo:
    ui.header("tokens", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="pieces", label="view", scale=2)
        text_in = gr.Textbox(DEFAULT_TEXT, label="text", lines=1, max_lines=1, scale=5)
        words_in = gr.Textbox(DEFAULT_WORDS, label="words (comma separated)", max_lines=1, scale=4, visible=False)
        a_in = gr.Textbox(ANALOGY[0], label="a", max_lines=1, scale=1, visible=False)
        b_in = gr.Textbox(ANALOGY[1], label="− b", max_lines=1, scale=1, visible=False)
        c_in = gr.Textbox(ANALOGY[2], label="+ c", max_lines=1, scale=1, visible=False)
        source_in = gr.Dropdown(list(SOURCES), value=list(SOURCES)[0], label="embeddings", scale=3, visible=False)
        go_btn = gr.Button("Show", variant="primary", scale=1)
    with stage.options():
        dims_in = gr.Radio(
            list(TokensConfig.spec("dims").choices),
            value=TokensConfig.default("dims"),
            label=TokensConfig.spec("dims").label,
        )
        expected_in = gr.Textbox(ANALOGY[3], label="analogy: expected word", max_lines=1)
        compare_in = gr.Dropdown(
            compare_choices(),
            value=COMPARE,
            label="compare with (view: compare two models)",
            info="its input embeddings of the same words, against the chosen embeddings' model",
            allow_custom_value=True,
        )
    status = stage.status()
    hero = stage.hero()
    with stage.more():
        with gr.Tab("cosine similarity", visible=False) as second_tab:
            second_plot = gr.Plot(show_label=False)
        with gr.Tab("tokens per word", visible=False) as table_tab:
            table_md = gr.Markdown()
        with gr.Tab("king − man + woman", visible=False) as king_tab:
            king_md = gr.Markdown()
            king_plot = gr.Plot(show_label=False)
    # The API: the three views' own handlers, as before (hidden outputs; the page uses show_ui)
    with gr.Row(visible=False):
        api_plot, api_plot2, api_md = gr.Plot(), gr.Plot(), gr.Markdown()
        tok_btn, emb_btn, an_btn = gr.Button(), gr.Button(), gr.Button()
    tok_btn.click(tokenize, [text_in], [api_plot, api_md], api_name="tokenize")
    emb_btn.click(embed, [words_in, source_in, dims_in], [api_plot, api_plot2], api_name="embed")
    an_btn.click(analogy, [a_in, b_in, c_in, expected_in, source_in], [api_plot, api_md], api_name="analogy")

    inputs = [view_in, text_in, words_in, source_in, dims_in, a_in, b_in, c_in, expected_in, compare_in]
    outputs = [status, hero, second_plot, second_tab, table_md, table_tab, text_in, words_in, a_in, b_in, c_in]
    outputs += [source_in, king_plot, king_md, king_tab]
    go_btn.click(show_ui, inputs, outputs, api_name=False)
    for widget in (view_in, source_in, dims_in, compare_in):  # cheap: a change re-renders (a person's change only)
        widget.input(show_ui, inputs, outputs, api_name=False)
    for box in (text_in, words_in, a_in, b_in, c_in, expected_in):
        box.submit(show_ui, inputs, outputs, api_name=False)
    demo.load(on_load, None, [view_in, dims_in, expected_in, *outputs], api_name=False)
    demo.load(compare_preset, None, compare_in, api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
