"""Benchmark: speculative decoding on SmolLM2's bundled prompts against plain greedy decoding (transformers'
``generate``) and against transformers' own assisted generation with the same drafts, in one run, interleaved.
Every output must be plain greedy's, token for token. Target: ours with prompt lookup faster than plain greedy.

Run: python benchmarks/bench_speculative.py [--repeats 3] [--k 4] [--tokens 128]. The last line is one JSON object.
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
from toolkit import speculative as spec  # noqa: E402
from toolkit.speculative import decode  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=128, help="new tokens at most per prompt")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = models.load(models.DEFAULT_CAUSAL)
    model, k, n = loaded.model, args.k, args.tokens
    prompts = [spec.prompt_ids(loaded, p) for p in spec.PROMPTS]
    layers = spec.draft_model(loaded, "layers", spec.DRAFT_LAYERS)
    distilled_path = spec.assets_dir() / "draft.npz"
    distilled = spec.draft_model(loaded, "distilled", spec.DRAFT_LAYERS) if distilled_path.is_file() else None

    def hf(ids, **kw):
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, **kw)
        return out[0, len(ids) :].tolist()

    runs = {
        "plain greedy (transformers)": lambda ids: hf(ids),
        "ours, prompt lookup": lambda ids: decode.speculative(model, decode.LookupDraft(2), ids, n, k).new,
        "transformers, prompt lookup": lambda ids: hf(ids, prompt_lookup_num_tokens=k),
        "ours, first layers": lambda ids: decode.speculative(model, decode.ModelDraft(layers), ids, n, k).new,
        "transformers, first layers": lambda ids: hf(ids, assistant_model=layers),
    }
    if distilled is not None:
        runs["ours, distilled draft"] = lambda ids: (
            decode.speculative(model, decode.ModelDraft(distilled), ids, n, k).new
        )
        runs["transformers, distilled draft"] = lambda ids: hf(ids, assistant_model=distilled)
    reference = [hf(ids) for ids in prompts]  # also the warm-up
    for run in runs.values():
        run(prompts[0])
    seconds = {name: [] for name in runs}
    same = dict.fromkeys(runs, True)
    for _ in range(args.repeats):  # interleaved: background load hits every method alike
        for name, run in runs.items():
            t0 = time.perf_counter()
            outs = [run(ids) for ids in prompts]
            seconds[name].append(time.perf_counter() - t0)
            same[name] &= outs == reference
    best = {name: min(s) for name, s in seconds.items()}
    plain = best["plain greedy (transformers)"]
    made = sum(len(r) for r in reference)
    print(
        f"SmolLM2-135M, {len(prompts)} bundled prompts, {made} tokens, k = {k}, {torch.get_num_threads()} threads,"
        f" best of {args.repeats} (load average {os.getloadavg()[0]:.1f})"
    )
    for name in runs:
        print(
            f"{name:<32} {best[name]:7.2f} s  (median {statistics.median(seconds[name]):.2f})  "
            f"{plain / best[name]:5.2f}x plain  identical tokens: {same[name]}"
        )
    ours, theirs = best["ours, prompt lookup"], best["transformers, prompt lookup"]
    print(f"ours vs transformers' prompt lookup: {theirs / ours:.2f}x")
    met = bool(ours < plain and all(same.values()))
    print(
        json.dumps(
            {
                "bench": "speculative",
                "prompts": len(prompts),
                "tokens": made,
                "k": k,
                "threads": torch.get_num_threads(),
                "seconds": {name: round(s, 3) for name, s in best.items()},
                "speedup_vs_plain": round(plain / ours, 3),
                "speedup_vs_transformers_lookup": round(theirs / ours, 3),
                "identical": all(same.values()),
                "target": "ours (prompt lookup) faster than plain greedy, identical tokens",
                "met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
