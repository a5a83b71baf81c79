"""MoE routing trace and default view for 256 tokens, timed next to the bare forward pass in the same run;
plus training throughput (tokens/s) of the lecture preset. Last line: one JSON record.

Target: the routing trace plus the default view (the demo's first tab: the text with each token coloured by its
top-1 expert, HTML) cost at most 1.5x the bare forward. The demo's whole request (trace + all six views) is printed
beside it for information.
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from toolkit import moe
from toolkit.moe import PRESETS, corpus, runs
from toolkit.moe import figures as views
from toolkit.moe.model import MoeTransformer, aux_losses

N_TOKENS, REPEATS = 256, 15


def _median_ms(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _paired_ms(fns: dict, repeats: int = 31) -> dict[str, float]:
    """Median ms of each function, run in turn within every round so that load changes hit them all alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def main() -> None:
    torch.set_num_threads(1)
    model = runs.model("balanced")
    data = corpus.build()
    text = bytes(data.data[data.split : data.split + N_TOKENS]).decode("utf-8", errors="replace")
    ids = torch.tensor([corpus.encode(text)[:N_TOKENS]])
    text = bytes(ids[0].tolist()).decode("utf-8", errors="replace")

    def forward():
        with torch.no_grad():
            model(ids)

    def trace():
        return moe.capture(model, text)

    t = trace()
    ms = _paired_ms(
        {
            "forward": forward,
            "trace": trace,
            "view": lambda: views.token_experts(t, 0),
            "both": lambda: views.token_experts(trace(), 0),
        }
    )
    forward_ms, trace_ms, view_ms, both_ms = ms["forward"], ms["trace"], ms["view"], ms["both"]
    from demos import moe as demo

    request_ms = _median_ms(lambda: demo.route(text, "balanced", 0, model.cfg.top_k), 5)
    # training throughput of the lecture preset (fresh model, a few steps after one warm-up)
    cfg = PRESETS["lecture"]
    net = MoeTransformer(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    x = torch.randint(0, 256, (cfg.batch_size, cfg.block_size))

    def step():
        logits, routings = net(x)
        bal, z = aux_losses(routings, cfg.score)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), x.flatten()) + 0.01 * bal + 0.001 * z
        opt.zero_grad()
        loss.backward()
        opt.step()

    step_ms = _median_ms(step, 5)
    train_tps = x.numel() / (step_ms / 1000)
    committed = runs.replay("balanced").get("tokens_per_s")
    ratio, total_ratio = trace_ms / forward_ms, both_ms / forward_ms
    print(f"tokens                  {len(t.tokens)}")
    print(f"bare forward            {forward_ms:8.2f} ms")
    print(f"routing trace           {trace_ms:8.2f} ms   ({ratio:.2f}x forward)")
    print(f"default view (HTML)     {view_ms:8.2f} ms")
    print(f"trace + default view    {both_ms:8.2f} ms   ({total_ratio:.2f}x forward; target <= 1.5x)")
    print(f"whole demo request      {request_ms:8.2f} ms   (trace + all six views, for information)")
    print(
        f"training                {train_tps:8.0f} tokens/s (batch {cfg.batch_size}x{cfg.block_size}, 1 thread); "
        f"committed run: {committed:.0f} tokens/s incl. snapshots"
    )
    print(
        json.dumps(
            {
                "bench": "moe",
                "tokens": len(t.tokens),
                "forward_ms": round(forward_ms, 2),
                "trace_ms": round(trace_ms, 2),
                "view_ms": round(view_ms, 2),
                "trace_view_ms": round(both_ms, 2),
                "request_ms": round(request_ms, 2),
                "trace_ratio": round(ratio, 2),
                "trace_view_ratio": round(total_ratio, 2),
                "train_tokens_per_s": round(train_tps),
                "committed_train_tokens_per_s": round(committed),
                "target": "trace + default view <= 1.5x forward",
                "met": total_ratio <= 1.5,
            }
        )
    )


if __name__ == "__main__":
    main()
