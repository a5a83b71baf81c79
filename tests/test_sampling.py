"""Sampling: the filters equal transformers' logits warpers; greedy and seeded runs equal generate()."""

from __future__ import annotations

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from demos import ui
from toolkit import registry, style
from toolkit import sampling as S
from toolkit.config import ConfigError
from toolkit.sampling import DecodeTrace, NextTokenTrace
from toolkit.trace import Trace

CONFIGS = [
    S.SamplingConfig(1.0, 0, 1.0, 0.0),
    S.SamplingConfig(0.7, 50, 0.9, 0.0),
    S.SamplingConfig(1.5, 0, 0.5, 0.0),
    S.SamplingConfig(1.0, 0, 1.0, 0.1),
    S.SamplingConfig(0.3, 5, 0.95, 0.05),
    S.SamplingConfig(2.0, 1, 1.0, 0.0),
]


def reference(logits: torch.Tensor, cfg: S.SamplingConfig) -> list[torch.Tensor]:
    """transformers' warpers, one after another, in generate()'s order."""
    ids = torch.zeros((logits.shape[0], 1), dtype=torch.long)
    out = [logits, TemperatureLogitsWarper(cfg.temperature)(ids, logits)]
    out.append(TopKLogitsWarper(cfg.top_k)(ids, out[-1]) if cfg.top_k > 0 else out[-1])
    out.append(TopPLogitsWarper(cfg.top_p)(ids, out[-1]) if cfg.top_p < 1.0 else out[-1])
    out.append(MinPLogitsWarper(cfg.min_p)(ids, out[-1]) if cfg.min_p > 0.0 else out[-1])
    return out


def test_filters_on_a_hand_made_distribution():
    z = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = lambda x: torch.isfinite(x)[0].tolist()  # noqa: E731
    assert kept(S.top_k(z, 2)) == [True, True, False, False, False]
    assert kept(S.top_p(z, 0.7)) == [True, True, False, False, False]  # 0.5 + 0.2 reaches 0.7
    assert kept(S.top_p(z, 0.71)) == [True, True, True, False, False]
    assert kept(S.min_p(z, 0.3)) == [True, True, True, False, False]  # p >= 0.3 * 0.5
    np.testing.assert_allclose(S.top_k(z, 2).softmax(-1)[0, :2].numpy(), [5 / 7, 2 / 7], rtol=1e-6)
    assert S.temperature(z, 0.5).softmax(-1)[0, 0] > 0.5  # colder: sharper


@pytest.fixture(scope="module")
def real_logits(smol):
    return S.next_logits(smol, "The capital of France is")[None]  # (1, vocab)


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_filters_equal_transformers_warpers(cfg, real_logits):
    torch.manual_seed(0)
    random = torch.randn(4, 1000) * 3
    real = real_logits
    for logits in (random, real):
        ours, ref = S.stages(logits, cfg), reference(logits, cfg)
        for a, b in zip(ours, ref):
            assert torch.equal(torch.isfinite(a), torch.isfinite(b))
            torch.testing.assert_close(a.softmax(-1), b.softmax(-1), rtol=1e-6, atol=1e-7)


def test_next_token_trace(smol, tmp_path):
    cfg = S.SamplingConfig(0.8, 40, 0.9, 0.02)
    t = S.next_token(smol, "The capital of France is", cfg)
    assert t.tokens[0] == " Paris" and len(t.tokens) == cfg.shown and t.kind == "next_token"
    assert t.survivors[0] == smol.config.vocab_size and t.survivors[2] == 40 and t.survivors[-1] >= 1
    final = S.filtered(S.next_logits(smol, "The capital of France is"), cfg).softmax(-1)
    np.testing.assert_allclose(t.probs[-1], final[t.ids].numpy(), atol=1e-6)
    back = Trace.load(t.save(tmp_path / "n.npz"))
    assert isinstance(back, NextTokenTrace) and back.tokens == t.tokens and back.config == t.config
    assert not t.meta["truncated"] and t.meta["n_tokens_in_text"] == 5


def test_config_ranges():
    assert S.SamplingConfig() == S.SamplingConfig(1.0, 0, 1.0, 0.0)  # every filter off by default
    for bad, field in (
        (dict(temperature=0), "temperature"),
        (dict(temperature=5.5), "temperature"),
        (dict(top_k=-1), "top_k"),
        (dict(top_k=1001), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.01), "top_p"),
        (dict(min_p=-0.1), "min_p"),
        (dict(min_p=1.0), "min_p"),
        (dict(steps=0), "steps"),
        (dict(steps=S.MAX_STEPS + 1), "steps"),
        (dict(seed=-1), "seed"),
        (dict(temperature=float("nan")), "temperature"),
    ):
        with pytest.raises(ConfigError, match=field):
            S.SamplingConfig(**bad)
    assert S.SamplingConfig(top_p=1.0, min_p=0.99, temperature=0.01, top_k=1000).min_p == 0.99


def test_long_prompt_is_cut_and_says_so(smol):
    prompt = "one two three four five six seven eight"
    t = S.next_token(smol, prompt, max_tokens=3)
    assert t.meta["truncated"] and t.meta["n_tokens_in_text"] > 3
    np.testing.assert_allclose(
        S.next_logits(smol, prompt, max_tokens=3).numpy(), S.next_logits(smol, "one two three").numpy(), atol=1e-5
    )
    d = S.decode(smol, prompt, steps=2, do_sample=False, max_tokens=3)
    short = S.decode(smol, "one two three", steps=2, do_sample=False)
    assert d.meta["truncated"] and d.ids.tolist() == short.ids.tolist()


def test_greedy_and_seeded_runs_equal_generate(smol):
    prompt, steps = "Once upon a time", 6
    ids = smol.tokenizer(prompt, return_tensors="pt")["input_ids"]
    g = S.decode(smol, prompt, S.SamplingConfig(), steps=steps, do_sample=False)
    with torch.no_grad():
        ref = smol.model.generate(ids, do_sample=False, max_new_tokens=steps)[0, ids.shape[1] :]
    assert g.ids.tolist() == ref.tolist()
    assert np.all(g.step_ids[:, 0] == g.ids)  # greedy always takes rank 1
    assert g.mode == "greedy" and g.seed is None
    for cfg, seed in ((S.SamplingConfig(0.9, 50, 0.9, 0.0), 3), (S.SamplingConfig(1.3, 0, 1.0, 0.05), 11)):
        d = S.decode(smol, prompt, cfg, steps=steps, seed=seed)
        torch.manual_seed(seed)
        with torch.no_grad():
            ref = smol.model.generate(
                ids,
                do_sample=True,
                max_new_tokens=steps,
                temperature=cfg.temperature,
                top_k=cfg.top_k or None,
                top_p=cfg.top_p,
                min_p=cfg.min_p or None,
            )
        assert d.ids.tolist() == ref[0, ids.shape[1] :].tolist()
        assert isinstance(d, DecodeTrace) and d.mode == "sample" and np.all(d.chosen_prob > 0) and d.seed == seed
    five = cfg.replace(steps=steps, seed=5)
    assert S.decode(smol, prompt, five).ids.tolist() == S.decode(smol, prompt, five).ids.tolist()
    # the demo's batched pair: each row equals its own single-row run
    greedy, sampled = S.greedy_and_sampled(smol, prompt, cfg, steps=steps, seed=11)
    assert greedy.ids.tolist() == g.ids.tolist() and sampled.ids.tolist() == d.ids.tolist()
    np.testing.assert_allclose(sampled.step_probs, d.step_probs, atol=1e-4)
    with pytest.raises(ValueError):
        S.decode_rows(smol, prompt, [1, 2], cfg, steps=2)


def test_demo_handlers_and_bad_input(smol):
    from demos import sampling as d

    assert isinstance(d.demo, gr.Blocks) and registry.get("sampling").demo == d.__name__
    a, b = d.distribution(d.DEFAULT_PROMPT, 0.8, 50, 0.9, 0.05)
    assert isinstance(a, go.Figure) and isinstance(b, go.Figure)
    text, g, s = d.continue_("Hello", 1.0, 0, 1.0, 0.0, 3, 7)
    assert "greedy" in text and isinstance(s, go.Figure)
    bad = [
        ("", 1, 0, 1, 0),
        ("hi", 0, 0, 1, 0),
        ("hi", "hot", 0, 1, 0),
        ("hi", 1, 0, 0, 0),
        ("hi", 1, 0, 1.5, 0),
        ("hi", 1, 0, 1, 1.0),
        ("hi", float("nan"), 0, 1, 0),
        ("x" * 10_000, 1, 0, 1, 0),
        ("hi", 1, "many", 1, 0),
    ]
    for args in bad:
        with pytest.raises(ui.UserError):
            d.distribution(*args)
    for steps, seed in (("ten", 0), (0, 0), (S.MAX_STEPS + 1, 0), (3, -1)):
        with pytest.raises(ui.UserError):
            d.continue_("hi", 1, 0, 1, 0, steps, seed)


def test_presets_and_real_server(live_server):
    from demos import sampling as d

    class Req:
        query_params = {"prompt": "The sky is", "temperature": "9", "top_k": "5", "steps": "2"}

    out = d.on_load(Req())
    assert out[:3] == ("distribution", "The sky is", d.DEFAULTS.temperature)  # out-of-range preset falls back
    text, _, _ = live_server.client("sampling").predict("The sky is", 1.0, 10, 1.0, 0.0, 2, 1, api_name="/generate")
    assert "sampled (seed 1)" in text


def test_page_views(smol):
    from demos import sampling as d

    knobs = ("The capital of France is", 0.8, 50, 0.9, 0.0, 3, 0)
    status, hero, second, tab = d.show_ui("distribution", *knobs)
    assert "1 of 49,152 tokens survive" in status and "Paris" in status  # T 0.8 + top-p 0.9 leave one token
    assert isinstance(hero, go.Figure) and hero.layout.height is None and second["visible"]
    status, hero, *_ = d.show_ui("survivors", *knobs)
    assert list(hero.data[0].y)[-1] == 1
    status, hero, second, tab = d.show_ui("generate", *knobs)
    assert "greedy" in status and not second["visible"] and len(hero.data) == 2  # greedy beside sampled
    assert [a.text for a in hero.layout.annotations] == ["greedy (argmax)", "sampled, seed 0"]
    cells = [c for row in hero.data[0].text for c in row]
    assert sum(c.startswith("★") for c in cells) == 3  # one chosen token per step
    assert hero.data[0].textfont.size >= style.MIN_FONT
    assert d.live_ui("generate", *knobs) == (gr.skip(),) * 4  # a knob does not start a continuation
    assert d.live_ui("distribution", *knobs)[0].startswith("**")
    with pytest.raises(ui.UserError):
        d.show_ui("histogram", *knobs)
