"""Each deck demo's default request (its page load), server-side, at default sizes, beside a bare anchor.

Demos: tokens, sampling, sft, lora, kv_cache, dpo; forgetting, reasoning, agent (served from their recorded
runs) and context (its budget computed now). The anchor is the bare library call the demo is built on (a
tokenizer call, a forward pass, generate(), a peft count, loading the recorded trace), so the ratio shows what
the demo adds.
Kept answers (ui.answers) are dropped before each call, so a figure is the demo's work, not a lookup.
The KV-cache demo's own generation (with and without the cache, on purpose) is excluded: its figure is the
demo's time minus the per-token time it measured. Target: at most 1 s per demo on 2 cores.
Run: python benchmarks/bench_deck_demos.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

TARGET_S = 1.0


class Request:
    query_params: dict = {}


def timed(fn, repeat: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of this process (CPU time is less bent by a busy machine)."""
    fn()  # warm: models loaded, caches filled
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from demos import agent as d_agent
    from demos import cache
    from demos import context as d_context
    from demos import dpo as d_dpo
    from demos import forgetting as d_forgetting
    from demos import kv_cache as d_kv
    from demos import lora as d_lora
    from demos import reasoning as d_reasoning
    from demos import sampling as d_sampling
    from demos import sft as d_sft
    from demos import tokens as d_tokens
    from toolkit import agent as agent_concept
    from toolkit import context as context_concept
    from toolkit import forgetting as forgetting_concept
    from toolkit import kv_cache, lora, models, sft
    from toolkit import reasoning as reasoning_concept
    from toolkit.agent.record import ASSET as AGENT_ASSET
    from toolkit.forgetting.record import ASSET as FORGETTING_ASSET
    from toolkit.kv_cache import figures as kv_views
    from toolkit.reasoning.record import MEASUREMENT as REASONING_ASSET

    smol, mini = models.load("smollm2-135m"), models.load("minilm-l6")
    req = Request()

    def fwd(text: str):
        with torch.no_grad():
            return smol.model(smol.tokenizer(text, return_tensors="pt")["input_ids"])

    sft_ids, sft_labels, _ = sft.build(smol, sft.Exchange(d_sft.DEFAULT_USER, d_sft.DEFAULT_ANSWER))

    def sft_anchor():
        with torch.no_grad():
            smol.model(input_ids=torch.tensor([sft_ids]), labels=torch.tensor([sft_labels]))

    def kv_overhead() -> float:
        t0 = time.perf_counter()
        t = kv_cache.capture(smol, d_kv.DEFAULT_PROMPT, steps=d_kv.DEFAULT_STEPS)
        kv_views.times(t), kv_views.memory(t)
        return time.perf_counter() - t0 - float(t.seconds_cached.sum() + t.seconds_uncached.sum())

    def kv_anchor():
        ids = smol.tokenizer(d_kv.DEFAULT_PROMPT, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            smol.model.generate(ids, max_new_tokens=d_kv.DEFAULT_STEPS, do_sample=False)

    cases = {
        "tokens": (
            lambda: d_tokens.on_load(req),
            lambda: (smol.tokenizer(d_tokens.DEFAULT_TEXT), mini.tokenizer(d_tokens.DEFAULT_TEXT)),
        ),
        "sampling": (lambda: d_sampling.on_load(req), lambda: fwd(d_sampling.DEFAULT_PROMPT)),
        "sft": (lambda: d_sft.on_load(req), sft_anchor),
        "lora": (lambda: d_lora.on_load(req), lambda: lora.count(smol, r=8, targets=d_lora.DEFAULT_TARGETS)),
        "dpo": (lambda: d_dpo.on_load(req), lambda: fwd(" ".join(d_dpo.dpo.PAIR))),
        "forgetting": (
            lambda: d_forgetting.on_load(req),
            lambda: forgetting_concept.ForgettingTrace.load(FORGETTING_ASSET),
        ),
        "reasoning": (lambda: d_reasoning.on_load(req), lambda: reasoning_concept.ReasoningTrace.load(REASONING_ASSET)),
        "agent": (lambda: d_agent.on_load(req), lambda: agent_concept.AgentTrace.load(AGENT_ASSET)),
        "context": (
            lambda: d_context.on_load(req),
            lambda: smol.tokenizer(context_concept.DEFAULT_QUESTION * 40),
        ),
    }
    figures, cpu = {}, {}
    print(f"{'demo':<10} {'ours (s)':>9} {'ours CPU s':>11} {'anchor (s)':>11} {'ratio':>7}")
    for name, (ours, anchor) in cases.items():

        def computed(ours=ours):  # the demo's work, not a lookup: kept answers (ui.answers) are dropped first
            cache.answers().clear()
            return ours()

        (a, a_cpu), (b, _) = timed(computed, args.repeat), timed(anchor, args.repeat)
        figures[name], cpu[name] = round(a, 3), round(a_cpu, 3)
        print(f"{name:<10} {a:>9.3f} {a_cpu:>11.3f} {b:>11.3f} {a / max(b, 1e-6):>7.1f}")
    kv_overhead()
    kv = statistics.median(kv_overhead() for _ in range(args.repeat))
    kv_ref, _ = timed(kv_anchor, 1)
    figures["kv_cache_excl_generation"] = round(kv, 3)
    print(
        f"{'kv_cache':<10} {kv:>9.3f} {'':>11} {kv_ref:>11.3f} {kv / kv_ref:>7.2f}"
        "   (excl. generation; anchor generate())"
    )
    print(
        json.dumps(
            {
                "bench": "deck_demos",
                **{f"{k}_s": v for k, v in figures.items()},
                **{f"{k}_cpu_s": v for k, v in cpu.items()},
                "load_avg_1m": round(os.getloadavg()[0], 1),
                "threads": torch.get_num_threads(),
                "target": f"<= {TARGET_S} s each",
                "met": all(v <= TARGET_S for v in figures.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
