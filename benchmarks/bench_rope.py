"""Benchmark: RoPE capture (all 30 layers of SmolLM2, 128 tokens) plus the default view, against a plain forward pass
of the same text in the same run. Target: capture + figure add at most 50% to the forward pass.

Run: python benchmarks/bench_rope.py [--repeats 7]. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from toolkit import models  # noqa: E402
from toolkit.rope import figures as plots  # noqa: E402
from toolkit.rope.capture import capture_ids  # noqa: E402

N_TOKENS = 128
TARGET = 0.5  # (capture + figure) / forward - 1
TEXT = (
    "Rotary position embeddings turn each pair of query and key dimensions by an angle that grows with the "
    "position, so the dot product between a query and a key depends only on how far apart they are. "
) * 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = models.load(models.DEFAULT_CAUSAL)
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"][:, :N_TOKENS]  # (1, 128)
    assert ids.shape[1] == N_TOKENS, f"benchmark text is only {ids.shape[1]} tokens"
    token, layer, head, position = 5, 10, 0, 64

    def forward() -> None:
        with torch.no_grad():
            loaded.model(input_ids=ids, use_cache=False)

    def capture_and_view():
        trace, _ = capture_ids(loaded, ids)
        t = time.perf_counter()
        plots.rotation(trace.q_pre[layer, head, token], trace.inv_freq, position, (0, 16), trace.tokens[token])
        return time.perf_counter() - t

    forward()
    capture_and_view()  # warm-up: first-call costs (plotly templates, allocator) are not what we measure
    fwd, total, fig = [], [], []
    for _ in range(args.repeats):  # interleaved, so background load hits both alike
        t0 = time.perf_counter()
        forward()
        t1 = time.perf_counter()
        fig.append(capture_and_view())
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        total.append(t2 - t1)
    # best of N (as timeit does): the least disturbed run of each; medians printed beside them
    f, c, g = min(fwd), min(total), min(fig)
    overhead = c / f - 1
    med = statistics.median(total) / statistics.median(fwd) - 1
    print(f"SmolLM2-135M, {N_TOKENS} tokens, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"plain forward             {f * 1000:8.1f} ms   (median {statistics.median(fwd) * 1000:.1f})")
    print(
        f"capture + default view    {c * 1000:8.1f} ms   (median {statistics.median(total) * 1000:.1f}; "
        f"the figure {g * 1000:.1f})"
    )
    print(
        f"added to the forward pass {overhead * 100:8.1f} %   (medians: {med * 100:.1f} %; "
        f"target <= {TARGET * 100:.0f} %)"
    )
    print(
        json.dumps(
            {
                "bench": "rope",
                "tokens": N_TOKENS,
                "layers": loaded.config.num_hidden_layers,
                "threads": torch.get_num_threads(),
                "forward_s": round(f, 4),
                "capture_and_view_s": round(c, 4),
                "figure_s": round(g, 4),
                "overhead": round(overhead, 3),
                "overhead_median": round(med, 3),
                "target": f"overhead <= {TARGET}",
                "met": overhead <= TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
