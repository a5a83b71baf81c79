"""KV cache: the memory formula against real caches (SmolLM2, tiny GQA / MHA / bf16 configs), same tokens with
and without the cache, and the cache is faster on a long prompt."""

from __future__ import annotations

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from demos import ui
from toolkit import arch, kv_cache, registry
from toolkit.config import ConfigError
from toolkit.kv_cache import KvCacheTrace
from toolkit.models import Loaded
from toolkit.trace import Trace


def test_formula_by_hand(smol):
    # SmolLM2: 2 x 30 layers x 3 kv-heads x 64 x length x 4 bytes = 46,080 bytes per token in fp32
    a = arch.of(smol)
    assert kv_cache.formula_bytes(a, 1) == 46_080
    assert kv_cache.formula_bytes(a, 100, bytes_per_number=2) == 2 * 30 * 3 * 64 * 100 * 2
    assert kv_cache.formula_bytes(a, 10, batch=4) == 4 * 10 * 46_080
    assert kv_cache.dims(a) == {"layers": 30, "kv_heads": 3, "heads": 9, "head_dim": 64}


def test_formula_equals_the_cache_generate_returns(smol):
    ids = smol.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = smol.model.generate(ids, max_new_tokens=5, do_sample=False, return_dict_in_generate=True)
    length = out.cache.get_seq_length()
    assert length == out.sequences.shape[1] - 1  # the last token is never fed back
    assert kv_cache.measured_bytes(out.cache) == kv_cache.formula_bytes(arch.of(smol), length)
    t = kv_cache.capture(smol, "The capital of France is", steps=5)
    assert [int(i) for i in out.sequences[0, ids.shape[1] :]] == smol.tokenizer(
        "".join(t.tokens), add_special_tokens=False
    )["input_ids"]


@pytest.mark.parametrize("kv_heads,dtype", [(1, torch.float32), (4, torch.float32), (2, torch.bfloat16)])
def test_formula_on_tiny_random_configs(smol, kv_heads, dtype):
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=smol.config.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        head_dim=16,
        max_position_embeddings=256,
    )
    model = LlamaForCausalLM(cfg).to(dtype).eval()
    t = kv_cache.capture(Loaded("tiny", model, smol.tokenizer, "causal"), "one two three four", steps=6)
    assert t.bytes_per_number == (2 if dtype == torch.bfloat16 else 4)
    assert np.array_equal(t.measured_bytes, 2 * 3 * kv_heads * 16 * t.lengths * t.bytes_per_number)
    assert t.same_tokens and t.bytes_per_token == 2 * 3 * kv_heads * 16 * t.bytes_per_number
    assert t.dims == {"layers": 3, "kv_heads": kv_heads, "heads": 4, "head_dim": 16} and t.max_positions == 256


def test_config_ranges_and_prompt_limit(smol):
    for bad in (dict(steps=1), dict(steps=kv_cache.MAX_NEW_TOKENS + 1), dict(max_tokens=0), dict(max_tokens=10_000)):
        with pytest.raises(ConfigError):
            kv_cache.KvCacheConfig(**bad)
    t = kv_cache.capture(smol, "one two three four five six seven eight", steps=2, max_tokens=4)
    assert t.n_prompt == 4 and t.meta["truncated"] and t.meta["n_tokens_in_text"] > 4
    assert t.lengths.tolist() == [4, 5]


def test_trace_cache_is_faster_on_a_long_prompt(smol, tmp_path):
    prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * 40)  # about 400 tokens
    t = kv_cache.capture(smol, prompt, steps=4)
    assert t.n_prompt > 300 and t.same_tokens
    # ~400x fewer tokens per forward; CPU time, as wall time on a shared machine measures the neighbours too
    assert t.cpu_uncached[1:].sum() > 3 * t.cpu_cached[1:].sum()
    back = Trace.load(t.save(tmp_path / "k.npz"))
    assert isinstance(back, KvCacheTrace) and back.tokens == t.tokens and back.kind == "kv_cache"


def test_times_title_says_when_the_cache_did_not_help(smol):
    """A one-token prompt leaves nothing to recompute: the title must not call 0.9x "faster"."""
    import dataclasses

    from toolkit.kv_cache import figures as views

    t = kv_cache.capture(smol, "Hi", steps=3)
    slow = dataclasses.replace(t, n_prompt=1, seconds_cached=np.array([0.2, 0.05, 0.05]))
    slow = dataclasses.replace(slow, seconds_uncached=np.array([0.2, 0.045, 0.045]))
    fig = views.times(slow)
    assert "no faster with the cache (0.9×) on a 1-token prompt" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "generated token (prompt: 1 token)"
    fast = dataclasses.replace(slow, seconds_uncached=np.array([0.2, 0.1, 0.1]))
    assert "2.0× faster with the cache" in views.times(fast).layout.title.text


def test_demo_handlers_and_bad_input(smol):
    from demos import kv_cache as d

    assert isinstance(d.demo, gr.Blocks) and registry.get("kv_cache").demo == d.__name__
    a, b, md = d.run("Hello", 3)
    assert isinstance(a, go.Figure) and isinstance(b, go.Figure) and "bytes" in md
    for args in (("", 3), ("hi", "many"), ("x" * 7000, 3), ("hi", float("nan")), (None, 3), ("hi", 1), ("hi", 65)):
        with pytest.raises(ui.UserError):
            d.run(*args)

    class Req:
        query_params = {"prompt": "Hi", "steps": "999"}

    assert d.on_load(Req())[:2] == ("Hi", d.DEFAULT_STEPS)


def test_demo_through_a_real_server(live_server):
    _, _, md = live_server.client("kv_cache").predict("Hello", 2, api_name="/run")
    assert "identical with and without the cache: True" in md


def test_page_views_swap_without_a_new_run(smol):
    from demos import kv_cache as d

    status, hero, second, tab, shown = d.run_ui("times", "Hello there", 3)
    assert "the same tokens both ways" in status and "✓" in status  # the formula equals the measured cache
    assert "faster with the cache" in hero.layout.title.text and hero.layout.height is None
    assert "KiB per token" in second.layout.title.text and tab["label"] == "cache memory"
    status2, hero2, second2, tab2 = d.show_view("memory", shown)  # the figures of that run, swapped
    assert status2 == status and hero2 is shown["memory"] and second2 is shown["times"]
    assert tab2["label"] == "time per token"
    assert d.show_view("memory", None) == (gr.skip(),) * 4  # no run yet: nothing to swap
    with pytest.raises(ui.UserError):
        d.run_ui("flamegraph", "Hello", 3)
