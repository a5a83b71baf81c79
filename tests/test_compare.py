"""Side by side: derived models (a LoRA fine-tune, quantised copies) beside their base, unchanged; the attention
difference per head, the next-token shift with its KL (against torch's kl_div), the similarity change; the compare
mode of the attention, sampling and tokens demos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from architectures import tiny

from toolkit import attention as att
from toolkit import lora, models, sampling, tokens, variants
from toolkit.tokens import figures as token_figures

NF4 = variants.name("smollm2-135m", "nf4")
PROMPT = "The capital of France is"
TEXT = "The cat sat on the mat because it was tired"


def _fingerprint(model: torch.nn.Module) -> list[tuple[str, int, float]]:
    return [(n, p.data_ptr(), float(p.detach().double().sum())) for n, p in model.named_parameters()]


def test_derived_model_is_built_once_and_leaves_the_base_unchanged(smol):
    before = _fingerprint(smol.model)
    assert NF4 in models.derived("smollm2-135m") and set(variants.NAMES) <= set(models.derived())
    models.allow_any_model(False)  # a server that refuses unknown names still serves the operator's variants
    try:
        q = models.load(NF4)
    finally:
        models.allow_any_model(True)
    assert models.load(NF4) is q and q.tokenizer is smol.tokenizer and q.kind == "causal"
    assert _fingerprint(smol.model) == before  # same tensors, same values
    base = dict(smol.model.named_parameters())
    ours = dict(q.model.named_parameters())
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(ours[name], base[name])  # the linear weights moved to the NF4 grid...
    assert ours["model.embed_tokens.weight"].data_ptr() == base["model.embed_tokens.weight"].data_ptr()  # no copy
    with pytest.raises(ValueError, match="cannot name"):
        models.derive("smollm2-135m", "smollm2-135m", variants.VARIANTS["nf4"])
    with pytest.raises(KeyError, match="unknown variant"):
        variants.register("smollm2-135m", ("int3",))


def test_lora_tuned_copy_moves_only_the_targets():
    base = tiny("llama-gqa")
    before = _fingerprint(base.model)
    tuned = lora.tuned(base, steps=2, lr=1e-2)
    assert _fingerprint(base.model) == before
    theirs, ours = dict(base.model.named_parameters()), dict(tuned.named_parameters())
    assert set(theirs) == set(ours) and not any(p.requires_grad for p in ours.values())
    moved = {n for n in ours if not torch.equal(ours[n], theirs[n])}
    assert moved and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in moved)


def test_kl_matches_torch_kl_div():
    gen = torch.Generator().manual_seed(0)
    logp, logq = torch.randn(3, 50, generator=gen).log_softmax(-1), torch.randn(3, 50, generator=gen).log_softmax(-1)
    ref = F.kl_div(logq, logp, reduction="none", log_target=True).sum(-1)  # KL(p || q)
    torch.testing.assert_close(sampling.kl(logp, logq), ref)
    assert float(sampling.kl(logp, logp).abs().max()) == 0.0


def test_next_token_shift_against_kl_div(smol):
    t = sampling.compare(smol, NF4, PROMPT)
    ids = torch.tensor([smol.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        la = smol.model(ids).logits[0, -1].float().log_softmax(-1)
        lb = models.load(NF4).model(ids).logits[0, -1].float().log_softmax(-1)
    assert t.kl[0] == pytest.approx(float(F.kl_div(lb, la, reduction="sum", log_target=True)), rel=1e-5)
    assert t.kl[1] == pytest.approx(float(F.kl_div(la, lb, reduction="sum", log_target=True)), rel=1e-5)
    assert t.kl[0] > 0 and 0 < t.total_variation < 1 and t.models == ["smollm2-135m", NF4]
    np.testing.assert_allclose(t.probs[0], la.exp()[t.ids].numpy(), rtol=1e-5)
    assert t.tokens[0] in t.top  # the most likely token of either model is shown first
    with pytest.raises(ValueError, match="share a tokenizer"):
        sampling.compare(smol, "minilm-l6", PROMPT)
    fig = sampling.figures.shift(t)
    assert "KL(" in fig.layout.title.text and len(fig.data) == 3


def test_total_variation_by_hand():
    a = np.array([[[[1.0, 0.0], [0.5, 0.5]]]])  # (layer, head, query, key)
    b = np.array([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert att.total_variation(a, b).tolist() == [[0.25]]  # rows: 0 and ½(0.5 + 0.5) = 0.5; mean 0.25
    with pytest.raises(ValueError, match="shape"):
        att.total_variation(a, b[..., :1])


def test_attention_difference_per_head(smol):
    a, b = att.compare(smol, NF4, TEXT, qkv=False)
    fig = att.figures.head_difference(a, b, 3)
    assert len(fig.data) == a.n_heads
    future = np.triu(np.ones((len(a.tokens),) * 2, dtype=bool), 1)  # a decoder's masked cells are drawn as masked
    want = np.where(future, np.nan, b.weights[3, 2] - a.weights[3, 2])
    np.testing.assert_allclose(fig.data[2].z, want, atol=1e-6)
    tv = att.total_variation(a.weights, b.weights)
    assert fig.layout.annotations[2].text == f"head 2 · TV {tv[3, 2]:.3f}"
    assert att.figures.difference_summary(a, b).data[0].z.shape == (a.n_heads, a.n_layers)


def test_similarity_change(smol, minilm):
    words = ["cat", "dog", "car", "truck"]
    a, b = tokens.embed(smol, words), tokens.embed(minilm, words)
    fig = token_figures.similarity_difference(a, b)
    np.testing.assert_allclose(fig.data[0].z, b.similarity - a.similarity, atol=1e-6)
    same = token_figures.similarity_difference(a, tokens.embed(NF4, words))  # quantised linears: same embeddings
    assert float(np.abs(same.data[0].z).max()) == 0.0 and "identical" in same.layout.title.text


def test_demo_compare_modes():
    from demos import attention
    from demos import sampling as sampling_demo
    from demos import tokens as tokens_demo

    notice, main, second, _ = attention.show(TEXT, "smollm2-135m", 3, 0, "it", "compare", "", "cat", 8, 32, 6, NF4)
    assert "Compared with" in notice and "B − A" in main.layout.coloraxis.colorbar.title.text and second is not None
    with pytest.raises(Exception, match="share a tokenizer"):
        attention.show(TEXT, "smollm2-135m", 3, 0, "it", "compare", "", "cat", 8, 32, 6, "minilm-l6")
    status, hero, *_ = sampling_demo.show_ui("compare", PROMPT, 0.8, 50, 0.9, 0.0, 5, 0, NF4)
    assert "KL = **" in status and "KL(" in hero.layout.title.text
    with pytest.raises(Exception, match="Choose another model"):
        sampling_demo.show_ui("compare", PROMPT, 0.8, 50, 0.9, 0.0, 5, 0, "smollm2-135m")
    out = tokens_demo.show_ui(
        "compare", "cat dog", "cat, dog, car", "SmolLM2 input embeddings", 2, "king", "man", "woman", "queen"
    )
    assert "minilm" in out[0] and out[1].data[0].colorbar.title.text == "Δ cos"
    assert attention.compare_choices()[0] in models.derived() and NF4 in sampling_demo.compare_choices()


def test_compare_through_live_server(live_server):
    client = live_server.client("attention")
    notice, main, *_ = client.predict(
        TEXT, "smollm2-135m", 2, 0, "it", "compare", "", "cat", 8, 32, 6, NF4, api_name="/show"
    )
    assert "Compared with" in notice and main is not None
