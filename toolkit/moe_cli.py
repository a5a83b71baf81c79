"""`lecture train-moe`: train the MoE transformer offline and write checkpoint + replay (assets/moe/ by default)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RUNS = {"balanced": {}, "no_balance": {"balance_coef": 0.0}, "aux_free": {"balance_coef": 0.0, "aux_free_rate": 1e-3}}


def _train(args: argparse.Namespace) -> int:
    from toolkit.moe import PRESETS
    from toolkit.moe.train import train

    overrides = {k: v for k, v in {
        "steps": args.steps, "seed": args.seed, "n_experts": args.experts, "top_k": args.top_k,
        "score": args.score, "z_coef": args.z_coef, "aux_free_rate": args.aux_free_rate,
        "shared_experts": 0 if args.no_shared else None, "batch_size": args.batch_size}.items() if v is not None}
    base = PRESETS[args.preset].replace(**overrides)
    for name in args.runs:
        cfg = base.replace(**RUNS[name])
        if args.balance_coef is not None and name == "balanced":
            cfg = cfg.replace(balance_coef=args.balance_coef)
        _, replay = train(cfg, Path(args.out) / name, label=name, threads=args.threads)
        f = replay["final"]
        print(json.dumps({"run": name, "seconds": round(replay["seconds"], 1),
                          "tokens_per_s": round(replay["tokens_per_s"]),
                          "lm_loss": round(f["lm_loss"], 3), "max_load": [round(max(x), 3) for x in f["load"]],
                          "mi_bits": [round(x, 3) for x in f["mi"]],
                          "mi_shuffled_bits": [round(x, 4) for x in f["mi_shuffled"]]}), flush=True)
    return 0


def add_parser(sub) -> None:
    sp = sub.add_parser("train-moe", help="train the small MoE transformer offline (stdlib text), write assets/moe/")
    sp.add_argument("--preset", default="lecture", choices=["lecture", "tiny"])
    sp.add_argument("--out", default="assets/moe", help="folder; each run goes to OUT/<run>/ (default assets/moe)")
    sp.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS),
                    help="balanced (Switch/Mixtral loss on), no_balance (off: collapse), aux_free (DeepSeek-V3 bias)")
    sp.add_argument("--steps", type=int)
    sp.add_argument("--seed", type=int)
    sp.add_argument("--experts", type=int)
    sp.add_argument("--top-k", type=int)
    sp.add_argument("--score", choices=["softmax", "sigmoid"])
    sp.add_argument("--balance-coef", type=float, help="balance loss weight of the balanced run")
    sp.add_argument("--z-coef", type=float)
    sp.add_argument("--aux-free-rate", type=float, help="DeepSeek-V3 bias update speed (0 = off)")
    sp.add_argument("--no-shared", action="store_true", help="no shared expert")
    sp.add_argument("--batch-size", type=int)
    sp.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: these small matrices gain little from more)")
    sp.set_defaults(func=_train)
