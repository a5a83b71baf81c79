"""Any local Hugging Face model folder in the views: transformers MoE checkpoints (Mixtral, Qwen-MoE, OLMoE,
DeepSeek-V3 families) in the MoE views, causal and encoder models in every attention view. Tiny random configs are
saved with save_pretrained into folders, a real tokenizer beside them, and loaded the way a person would:
models.load(folder). The memory table of the real checkpoints is counted from their published configs."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import transformers as tf
from architectures import MOE_FAMILIES, tiny, tiny_moe

from toolkit import attention as att
from toolkit import models, moe, views
from toolkit.moe import params

TEXT = "The cat sat on the mat because it was tired"


def _save(model: torch.nn.Module, tokenizer, folder) -> str:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def moe_folders(tmp_path_factory, smol):
    """family -> a folder holding a tiny random MoE checkpoint and SmolLM2's tokenizer."""
    out = {}
    for family in MOE_FAMILIES:
        model = tiny_moe(family, vocab_size=smol.tokenizer.vocab_size)
        out[family] = _save(model, smol.tokenizer, tmp_path_factory.mktemp(family))
    return out


@pytest.mark.parametrize("family", list(MOE_FAMILIES))
def test_moe_checkpoint_folder_in_the_moe_views(moe_folders, family):
    """models.load(folder) -> moe.capture (transformers' path) -> every MoE view of a routed text."""
    loaded = models.load(moe_folders[family])
    assert loaded.kind == "causal" and loaded.model.config.model_type == family
    trace = moe.capture(loaded, TEXT)
    ids = loaded.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        ref = loaded.model(torch.tensor([ids]), output_router_logits=True).router_logits
    assert trace.tokens and trace.probs.shape[:2] == (2, len(ids)) and trace.top_k == 2
    np.testing.assert_allclose(trace.router_logits[1], ref[1].float().numpy(), atol=1e-5)
    assert trace.score == ("sigmoid" if family == "deepseek_v3" else "softmax")
    for name in ("tokens", "router", "load", "layers", "coactivation", "shared"):
        shown = views.show("moe", name, text=TEXT, run=moe_folders[family])
        assert isinstance(shown, str if name == "tokens" else go.Figure), name


def test_moe_checkpoint_folder_in_the_moe_demo(moe_folders):
    """A checkpoint the server holds (`lecture serve --model FOLDER`) is offered by the demo beside the committed
    runs and routes with its own top-k; a folder the server does not hold is refused with the choices."""
    from demos import moe as demo
    from demos import ui

    folder = moe_folders["mixtral"]
    models.load(folder)  # what `--model FOLDER` does at start-up
    assert folder in demo.run_choices() and set(demo.run_choices()[:3]) == {"balanced", "no_balance", "aux_free"}
    summary, tokens_html, *figures = demo.route(TEXT, folder, 1, 2)
    assert "4 experts, top-2 (the model's own)" in summary and "<span" in tokens_html
    assert len(figures) == 5 and all(isinstance(f, (go.Figure, dict)) for f in figures)
    with pytest.raises(ui.UserError, match="layers 0 to 1"):
        demo.route(TEXT, folder, 5, 2)
    with pytest.raises(ui.UserError, match="choose one of balanced"):
        demo.route(TEXT, "/no/such/folder", 0, 2)
    assert demo.replay(10, 0, folder)  # no training replay of its own: the committed one, no error


def test_memory_of_real_checkpoints():
    """Counted on the meta device from each family's published config: the totals their model cards state."""
    rows = {r["name"]: r for r in params.memory_table()}
    published = {  # (total, active) in billions, as the model cards round them
        "Mixtral 8x7B": (46.7, 12.9),
        "Qwen1.5-MoE-A2.7B": (14.3, 2.7),
        "Qwen3-30B-A3B": (30.5, 3.3),
        "OLMoE-1B-7B": (6.9, 1.3),
        "DeepSeek-V3": (671, 37),
    }
    for name, (total, active) in published.items():
        r = rows[name]
        assert r["total"] / 1e9 == pytest.approx(total, rel=0.01), name
        assert r["active"] / 1e9 == pytest.approx(active, rel=0.05), name
        assert r["gib_fp32"] == pytest.approx(r["total"] * 4 / 2**30)
    assert {r["model_type"] for r in rows.values()} == {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3"}


# ---- attention: a causal model with grouped-query attention, one with q/k/v biases, and a BERT encoder --------


@pytest.fixture(scope="module")
def attention_folders(tmp_path_factory, smol, minilm):
    out = {
        name: _save(tiny(name).model, smol.tokenizer, tmp_path_factory.mktemp(name))
        for name in ("llama-gqa", "qwen2-bias")
    }
    out["llama-mha"] = _save(tiny("llama-mha").model, smol.tokenizer, tmp_path_factory.mktemp("llama-mha"))
    torch.manual_seed(0)
    bert = tf.BertModel(
        tf.BertConfig(
            vocab_size=minilm.tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            attn_implementation="eager",
        )
    ).eval()
    out["bert"] = _save(bert, minilm.tokenizer, tmp_path_factory.mktemp("bert"))
    return out


@pytest.mark.parametrize("name", ["llama-gqa", "qwen2-bias", "bert"])
def test_model_folder_in_every_attention_view(attention_folders, name):
    """The demo's every view on the folder (as `lecture serve --model FOLDER` or `--any-model` lets visitors do),
    and the capture equals the folder model's own output_attentions."""
    from demos import attention as demo

    folder = attention_folders[name]
    loaded = models.load(folder)
    assert loaded.kind == ("encoder" if name == "bert" else "causal")
    trace = att.capture(loaded, TEXT)
    with torch.no_grad():
        ref = loaded.model(input_ids=torch.tensor([trace.meta["ids"]]), output_attentions=True).attentions
    np.testing.assert_allclose(trace.weights, torch.stack(ref)[:, 0].numpy(), atol=1e-5)
    for view in demo.VIEW_NAMES:
        args = (TEXT, folder, 1, 1, "cat", view, "", "cat, mat", 2, 32, 4, attention_folders["llama-mha"])
        if view == "generation" and name == "bert":
            with pytest.raises(Exception, match="encoder: it does not generate"):
                demo.show(*args)
            continue
        if view == "compare" and name != "llama-gqa":
            continue  # a per-head difference needs the same layers and heads: llama-gqa against llama-mha below
        notice, main, second, frame = demo.show(*args)
        assert notice.startswith("**") and "Something went wrong" not in notice
        assert main is not None or frame, view
    for view in views.views("attention"):  # the notebook API takes the folder as its model, too
        if view == "generation" and name == "bert":
            continue
        preset = {"compare": {"compare": attention_folders["llama-mha"]}, "summary": {"keys": "cat, mat"}}.get(view, {})
        if view == "compare" and name != "llama-gqa":
            continue
        shown = views.show("attention", view, text=TEXT, model=folder, **preset)
        assert isinstance(shown, str if view == "bertviz" else go.Figure), view


def test_attention_difference_of_a_model_with_itself_is_zero(attention_folders):
    a, b = att.compare(attention_folders["llama-gqa"], attention_folders["llama-gqa"], TEXT)
    assert np.array_equal(att.total_variation(a.weights, b.weights), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="share a tokenizer"):
        att.compare(attention_folders["llama-gqa"], attention_folders["bert"], TEXT)
