"""Tokens and embeddings: real tokenizers, one-hot x E, sentence-transformers pooling, PCA, analogy, the demo."""

from __future__ import annotations

import html
import json
import re

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from demos import ui
from toolkit import models, registry, tokens
from toolkit.config import ConfigError
from toolkit.tokens import AnalogyTrace, EmbeddingTrace, TokenizationTrace
from toolkit.trace import Trace


def test_tokenize_matches_the_tokenizer_and_decodes_back(smol, minilm):
    text = "unhappiness don't 🦙 naïve café"
    t = tokens.compare([smol, minilm], text)
    s, m = t.views
    assert s["ids"] == smol.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert m["ids"] == minilm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert smol.tokenizer.decode(s["ids"]) == text  # byte-level BPE is lossless
    assert s["pieces"][0] == "un" and s["pieces"][-1] == " café"
    # the emoji has no piece of its own in SmolLM2: byte fallbacks, all inside word 2
    fb = [i for i, p in enumerate(s["partial"]) if p]
    assert len(fb) >= 2 and {s["word"][i] for i in fb} == {2}
    # WordPiece lowercases, strips accents, and has no spelling for the emoji
    assert m["unknown"].count(True) == 1 and m["word"][m["unknown"].index(True)] == 2
    assert "naive" in m["pieces"]
    assert tokens.tokens_per_word(s, len(t.words)) == [sum(1 for w in s["word"] if w == i) for i in range(5)]
    assert sum(tokens.tokens_per_word(m, len(t.words))) == len(m["ids"])


def test_deck_examples(smol, minilm):
    dont = tokens.tokenize(smol, "don't")
    assert dont["pieces"] == ["don", "'t"]
    un = tokens.tokenize(smol, "unhappiness")
    assert un["pieces"][0] == "un" and "".join(un["pieces"]) == "unhappiness"
    assert tokens.tokenize(minilm, "unhappiness")["raw"][0] == "un"
    assert tokens.tokenize("smollm2-135m", "don't")["ids"] == dont["ids"]  # a name works as well as a Loaded


def test_token_limit_cuts_and_says_so(smol, minilm):
    text = "one two three four five six"
    full = tokens.tokenize(smol, text)
    cut = tokens.tokenize(smol, text, max_tokens=3)
    assert cut["ids"] == full["ids"][:3] and cut["truncated"] and not full["truncated"]
    assert cut["word"] == full["word"][:3]
    t = tokens.compare([smol, minilm], text, tokens.TokensConfig(max_tokens=2))
    assert [len(v["ids"]) for v in t.views] == [2, 2] and all(v["truncated"] for v in t.views)
    assert tokens.compare(minilm, "\x00").views[0]["ids"] == []  # WordPiece drops control characters: empty view
    with pytest.raises(ValueError, match="empty"):
        tokens.tokenize(smol, "   ")
    with pytest.raises(ConfigError, match="max_tokens"):
        tokens.tokenize(smol, text, max_tokens=10_000)


def test_input_embedding_is_one_hot_times_E(smol):
    E = smol.model.get_input_embeddings().weight.detach()  # (vocab, hidden)
    (i,) = smol.tokenizer(" cat", add_special_tokens=False)["input_ids"]
    one_hot = torch.zeros(E.shape[0])
    one_hot[i] = 1.0
    np.testing.assert_allclose(tokens.input_embedding(smol, "cat"), (one_hot @ E).numpy(), atol=1e-6)
    ids = smol.tokenizer(" unhappiness", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1
    np.testing.assert_allclose(tokens.input_embedding(smol, "unhappiness"), E[ids].mean(0).numpy(), atol=1e-6)


def test_sentence_embeddings_follow_sentence_transformers_config(minilm):
    folder = models.source_file(models.EMBEDDED["minilm-l6"])
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    assert any(m["type"].endswith("Normalize") for m in json.loads((folder / "modules.json").read_text()))
    texts = ["cat", "a very small kitten sleeping", "airplane"]
    batched = tokens.sentence_embeddings(minilm, texts)  # padded batch
    for row, text in zip(batched, texts):  # one at a time: no padding, plain mean
        enc = minilm.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            h = minilm.model(**enc).last_hidden_state[0]  # (T, hidden)
        ref = torch.nn.functional.normalize(h.mean(0), dim=0).numpy()
        np.testing.assert_allclose(row, ref, atol=1e-5)
    assert np.allclose(np.linalg.norm(batched, axis=-1), 1.0, atol=1e-5)


def test_cosine_and_pca_on_known_vectors():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    np.testing.assert_allclose(tokens.cosine_matrix(x), [[1, 0, -1], [0, 1, 0], [-1, 0, 1]], atol=1e-12)
    pts = np.array([[t, 2 * t, 0.0] for t in (-2.0, -1.0, 0.0, 1.0, 2.0)])  # a line: one axis explains all
    coords, ratio = tokens.pca(pts, 3)
    assert coords.shape == (5, 3) and ratio[0] == pytest.approx(1.0) and ratio[1:].sum() == pytest.approx(0.0)
    np.testing.assert_allclose(np.abs(coords[:, 0]), np.sqrt(5) * np.abs([-2, -1, 0, 1, 2]), atol=1e-9)


def test_word_spans_and_index():
    text = "ab  cd e"
    spans = tokens.word_spans(text)
    assert spans == [(0, 2), (4, 6), (7, 8)] and [text[a:b] for a, b in spans] == text.split()
    # a token over "b", one over the spaces, one over " c", one over "d e" (first word wins)
    assert tokens.word_index([(1, 2), (2, 4), (3, 5), (5, 8)], spans) == [0, -1, 1, 1]


def test_embed_trace_and_round_trip(smol, minilm, tmp_path):
    words = ["cat", "dog", "kitten", "airplane"]
    e = tokens.embed(smol, words)
    assert e.similarity[0, 1] > e.similarity[0, 3]  # cat is nearer dog than airplane
    s = tokens.embed(minilm, words, source="sentence")
    assert s.similarity[0, 2] > s.similarity[0, 3]
    back = Trace.load(e.save(tmp_path / "e.npz"))
    assert isinstance(back, EmbeddingTrace) and back.words == words
    np.testing.assert_array_equal(back.similarity, e.similarity)
    t = tokens.compare([smol], "don't")
    assert isinstance(Trace.load(t.save(tmp_path / "t.npz")), TokenizationTrace)
    assert e.kind == "embedding" and t.kind == "tokenization"  # the kinds committed files carry


def test_embed_refuses_what_it_cannot_do(smol, minilm):
    with pytest.raises(ValueError, match="between 3 and 40"):
        tokens.embed(smol, ["cat", "dog"])
    with pytest.raises(ValueError, match="between 3 and 40"):
        tokens.embed(smol, ["w"] * 41)
    with pytest.raises(ValueError, match="between 3 and 5"):
        tokens.embed(smol, ["w"] * 6, max_words=5)
    with pytest.raises(ValueError, match="sentence encoder"):
        tokens.embed(smol, ["cat", "dog", "car"], source="sentence")
    with pytest.raises(ConfigError, match="source"):
        tokens.TokensConfig(source="glove")
    with pytest.raises(ConfigError, match="max_words"):
        tokens.TokensConfig(max_words=2)


def test_analogy_is_honest(smol, minilm):
    a = tokens.analogy(smol, "king", "man", "woman", "queen", k=10)
    assert a.kind == "analogy" and len(a.neighbours) == 10
    E = smol.model.get_input_embeddings().weight.detach()
    target = torch.from_numpy(
        tokens.input_embedding(smol, "king")
        - tokens.input_embedding(smol, "man")
        + tokens.input_embedding(smol, "woman")
    )
    ref = torch.nn.functional.cosine_similarity(E, target[None], dim=-1)
    top = torch.topk(ref, 10)
    assert a.ids.tolist() == top.indices.tolist()
    np.testing.assert_allclose(a.scores, top.values.numpy(), atol=1e-5)
    m = tokens.analogy(minilm, "king", "man", "woman", "queen")
    assert m.is_input[m.neighbours.index("king")]  # the input word is kept and flagged, not hidden
    assert m.expected_rank_without_inputs <= m.expected_rank
    assert isinstance(m, AnalogyTrace)
    assert tokens.analogy(smol, expected="unhappiness").expected_rank == -1  # not one token: no rank


def test_demo_handlers_and_bad_input(smol, minilm):
    from demos import tokens as d

    assert isinstance(d.demo, gr.Blocks) and registry.get("tokens").demo == d.__name__
    fig, md = d.tokenize(d.DEFAULT_TEXT)
    assert isinstance(fig, go.Figure) and "smollm2-135m" in md
    sim, proj = d.embed(d.DEFAULT_WORDS, "MiniLM sentence embeddings", 3)
    assert isinstance(sim, go.Figure) and isinstance(proj, go.Figure)
    fig, md = d.analogy("king", "man", "woman", "queen", "SmolLM2 input embeddings")
    assert "ranks" in md
    _, md = d.analogy("king", "man", "woman", "banana", "SmolLM2 input embeddings")  # far down the vocabulary
    assert re.search(r"ranks \*\*\d{1,3}(,\d{3})+\*\* of .* it ranks \*\*\d{1,3}(,\d{3})+\*\*\.", md), md
    d.tokenize("\u200b\u0301 ☃︎ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \x00")  # odd Unicode is fine
    for call in (
        lambda: d.tokenize("   "),
        lambda: d.tokenize("x" * 5000),
        lambda: d.embed("cat, dog", "MiniLM input embeddings", 2),
        lambda: d.embed("a, b, c", "GloVe", 2),
        lambda: d.embed("a, b, c", list(d.SOURCES)[0], "two"),
        lambda: d.embed(", ".join(["w"] * 50), list(d.SOURCES)[0], 2),
        lambda: d.analogy("king", "", "woman", "queen", list(d.SOURCES)[0]),
        lambda: d.analogy("king", "man", "woman", "queen", "MiniLM sentence embeddings"),
    ):
        with pytest.raises(ui.UserError):
            call()


def test_demo_through_a_real_server(live_server):
    client = live_server.client("tokens")
    fig, md = client.predict("don't 😊", api_name="/tokenize")
    assert "byte-fallback" in md
    with pytest.raises(Exception, match="empty"):
        client.predict("  ", api_name="/tokenize")


def test_presets(smol, minilm):
    from demos import tokens as d

    class Req:
        query_params = {"text": "don't", "words": "cat, dog, kitten", "source": "GloVe", "dims": "3"}

    view, dims, expected, status, hero, *_, text, words, a, b, c, source, _, _, king = d.on_load(Req())
    assert (view, dims, expected) == ("pieces", 3, "queen")  # the default view; a valid dims preset is kept
    assert (text["value"], words["value"], source["value"]) == ("don't", "cat, dog, kitten", list(d.SOURCES)[0])
    assert text["visible"] and not words["visible"] and not a["visible"]  # the strip shows the view's controls
    assert "smollm2-135m" in status and isinstance(hero, go.Figure) and hero.layout.height is None
    assert not king["visible"]

    class Bad:
        query_params = {"dims": "5", "view": "nonsense"}

    out = d.on_load(Bad())
    assert out[0] == "pieces" and out[1] == tokens.TokensConfig.default("dims")  # values the config refuses

    class Analogy:
        query_params = {"view": "analogy", "a": "paris", "b": "france", "c": "italy", "expected": "rome"}

    view, _, expected, status, hero, *_, a, b, c, source, _, _, _ = d.on_load(Analogy())
    assert view == "analogy" and expected == "rome" and a["value"] == "paris" and a["visible"]
    assert "paris − france + italy" in hero.layout.title.text and "rome" in status


def test_byte_labels_and_cells():
    from toolkit.tokens import maths

    assert maths.byte_label("ĠðŁĺ") == "␣<F0 9F 98>"  # GPT-2's byte alphabet: Ġ is the space byte
    assert maths.byte_label("Ĭ") == "<8A>"
    assert maths.byte_label("<0xF0><0x9F>") == "<F0 9F>"  # SentencePiece's byte pieces
    assert maths.byte_label("é") == "<E9>" and maths.byte_label("中") == ""  # not in the alphabet: no label
    assert maths.cells("ab") == 2 and maths.cells("😊") == 2 and maths.cells("東京") == 4
    assert maths.cells("e\u0301") == 1  # a combining accent takes no cell


def test_chips_wrap_like_text():
    from toolkit.tokens import chips

    n = chips.cells_per_line(20)
    items = [chips.Chip("x" * 10)] * 12 + [chips.Chip("end", newline=True), chips.Chip("next")]
    placed = chips.layout(items, 20)
    lines = [line for _, line, _ in placed]
    assert lines == sorted(lines) and max(x + w for x, _, w in placed) <= n  # left to right, never past the edge
    assert lines[-1] == lines[-2] + 1 and placed[-1][0] == 0  # a newline token ends its line
    assert chips.tint("#E69F00", 0.3) == "rgba(230,159,0,0.3)"


def test_pieces_figure_shows_the_real_pieces(smol, minilm):
    t = tokens.compare([smol, minilm], "unhappiness, unhappiness 😊")
    fig = tokens.figures.pieces(t, dark=True)
    texts = [[html.unescape(x) for x in tr.text] for tr in fig.data]  # per tokenizer: pieces, then the ids under them
    s, m = t.views
    shown = [p.replace(" ", "␣") for p in s["pieces"][:-2]]
    assert texts[0][: len(shown)] == shown and shown[:6] == ["un", "h", "appiness", ",", "␣unh", "appiness"]
    assert texts[0][-2:] == ["␣<F0 9F 98>", "<8A>"]  # the emoji's bytes, split where the tokenizer splits them
    assert bytes.fromhex("F09F988A").decode() == "😊"
    assert texts[1] == [str(i) for i in s["ids"]]
    assert texts[2][:4] == ["un", "##ha", "##pp", "##iness"] and "⚠[UNK]" in texts[2]
    assert len(fig.layout.shapes) == len(s["ids"]) + len(m["ids"])  # one box per token


def test_page_views(smol, minilm):
    from demos import tokens as d

    args = (d.DEFAULT_TEXT, d.DEFAULT_WORDS, list(d.SOURCES)[0], 2, *d.ANALOGY)
    for view, title in (("pieces", "two tokenizers"), ("embedding", "PCA"), ("similarity", "Cosine"), ("analogy", "")):
        status, hero, second, second_tab, table, table_tab, *strip, _, _, _ = d.show_ui(view, *args)
        assert isinstance(hero, go.Figure) and title in hero.layout.title.text and hero.layout.height is None
        assert [u["visible"] for u in strip] == list(d.STRIP[view])
    status, hero, second, *_, king_plot, king_md, king_tab = d.show_ui("embedding", *args)
    assert "closest pair **apple–banana**" in status  # all one-token words: the nearest pair means something
    assert king_tab["visible"] and "ranks" in king_md["value"]  # king − man + woman, one tab under the map
    assert "king − man + woman" in king_plot["value"].layout.title.text
    assert second["visible"] and "Cosine" in second["value"].layout.title.text
    status, *_, table, table_tab = d.show_ui("pieces", *args)[:6]
    assert "Tokens per word" in table["value"] and table_tab["visible"]
    with pytest.raises(ui.UserError, match="Unknown view"):
        d.show_ui("wordcloud", *args)


def test_before_the_transformer_slide_states_the_model(smol):
    """The slide's one-hot width and embedding size are SmolLM2's (it shows this demo's embedding view)."""
    import re

    from lecture.deck import deck_slides

    (slide,) = [x for x in deck_slides() if re.search(r"^# Before the Transformer", x, re.M)]
    assert f"one-hot vector ({smol.config.vocab_size:,} wide)" in slide
    assert f"embedding_dim = {smol.config.hidden_size}" in slide
    assert smol.model.get_input_embeddings().weight.shape == (smol.config.vocab_size, smol.config.hidden_size)
    assert 'shot="tokens-embedding"' in slide and '"view": "embedding"' in slide
