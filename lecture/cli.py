"""The `lecture` command: serve the demos, the deck's tools, and the toolkit's recorded runs.

serve | demo | models            the demo server and the model cache
present | snapshots | export-figures   the Slidev deck (lecture/deck.py, lecture/figures.py)
train-moe | grpo                  re-record the committed runs in assets/ (the science lives in toolkit/)
"""

from __future__ import annotations

import argparse
import json
import sys


def cmd_serve(args: argparse.Namespace) -> int:
    from lecture import server
    from toolkit import models

    for name in args.model or []:
        print(f"[lecture] loading {name} ...", flush=True)
        models.set_default(name)
    models.allow_any_model(args.any_model)
    if not args.no_preload:
        for kind in ("causal", "encoder"):
            models.load(models.default(kind))
    server.serve(args.host, args.port, args.demos or None)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.demos = [args.name]
    return cmd_serve(args)


def cmd_models(args: argparse.Namespace) -> int:
    from toolkit import models

    if args.prepare:
        for entry in models.EMBEDDED.values():
            if entry.gguf:
                models.ensure_cache(entry)
            else:
                models.source_file(entry)
    for row in models.describe():
        size = f"{row.get('source_mb', '?')} MB shipped"
        if row.get("cache_mb"):
            size += f", {row['cache_mb']} MB cached"
        print(f"{row['name']:<14} {row['title']:<24} {row['kind']:<8} {size:<32} cache: {row['cache']}")
    return 0


def cmd_present(args: argparse.Namespace) -> int:
    from lecture import deck

    return deck.present(args.port, args.deck_port, args.model or [])


def cmd_snapshots(args: argparse.Namespace) -> int:
    from lecture import deck

    return deck.snapshots(args.url, args.out, args.names or None, serve=args.serve, dark=args.dark)


def cmd_export_figures(args: argparse.Namespace) -> int:
    from lecture.figures import export

    for path in export(args.out, args.names or None, dark=args.dark):
        print(f"[lecture] wrote {path}")
    return 0


def cmd_train_moe(args: argparse.Namespace) -> int:
    from toolkit.moe import PRESETS, runs

    overrides = {
        k: v
        for k, v in {
            "steps": args.steps,
            "seed": args.seed,
            "n_experts": args.experts,
            "top_k": args.top_k,
            "score": args.score,
            "z_coef": args.z_coef,
            "aux_free_rate": args.aux_free_rate,
            "shared_experts": 0 if args.no_shared else None,
            "batch_size": args.batch_size,
            "balance_coef": args.balance_coef,
        }.items()
        if v is not None
    }
    for result in runs.record(PRESETS[args.preset], args.out, args.runs, overrides, threads=args.threads):
        print(json.dumps(result), flush=True)
    return 0


def cmd_grpo(args: argparse.Namespace) -> int:
    import torch

    from toolkit.grpo import preset
    from toolkit.grpo.trainer import train

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {
        k: v
        for k, v in (
            ("steps", args.steps),
            ("model", args.model),
            ("seed", args.seed),
            ("num_generations", args.G),
            ("max_new_tokens", args.max_new_tokens),
        )
        if v is not None
    }
    cfg = preset(args.preset, **overrides)

    def show(step) -> None:
        m = step.metrics
        print(
            f"step {step.step:>3}  reward {m['reward']:.3f} ± {m['reward_std']:.3f}  kl {m['kl']:.4f}  "
            f"clip low/high {m['clip_ratio/low_mean']:.3f}/{m['clip_ratio/high_mean']:.3f}  "
            f"len {m['completions/mean_length']:.1f}  {step.time['total']:.1f} s",
            flush=True,
        )

    trace = train(cfg, on_step=show)
    if args.out:
        trace.save(args.out)
        print(f"saved {args.out}")
    print(json.dumps({"reward": trace.metrics["reward"]}))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lecture", description="Live demos for lectures on large language models.")
    sub = p.add_subparsers(dest="command", required=True)

    def server_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
        sp.add_argument("--port", type=int, default=7860)
        sp.add_argument(
            "--model",
            action="append",
            metavar="NAME",
            help="default model for the demos: an embedded name, a Hugging Face id or a local folder",
        )
        sp.add_argument("--no-preload", action="store_true", help="load models on first use instead of at start")
        sp.add_argument(
            "--any-model",
            action="store_true",
            help="let visitors load any Hugging Face id or local folder (default: only the models above)",
        )

    sp = sub.add_parser("serve", help="serve every demo on one server (index at /, demos at /demo/NAME)")
    server_args(sp)
    sp.add_argument("--demos", nargs="*", help="serve only these demos")
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("demo", help="serve one demo")
    sp.add_argument("name")
    server_args(sp)
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("models", help="list the embedded models, their cache state and sizes")
    sp.add_argument("--prepare", action="store_true", help="convert and cache the embedded models now")
    sp.set_defaults(func=cmd_models)

    from lecture.deck import DEFAULT_SERVER, SLIDES

    sp = sub.add_parser("present", help="start the demo server and the Slidev deck together for a lecture")
    sp.add_argument("--port", type=int, default=7860, help="demo server port (bound to 127.0.0.1)")
    sp.add_argument("--deck-port", type=int, default=3030, help="Slidev dev server port")
    sp.add_argument("--model", action="append", metavar="NAME", help="default model for the demos")
    sp.set_defaults(func=cmd_present)

    sp = sub.add_parser("export-figures", help="render the deck's computed figures to slides/public/figures/")
    sp.add_argument("names", nargs="*", help="only these figures")
    sp.add_argument("--out", default=str(SLIDES / "public" / "figures"))
    sp.add_argument("--dark", action="store_true")
    sp.set_defaults(func=cmd_export_figures)

    sp = sub.add_parser("snapshots", help="screenshot each deck demo into slides/public/snapshots/ (needs chromium)")
    sp.add_argument("names", nargs="*", help="only these demos")
    sp.add_argument("--url", default=DEFAULT_SERVER, help="a running demo server")
    sp.add_argument("--serve", action="store_true", help="start a demo server on --url's port if none answers")
    sp.add_argument("--out", default=str(SLIDES / "public" / "snapshots"))
    sp.add_argument("--dark", action="store_true")
    sp.set_defaults(func=cmd_snapshots)

    from toolkit.moe.runs import RUN_OVERRIDES

    sp = sub.add_parser("train-moe", help="train the small MoE transformer offline (stdlib text), write assets/moe/")
    sp.add_argument("--preset", default="lecture", choices=["lecture", "tiny"])
    sp.add_argument("--out", default="assets/moe", help="folder; each run goes to OUT/<run>/ (default assets/moe)")
    sp.add_argument(
        "--runs",
        nargs="+",
        default=list(RUN_OVERRIDES),
        choices=list(RUN_OVERRIDES),
        help="balanced (Switch/Mixtral loss on), no_balance (off: collapse), aux_free (DeepSeek-V3 bias)",
    )
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
    sp.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: these small matrices gain little from more)"
    )
    sp.set_defaults(func=cmd_train_moe)

    sp = sub.add_parser("grpo", help="run GRPO with LoRA on the bundled verifiable task and save the trace")
    sp.add_argument("--preset", default="lecture", help="lecture (G=8, 16 tokens, 20 steps) or tiny")
    sp.add_argument("--steps", type=int)
    sp.add_argument("--G", type=int, help="completions per prompt")
    sp.add_argument("--max-new-tokens", type=int)
    sp.add_argument("--model", help="embedded name, Hugging Face id or local folder")
    sp.add_argument("--seed", type=int)
    sp.add_argument("--threads", type=int, help="torch CPU threads")
    sp.add_argument("--out", help="where to save the GrpoTrace (.npz)")
    sp.set_defaults(func=cmd_grpo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from toolkit.config import ConfigError
    from toolkit.models import ModelUnavailable

    try:
        return args.func(args)
    except (ModelUnavailable, ConfigError, KeyError) as err:
        print(f"lecture: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
