"""oneDNN for prompt-sized fp32 products (toolkit/kernels.py, what `lecture serve` turns on where it is faster):
the same fp32 model up to the order of the sums. The demos' presets give the same tokens, decoding steps and
training keep torch's own path, and turning it off restores nn.Linear."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from toolkit import kernels, kv_cache, speculative

pytestmark = pytest.mark.skipif(not kernels.available(), reason="this PyTorch has no oneDNN linear")


@pytest.fixture
def onednn():
    kernels.enable()
    try:
        yield
    finally:
        kernels.disable()


def test_the_model_gives_the_same_numbers_up_to_the_order_of_the_sums(smol):
    ids = torch.tensor([smol.tokenizer("The keys and values of every earlier token are kept in memory.")["input_ids"]])
    with torch.no_grad():
        plain = smol.model(ids).logits
        kernels.enable()
        try:
            assert kernels.enabled()
            fast = smol.model(ids).logits
            one_row = smol.model(ids[:, :1]).logits
        finally:
            kernels.disable()
        assert not kernels.enabled() and torch.nn.Linear.forward is kernels._plain_forward
        assert torch.equal(one_row, smol.model(ids[:, :1]).logits)  # one row: torch's own path, bit for bit
    assert not torch.equal(fast, plain)  # another kernel did run
    assert torch.allclose(fast, plain, rtol=1e-4, atol=1e-3)  # fp32 both: logits up to ~40, differences ~1e-4
    assert torch.equal(fast.argmax(-1), plain.argmax(-1))


def test_training_and_other_tensors_keep_torch_s_path(onednn):
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(5, 8)
    out = lin(x)  # grad enabled and the weight requires it: autograd's path
    out.sum().backward()
    assert lin.weight.grad is not None and torch.equal(out, F.linear(x, lin.weight, lin.bias))
    assert torch.equal(kernels.linear(x.double(), lin.weight.double()), F.linear(x.double(), lin.weight.double()))
    lin.weight.requires_grad_(False)  # a frozen weight with a trained bias: the bias still gets its gradient
    lin.bias.grad = None
    lin(x).sum().backward()
    assert torch.equal(lin.bias.grad, torch.full((4,), 5.0))


def test_the_generating_demos_presets_give_the_same_tokens(smol, onednn):
    from demos import kv_cache as kv_demo

    kv = kv_cache.capture(smol, kv_demo.DEFAULT_PROMPT, steps=8)
    assert kv.same_tokens  # with the cache (one row a step) and without it (the whole text: oneDNN)
    run = speculative.capture(smol, speculative.DEFAULT_PROMPT)
    assert run.same_as_greedy  # verification passes of 1 + k rows against plain greedy's one row
    kernels.disable()
    assert kv_cache.capture(smol, kv_demo.DEFAULT_PROMPT, steps=8).tokens == kv.tokens
    assert speculative.capture(smol, speculative.DEFAULT_PROMPT).new_ids.tolist() == run.new_ids.tolist()


def test_it_is_turned_on_only_where_it_is_faster(monkeypatch):
    assert kernels.speedup(rows=8, repeats=3) > 0  # measured here: MKL's time over oneDNN's
    monkeypatch.setattr(kernels, "speedup", lambda: 1.1)
    assert kernels.enable_if_faster(1.2) == 1.1 and not kernels.enabled()
    monkeypatch.setattr(kernels, "speedup", lambda: 2.0)
    try:
        assert kernels.enable_if_faster(1.2) == 2.0 and kernels.enabled()
    finally:
        kernels.disable()


def test_onednn_sees_nine_shapes_whatever_the_prompt_length(monkeypatch):
    """oneDNN builds and keeps a kernel per shape: fed every prompt length, a process grew by hundreds of MB. From
    4 to 128 rows, padded with zeros to 8 or a multiple of 16; the results are the plain product's. Fewer or more
    rows keep torch's own path."""
    seen = []
    real = kernels._onednn
    monkeypatch.setattr(kernels, "_onednn", lambda x, w, b: seen.append(x.shape[0]) or real(x, w, b))
    w, b = torch.randn(24, 40), torch.randn(24)
    for n in (5, 8, 15, 16, 17, 63, 64, 65, 128):
        x = torch.randn(1, n, 40)
        out = kernels.linear(x, w, b)
        assert out.shape == (1, n, 24) and torch.allclose(out, F.linear(x, w, b), rtol=1e-5, atol=1e-5), n
    assert seen == [8, 8, 16, 16, 32, 64, 64, 80, 128] and set(seen) <= set(kernels.CHUNKS)
    for n in (3, 129):
        x = torch.randn(n, 40)
        assert torch.equal(kernels.linear(x, w, b), F.linear(x, w, b))
    assert len(seen) == 9


def test_a_vocabulary_sized_head_takes_onednn_only_for_a_check_of_drafts(monkeypatch):
    seen = []
    real = kernels._onednn
    monkeypatch.setattr(kernels, "_onednn", lambda x, w, b: seen.append(x.shape[0]) or real(x, w, b))
    head = torch.randn(kernels.BIG_WEIGHT // 64 + 1, 64)  # just over BIG_WEIGHT elements
    for n in (5, 16, 17):
        x = torch.randn(n, 64)
        assert torch.allclose(kernels.linear(x, head), F.linear(x, head), rtol=1e-4, atol=1e-4)
    assert seen == [8, 16]  # 1 + k drafts (k <= 12): oneDNN; a longer prompt's logits: MKL


def test_wide_weights_are_stored_column_by_column_with_the_same_values():
    model = torch.nn.Sequential(torch.nn.Linear(8, 24), torch.nn.Linear(24, 8))
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(3, 8)
    with torch.no_grad():
        expected = model(x)
        assert kernels.relayout(model) == 1  # the wide one (out 24 >= in 8); the narrow one stays row by row
        assert model[0].weight.stride() == (1, 24) and model[1].weight.is_contiguous()
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
        assert model[0].weight.untyped_storage().nbytes() == 24 * 8 * 4  # moved, not copied
        assert torch.allclose(model(x), expected, rtol=1e-6, atol=1e-6)
    assert kernels.relayout(model) == 0  # once only
    model(x).sum().backward()  # training works on it
    assert model[0].weight.grad.shape == (24, 8)


def test_a_loaded_model_decodes_the_same_tokens_as_with_its_weights_row_by_row(smol):
    """toolkit.models relayouts what it loads (decoding steps read wide weights faster). The tied head moves with
    the embedding; against a copy with every weight row by row (as transformers loads it), the same logits up to
    the order of the sums and the same greedy tokens."""
    import copy

    from toolkit.speculative import decode

    model = smol.model
    assert model.lm_head.weight is model.model.embed_tokens.weight and model.lm_head.weight.stride() == (1, 49152)
    layer = model.model.layers[0]
    assert layer.mlp.up_proj.weight.stride() == (1, 1536) and layer.self_attn.k_proj.weight.is_contiguous()
    files = kernels._mapped_files()  # transformers maps the safetensors file; a loaded model keeps none of it
    assert not any(lo <= p.untyped_storage().data_ptr() < hi for p in model.parameters() for lo, hi in files)
    rows = copy.deepcopy(model)
    with torch.no_grad():
        for p in rows.parameters():
            p.data = p.data.contiguous()
    assert all(p.is_contiguous() for p in rows.parameters())
    ids = speculative.prompt_ids(smol, speculative.DEFAULT_PROMPT)
    with torch.no_grad():
        a, b = model(torch.tensor([ids])).logits, rows(torch.tensor([ids])).logits
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-3)
    assert decode.greedy(model, ids, 24).new == decode.greedy(rows, ids, 24).new
