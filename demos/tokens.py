"""Tokens and embeddings: two real tokenizers side by side, cosine similarity, PCA, king − man + woman."""

from __future__ import annotations

import gradio as gr

from demos import ui
from toolkit import tokens
from toolkit.tokens import TokensConfig
from toolkit.tokens import figures as views

DEFAULT_TEXT = "unhappiness don't 😊 tokenization"
DEFAULT_WORDS = "cat, dog, kitten, airplane, car, banana"
SOURCES = {
    "SmolLM2 input embeddings": ("smollm2-135m", "input"),
    "MiniLM input embeddings": ("minilm-l6", "input"),
    "MiniLM sentence embeddings": ("minilm-l6", "sentence"),
}
MAX_WORD_CHARS = 40


@ui.safe
def tokenize(text: str, request: gr.Request | None = None):
    text = ui.as_text(text, "text", max_chars=2000)
    t = tokens.compare([ui.model("smollm2-135m"), ui.model("minilm-l6")], text)
    rows = ["| word | " + " | ".join(v["model"] for v in t.views) + " |", "|---|" + "---|" * len(t.views)]
    counts = [tokens.tokens_per_word(v, len(t.words)) for v in t.views]
    for i, w in enumerate(t.words[:30]):
        rows.append(f"| {w} | " + " | ".join(str(c[i]) for c in counts) + " |")
    notes = []
    for v in t.views:
        fb, unk = sum(v["partial"]), sum(v["unknown"])
        notes.append(
            f"**{v['model']}**: {len(v['ids'])} tokens, {len(v['ids']) / max(len(t.words), 1):.2f} per word"
            + (f", {fb} byte-fallback pieces" if fb else "")
            + (f", {unk} unknown" if unk else "")
            + (" (truncated)" if v["truncated"] else "")
        )
    md = "\n\n".join(notes) + "\n\n**Tokens per word**\n\n" + "\n".join(rows)
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


@ui.safe
def embed(words: str, source: str, dims: int, request: gr.Request | None = None):
    ui.as_choice(source, "embedding source", SOURCES)
    name, kind = SOURCES[source]
    cfg = ui.config(TokensConfig, source=kind, dims=dims)
    e = tokens.embed(ui.model(name), _words(words), cfg)
    dark = ui.is_dark(request)
    return views.similarity(e, dark), views.projection(e, dark, cfg.dims)


@ui.safe
def analogy(a: str, b: str, c: str, expected: str, source: str, request: gr.Request | None = None):
    if source not in SOURCES or SOURCES[source][1] != "input":
        raise ui.UserError("The analogy searches the vocabulary, so it needs input embeddings (SmolLM2 or MiniLM).")
    parts = [
        ui.as_text(x, label, max_chars=MAX_WORD_CHARS).strip()
        for x, label in ((a, "word a"), (b, "word b"), (c, "word c"))
    ]
    expected = (expected or "").strip()[:MAX_WORD_CHARS]
    r = tokens.analogy(ui.model(SOURCES[source][0]), *parts, expected=expected)
    if r.expected_rank > 0:
        md = (
            f"**{expected}** ranks **{r.expected_rank}** of the whole vocabulary (cos {r.expected_score:.3f}); "
            f"with the three input words removed, as the word2vec demos do, it ranks "
            f"**{r.expected_rank_without_inputs}**."
        )
    elif expected:
        md = f"**{expected}** is not a single token for this tokenizer, so it has no row to rank."
    else:
        md = ""
    return views.neighbours(r, ui.is_dark(request)), md


def on_load(request: gr.Request):
    q = ui.query(request)
    text = ui.preset(q, "text", DEFAULT_TEXT)
    words = ui.preset(q, "words", DEFAULT_WORDS)
    source = ui.preset(q, "source", list(SOURCES)[0], choices=list(SOURCES))
    dims = ui.preset(q, "dims", TokensConfig.default("dims"), int, choices=list(TokensConfig.spec("dims").choices))
    return (
        text,
        words,
        source,
        dims,
        *tokenize(text, request),
        *embed(words, source, dims, request),
        *analogy("king", "man", "woman", "queen", "SmolLM2 input embeddings", request),
    )


with gr.Blocks(title="Tokens and embeddings") as demo:
    ui.header("tokens", __doc__)
    with gr.Tab("Tokenization"):
        with gr.Row():
            text = gr.Textbox(DEFAULT_TEXT, label="text", scale=4)
            tok_btn = gr.Button("Tokenize", variant="primary", scale=1)
        tok_plot = gr.Plot(label="pieces")
        tok_md = gr.Markdown()
    with gr.Tab("Embedding space"):
        with gr.Row():
            words = gr.Textbox(DEFAULT_WORDS, label="words (comma separated)", scale=4)
            source = gr.Dropdown(list(SOURCES), value=list(SOURCES)[0], label="embeddings", scale=2)
            dims = gr.Radio(
                list(TokensConfig.spec("dims").choices),
                value=TokensConfig.default("dims"),
                label=TokensConfig.spec("dims").label,
                scale=1,
            )
            emb_btn = gr.Button("Embed", variant="primary", scale=1)
        with gr.Row():
            sim_plot = gr.Plot(label="cosine similarity")
            pca_plot = gr.Plot(label="PCA")
    with gr.Tab("king − man + woman"):
        with gr.Row():
            wa, wb, wc = gr.Textbox("king", label="a"), gr.Textbox("man", label="− b"), gr.Textbox("woman", label="+ c")
            wexp = gr.Textbox("queen", label="expected")
            an_source = gr.Dropdown(list(SOURCES)[:2], value=list(SOURCES)[0], label="embeddings")
            an_btn = gr.Button("Search", variant="primary")
        an_plot = gr.Plot(label="nearest neighbours")
        an_md = gr.Markdown()
    tok_btn.click(tokenize, [text], [tok_plot, tok_md], api_name="tokenize")
    emb_btn.click(embed, [words, source, dims], [sim_plot, pca_plot], api_name="embed")
    an_btn.click(analogy, [wa, wb, wc, wexp, an_source], [an_plot, an_md], api_name="analogy")
    demo.load(
        on_load, None, [text, words, source, dims, tok_plot, tok_md, sim_plot, pca_plot, an_plot, an_md], api_name=False
    )

if __name__ == "__main__":
    ui.launch(demo)
