"""One process serving every demo: FastAPI + gr.mount_gradio_app, an index page at /, demos at /demo/<name>.

The demos are those of the concepts in ``toolkit.registry``, in deck order; each module ``demos.<name>`` defines
a module-level ``demo`` (gr.Blocks). Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import html
import importlib
import os
from dataclasses import dataclass

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402

from demos import ui  # noqa: E402
from toolkit import registry  # noqa: E402

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
QUEUE_SIZE = 128  # requests waiting per demo before new ones are refused with a "busy" message


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
        doc = (module.__doc__ or "").strip().splitlines()
        found[name] = DemoInfo(name, registry.get(name).title, doc[0] if doc else "", module.demo)
    return found


def index_html(infos: dict[str, DemoInfo]) -> str:
    items = "\n".join(
        f'<li><a href="/demo/{n}/">{html.escape(i.title)}</a> <span>{html.escape(i.description)}</span></li>'
        for n, i in infos.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LLM lecture demos</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: {", ".join(ui.FONT)}; font-size: 20px; max-width: 52rem; margin: 2rem auto; padding: 0 1rem;
        background: #fff; color: #111; }}
 @media (prefers-color-scheme: dark) {{ body {{ background: #0b0f19; color: #eee; }} a {{ color: #56B4E9; }} }}
 li {{ margin: .6rem 0; }} span {{ opacity: .75; }}
</style></head>
<body><h1>LLM lecture demos</h1>
<p>Every demo runs a real model on this machine. Add <code>?__theme=dark</code> to a demo's address for a projector.</p>
<ul>
{items}
</ul></body></html>"""


def build_app(names: list[str] | None = None) -> FastAPI:
    infos = discover(names)
    app = FastAPI(title="LLM lecture demos", docs_url=None, redoc_url=None, openapi_url=None)
    page = index_html(infos)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/healthz")
    def health() -> dict:
        return {"ok": True, "demos": list(infos)}

    for name, info in infos.items():
        info.blocks.queue(default_concurrency_limit=ui.WORKERS, max_size=QUEUE_SIZE)
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
        )
    app.state.demos = infos
    return app


def tune_for_serving() -> None:
    """Many students, few cores: each of ui.WORKERS concurrent requests gets its share of the cores (2 forwards
    with 2 threads each on 2 cores only fight), and glibc keeps few malloc arenas so memory stays flat."""
    import ctypes

    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // ui.WORKERS))
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX = 2
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        pass


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, names: list[str] | None = None) -> None:
    import uvicorn

    tune_for_serving()
    app = build_app(names)
    print(f"[lecture] serving {', '.join(app.state.demos)} at http://{host}:{port}/", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
