"""One process serving every demo: FastAPI + gr.mount_gradio_app, an index page at /, demos at /demo/<name>.

The demos are those of the concepts in ``toolkit.registry``, in deck order; each module ``demos.<name>`` defines
a module-level ``demo`` (gr.Blocks). Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import functools
import html
import importlib
import os
from dataclasses import dataclass

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402

from demos import cache, ui  # noqa: E402
from lecture import guard  # noqa: E402
from toolkit import kernels, models, registry  # noqa: E402

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
QUEUE_SIZE = 128  # requests waiting per demo before new ones are refused with a "busy" message
# Gradio's queue looks for work every 1 ms while it has none, and for progress every 10 ms: with 22 demos mounted,
# about 24,000 wake-ups a second (10 % of a core with nobody connected), each taking the GIL from a forward under way.
# Every 20 ms and 0.5 s instead: a request starts at most 20 ms later, and no demo reports gr.Progress.
QUEUE_POLL_S, PROGRESS_POLL_S = 0.02, 0.5
DERIVED_MODEL_BYTES = 512 * 2**20  # "compare with" variants kept loaded: an int4 and a LoRA copy, not int4 and NF4


@dataclass(frozen=True)
class DemoInfo:
    name: str
    title: str
    description: str
    blocks: gr.Blocks


def discover(names: list[str] | None = None) -> dict[str, DemoInfo]:
    """The registry's demos (all, or the named ones) in deck order. Unknown names raise KeyError."""
    available = list(registry.CONCEPTS)
    wanted = available if not names else [n for n in available if n in names]
    unknown = [n for n in (names or []) if n not in available]
    if unknown:
        raise KeyError(f"unknown demo {', '.join(unknown)}; available: {', '.join(available)}")
    found = {}
    for name in wanted:
        module = importlib.import_module(registry.get(name).demo)
        blurb = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())  # the docstring's first paragraph
        found[name] = DemoInfo(name, registry.get(name).title, blurb, module.demo)
    return found


def _blurb(info: DemoInfo) -> str:
    """The description after the linked title; a description that starts with the title ("Model card: layers…")
    goes on from the link instead of repeating it."""
    text, n = info.description, len(info.title)
    if text[:n].lower() == info.title.lower() and text[n : n + 1] in (":", ","):
        return f"<span>{html.escape(text[n:])}</span>"
    return f" <span>{html.escape(text)}</span>"


def index_html(infos: dict[str, DemoInfo], share_url: str | None = None) -> str:
    qr = (
        f'<p>Students: open <b>{html.escape(share_url)}</b> or scan</p><div class="qr">{guard.qr_svg(share_url)}</div>'
        if share_url
        else ""
    )
    items = "\n".join(f'<li><a href="/demo/{n}/">{html.escape(i.title)}</a>{_blurb(i)}</li>' for n, i in infos.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LLM lecture demos</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: {", ".join(ui.FONT)}; font-size: 20px; max-width: 52rem; margin: 2rem auto; padding: 0 1rem;
        background: #fff; color: #111; }}
 @media (prefers-color-scheme: dark) {{ body {{ background: #0b0f19; color: #eee; }} a {{ color: #56B4E9; }} }}
 li {{ margin: .6rem 0; }} span {{ opacity: .75; }}
 .qr svg {{ width: 16rem; height: 16rem; background: #fff; }}
</style></head>
<body><h1>LLM lecture demos</h1>
{qr}
<p>Every demo runs a real model on this machine. Add <code>?__theme=dark</code> to a demo's address for a projector.</p>
<ul>
{items}
</ul></body></html>"""


def build_app(
    names: list[str] | None = None, hosts: tuple[str, ...] = guard.LOOPBACK_HOSTS, share_url: str | None = None
) -> FastAPI:
    """Every demo on one FastAPI app behind the guard (Host allow-list, body limit, no uploads); the queue is the
    only way in (``api_open=False``: no direct /gradio_api/api/<name> calls that would skip it)."""
    infos = discover(names)
    app = FastAPI(title="LLM lecture demos", docs_url=None, redoc_url=None, openapi_url=None)
    page = index_html(infos, share_url)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/healthz")
    def health() -> dict:
        kept, budget = cache.held()
        return {"ok": True, "demos": list(infos), "cache_bytes": kept, "cache_budget_bytes": budget}

    for name, info in infos.items():
        info.blocks.queue(default_concurrency_limit=ui.PER_DEMO, max_size=QUEUE_SIZE, api_open=False)
        info.blocks._queue.sleep_when_free = QUEUE_POLL_S
        info.blocks._queue.progress_update_sleep_when_free = PROGRESS_POLL_S
        gr.mount_gradio_app(
            app,
            info.blocks,
            path=f"/demo/{name}",
            theme=ui.theme(),
            css=ui.CSS,
            head=ui.HEAD,
            footer_links=[],
            show_error=True,
            ssr_mode=False,
            max_file_size=0,
        )
    app.state.demos = infos
    app.add_middleware(guard.Guard, hosts=tuple(hosts))
    return app


def tune_for_serving() -> None:
    """Many students, few cores: each of ui.WORKERS concurrent requests gets its share of the cores (2 forwards
    with 2 threads each on 2 cores only fight) and one running alone gets all of them (ui.THREADS); glibc keeps few
    malloc arenas and gives large blocks back, and the "compare with" variants loaded at once are bounded
    (DERIVED_MODEL_BYTES), so memory stays flat."""
    import torch

    cores = os.cpu_count() or 2
    share = max(1, cores // ui.WORKERS)
    alone = int(os.environ.get("LECTURE_ALONE_THREADS", cores))  # 1: a request alone keeps its share
    ui.THREADS = (share, max(share, min(alone, cores)))
    models.limit_derived(DERIVED_MODEL_BYTES)
    malloc_for_serving()
    start_workers()
    torch.set_num_threads(share)
    use_onednn()


def start_workers() -> None:
    """The heavy lane's worker processes (demos/workers.py; LECTURE_PROCESSES=0: none), forked once the models they
    use are loaded, so that they share the weights' pages, and before this process has OpenMP threads (it works
    on one thread until then). The demos' modules are imported by then (build_app), so none is imported twice."""
    import torch

    if os.environ.get("LECTURE_PROCESSES", "1") == "0" or not hasattr(os, "fork"):
        return
    torch.set_num_threads(1)
    try:
        load_defaults()
        ui.start_workers()
    except (models.ModelUnavailable, OSError) as err:  # the demos still run, in this process
        print(f"[lecture] no worker processes ({err}): the generating demos' model work runs in the server", flush=True)
        return
    print(f"[lecture] model work of the generating demos in {ui.WORKERS} worker processes", flush=True)


def load_defaults() -> None:
    """The default causal model and encoder (``lecture serve`` loads them at start unless --no-preload; the workers
    need them loaded before the fork)."""
    for kind in ("causal", "encoder"):
        models.load(models.default(kind))


def malloc_for_serving() -> None:
    """glibc: few arenas, large blocks given back to the system (set before the workers are forked: theirs too)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX = 2
        # A fixed mmap threshold (M_MMAP_THRESHOLD, -3): every block over 4 MiB (a training step's activations, a
        # long prompt's attention) is mapped and given back to the system when freed. Left dynamic, glibc raises it
        # to 32 MiB after the first large free and keeps the freed memory: +3 GB after a few DPO trainings. Not
        # lower: at 128 KiB every growing KV cache tensor of a generation (a 300-token prompt: 230 KB a layer) was
        # mapped and unmapped at each token, and a RAG answer took 2.9 s instead of 2.2 s.
        libc.mallopt(-3, 4 * 2**20)
        ui.trim = functools.partial(libc.malloc_trim, 0)  # after heavy work: freed pages inside the heap go back
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        pass


def use_onednn() -> None:
    """oneDNN for the fp32 products of prompts (toolkit/kernels.py) where it is faster on this machine, measured at
    start; LECTURE_ONEDNN=0 keeps MKL, =1 uses oneDNN without measuring."""
    choice = os.environ.get("LECTURE_ONEDNN", "").strip()
    if choice == "0" or not kernels.available():
        return
    if choice == "1":
        kernels.enable()
        print("[lecture] oneDNN for prompt-sized fp32 products (LECTURE_ONEDNN=1)", flush=True)
    else:
        ratio = kernels.enable_if_faster()
        state = "on" if kernels.enabled() else "off (MKL)"
        print(f"[lecture] oneDNN for prompt-sized fp32 products: {ratio:.1f}x MKL on this machine, {state}", flush=True)
    if kernels.enabled() and ui._pool is not None:  # the workers decode too
        ui._pool.each(kernels.enable)


class Listening(uvicorn.Server):
    """Prints its line once the socket listens: uvicorn binds after the app's startup, so a URL printed before
    ``run`` was refused for about 0.1 s (and printed even when the port was taken)."""

    def __init__(self, config: uvicorn.Config, line: str):
        super().__init__(config)
        self.line = line

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.line, flush=True)


def serve(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, names: list[str] | None = None, classroom: bool = False
) -> None:
    """Serve on ``host`` (loopback unless told otherwise). Classroom mode binds the LAN address on purpose, adds it
    to the Host allow-list and prints the students' URL with a QR code (also shown on the index page)."""
    share_url = None
    hosts = list(guard.LOOPBACK_HOSTS)
    if classroom:
        host = guard.lan_address() or host
        share_url = f"http://{host}:{port}/"
        hosts.append(host)
        print(f"[lecture] classroom mode: students open {share_url}\n{guard.qr_terminal(share_url)}", flush=True)
    elif not guard.is_loopback(host):
        print(
            f"[lecture] WARNING: binding {host}: every machine that can reach it can use these demos. For a class "
            "on the local network use `lecture serve --classroom` (safe limits, the students' URL and a QR code).",
            flush=True,
        )
        hosts.append(host)
    import torch

    torch.set_num_threads(1)  # no OpenMP threads before the workers are forked (tune_for_serving)
    app = build_app(names, tuple(hosts), share_url)
    tune_for_serving()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", h11_max_incomplete_event_size=64 * 1024)
    server = Listening(config, f"[lecture] serving {', '.join(app.state.demos)} at http://{host}:{port}/")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:  # as uvicorn.run: the port taken, the app's startup failed
        raise SystemExit(3)
