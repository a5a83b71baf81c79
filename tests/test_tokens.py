"""Tokens and embeddings: real tokenizers, one-hot x E, sentence-transformers pooling, PCA, analogy, the demo."""
from __future__ import annotations

import json

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from toolkit import models, tokens, ui
from toolkit.traces import AnalogyTrace, EmbeddingTrace, Trace, TokenizationTrace


def test_tokenize_matches_the_tokenizer_and_decodes_back(smol, minilm):
    text = "unhappiness don't 🦙 naïve café"
    t = tokens.compare(text, [smol, minilm])
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
    dont = tokens.tokenize("don't", smol)
    assert dont["pieces"] == ["don", "'t"]
    un = tokens.tokenize("unhappiness", smol)
    assert un["pieces"][0] == "un" and "".join(un["pieces"]) == "unhappiness"
    assert tokens.tokenize("unhappiness", minilm)["raw"][0] == "un"


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


def test_embed_trace_and_round_trip(smol, minilm, tmp_path):
    words = ["cat", "dog", "kitten", "airplane"]
    e = tokens.embed(words, smol)
    assert e.similarity[0, 1] > e.similarity[0, 3]  # cat is nearer dog than airplane
    s = tokens.embed(words, minilm, "sentence")
    assert s.similarity[0, 2] > s.similarity[0, 3]
    back = Trace.load(e.save(tmp_path / "e.npz"))
    assert isinstance(back, EmbeddingTrace) and back.words == words
    np.testing.assert_array_equal(back.similarity, e.similarity)
    t = tokens.compare("don't", [smol])
    assert isinstance(Trace.load(t.save(tmp_path / "t.npz")), TokenizationTrace)


def test_analogy_is_honest(smol, minilm):
    a = tokens.analogy(smol, "king", "man", "woman", "queen", k=10)
    E = smol.model.get_input_embeddings().weight.detach()
    target = torch.from_numpy(tokens.input_embedding(smol, "king") - tokens.input_embedding(smol, "man")
                              + tokens.input_embedding(smol, "woman"))
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

    assert isinstance(d.demo, gr.Blocks) and d.ORDER == 20
    fig, md = d.tokenize(d.DEFAULT_TEXT)
    assert isinstance(fig, go.Figure) and "smollm2-135m" in md
    sim, proj = d.embed(d.DEFAULT_WORDS, "MiniLM sentence embeddings", 3)
    assert isinstance(sim, go.Figure) and isinstance(proj, go.Figure)
    fig, md = d.analogy("king", "man", "woman", "queen", "SmolLM2 input embeddings")
    assert "ranks" in md
    d.tokenize("\u200b\u0301 ☃︎ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \x00")  # odd Unicode is fine
    for call in (lambda: d.tokenize("   "), lambda: d.tokenize("x" * 5000),
                 lambda: d.embed("cat, dog", "MiniLM input embeddings", 2),
                 lambda: d.embed("a, b, c", "GloVe", 2), lambda: d.embed("a, b, c", list(d.SOURCES)[0], "two"),
                 lambda: d.embed(", ".join(["w"] * 50), list(d.SOURCES)[0], 2),
                 lambda: d.analogy("king", "", "woman", "queen", list(d.SOURCES)[0]),
                 lambda: d.analogy("king", "man", "woman", "queen", "MiniLM sentence embeddings")):
        with pytest.raises(ui.UserError):
            call()


def test_demo_through_a_real_server(smol, minilm):
    from conftest import LiveServer

    server = LiveServer(["tokens"])
    try:
        fig, md = server.client("tokens").predict("don't 😊", api_name="/tokenize")
        assert "byte-fallback" in md
        with pytest.raises(Exception, match="empty"):
            server.client("tokens").predict("  ", api_name="/tokenize")
    finally:
        server.stop()


def test_presets(smol, minilm):
    from demos import tokens as d

    class Req:
        query_params = {"text": "don't", "words": "cat, dog, kitten", "source": "GloVe", "dims": "3"}

    out = d.on_load(Req())
    assert out[:4] == ("don't", "cat, dog, kitten", list(d.SOURCES)[0], 3)  # unknown source falls back
