"""PagedAttention: the block allocator and the scheduler on hand-made streams, a paged KV cache SmolLM2 (and five
tiny architectures) really decodes with, token for token equal to transformers' default cache, prefix sharing with
copy-on-write, the simulation with SmolLM2's bytes per token, the figures, the slides' claims and the demo."""

from __future__ import annotations

import dataclasses
import json
import re

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from architectures import ARCHITECTURES, tiny
from transformers.cache_utils import DynamicCache

from lecture.deck import deck_slides
from toolkit import arch
from toolkit import paged_attention as pa
from toolkit.config import BudgetError
from toolkit.paged_attention import figures as views
from toolkit.trace import Trace, TraceError

PROMPT = "The three primary colours are"


# ---- blocks and the scheduler on hand-made numbers ------------------------------------------------------------


def test_allocator_hands_out_the_lowest_block_and_counts_references():
    blocks = pa.BlockAllocator(3)
    assert [blocks.alloc(), blocks.alloc()] == [0, 1] and blocks.n_free == 1
    blocks.share(0)
    assert blocks.shared(0) and blocks.refs[0] == 2
    blocks.release(0)
    assert not blocks.shared(0) and blocks.n_used == 2  # still held once
    blocks.release(0)
    assert blocks.n_free == 2 and blocks.alloc() == 0  # freed blocks come back lowest first
    blocks.alloc()
    with pytest.raises(pa.OutOfBlocks):
        blocks.alloc()
    with pytest.raises(ValueError):
        pa.BlockAllocator(3).release(1)
    with pytest.raises(ValueError):
        pa.BlockAllocator(3).share(2)
    assert [pa.blocks_for(n, 16) for n in (1, 16, 17, 32)] == [1, 1, 2, 2]


def test_two_requests_by_hand():
    """Memory of 64 slots, blocks of 8, max_len 32; two requests of prompt 4 and 4 new tokens arrive at step 0."""
    reqs = [pa.Request(0, 0, 4, 4), pa.Request(1, 0, 4, 4)]
    cont = pa.maths.simulate(reqs, 64, 8, 32, "contiguous")
    paged = pa.maths.simulate(reqs, 64, 8, 32, "paged", watermark=0)
    # each step adds one token to each: lengths 5, 6, 7, 8; a request holding 8 tokens is done
    assert cont.used == paged.used == [10, 12, 14, 16]
    assert cont.allocated == [64] * 4  # two regions of max_len 32
    assert paged.allocated == [16] * 4  # one block of 8 each
    assert cont.waste == pytest.approx(1 - 52 / 256) and paged.waste == pytest.approx(1 - 52 / 64)
    assert cont.finished == paged.finished == 2 and cont.mean_running == 2


def test_paging_fits_more_and_preempts_when_memory_runs_out():
    reqs = [pa.Request(i, 0, 6, 20) for i in range(6)]
    cont = pa.maths.simulate(reqs, 64, 4, 32, "contiguous")
    paged = pa.maths.simulate(reqs, 64, 4, 32, "paged", watermark=0, frame_every=1)
    assert max(cont.running) == 2 and max(paged.running) > 2
    assert paged.preempted > 0 and paged.finished == 6  # preempted requests come back and finish
    assert all(a <= 64 for a in paged.allocated) and len(paged.used) < len(cont.used)
    frame = paged.frames[3]
    assert set(frame.owner[frame.owner >= 0]) == set(frame.tables) and (frame.fill <= 4).all()
    with pytest.raises(ValueError, match="cannot hold"):
        pa.maths.simulate(reqs, 16, 4, 32, "paged")
    with pytest.raises(ValueError, match="longer than max_len"):
        pa.maths.simulate([pa.Request(0, 0, 30, 10)], 64, 4, 32, "paged")
    with pytest.raises(ValueError, match="policy"):
        pa.maths.simulate(reqs, 64, 4, 32, "buddy")


def test_workload_is_seeded_and_bounded():
    a = pa.workload(2000, 161, 338, 2048, 2.0, seed=1)
    assert a == pa.workload(2000, 161, 338, 2048, 2.0, seed=1) and a != pa.workload(2000, 161, 338, 2048, 2.0)
    assert all(r.total <= 2048 and r.prompt >= 1 and r.output >= 1 for r in a)
    assert np.mean([r.prompt for r in a]) == pytest.approx(161, rel=0.1)
    arrivals = [r.arrival for r in a]
    assert arrivals == sorted(arrivals) and arrivals[-1] == pytest.approx(1000, rel=0.1)


# ---- the paged cache inside the real model -------------------------------------------------------------------


def _ids(loaded, text=PROMPT):
    return loaded.tokenizer(text)["input_ids"]


def test_smollm2_greedy_on_the_paged_cache_equals_the_default_cache(smol):
    ids = _ids(smol)
    pool = pa.BlockPool.for_model(smol.model, n_blocks=8, block_size=4)
    paged = pa.PagedCache(pool)
    ours = pa.greedy(smol.model, [ids], paged, 6, None)
    default = pa.greedy(smol.model, [ids], DynamicCache(config=smol.model.config), 6, None)
    assert ours == default and len(ours) == 6
    assert paged.get_seq_length() == len(ids) + 5 and len(paged.table) == pa.blocks_for(len(ids) + 5, 4)
    # the keys attention read are the ones in the pool, in block-table order
    keys = pool.keys[0, paged.table].transpose(0, 1).reshape(arch.of(smol.model).kv_heads, -1, 64)
    with torch.no_grad():
        ref = smol.model(input_ids=torch.tensor([ids + ours[:-1]]), use_cache=True).cache.layers[0].keys[0]
    assert torch.allclose(keys[:, : ref.shape[1]], ref, atol=1e-5)
    # transformers' own generate() decodes with the paged cache too, to the same tokens
    with torch.no_grad():
        hf_paged = smol.model.generate(
            torch.tensor([ids]),
            max_new_tokens=6,
            do_sample=False,
            cache=pa.PagedCache(pa.BlockPool.for_model(smol.model, 8, 4)),
        )
    assert hf_paged[0, len(ids) :].tolist() == ours


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_paged_cache_over_architectures(name):
    loaded = tiny(name)
    ids = _ids(loaded, "one two three four five six")
    pool = pa.BlockPool.for_model(loaded.model, 16, 3)
    ours = pa.greedy(loaded.model, [ids], pa.PagedCache(pool), 8, None)
    assert ours == pa.greedy(loaded.model, [ids], DynamicCache(config=loaded.model.config), 8, None)


def test_fork_shares_blocks_and_copies_on_write():
    loaded = tiny("llama-gqa")
    pool = pa.BlockPool.for_model(loaded.model, 16, 4)
    root = pa.PagedCache(pool)
    pa.greedy(loaded.model, [_ids(loaded, "one two three four five six")], root, 0, None)  # prefill only
    n = root.get_seq_length()
    a, b = root.fork("a"), root.fork("b")
    root.release()
    assert a.table == b.table and all(pool.blocks.refs[x] == 2 for x in a.table)
    pa.greedy(loaded.model, [[5, 6]], a, 0, None)
    if n % 4:  # the last prefix block was partly full: a writes into its own copy
        assert a.copied == [n // 4] and a.table[n // 4] != b.table[n // 4] and pool.copies == 1
        assert torch.equal(pool.keys[:, a.table[n // 4], :, : n % 4], pool.keys[:, b.table[n // 4], :, : n % 4])
    assert a.table[: n // 4] == b.table[: n // 4]  # full prefix blocks stay shared
    pa.greedy(loaded.model, [[7]], b, 0, None)
    assert b.copied == [] and pool.copies == (1 if n % 4 else 0)  # b is the last holder: it writes in place
    with pytest.raises(ValueError, match="one request"):
        a.layers[0].update(torch.zeros(2, 2, 1, 8), torch.zeros(2, 2, 1, 8))


@pytest.fixture(scope="module")
def run(smol):
    return pa.generate(smol, config=pa.PagedConfig(block_size=16, new_tokens=4))


def test_generate_shares_the_system_prompt_and_matches_the_default_cache(smol, run):
    assert run.same and run.prefix == pa.common_prefix(run.prompts) == 35
    assert len(run.shared) == run.prefix // 16 == 2 and run.copies == 1 and run.copied == [[2], []]
    assert run.blocks_alone - run.blocks_used == len(run.shared)  # the partial block was copied: no saving there
    one_shot = []
    for p in run.prompts:  # not chunked: the whole prompt at once, transformers' generate
        with torch.no_grad():
            out = smol.model.generate(torch.tensor([p]), max_new_tokens=4, do_sample=False)
        one_shot.append(out[0, len(p) :].tolist())
    assert one_shot == run.generated
    with pytest.raises(ValueError, match="too small"):
        pa.generate(smol, config=pa.PagedConfig(block_size=4, n_blocks=8, new_tokens=2))
    with pytest.raises(ValueError, match="non-empty"):
        pa.generate(smol, ["fine", "  "])


def test_run_trace_round_trip_and_invariants(run, tmp_path):
    back = Trace.load(run.save(tmp_path / "run.npz"))
    assert isinstance(back, pa.PagedRunTrace) and back.tables == run.tables and back.copies == run.copies
    with pytest.raises(TraceError, match="other tokens"):
        dataclasses.replace(run, reference=[[1], [2]]).check()
    fig = views.sharing(run)
    z = np.array(fig.data[0].z, dtype=float)
    assert (z == 0).sum() == len(run.shared) * len(run.users) and (z == 1).sum() == run.copies


# ---- the simulation with SmolLM2's bytes per token -----------------------------------------------------------


@pytest.fixture(scope="module")
def sharegpt(smol):
    return pa.simulate(smol, pa.PRESETS["sharegpt"])


def test_simulation_uses_the_real_bytes_per_token(smol, sharegpt):
    a = arch.of(smol.model)
    assert sharegpt.bytes_per_token == 2 * a.layers * a.kv_heads * a.head_dim * 4 == 46_080
    assert sharegpt.capacity == 2048 * 2**20 // 46_080
    w, r = sharegpt.waste, sharegpt.mean_running
    assert 0.6 <= w[0] <= 0.85 and w[1] < 0.04  # the vLLM paper: 60-80% vs under 4%
    assert r[1] > 3 * r[0]


def test_sim_frames_match_the_series(smol):
    sim = pa.simulate(smol)
    for f in (0, len(sim.frame_steps) // 2):
        req, tok = views.slots(sim, f)
        step = int(sim.frame_steps[f])
        assert tok[1].sum() == sim.used[1, step] and (req[1] >= 0).sum() == sim.allocated[1, step]
        assert tok[0].sum() == sim.used[0, step] and (req[0] >= 0).sum() == sim.allocated[0, step]
    with pytest.raises(TraceError, match="more slots"):
        dataclasses.replace(sim, used=sim.allocated + 1).check()
    with pytest.raises(ValueError, match="not one request"):
        pa.simulate(smol, memory_mib=1, max_len=1024)
    for fig in (views.memory_map(sim, 100), views.tables(sim, 100), views.waste(sim, 100)):
        assert isinstance(fig, go.Figure) and fig.layout.title.text


def test_sim_budgets_bound_time_and_memory(smol):
    """The widgets' extremes get a sentence, not minutes of simulation or a gigabyte of frames."""
    with pytest.raises(BudgetError, match="steps of arrivals"):
        pa.simulate(smol, requests=2000, rate=0.01)
    with pytest.raises(BudgetError, match="prompt and output tokens"):
        pa.simulate(smol, requests=2000, mean_output=8192, max_len=32768, memory_mib=2048, block_size=256, rate=100)
    with pytest.raises(BudgetError, match="blocks in the block map"):
        pa.simulate(smol, memory_mib=65536, block_size=1)


# ---- the slides' claims --------------------------------------------------------------------------------------


def _slide(title: str) -> str:
    found = [s for s in deck_slides() if re.search(rf"^# .*{re.escape(title)}", s, re.M)]
    assert len(found) == 1, f"{len(found)} slides titled {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_paged_slide_states_the_simulation(sharegpt):
    text = _slide("PagedAttention: the KV cache in pages")
    w, r = sharegpt.waste, sharegpt.mean_running
    assert f"{sharegpt.bytes_per_token / 1024:.0f} KiB per token" in text
    assert f"{100 * w[0]:.0f}%" in text and f"{100 * w[1]:.1f}%" in text
    assert f"{r[0]:.0f} to {r[1]:.0f} requests at once" in text


def test_sharing_slide_states_the_run(run):
    text = _slide("Prefix sharing")
    assert f"{run.prefix}-token" in text and f"{len(run.shared)} full blocks" in text


# ---- the demo ------------------------------------------------------------------------------------------------


def test_demo_views(smol):
    from demos import paged_attention as demo

    for view in demo.VIEW_NAMES:
        status, fig, slider = demo.show(view, 200, 16, 48, new_tokens=1)
        assert isinstance(fig, go.Figure) and status
    assert "identical" in status  # the sharing view ran SmolLM2
    status, _, slider = demo.show("map", 99_999, 16, 48)
    assert slider["value"] == slider["maximum"] and "paged" in status
    updates = demo.load_workload("sharegpt")
    assert updates[1]["value"] == 2048.0


def test_demo_bad_input(smol):
    from demos import paged_attention as demo

    with pytest.raises(gr.Error, match="Unknown view"):
        demo.show("heap", 0, 16, 48)
    with pytest.raises(gr.Error, match="not one request"):
        demo.show("map", 0, 16, 1, max_len=1024)
    with pytest.raises(gr.Error, match="block size"):
        demo.show("map", 0, 300, 48)
    with pytest.raises(gr.Error, match="empty"):
        demo.show("sharing", 0, 16, 48, user_a="   ")
    with pytest.raises(gr.Error, match="too small|limit"):
        demo.show("sharing", 0, 1, 48, user_a="word " * 600)


def test_user_text_is_shown_as_typed(run):
    from demos import paged_attention as demo

    fig = views.sharing(dataclasses.replace(run, users=["<img src=x onerror=alert(1)>", "b"]))
    assert "&lt;img" in fig.layout.yaxis.ticktext[0] and "<img" not in fig.layout.yaxis.ticktext[0]
    status = demo.run_status(dataclasses.replace(run, texts=["**bold** <script>", "x"]))
    assert "<script>" not in status and "\\*\\*bold" in status


@pytest.mark.slow
def test_demo_through_live_server(live_server):
    client = live_server.client("paged_attention")
    status, fig, slider = client.predict(
        "map", 200, 16, 48, 256, 32, 64, 40, 0.3, 0, pa.DEFAULT_SYSTEM, "Hi", "Hello", 3, api_name="/show"
    )
    assert "contiguous" in status
    plot = json.loads(fig["plot"])
    assert len(plot["data"]) == 2 and "step 200" in plot["layout"]["title"]["text"]
