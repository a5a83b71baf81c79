"""RAG: reranking signals on hand-made inputs, the prompt's token attribution, the capture on SmolLM2-Instruct with
the committed sample corpus (the answer equals a plain generate() of the same prompt), the figures, the demo."""

from __future__ import annotations

import importlib
import json
import math
import re

import gradio as gr
import numpy as np
import pytest
import torch

from toolkit import rag
from toolkit.rag import figures
from toolkit.trace import Trace, TraceError

QUESTION = "How do I convert a Python object to a JSON string?"


@pytest.fixture(scope="module")
def trace(smol, minilm) -> rag.RagTrace:
    return rag.capture(smol, QUESTION, corpus="sample", k=2, candidates=6, rerank="bm25", max_new_tokens=8)


# ---- maths -----------------------------------------------------------------------------------------------------


def test_maxsim_known_answers():
    e = np.eye(4)
    assert rag.maxsim(e[:2], e) == pytest.approx(1.0)  # every question token found exactly
    assert rag.maxsim(e[:2], e[2:]) == pytest.approx(0.0)  # orthogonal tokens
    assert rag.maxsim(np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]), np.array([[1.0, 1.0, 0, 0]])) == pytest.approx(
        math.sqrt(0.5)
    )


def test_bm25_known_answer():
    bm = rag.Bm25(["json dumps object", "read a file", "json loads"])
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    assert bm.idf("json") == pytest.approx(idf)
    dl, avg = 3, (3 + 3 + 2) / 3
    tf_part = 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * dl / avg))
    assert bm.score("JSON?", "json dumps object") == pytest.approx(idf * tf_part)
    assert bm.score("xml", "json dumps object") == 0.0
    assert rag.rerank_order(np.array([0.1, 0.5, 0.5, 0.2])).tolist() == [1, 2, 3, 0]


def test_maxsim_token_vectors_in_batches_are_each_texts_own(minilm, monkeypatch):
    """The rerank encodes a few texts at a time (bounded memory); padding to the batch's longest changes nothing."""
    capture = importlib.import_module("toolkit.rag.capture")  # the module (toolkit.rag.capture is its function)
    texts = ["json", "How do I convert a Python object to a JSON string?", "read a file line by line", "x " * 300]
    monkeypatch.setattr(capture, "RERANK_BATCH", 3)
    batched = capture._token_vectors(minilm, texts)
    alone = [capture._token_vectors(minilm, [t])[0] for t in texts]  # one text: no padding at all
    assert [v.shape for v in batched] == [v.shape for v in alone]
    assert batched[3].shape[0] == 254  # cut at 256 tokens, [CLS] and [SEP] left out
    for b, a in zip(batched, alone, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-4)


def test_segment_counts_follow_offsets():
    prompt = "<s>SYS question</s>"
    offsets = [(0, 3), (3, 6), (6, 7), (7, 15), (15, 19)]
    spans = {"system": (3, 6), "question": (7, 15)}
    assert rag.segment_counts(prompt, offsets, spans) == {"template": 3, "system": 1, "question": 1}


def test_messages_hold_the_numbered_passages():
    msgs = rag.messages("Q?", [("json.dumps", "Serialize obj."), ("json.loads", "Parse.")])
    assert msgs[0] == {"role": "system", "content": rag.SYSTEM}
    assert "[1] json.dumps: Serialize obj.\n[2] json.loads: Parse." in msgs[1]["content"]
    assert msgs[1]["content"].endswith("Question: Q?")
    assert rag.messages("Q?", None)[1]["content"] == "Q?"


# ---- capture on the real models --------------------------------------------------------------------------------


def test_capture_retrieves_reranks_and_answers(trace, smol):
    assert len(trace.passage_ids) == 2 and len(trace.cand_ids) == 6
    assert any("json" in trace.titles[str(i)].lower() for i in trace.cand_ids.tolist())
    assert not np.isnan(trace.rerank_scores).any()
    ids = smol.tokenizer(trace.prompt_with, add_special_tokens=False)["input_ids"]
    assert trace.prompt_tokens == len(ids)  # every token of the prompt is attributed to one segment
    assert trace.segments == ["template", "system", "passage 1", "passage 2", "question"]
    assert all(text in trace.prompt_with for text in trace.passage_texts)
    assert "Context:" not in trace.prompt_without and QUESTION in trace.prompt_without
    with torch.no_grad():  # capturing changes nothing: the answer is plain generate() on the same prompt
        out = smol.model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    assert trace.answer_with == smol.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()


def test_wrong_passages_and_budget(smol, trace):
    wrong = rag.capture(smol, QUESTION, corpus="sample", k=2, candidates=6, wrong=True, max_new_tokens=1)
    assert set(wrong.passage_ids.tolist()).isdisjoint(wrong.cand_ids.tolist())
    assert wrong.wrong and set(trace.passage_ids.tolist()) != set(wrong.passage_ids.tolist())
    tight = rag.capture(smol, QUESTION, corpus="sample", k=3, budget=192, max_new_tokens=1)
    assert tight.dropped >= 1 and tight.prompt_tokens <= 192 and len(tight.passage_ids) == 3 - tight.dropped


def test_trace_round_trip_and_invariants(trace, tmp_path):
    back = Trace.load(trace.save(tmp_path / "rag.npz"))
    assert isinstance(back, rag.RagTrace) and back.answer_with == trace.answer_with
    assert np.array_equal(back.order, trace.order)
    with pytest.raises(TraceError, match="permutation"):
        rag.RagTrace(**{**trace.__dict__, "order": np.zeros(6, np.int64)}).check()


def test_config_and_bad_input(smol):
    with pytest.raises(ValueError, match="candidates"):
        rag.RagConfig(k=5, candidates=3)
    with pytest.raises(ValueError, match="empty"):
        rag.capture(smol, "   ", corpus="sample")
    with pytest.raises(ValueError, match="encoder"):
        rag.capture("minilm-l6", QUESTION, corpus="sample")


# ---- figures and demo --------------------------------------------------------------------------------------------


def test_figures(trace):
    html = figures.answers(trace, dark=True)
    assert 'data-lecture-view="answers"' in html and "Without passages" in html
    budget = figures.budget(trace)
    assert sum(b.x[0] for b in budget.data[:-1]) == trace.prompt_tokens + trace.answer_tokens[0]
    assert f"of {trace.budget}" in budget.layout.title.text
    moved = figures.rerank(trace)
    assert "by bm25: " in moved.layout.title.text and len(moved.data) == len(trace.cand_ids) + 1


def test_demo_views_and_bad_input(smol, minilm):
    from demos import rag as demo

    for view in demo.VIEW_NAMES:
        status, html_out, fig, budget, moved = demo.ask(QUESTION, 1, "none", False, view, "sample", max_new_tokens=2)
        assert "smollm2" in status and (fig is None) == (view == "answers") and budget is not None
    c = rag.RagConfig.default("candidates")
    assert (
        moved.layout.title.text
        == f"{c} candidates, not reranked: the order is the retriever's; the top 1 goes into the prompt"
    )
    status, html_out, _, _, moved = demo.ask(
        QUESTION, 1, "bm25", False, "answers", "sample", candidates=1, budget=128, max_new_tokens=1
    )
    assert (
        moved.layout.title.text == "Reranking 1 candidate by bm25: 0 of 1 moved; no passage fits the 128-token budget"
    )
    assert "no passages from" in status and "With no passages (none fit the 128-token budget)" in html_out
    for bad, match in (("", "empty"), ("x" * 5000, "limit")):
        with pytest.raises(gr.Error, match=match):
            demo.ask(bad, 2, "none", False, "answers", "sample")
    with pytest.raises(gr.Error, match="passages"):
        demo.ask(QUESTION, 99, "none", False, "answers", "sample")
    with pytest.raises(gr.Error, match="rerank"):
        demo.ask(QUESTION, 2, "magic", False, "answers", "sample")
    with pytest.raises(gr.Error, match="not an indexed corpus"):
        demo.ask(QUESTION, 2, "none", False, "answers", "/tmp")
    status, html_out, *_ = demo.ask("<script>alert(1)</script>", 1, "none", True, "answers", "sample", max_new_tokens=1)
    assert "<script>" not in html_out and "unrelated" in html_out


@pytest.mark.slow
def test_demo_through_live_server(live_server, smol):
    client = live_server.client("rag")
    status, html_out, fig, budget, moved = client.predict(
        QUESTION, 2, "bm25", False, "rerank", "sample", "hnsw", 6, 4, 1024, "smollm2-135m", api_name="/ask"
    )
    assert "smollm2" in status and fig["visible"] and not html_out["visible"]
    assert re.search(r"by bm25: ", json.loads(fig["value"]["plot"])["layout"]["title"]["text"])


def test_slides_state_the_defaults():
    from lecture.deck import deck_slides

    text = next(re.sub(r"\s+", " ", s) for s in deck_slides() if re.search(r"^# Reranking", s, re.M))
    assert f"retrieve {rag.RagConfig.default('candidates')} candidates" in text
    assert f"only the top {rag.RagConfig.default('k')} reach the prompt" in text
