"""The `lecture` command: serve the demos, the deck's tools, and the toolkit's recorded runs.

serve | demo | models            the demo server and the model cache
present | snapshots | export-figures   the Slidev deck (lecture/deck.py, lecture/figures.py)
export                            any view of any concept as svg / png / pdf / html (lecture/export.py)
train-moe | grpo                  re-record the committed runs in assets/ (the science lives in toolkit/)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_serve(args: argparse.Namespace) -> int:
    from lecture import server
    from toolkit import models

    if getattr(args, "classroom", False) and args.any_model:
        print("lecture: --classroom keeps the safe limits: it refuses --any-model", file=sys.stderr)
        return 2
    if getattr(args, "grpo_trace", None):
        from demos import grpo
        from toolkit.trace import TraceError

        try:
            trace = grpo.open_trace(args.grpo_trace)
        except (OSError, TraceError) as err:
            print(f"lecture: --grpo-trace: {err}", file=sys.stderr)
            return 2
        print(f"[lecture] GRPO replay: {args.grpo_trace} ({len(trace.steps)} steps)", flush=True)
    import torch

    torch.set_num_threads(1)  # no OpenMP threads before the model workers are forked (lecture.server.start_workers)
    for name in args.model or []:
        print(f"[lecture] loading {name} ...", flush=True)
        models.set_default(name)
    models.allow_any_model(args.any_model)
    if not args.no_preload:
        server.load_defaults()
    server.serve(args.host, args.port, args.demos or None, classroom=getattr(args, "classroom", False))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.demos = [args.name]
    return cmd_serve(args)


def cmd_models(args: argparse.Namespace) -> int:
    from toolkit import models

    for gone in models.sweep():
        print(f"[lecture] removed {gone}, left by an interrupted conversion")
    if args.prepare:
        for entry in models.EMBEDDED.values():
            if entry.gguf:
                models.ensure_cache(entry, verify=args.verify)
            else:
                models.source_file(entry)
    corrupt = []
    for row in models.describe(verify=args.verify):
        size = f"{row.get('source_mb', '?')} MB shipped"
        if row.get("cache_mb"):
            size += f", {row['cache_mb']} MB cached"
        print(f"{row['name']:<14} {row['title']:<24} {row['kind']:<8} {size:<32} cache: {row['cache']}")
        if row.get("detail"):
            print(f"{'':<14} {row['detail']}")
        for other in row.get("others", []):
            print(f"{'':<14} another cache of {row['name']} (another GGUF, toolkit or transformers version): {other}")
        if row.get("state") == "corrupt":
            corrupt.append(row)
    for row in corrupt:
        print(
            f"lecture: the cache of {row['name']} in {row['folder']} is corrupt. "
            "Fix: `lecture models --prepare` rebuilds it (a load also rebuilds it by itself).",
            file=sys.stderr,
        )
    return 1 if corrupt and args.verify else 0


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


def cmd_export(args: argparse.Namespace) -> int:
    from lecture.chromium import BrowserError
    from lecture.export import ExportError, export

    try:
        preset = json.loads(args.preset) if args.preset else {}
    except json.JSONDecodeError as err:
        print(f"lecture: --preset is not JSON ({err}); e.g. --preset '{{\"layer\": 5}}'", file=sys.stderr)
        return 2
    if not isinstance(preset, dict):
        print("lecture: --preset must be a JSON object of preset names and values", file=sys.stderr)
        return 2
    try:
        path = export(
            args.concept,
            args.view,
            preset,
            args.format,
            args.theme == "dark",
            args.out,
            args.width,
            args.height,
            args.scale,
        )
    except (ExportError, TypeError, ValueError, FileNotFoundError, BrowserError) as err:
        print(f"lecture: {err}", file=sys.stderr)
        return 2
    except KeyError as err:  # an unknown concept or view: the message lists the known ones
        print(f"lecture: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
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


def cmd_index(args: argparse.Namespace) -> int:
    from toolkit.vector_search import VectorConfig, corpus, indexes

    name = args.path or "stdlib"
    try:
        if args.force or corpus.state(name) != "ready":
            found = corpus.build(name, progress=True)
        else:
            found = corpus.load(name)
        print(f"[lecture] {found.name}: {len(found):,} passages x {found.dim} dims, cached in {found.meta['cache']}")
        if args.record_sample:
            if found.name != "stdlib":
                print("lecture: --record-sample records the stdlib corpus only", file=sys.stderr)
                return 2
            print(f"[lecture] wrote {corpus.record_sample(found)}")
        if not args.no_indexes:
            built = indexes(VectorConfig(corpus=found.name), progress=True)
            sizes = ", ".join(f"{m} {b:,.0f} B" for m, b in built.bytes_per_vector().items())
            print(f"[lecture] indexes ready (bytes per vector: {sizes})")
    except (corpus.CorpusError, ValueError) as err:
        print(f"lecture: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_vector_sweep(args: argparse.Namespace) -> int:
    from toolkit.vector_search import corpus, sweep

    try:
        found = corpus.ensure(args.corpus)
    except (corpus.CorpusError, ValueError) as err:
        print(f"lecture: {err}", file=sys.stderr)
        return 2
    say = lambda m: print(f"[lecture] {m}", flush=True)  # noqa: E731
    trace = sweep.tradeoff(found.vectors, n_queries=args.queries, progress=say)
    for i in range(len(trace.library)):
        print(
            f"{trace.library[i]:<8} {trace.method[i]:<6} {trace.param[i]:>9} {trace.value[i]:>5.0f}  "
            f"recall {trace.recall[i]:.3f}  {trace.ms_per_query[i]:8.3f} ms  {trace.bytes_per_vector[i]:8.1f} B/vector"
        )
    if args.out:
        print(f"[lecture] wrote {trace.save(args.out)}")
    return 0


def cmd_sparse_curves(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from toolkit import sparse_attention

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    trace = sparse_attention.record(
        args.model,
        args.windows or sparse_attention.WINDOWS,
        args.sinks or sparse_attention.SINKS,
        args.tokens or sparse_attention.TOKENS,
        progress=lambda runs: tqdm(runs, desc="forward passes", unit="pass"),
    )
    out = args.out or sparse_attention.ASSET
    trace.save(out)
    ppl = trace.ppl
    for a, s in enumerate(trace.sinks):
        row = "  ".join(f"{int(w)}: {p:.2f}" for w, p in zip(trace.windows, ppl[a]))
        print(f"sinks {int(s)}: {row}")
    print(f"full attention: {trace.full_ppl:.2f}; {trace.seconds:.0f} s; saved {out}")
    return 0


def cmd_quantization(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from toolkit.quantization.capture import record

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options = {k: v for k, v in (("schemes", args.schemes), ("eval_tokens", args.tokens)) if v}
    paths = record(args.model, args.out, progress=lambda xs: tqdm(xs, desc="schemes", unit="scheme"), **options)
    from toolkit.quantization import QuantizationTrace

    trace = QuantizationTrace.load(paths[0])
    for i, name in enumerate(trace.schemes):
        print(
            f"{name:<12} {trace.linear_bytes[i] / 1e6:7.1f} MB  perplexity {trace.ppl[i]:.3f}  {trace.seconds[i]:.0f} s"
        )
    print("[lecture] wrote " + ", ".join(map(str, paths)))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from toolkit.speculative import distill, drafts
    from toolkit.speculative.capture import assets_dir

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options = {k: v for k, v in (("steps", args.steps), ("layers", args.layers), ("rank", args.rank)) if v}
    bar = tqdm(total=options.get("steps", distill.DistillConfig.default("steps")), desc="distillation", unit="step")

    def step(i: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    adapter, trace = distill.distill(args.model, on_step=step, **options)
    bar.close()
    out = Path(args.out) if args.out else assets_dir()
    drafts.save_adapter(adapter, out / "draft.npz")
    trace.save(out / "distillation.npz")
    print(
        f"acceptance {trace.acceptance[0]:.3f} -> {trace.acceptance[1]:.3f}, tokens/pass "
        f"{trace.tokens_per_pass[0]:.2f} -> {trace.tokens_per_pass[1]:.2f}, speed-up {trace.speedup[0]:.2f}x -> "
        f"{trace.speedup[1]:.2f}x; {trace.seconds / 60:.1f} min; wrote {out}/draft.npz, distillation.npz"
    )
    return 0


def cmd_speculative(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from toolkit.speculative import record

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    paths = record.record(args.model, args.out, progress=lambda xs: tqdm(xs, desc="runs", unit="run"))
    print("[lecture] wrote " + ", ".join(map(str, paths)))
    return 0


def cmd_forgetting(args: argparse.Namespace) -> int:
    from toolkit.forgetting.record import ASSET, record

    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    if args.methods:
        overrides["methods"] = args.methods
    trace = record(args.out or ASSET, args.model, args.threads, **overrides)
    for method in trace.methods:
        print(json.dumps({"method": method, "seconds": trace.seconds[method], **trace.summary(method)}), flush=True)
    return 0


def cmd_reasoning(args: argparse.Namespace) -> int:
    from pathlib import Path

    from toolkit.reasoning import ReasoningTrace
    from toolkit.reasoning.record import ASSETS, MEASUREMENT, record

    folder = Path(args.out) if args.out else ASSETS
    for path in record(folder, args.model, args.threads, tree_only=args.tree_only):
        print(f"saved {path}")
    if not args.tree_only:
        trace = ReasoningTrace.load(folder / MEASUREMENT.name)
        print(json.dumps({m: [round(x, 3) for x in trace.accuracy(m)[:3]] for m in trace.methods}))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from toolkit.agent.record import ASSET, record

    trace = record(args.out or ASSET, args.model, args.threads)
    print(json.dumps({c: [round(x, 3) for x in trace.accuracy(c)[:3]] for c in trace.conditions}))
    return 0


def cmd_context(args: argparse.Namespace) -> int:
    from toolkit.context.record import ASSET, record

    trace = record(args.out or ASSET, args.model, args.threads)
    print(json.dumps({f"{k}-shot": [round(x, 3) for x in trace.accuracy(k)[:3]] for k in trace.shots}))
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
        sp.add_argument(
            "--no-preload",
            action="store_true",
            help="load models on first use instead of at start (but for the default causal model and encoder, which "
            "the generating demos' worker processes share: LECTURE_PROCESSES=0 for none)",
        )
        sp.add_argument(
            "--any-model",
            action="store_true",
            help="let visitors load any Hugging Face id or local folder (default: only the models above)",
        )
        sp.add_argument(
            "--grpo-trace",
            metavar="PATH",
            help="the GRPO demo's replay opens this GrpoTrace file (e.g. a TRL run recorded with GrpoRecorder)",
        )

    sp = sub.add_parser("serve", help="serve every demo on one server (index at /, demos at /demo/NAME)")
    server_args(sp)
    sp.add_argument("--demos", nargs="*", help="serve only these demos")
    sp.add_argument(
        "--classroom",
        action="store_true",
        help="bind this machine's LAN address for students, print their URL and a QR code",
    )
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("demo", help="serve one demo")
    sp.add_argument("name")
    server_args(sp)
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("models", help="list the embedded models, their cache state, folder and sizes")
    sp.add_argument("--prepare", action="store_true", help="convert and cache the embedded models now")
    sp.add_argument(
        "--verify",
        action="store_true",
        help="re-hash every cached file against its manifest (exit status 1 if a cache is corrupt)",
    )
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

    sp = sub.add_parser(
        "export", help="write any concept's view as svg, png, pdf or self-contained html (handouts, papers)"
    )
    sp.add_argument("concept", help="a concept (toolkit/registry.py), e.g. attention")
    sp.add_argument("view", nargs="?", help="one of its views (default: the demo's hero); see toolkit.views.views")
    sp.add_argument("--preset", help='the demo\'s URL presets as JSON, e.g. \'{"layer": 5, "head": 2}\'')
    sp.add_argument("--format", default="svg", choices=["svg", "png", "pdf", "html"])
    sp.add_argument("--theme", default="light", choices=["light", "dark"])
    sp.add_argument("--out", help="the file to write (default: CONCEPT-VIEW[-dark].FORMAT here)")
    sp.add_argument("--width", type=int, help="CSS px (default: the figure's own, else 1200)")
    sp.add_argument("--height", type=int, help="CSS px (default: the figure's own, else 700)")
    sp.add_argument("--scale", type=float, default=1.0, help="pixels per CSS px for png (2 for a projector)")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("snapshots", help="screenshot each deck demo into slides/public/snapshots/ (needs chromium)")
    sp.add_argument("names", nargs="*", help="only these demos")
    sp.add_argument("--url", default=DEFAULT_SERVER, help="a running demo server")
    sp.add_argument("--serve", action="store_true", help="start a demo server on --url's port if none answers")
    sp.add_argument("--out", default=str(SLIDES / "public" / "snapshots"))
    theme = sp.add_mutually_exclusive_group()
    theme.add_argument("--dark", dest="dark", action="store_true", default=None, help="only the dark snapshots")
    theme.add_argument("--light", dest="dark", action="store_false", help="only the light snapshots")
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

    # Part 4: efficient inference (attention systems; smaller and faster): subcommands below
    sp = sub.add_parser(
        "sparse-curves", help="record SmolLM2's perplexity against the attention window (assets/sparse_attention/)"
    )
    sp.add_argument("--out", help="where to save the SparseCurveTrace (default assets/sparse_attention/curves.npz)")
    sp.add_argument("--model", default="smollm2-135m", help="embedded name, Hugging Face id or local folder")
    sp.add_argument("--tokens", type=int, help="tokens of the Python reference-manual text scored (default 1024)")
    sp.add_argument("--windows", type=int, nargs="+", help="sliding-window sizes (default 4 8 ... 1024)")
    sp.add_argument("--sinks", type=int, nargs="+", help="numbers of sink tokens kept (default 0 4)")
    sp.add_argument("--threads", type=int, help="torch CPU threads")
    sp.set_defaults(func=cmd_sparse_curves)
    sp = sub.add_parser(
        "quantization", help="quantise every linear layer in each scheme, score it (assets/quantization/)"
    )
    sp.add_argument("--model", default="smollm2-135m", help="embedded name, Hugging Face id or local folder")
    sp.add_argument("--out", default="assets/quantization", help="folder for schemes.npz and activations.npz")
    sp.add_argument("--schemes", nargs="+", help="only these schemes (default: all)")
    sp.add_argument("--tokens", type=int, help="held-out tokens scored (default 2048)")
    sp.add_argument("--threads", type=int, help="torch CPU threads")
    sp.set_defaults(func=cmd_quantization)
    sp = sub.add_parser("distill", help="distil the truncated draft toward SmolLM2 (assets/speculative/draft.npz)")
    sp.add_argument("--model", default="smollm2-135m", help="embedded name, Hugging Face id or local folder")
    sp.add_argument("--out", help="folder (default assets/speculative)")
    sp.add_argument("--steps", type=int, help="AdamW steps (default 300)")
    sp.add_argument("--layers", type=int, help="blocks the draft keeps (default 4)")
    sp.add_argument("--rank", type=int, help="LoRA rank (default 16)")
    sp.add_argument("--threads", type=int, help="torch CPU threads")
    sp.set_defaults(func=cmd_distill)
    sp = sub.add_parser("speculative", help="record speculative decoding: acceptance against k, default runs")
    sp.add_argument("--model", default="smollm2-135m", help="embedded name, Hugging Face id or local folder")
    sp.add_argument("--out", help="folder (default assets/speculative)")
    sp.add_argument("--threads", type=int, help="torch CPU threads")
    sp.set_defaults(func=cmd_speculative)
    # Part 5: vector search and RAG: subcommands below
    sp = sub.add_parser("index", help="embed a folder of text files (default: Python's docs) and build its indexes")
    sp.add_argument("path", nargs="?", help="a folder of .txt/.md/.rst files (default: the stdlib corpus)")
    sp.add_argument("--force", action="store_true", help="embed again even when the cache is ready")
    sp.add_argument("--no-indexes", action="store_true", help="embed only; build the indexes on first use")
    sp.add_argument("--record-sample", action="store_true", help="re-record assets/vector_search/sample.npz")
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("vector-sweep", help="recall / latency / memory of our indexes beside FAISS and hnswlib")
    sp.add_argument("--corpus", default="stdlib", help="stdlib, sample or an indexed folder")
    sp.add_argument("--queries", type=int, default=500, help="held-out passages used as queries")
    sp.add_argument("--out", default="assets/vector_search/tradeoff.npz", help="where to save the TradeoffTrace")
    sp.set_defaults(func=cmd_vector_sweep)

    # Part 6: reasoning, tools and agents: subcommands below
    def reasoning_args(sp: argparse.ArgumentParser, what: str) -> None:
        sp.add_argument("--model", default="smollm2-135m", help="embedded name, Hugging Face id or local folder")
        sp.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
        sp.add_argument("--out", help=f"where to write {what} (default: the committed asset)")

    sp = sub.add_parser("forgetting", help="re-record the catastrophic-forgetting runs (assets/forgetting/)")
    reasoning_args(sp, "the trace (.npz)")
    sp.add_argument("--methods", nargs="+", help="full_top, lora, lora_low_lr, lora_kl, lora_replay")
    sp.add_argument("--steps", type=int, help="updates per run (default 16)")
    sp.add_argument("--seed", type=int)
    sp.set_defaults(func=cmd_forgetting)

    sp = sub.add_parser("reasoning", help="re-measure direct vs CoT vs self-consistency and the tree search")
    reasoning_args(sp, "lecture.npz and tree.npz (a folder)")
    sp.add_argument("--tree-only", action="store_true", help="only the tree-of-thought search")
    sp.set_defaults(func=cmd_reasoning)

    sp = sub.add_parser("agent", help="re-measure the ReAct agent with and without tools (assets/agent/)")
    reasoning_args(sp, "the trace (.npz)")
    sp.set_defaults(func=cmd_agent)

    sp = sub.add_parser("context", help="re-measure zero-shot vs few-shot accuracy (assets/context/)")
    reasoning_args(sp, "the trace (.npz)")
    sp.set_defaults(func=cmd_context)
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
