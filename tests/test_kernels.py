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
