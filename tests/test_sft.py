"""SFT loss masking: labels from the real chat template; our per-token loss equals transformers' loss."""

from __future__ import annotations

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from demos import ui
from toolkit import sft
from toolkit.sft import SftTrace
from toolkit.trace import Trace


def test_per_token_loss_on_a_hand_made_example():
    logits = torch.log(torch.tensor([[0.5, 0.5, 0.0 + 1e-9], [0.25, 0.25, 0.5], [0.1, 0.8, 0.1]]))  # (T=3, vocab=3)
    ids = torch.tensor([0, 1, 1])  # token 1 from row 0 (p 0.5), token 2 from row 1 (p 0.25)
    nll, p = sft.per_token_loss(logits, ids, ids)
    np.testing.assert_allclose(nll.numpy(), [0.0, -np.log(0.5), -np.log(0.25)], rtol=1e-5)
    np.testing.assert_allclose(p[1:].numpy(), [0.5, 0.25], rtol=1e-5)


def test_labels_row_and_answer_mask():
    assert sft.labels([5, 6, 7, 8], 2) == [-100, -100, 7, 8]
    assert sft.answer_mask(torch.tensor([3, -100, 7, 8])).tolist() == [False, False, True, True]
    with pytest.raises(ValueError):
        sft.labels([5, 6], 3)


def test_labels_mask_exactly_the_prompt(smol):
    ids, labels, text = sft.build(smol, sft.Exchange("Hi there", "Hello!"))
    tok = smol.tokenizer
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hi there"}], add_generation_prompt=True, tokenize=False
    )
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert labels[:n] == [-100] * n and labels[n:] == ids[n:]
    assert tok.decode(ids[n:]) == "Hello!<|im_end|>\n"
    assert text.startswith("<|im_start|>system\n")  # SmolLM2's template adds its default system prompt
    _, labels_sys, text_sys = sft.build(smol, sft.Exchange("Hi there", "Hello!", system="Be brief."))
    assert "Be brief." in text_sys and "SmolLM" not in text_sys and labels_sys.count(-100) < labels.count(-100)
    assert sft.build(smol, ("Hi there", "Hello!")) == sft.build(smol, sft.Exchange("Hi there", "Hello!"))


@pytest.mark.parametrize(
    "user,answer", [("What is the capital of France?", "The capital of France is Paris."), ("Say a number.", "Seven")]
)
def test_loss_equals_transformers_with_those_labels(smol, user, answer):
    t = sft.capture(smol, sft.Exchange(user, answer))
    ids = torch.tensor([t.ids.tolist()])
    labels = torch.tensor([t.labels.tolist()])
    with torch.no_grad():
        ref = smol.model(input_ids=ids, labels=labels).loss
        logits = smol.model(input_ids=ids).logits
    assert t.loss == pytest.approx(float(ref), abs=1e-5)
    # and the same by hand with torch's cross-entropy, ignore_index=-100, on shifted labels
    by_hand = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100)
    assert t.loss == pytest.approx(float(by_hand), abs=1e-5)
    assert t.unmasked_loss != pytest.approx(t.loss, abs=1e-3)
    assert t.loss == pytest.approx(float(t.token_loss[t.answer].mean()), abs=1e-6)
    with torch.no_grad():
        unmasked = smol.model(input_ids=ids, labels=ids).loss  # labels = ids: the prompt counts too
    assert t.unmasked_loss == pytest.approx(float(unmasked), abs=1e-5)


def test_config_limits(smol):
    with pytest.raises(ValueError, match="limit is 10"):
        sft.capture(smol, sft.Exchange("What is the capital of France?", "Paris."), max_tokens=10)
    with pytest.raises(ValueError, match="system prompt"):
        sft.capture(smol, sft.Exchange("Hi", "Hello!", "s" * 2000))
    with pytest.raises(ValueError, match="max_tokens"):
        sft.SftConfig(max_tokens=10_000)
    assert sft.capture("smollm2-135m", ("Hi", "Hello!"), sft.SftConfig(max_chars=6)).loss > 0


def test_trace_round_trip(smol, tmp_path):
    t = sft.capture(smol, ("Hi", "Hello!"))
    back = Trace.load(t.save(tmp_path / "s.npz"))
    assert isinstance(back, SftTrace) and back.tokens == t.tokens and back.loss == t.loss
    np.testing.assert_array_equal(back.labels, t.labels)


def test_figures(smol):
    t = sft.capture(smol, ("Hi", "Hello!"))
    assert isinstance(sft.figures.labels_and_loss(t, dark=True), go.Figure)
    curve = sft.figures.cross_entropy_curve()
    assert isinstance(curve, go.Figure) and "49,152" in curve.layout.annotations[0].text


def test_demo_handlers_and_bad_input(smol):
    from demos import sft as d

    assert isinstance(d.demo, gr.Blocks)
    html, fig, md = d.show(d.DEFAULT_USER, d.DEFAULT_ANSWER, "")
    assert isinstance(fig, go.Figure) and "&lt;|im_start|&gt;" in html and "transformers" in md
    d.show("naïve ☃ 𝔘 \u200b", "ok 😊", "")
    for args in (("", "x", ""), ("hi", "  ", ""), ("x" * 2000, "y", ""), ("hi", "y", "s" * 2000), (None, "y", "")):
        with pytest.raises(ui.UserError):
            d.show(*args)

    class Req:
        query_params = {"user": "Hi", "answer": "Hello!"}

    assert d.on_load(Req())[:2] == ("Hi", "Hello!")


def test_demo_through_a_real_server(live_server):
    _, _, md = live_server.client("sft").predict("Hi", "Hello!", "", api_name="/show")
    assert "answer tokens learnt" in md


def test_labels_view_and_answer_loss(smol):
    t = sft.capture(smol, ("What is the capital of France?", "The capital of France is Paris."))
    fig = sft.figures.labels_view(t, dark=True)
    tokens_drawn, labels_drawn = fig.data
    assert len(tokens_drawn.text) == len(t.tokens) and list(labels_drawn.text) == [str(int(v)) for v in t.labels]
    masked = [s.line.color for s, v in zip(fig.layout.shapes, t.labels) if v == sft.IGNORE]
    learnt = [s.line.color for s, v in zip(fig.layout.shapes, t.labels) if v != sft.IGNORE]
    assert set(masked).isdisjoint(learnt) and len(learnt) == int(t.answer.sum())
    ys = sorted({round(y, 3) for y in tokens_drawn.y})
    assert len(ys) >= 6  # lines break where the chat template's text breaks (system, user, assistant turns)
    loss = sft.figures.answer_loss(t)
    bars, mean = loss.data
    assert np.allclose(bars.y, t.token_loss[t.answer]) and np.allclose(mean.y, [t.loss, t.loss])


def test_page_views(smol):
    from demos import sft as d

    status, hero, second, tab, templated = d.show_ui("labels", d.DEFAULT_USER, d.DEFAULT_ANSWER, "")
    assert "37 of 46 tokens are prompt" in status and "transformers'" in status
    assert "Labels" in hero.layout.title.text and hero.layout.height is None
    assert "Loss on the 9 answer tokens" in second.layout.title.text and "&lt;|im_start|&gt;" in templated
    status, hero, *_ = d.show_ui("loss", d.DEFAULT_USER, d.DEFAULT_ANSWER, "")
    assert "Loss" in hero.layout.title.text

    class Req:
        query_params = {"view": "loss", "user": "Hi", "answer": "Hello!"}

    user, answer, system, view, status, hero, *_ = d.on_load(Req())
    assert (user, answer, view) == ("Hi", "Hello!", "loss") and "answer tokens" in status
    with pytest.raises(ui.UserError):
        d.show_ui("heatmap", "Hi", "Hello!", "")
