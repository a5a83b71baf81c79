"""Shared helpers for the Gradio demos: the offline theme, URL presets, dark mode, friendly errors, widgets
built from a config's own field metadata.

Demos stay thin: they build a module-level ``demo`` (a gr.Blocks) without loading any model, and their named
handlers call the toolkit. Bad input becomes a ``gr.Error`` (a message in the UI), never a stack trace.
"""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import torch

from demos import cache, lanes, stage, workers
from toolkit import models, registry, turns
from toolkit.config import BudgetError, Config, ConfigError
from toolkit.models import ModelUnavailable
from toolkit.trace import TraceError

log = logging.getLogger("lecture")

MAX_TEXT_CHARS = 20_000  # longer input is refused before tokenising (token limits are per demo)

# System fonts only: the default Gradio theme would fetch Google Fonts, which fails offline.
FONT = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
FONT_MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
# `?embed=1` (the deck's <Demo> adds it): the slide already shows title and description, so hide the demo's own.
CSS = (
    """
.gradio-container { font-size: 18px; }
footer { display: none !important; }
.lecture-embed .demo-header { display: none !important; }
"""
    + stage.CSS
)
HEAD = stage.SCRIPT


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def escape(text: Any) -> str:
    """User text for a Markdown output: shown as typed, never as markup, links or images."""
    return _MARKDOWN.sub(r"\\\1", html.escape(str(text), quote=False))


def header(name: str, description: str | None) -> gr.Markdown:
    """The concept's title and the demo's one-line description (hidden when embedded in a slide)."""
    title = registry.get(name).title
    return gr.Markdown(f"## {title}\n{(description or '').strip()}", elem_classes=["demo-header"])


def launch(demo: gr.Blocks, port: int = 7860) -> None:
    """``python demos/<name>.py``: this one demo on http://127.0.0.1:port/, offline theme and all."""
    demo.queue(default_concurrency_limit=PER_DEMO).launch(
        server_name="127.0.0.1", server_port=port, theme=theme(), css=CSS, head=HEAD, footer_links=[], ssr_mode=False
    )


def theme() -> gr.themes.Base:
    return gr.themes.Default(font=FONT, font_mono=FONT_MONO, text_size="lg")


class UserError(gr.Error):
    """Bad input from a person: shown in the UI as a message (a gr.Error), also a clear exception in the API.

    The page shows the message as HTML, and messages quote what was typed: it is escaped here, once for all, so a
    name like ``<img src=...>`` reads as text and never becomes markup. Gradio prints no traceback for it (a refusal
    is not a fault: a hostile load run had 164 of them in the server's log); a fault is logged by ``message``."""

    def __init__(self, message: str = "Error", *args: Any, **kwargs: Any):
        kwargs.setdefault("print_exception", False)
        self.text = str(message)
        super().__init__(html.escape(self.text, quote=False), *args, **kwargs)

    def __str__(self) -> str:
        """The sentence as written (gr.Error gives its repr): a handler that catches ValueError and re-raises
        ``UserError(str(err))`` catches this one too, and must not add quotes or escape it twice."""
        return self.text


# Four lanes, so that nothing cheap ever waits behind model work, and quick forwards never behind slow ones:
#   "cheap": pure maths, replays, facts (no slot: answered at once, whatever else runs);
#   "model": forward passes, WORKERS at once across every demo of the process (2 cores); a request that waits longer
#            than BUSY_AFTER_S gets a clear "busy" message. Each request's work is bounded by its concept's budget;
#   "heavy": model work of seconds (generating with and without a cache, RAG, speculative decoding, a whole-text
#            pass): a model slot too;
#   "train": training-like work (DPO, LoRA, GRPO...), one run at a time (a second is told at once), in a model
#            slot ranked as heavy work (a live run takes one for each of its steps: ``ui.slot``).
# Every slot is lent, between decoder layers and between tokens or steps (toolkit.turns), to a request that ranks
# before its holder: requests are ranked by how long their session's requests were under way lately (demos/lanes.py), so
# a student's question never waits for someone's long request to end.
WORKERS = int(os.environ.get("LECTURE_WORKERS", "2"))
BUSY_AFTER_S = float(os.environ.get("LECTURE_BUSY_AFTER_S", "60"))
# Requests of one demo inside its handlers at once (Gradio's concurrency limit). The lanes decide what runs; a
# limit of WORKERS would let two slow requests of a demo hold back its cheap ones and the next student's question.
PER_DEMO = 8
LANES = ("cheap", "model", "heavy", "train")
_gate = lanes.Gate(WORKERS, heavy=max(1, WORKERS - 1))
# Intra-op threads of the work in a slot, (beside others, alone); None: left as they are (tests, notebooks).
# lecture.server sets them: a request holding the only slot in use gets every core (a student's question in a quiet
# moment, or while someone's maxima step aside for it); beside another, its share (two forwards with two threads each
# on two cores only fight). Fitted again at every turn, so it follows the others as they come and go.
THREADS: tuple[int, int] | None = None
# A model-lane request that held its slot this long gives freed memory back too (a DPO reference pass at its limits,
# 2.7 s, left +287 MiB of freed heap in the server); quicker forwards skip it.
TRIM_AFTER_S = 1.0
_train = threading.Lock()
_held = threading.local()
_pool: workers.Pool | None = None  # the heavy lane's worker processes (start_workers); None: work runs here
BUSY_MESSAGE = "The demo server is busy with other requests right now; please try again in a moment."
TRAIN_BUSY = "Another training run is going on this server (one at a time); try again when it has finished."


@contextlib.contextmanager
def training() -> Iterator[None]:
    """The training slot, for a streaming run (a generator handler holds it across its yields: ``with
    ui.training(): ...`` around the run, after its first, free update). A second run is told at once."""
    if not _train.acquire(blocking=False):
        raise UserError(TRAIN_BUSY)
    try:
        yield
    finally:
        _train.release()


def safe(fn: Callable | None = None, *, lane: str = "model") -> Callable:
    """Wrap a handler (plain or generator): its lane's slot (see LANES); user errors pass through as messages; a
    bad config value or an over-budget request becomes its sentence; anything else becomes a short message, logged.
    ``@ui.safe`` is the model lane; ``@ui.safe(lane="cheap")``, ``lane="heavy"`` or ``lane="train"`` pick another.
    A generator (a live run) takes no slot here: it holds ``ui.training()`` itself while it trains."""
    if fn is None:
        return functools.partial(safe, lane=lane)
    if lane not in LANES:
        raise ValueError(f"unknown lane {lane!r}; choose one of {LANES}")
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:
                raise message(fn.__name__, err) from err

        return stream

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _session(args, kwargs), _lane(lane):
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:
                raise message(fn.__name__, err) from err

    return wrapper


def _request(args: tuple, kwargs: dict) -> gr.Request | None:
    given = kwargs.get("request") or next((a for a in args if isinstance(a, gr.Request)), None)
    return current_request(given)


def current_request(request: gr.Request | None = None) -> gr.Request | None:
    """The page's request: the one a handler was given, else the one Gradio is serving in this thread. Gradio
    passes the request only to a positional parameter, so a handler written ``f(*args, request=None)`` gets None:
    without this its figures were drawn light on a dark page and its session went unranked."""
    if request is not None:
        return request
    try:
        from gradio.context import LocalContext

        return LocalContext.request.get(None)
    except (ImportError, AttributeError):  # another Gradio: only what was given
        return None


@contextlib.contextmanager
def _session(args: tuple, kwargs: dict) -> Iterator[None]:
    """The browser session a handler works for, for the heavy lane's ranks; an inner handler called without the
    request keeps the outer one's."""
    request = _request(args, kwargs)
    before = getattr(_held, "session", None)
    if request is not None:
        _held.session = getattr(request, "session_hash", None) or before
    try:
        yield
    finally:
        _held.session = before


class _lane:
    """Hold the lane's slot for one handler call, taking turns; a handler calling another handler keeps its one
    slot. ``session``: the browser session to rank it by, where the thread has none (a live run's own thread)."""

    def __init__(self, lane: str, session: str | None = None):
        self.lane, self.session = lane, session
        self.ticket: lanes.Ticket | None = None
        self.turns = contextlib.ExitStack()
        self.took = False
        self.cheap_since: float | None = None

    def __enter__(self) -> None:
        if getattr(_held, "slot", False):
            return
        if self.lane == "cheap":  # no slot; its time still ranks the session (someone looping over the maxima)
            if not getattr(_held, "cheap", False):
                self.cheap_since, self.slot_time, _held.cheap = time.perf_counter(), _slot_time(), True
            return  # model work it calls takes a slot (below), and that time is charged at the slot's leave
        if self.lane == "train" and not _train.acquire(blocking=False):
            raise UserError(TRAIN_BUSY)
        try:
            self.ticket = _gate.enter("model" if self.lane == "model" else "heavy", self._session() or "", BUSY_AFTER_S)
        except lanes.Busy:
            if self.lane == "train":
                _train.release()
            raise UserError(BUSY_MESSAGE) from None
        self.turns.enter_context(turns.taking(functools.partial(_turn, self.ticket)))
        _fit_threads(self.ticket)
        _held.slot = self.took = True
        self.slot_since = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        if self.cheap_since is not None:
            _held.cheap = False
            session = self._session()
            if session:  # the time outside any slot it called
                seconds = time.perf_counter() - self.cheap_since - (_slot_time() - self.slot_time)
                _gate.charge(session, seconds)
            return
        if not self.took:
            return  # inside another handler's slot
        _held.slot = self.took = False
        held = time.perf_counter() - self.slot_since
        _held.slot_time = _slot_time() + held
        self.turns.close()
        _gate.leave(self.ticket)
        _fit_threads(None)
        if self.lane == "train":
            _train.release()
        if self.lane != "model" or held >= TRIM_AFTER_S:
            trim()

    def _session(self) -> str | None:
        return self.session if self.session is not None else getattr(_held, "session", None)


def _slot_time() -> float:
    """Seconds this thread has held slots so far (so a cheap handler's charge leaves out the model work it called)."""
    return getattr(_held, "slot_time", 0.0)


def slot(session: str | None = None) -> _lane:
    """A model slot ranked as heavy work, taking turns, for model work outside a handler's own call: each step
    of a live run that holds ``training()`` (``with ui.slot(session): ...``, in the thread that does the work)."""
    return _lane("heavy", session)


def trim() -> None:
    """Give freed memory back to the system after heavy work (lecture.server sets it to glibc's malloc_trim)."""


def _turn(ticket: lanes.Ticket) -> None:
    try:
        _gate.turn(ticket, BUSY_AFTER_S)
    except lanes.Busy:
        raise UserError(BUSY_MESSAGE) from None
    _fit_threads(ticket)


def start_workers(n: int = WORKERS) -> None:
    """Fork ``n`` worker processes for the heavy lane's model work (``offload``): lecture.server calls it once the
    models are loaded, before any OpenMP thread exists in this process (see demos/workers.py)."""
    global _pool
    _pool = workers.Pool(n, after=lambda: trim())
    _gate.changed = _pool.changed


def offload(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` for a handler holding a model slot: in a worker process where the server started
    them (its own GIL: not slowed by the server's Python), else here. ``fn`` and its arguments travel pickled: a
    module-level function and a model's name, not a loaded model."""
    pool = _pool
    if pool is None or not pool.alive() or not getattr(_held, "slot", False):
        return fn(*args, **kwargs)
    try:
        return pool.run(fn, args, kwargs, _worker_threads)
    except workers.WorkerLost as err:
        raise UserError(str(err)) from None


def _worker_threads() -> int | None:
    """The intra-op threads the slot's work uses now (``_fit_threads`` set them in the slot holder's thread)."""
    return torch.get_num_threads() if THREADS is not None else None


def _fit_threads(ticket: lanes.Ticket | None) -> None:
    """This thread's intra-op threads (``THREADS``) for ``ticket``'s work now; None: it has left its slot."""
    if THREADS is None:
        return
    want = THREADS[1] if ticket is not None and _gate.alone(ticket) else THREADS[0]
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


def message(handler: str, err: Exception) -> UserError:
    """The sentence a page shows for an exception; what was not a person's mistake is logged with its trace."""
    if isinstance(err, (ModelUnavailable, TraceError, ConfigError, BudgetError)):  # already a sentence with the fix
        return UserError(str(err))
    log.exception("handler %s failed", handler)
    return UserError(f"Something went wrong: {type(err).__name__}: {str(err)[:300]}")


def memo(maxsize: int = 64) -> Callable:
    """``functools.lru_cache`` for functions that return Gradio updates: every call gets its own copies of the
    update dicts. Gradio pops an update's "value" while sending it, so a cached dict handed out twice would reach
    the second student empty."""

    def wrap(fn: Callable) -> Callable:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            return _copies(cached(*args, **kwargs))

        call.cache_clear = cached.cache_clear
        return call

    return wrap


def answers(fn: Callable) -> Callable:
    """Keep a model-lane handler's answers, keyed by its inputs and the page's theme, in one shared byte-bounded
    cache: a repeated question (a class opening the same slide) is answered from memory at once, without waiting
    for the model lane. Only for handlers whose answer depends on their inputs alone (timings included: a kept
    answer shows the run that measured them); failures are not kept. Place it above the handler's other wrappers."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        request = _request(args, kwargs)
        inputs = [a for a in args if not isinstance(a, gr.Request)]  # Gradio may pass the request by position
        key = cache.answer_key(fn, inputs, {k: v for k, v in kwargs.items() if k != "request"}, is_dark(request))
        if key is not None:
            try:
                return _copies(cache.answers().get(key))
            except KeyError:
                pass
        out = fn(*args, **kwargs)
        if key is not None and (size := cache.answer_size(out)) is not None:
            cache.answers().put(key, out, size)
        return _copies(out)

    return call


def _copies(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_copies(v) for v in value)
    if isinstance(value, list):
        return [_copies(v) for v in value]
    return dict(value) if isinstance(value, dict) else value


def query(request: gr.Request | None) -> dict[str, str]:
    """The page's URL query parameters (empty when called outside a browser session)."""
    request = current_request(request)
    if request is None:
        return {}
    try:
        return dict(request.query_params)
    except Exception:
        return {}


def is_dark(request: gr.Request | None) -> bool:
    return query(request).get("__theme") == "dark"


def preset(params: dict[str, str], key: str, default: Any, cast: Callable = str, choices: list | None = None) -> Any:
    """One preset value from the URL query, cast and checked; the default when absent or unusable."""
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        return default
    if isinstance(value, float) and not math.isfinite(value):
        return default
    if choices is not None and value not in choices:
        return default
    return value


def as_int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """Parse an integer from a widget or API call; out-of-range values are clamped, junk is a UserError."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a whole number, got {value!r}.") from None
    if not math.isfinite(f):
        raise UserError(f"{name} must be a finite number, got {value!r}.")
    i = int(round(f))
    if lo is not None:
        i = max(lo, i)
    if hi is not None:
        i = min(hi, i)
    return i


def as_float(value: Any, name: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(f):
        raise UserError(f"{name} must be a finite number, got {value!r}.")
    return f


def as_choice(value: Any, name: str, choices) -> Any:
    """One of ``choices`` (a list, tuple or dict), else a UserError that lists them."""
    if value not in choices:
        raise UserError(f"Unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}.")
    return value


def as_text(value: Any, name: str = "text", max_chars: int = MAX_TEXT_CHARS) -> str:
    """Non-empty text, refused when longer than max_chars (token truncation is the demo's job)."""
    text = "" if value is None else str(value)
    if not text.strip():
        raise UserError(f"Please type some {name}: it is empty.")
    if len(text) > max_chars:
        raise UserError(f"The {name} is {len(text):,} characters long; the limit is {max_chars:,}. Shorten it.")
    return text


def model_name(value: Any, kind: str | None = "causal") -> str:
    """A model named in a box or through the API: text (an API call may send 1.5, true, [1]...: a message, not a
    crash in ``.strip()``), stripped; empty: the server's default of ``kind``, or a message where ``kind`` is None.
    Too long or not a name at all: ``models.load`` says so."""
    if value is not None and not isinstance(value, str):
        raise UserError("The model is named by text: a Hugging Face id or a local folder.")
    name = (value or "").strip()
    if name:
        return name
    if kind is None:
        raise UserError("Choose a model or type a Hugging Face id / local folder.")
    return models.default(kind)


def model(name: str | None = None, kind: str = "causal") -> models.Loaded:
    """The named model (default: the server's default of that kind); one that cannot be had is a message."""
    try:
        return models.load(name or models.default(kind))
    except ModelUnavailable as err:
        raise UserError(str(err)) from None


# ---- widgets from a config's metadata: the UI shows the same ranges the library enforces --------------------


def _label(cls: type[Config], name: str) -> str:
    return cls.spec(name).label or name.replace("_", " ")


def slider(cls: type[Config], name: str, **kw: Any) -> gr.Slider:
    spec = cls.spec(name)
    step = spec.step or 1
    return gr.Slider(
        spec.lo + step if spec.open_lo else spec.lo,  # an open end is not offered: the UI and the config agree
        spec.hi - step if spec.open_hi else spec.hi,
        value=kw.pop("value", cls.default(name)),
        step=step,
        label=kw.pop("label", _label(cls, name)),
        info=kw.pop("info", None),
        **kw,
    )


def number(cls: type[Config], name: str, **kw: Any) -> gr.Number:
    spec = cls.spec(name)
    default = cls.default(name)
    whole = isinstance(default, int)
    return gr.Number(
        kw.pop("value", default),
        label=kw.pop("label", _label(cls, name)),
        minimum=kw.pop("minimum", spec.lo),
        maximum=kw.pop("maximum", spec.hi),
        precision=0 if whole else None,
        step=kw.pop("step", spec.step or _fraction_step(default, spec.lo)),
        **kw,
    )


def _fraction_step(default: Any, lo: float | None) -> float:
    """A box holding a fraction steps by its finest leading digit, of the default and of the minimum (the browser
    counts steps from the minimum): a learning rate of 0.002 by 0.001, a rate of 0.3 from 0.01 by 0.01; not by 1,
    which would leave the range in one click. Whole numbers and values from 1 up keep Gradio's step of 1."""
    if isinstance(default, int) or not 0 < abs(default) < 1:
        return 1
    digits = [abs(default)] + ([abs(lo)] if lo and 0 < abs(lo) < 1 else [])
    return 10.0 ** min(math.floor(math.log10(v) + 1e-9) for v in digits)


def dropdown(cls: type[Config], name: str, **kw: Any) -> gr.Dropdown:
    spec = cls.spec(name)
    return gr.Dropdown(
        list(spec.choices or []),
        value=kw.pop("value", cls.default(name)),
        label=kw.pop("label", _label(cls, name)),
        **kw,
    )


def config(cls: type[Config], base: Config | None = None, **raw: Any) -> Config:
    """A checked config from widget values; a bad value becomes a message naming the field and its range."""
    try:
        return cls.coerce(base, **raw)
    except ConfigError as err:
        raise UserError(str(err).split(": ", 1)[-1]) from None
