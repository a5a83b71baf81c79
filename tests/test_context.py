"""Context engineering: the dropping policy on hand-made parts, every token of the real prompt charged to exactly
one part, the dropping order, few-shot margins equal to the model's own log-probabilities, the recorded
measurement against the slide, and the demo."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from toolkit import context as cx
from toolkit.context.record import ASSET


def test_dropping_policy_on_known_parts():
    parts = [
        cx.Part("tools", "tools", 100, *cx.priority("tools", 0)),
        cx.Part("p1", "passage", 50, *cx.priority("passage", 0)),
        cx.Part("p2", "passage", 50, *cx.priority("passage", 1)),
        cx.Part("old", "history", 30, *cx.priority("history", 0)),
        cx.Part("new", "history", 30, *cx.priority("history", 1)),
    ]
    assert cx.to_drop(parts, fixed=40, budget=1000) == []
    assert cx.to_drop(parts, fixed=40, budget=280) == [3]  # 300 -> drop the oldest turn: 270
    assert cx.to_drop(parts, fixed=40, budget=200) == [3, 4, 2]  # both turns, then the weaker passage
    assert cx.to_drop(parts, fixed=40, budget=10) == [3, 4, 2, 1]  # never the tools: it cannot fit


@pytest.mark.slow
def test_every_token_is_charged_once(smol):
    """Kept parts + template = the real prompt's token count, for several windows; dropping goes oldest turn
    first, then the lowest-ranked passage; nothing is dropped when everything fits."""
    from toolkit.context.capture import prompt_messages

    question = "What does assert do?"
    for window in (8192, 700, 512, 300):
        t = cx.budget(smol, question, window=window)
        kept = [p for p in cx.offered_parts(question, cx.ContextConfig(window=window)) if p["name"] in
                {r["name"] for r in t.parts if r["kept"]}]  # fmt: skip
        messages = prompt_messages(question, kept)
        text = smol.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert t.total == len(smol.tokenizer(text, add_special_tokens=False)["input_ids"])
        order = [p["name"] for p in t.dropped()]
        turns = [n for n in order if n.startswith("turn")]
        assert turns == sorted(turns, key=lambda n: int(n.split()[1]))  # oldest first
        assert order[: len(turns)] == turns  # every turn goes before any passage
        passages = [n for n in order if n.startswith("passage")]
        assert passages == sorted(passages, key=lambda n: -int(n.split()[1].rstrip(":")))  # weakest first
        if window == 8192:
            assert t.fits and not order
    assert not cx.budget(smol, question, window=64).fits


def test_retrieval_finds_the_topic():
    assert cx.retrieve("What does the assert statement raise?", 1)[0][0] == "assert"
    assert cx.retrieve("anything", 0) == []


@pytest.mark.slow
def test_fewshot_margin_is_the_models_log_probability():
    from architectures import tiny

    from toolkit.reasoning.generate import chat_ids

    model = tiny("llama-gqa")
    reviews = cx.REVIEWS[:3]
    trace = cx.fewshot(model, shots=(0, 2), reviews=reviews)
    ids = chat_ids(model, cx.fewshot_messages(reviews[1][0], 2), "Sentiment:")
    with torch.no_grad():
        logp = torch.log_softmax(model.model(torch.tensor([ids])).logits[0, -1], -1)
    pos, neg = (model.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in ("positive", "negative"))
    assert trace.margin[1, 1] == pytest.approx(float(logp[pos] - logp[neg]), abs=1e-4)
    assert trace.correct.shape == (2, 3)
    two = cx.fewshot_messages("x", 2)
    assert [m["role"] for m in two] == ["user", "assistant", "user", "assistant", "user"]


def test_bundled_reviews():
    assert len(cx.REVIEWS) == 48 and sum(label == "positive" for _, label in cx.REVIEWS) == 24
    assert not {t for t, _ in cx.DEMOS} & {t for t, _ in cx.REVIEWS}  # examples are never tested on


@pytest.fixture(scope="module")
def recorded():
    return cx.FewShotTrace.load(ASSET)


def _slide(title: str) -> str:
    from lecture.deck import deck_slides

    found = [s for s in deck_slides() if re.search(rf"^# .*{re.escape(title)}", s, re.M)]
    assert len(found) == 1, f"{len(found)} slides titled {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_slides_state_the_measurements(recorded, smol):
    text = _slide("zero-shot vs few-shot")
    for k in (0, max(recorded.shots)):
        acc, lo, hi, right, n = recorded.accuracy(k)
        assert f"{k}-shot {round(100 * acc)} % [{round(100 * lo)}, {round(100 * hi)}]" in text
    k = max(recorded.shots)
    assert f'at {k}-shot the model says "positive" {round(100 * recorded.positive_rate(k))} % of the time' in text
    if recorded.accuracy(k)[2] < recorded.accuracy(0)[1]:
        assert "examples **hurt** here" in text
    k = max(recorded.shots)
    first, last = round(100 * recorded.accuracy(0)[0]), round(100 * recorded.accuracy(k)[0])
    assert f"few examples in the prompt: {first} % → {last} % (0 → {k} examples)" in _slide("Emergent abilities")
    budget = _slide("window is a budget")
    t = cx.budget(smol)
    assert f"{t.total} tokens" in budget and f"window of {t.window}" in budget
    assert np.isfinite(recorded.margin).all()


def test_demo_handlers(recorded):
    from demos import context as demo

    status, fig = demo.show("budget", cx.DEFAULT_QUESTION, 512, 4, 6, 128)
    assert "Dropped" in status and fig.data
    status, fig = demo.show("fewshot", cx.DEFAULT_QUESTION, 512, 4, 6, 128)
    assert "0-shot" in status and fig.data


def test_demo_bad_input():
    from demos import context as demo
    from demos.ui import UserError

    for args in [
        ("nope", "q", 512, 4, 6, 128),
        ("budget", "", 512, 4, 6, 128),
        ("budget", "q", 10, 4, 6, 128),
        ("budget", "q", 512, 99, 6, 128),
        ("budget", "q", 512, 4, 6, "x"),
    ]:
        with pytest.raises(UserError):
            demo.show(*args)


@pytest.mark.slow
def test_demo_through_live_server(live_server):
    client = live_server.client("context")
    status, plot = client.predict("budget", "What does pass do?", 256, 2, 2, 64, api_name="/show")
    assert "window of 256" in status
