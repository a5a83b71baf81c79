"""The `lecture` command: serve the demos, serve one, list the embedded models, and the toolkit's jobs."""
from __future__ import annotations

import argparse
import sys


def _serve(args: argparse.Namespace) -> int:
    from toolkit import models, server

    for name in args.model or []:
        print(f"[lecture] loading {name} ...", flush=True)
        models.set_default(name)
    models.allow_any_model(args.any_model)
    if not args.no_preload:
        for kind in ("causal", "encoder"):
            models.load(models.default(kind))
    server.serve(args.host, args.port, args.demos or None)
    return 0


def _demo(args: argparse.Namespace) -> int:
    args.demos = [args.name]
    return _serve(args)


def _models(args: argparse.Namespace) -> int:
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lecture", description="Live demos for lectures on large language models.")
    sub = p.add_subparsers(dest="command", required=True)

    def server_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
        sp.add_argument("--port", type=int, default=7860)
        sp.add_argument("--model", action="append", metavar="NAME",
                        help="default model for the demos: an embedded name, a Hugging Face id or a local folder")
        sp.add_argument("--no-preload", action="store_true", help="load models on first use instead of at start")
        sp.add_argument("--any-model", action="store_true",
                        help="let visitors load any Hugging Face id or local folder (default: only the models above)")

    sp = sub.add_parser("serve", help="serve every demo on one server (index at /, demos at /demo/NAME)")
    server_args(sp)
    sp.add_argument("--demos", nargs="*", help="serve only these demos")
    sp.set_defaults(func=_serve)

    sp = sub.add_parser("demo", help="serve one demo")
    sp.add_argument("name")
    server_args(sp)
    sp.set_defaults(func=_demo)

    sp = sub.add_parser("models", help="list the embedded models, their cache state and sizes")
    sp.add_argument("--prepare", action="store_true", help="convert and cache the embedded models now")
    sp.set_defaults(func=_models)

    # More subcommands register here (one line each): name -> module with add_parser(sub).
    for module in _PLUGINS:
        __import__(module, fromlist=["add_parser"]).add_parser(sub)
    return p


_PLUGINS: list[str] = ["toolkit.deck_cli", "toolkit.moe_cli", "toolkit.grpo_cli"]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from toolkit.models import ModelUnavailable

    try:
        return args.func(args)
    except (ModelUnavailable, KeyError) as err:
        print(f"lecture: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
