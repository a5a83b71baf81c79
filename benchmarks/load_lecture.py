"""A lecture hall against one `lecture serve` on 127.0.0.1: requests, errors, latency per demo, server memory.

What it simulates. Each student opens one demo (students spread evenly over every demo in toolkit/registry.py, or
over --demos) and, until the end, sends that demo's main request (its first public api_name) the way the page
does: Gradio's queue protocol over plain HTTP (POST <demo>/gradio_api/queue/join, then the server-sent events of
GET <demo>/gradio_api/queue/data until "process_completed"). Every other request is the demo's preset (a class
opening the same slide asks the same question); the others are the student's own: their own text (the first text
box with a preset), else a position or step (the first slider, anywhere in its range), else a number or a view;
new in each scenario, so that the hostile mix finds none of them among the answers the students scenario left.
Between requests a student thinks a random --think time (default 10-40 s: a student reads the answer, changes
something, tries again; this is a lecture, not a denial of service; 100 students then send about 4 requests a
second). Students arrive over the first think interval. One student is one thread with urllib-level HTTP
(http.client), no gradio_client: 100 of them cost the 2 cores almost nothing (the CPU line says how much).

Hostile clients (--hostile N) loop without pause over every public request of every demo (all but Stop buttons),
each at the most expensive setting the page and the API accept, found from the demos themselves, not written
here: every slider and number at its widget's maximum (a number without one: 2**31 - 1), every check box group
full, dropdowns cycled through all their choices, every text box at the longest text the demo accepts (they start
at the server's MAX_TEXT_CHARS and shrink to the limit a refusal names). When the demo refuses a request (a
compute budget, a range the widget allows but the handler does not), one setting at a time moves halfway back
toward its preset until the request is served (see Expensive); the settings found are printed.

Scenarios (--scenario both runs them in turn on one server, after one warm-up):
  students: --students students for --seconds. Targets: 0 errors, p95 <= 3 s for every demo, memory flat (the
            server's memory at the end within +10% of its memory at half time: bounded caches have filled by then).
            Memory: the PSS of the server and its worker processes (the weights they share count once).
  hostile:  the same students plus --hostile clients. Targets: 0 errors and p95 <= 3 s for every demo among the
            students (the hostile clients' own requests are not counted), peak server memory <= 3 GB.
Errors: any answer that is not the demo's result (a refusal, a "busy" message, a failed join, no answer within
--grace s after the end). "Busy" answers are also counted in their own column. "Another training run is going"
comes only from the training lane, that is to a student who asked for training: one run at a time is the
design, so it is counted in its own column ("train") and not as an error.

Memory is the PSS of the server process and its worker processes (shared pages counted once), sampled every second;
at the peak, each process's own pages (USS) are printed beside the rest, the pages they share (the weights).
The warm-up sends each demo's main request once and waits for its answer however long it takes (--no-preload: only
the default models, which the worker processes share, are loaded at start); a
demo that fails it is left out of the run, named in the output, and the run does not meet its targets. The
server's own log goes to a temporary file; unexpected exceptions in it (not the messages a demo gives a person)
are listed at the end.

    python benchmarks/load_lecture.py                       # both scenarios, 100 students, 3 hostile, 300 s each
    python benchmarks/load_lecture.py --scenario students --students 20 --seconds 40 --think 2 5   # a short check

Prints a table per scenario and ends with one line of JSON ({"bench": "load_lecture", ..., "met": ...}).
"""

from __future__ import annotations

import argparse
import ast
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = {"errors": 0, "p95_s": 3.0, "mem_growth_max": 0.10, "hostile_mem_peak_gb": 3.0}
HOST = "127.0.0.1"
READ_TIMEOUT_S = 300.0  # per socket read: the queue stream sends a heartbeat every 15 s while a request waits
UNBOUNDED = 2**31 - 1  # what a hostile client types into a number box that has no maximum
FILLER = "The animal didn't cross the street because it was too tired."  # for a text box whose preset is empty
BUSY = re.compile(r"busy|queue is full", re.I)
TRAIN_BUSY = re.compile(r"training run", re.I)
LIMIT = re.compile(r"is ([\d,]+) characters long; the limit is ([\d,]+)")
NUM = r"-?[\d,]*\.?\d+(?:e[+-]?\d+)?"
# A number's range in a refusal: "x must be between 16 and 10,000,000" (closed), "x must be in (0, 1)" (toolkit.config)
BETWEEN = re.compile(rf"(?:^|[;:.] )([^;:]+?) must be between ({NUM}) and ({NUM})()")
INTERVAL = re.compile(rf"(?:^|[;:.] )([^;:]+?) must be in [\[(]({NUM}), ({NUM})([\])])")


def constant(path: Path, name: str) -> Any:
    """A module-level constant read from a source file without importing it (demos/ui.py imports gradio)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{path} has no constant {name}: update load_lecture.py")


# ---- the demos, as the page sees them: GET <demo>/config ----------------------------------------------------


@dataclass(frozen=True)
class Widget:
    kind: str  # Gradio's component type: textbox, slider, number, dropdown, radio, checkbox, checkboxgroup, state...
    label: str
    value: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    precision: int | None = None
    choices: tuple = ()
    multiselect: bool = False


@dataclass(frozen=True)
class Endpoint:
    demo: str
    api_name: str
    fn_index: int  # the dependency's id: what the page sends as fn_index
    trigger_id: int | None  # the component whose event runs it (the button), as the page sends it
    inputs: tuple[Widget, ...]
    generator: bool

    @property
    def name(self) -> str:
        return f"{self.demo}/{self.api_name}"

    def preset(self) -> list:
        return [w.value for w in self.inputs]


def get_json(url: str, timeout: float = 60) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def endpoints(url: str, demo: str) -> list[Endpoint]:
    """The demo's public requests in the page's order, read from the page's own config."""
    config = get_json(f"{url}/demo/{demo}/config")
    components = {c["id"]: c for c in config["components"]}
    out = []
    for dep in config["dependencies"]:
        if dep.get("api_visibility", "public") != "public" or not dep.get("backend_fn") or not dep.get("api_name"):
            continue
        widgets = []
        for cid in dep["inputs"]:
            c = components[cid]
            p = c.get("props", {})
            choices = tuple(ch[1] if isinstance(ch, list | tuple) else ch for ch in p.get("choices") or ())
            widgets.append(
                Widget(
                    kind=c["type"],
                    label=p.get("label") or "",
                    value=p.get("value"),
                    minimum=p.get("minimum"),
                    maximum=p.get("maximum"),
                    step=p.get("step"),
                    precision=p.get("precision"),
                    choices=choices,
                    multiselect=bool(p.get("multiselect")),
                )
            )
        targets = dep.get("targets") or []
        out.append(
            Endpoint(
                demo=demo,
                api_name=dep["api_name"],
                fn_index=dep["id"],
                trigger_id=targets[0][0] if targets and targets[0][0] is not None else None,
                inputs=tuple(widgets),
                generator=bool((dep.get("types") or {}).get("generator")),
            )
        )
    if not out:
        raise SystemExit(f"the demo {demo} has no public request: update load_lecture.py")
    return out


# ---- one request over Gradio's queue protocol ------------------------------------------------------------------


class Outcome(NamedTuple):
    kind: str  # ok | busy | train_busy | error
    seconds: float
    message: str = ""


def classify(message: str) -> str:
    if TRAIN_BUSY.search(message):
        return "train_busy"
    return "busy" if BUSY.search(message) else "error"


def call(port: int, ep: Endpoint, data: list, session: str, timeout: float = READ_TIMEOUT_S) -> Outcome:
    """What the page does on a click: join the demo's queue, then read its event stream until our answer."""
    t0 = time.perf_counter()
    base = f"/demo/{ep.demo}/gradio_api"
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        body = {
            "data": data,
            "event_data": None,
            "fn_index": ep.fn_index,
            "trigger_id": ep.trigger_id,
            "session_hash": session,
        }
        conn.request(
            "POST",
            f"{base}/queue/join",
            json.dumps(body, ensure_ascii=False).encode(),
            {"Content-Type": "application/json"},
        )
        r = conn.getresponse()
        raw = r.read()
        if r.status != 200:
            try:
                detail = str(json.loads(raw).get("detail"))
            except ValueError:
                detail = raw[:200].decode(errors="replace")
            kind = "busy" if r.status == 503 else classify(detail)
            return Outcome(kind, time.perf_counter() - t0, f"join answered {r.status}: {detail[:200]}")
        event_id = json.loads(raw)["event_id"]
        conn.request("GET", f"{base}/queue/data?session_hash={session}")
        r = conn.getresponse()
        if r.status != 200:
            return Outcome("error", time.perf_counter() - t0, f"queue/data answered {r.status}")
        while True:
            line = r.readline()
            if not line:
                return Outcome("error", time.perf_counter() - t0, "the event stream ended before the answer")
            if not line.startswith(b"data:"):
                continue
            msg = json.loads(line[5:])
            kind = msg.get("msg")
            if kind == "process_completed" and msg.get("event_id") == event_id:
                if msg.get("success"):
                    return Outcome("ok", time.perf_counter() - t0)
                text = str((msg.get("output") or {}).get("error") or msg.get("title") or "failed, no message")
                return Outcome(classify(text), time.perf_counter() - t0, text[:300])
            if kind == "unexpected_error":
                return Outcome("error", time.perf_counter() - t0, f"unexpected_error: {msg.get('message')}")
            if kind == "close_stream":
                return Outcome("error", time.perf_counter() - t0, "the event stream closed before the answer")
    except (OSError, http.client.HTTPException, ValueError, KeyError) as err:
        return Outcome("error", time.perf_counter() - t0, f"{type(err).__name__}: {err}"[:300])
    finally:
        conn.close()


# ---- students ------------------------------------------------------------------------------------------------


def own_input(ep: Endpoint) -> tuple[int, str] | None:
    """Which input a student changes, and how: the first text box with a preset, else the first slider, else the
    first number with a range, else the first dropdown or radio (its choices in turn); None: presets only."""
    rules = [
        ("text", lambda w: w.kind == "textbox" and isinstance(w.value, str) and w.value.strip()),
        ("range", lambda w: w.kind == "slider" and w.minimum is not None and w.maximum is not None),
        ("range", lambda w: w.kind == "number" and w.minimum is not None and w.maximum is not None),
        ("choice", lambda w: w.kind in ("dropdown", "radio") and len(w.choices) > 1 and not w.multiselect),
    ]
    for how, match in rules:
        for i, w in enumerate(ep.inputs):
            if match(w):
                return i, how
    return None


def student_request(
    ep: Endpoint, own: tuple[int, str] | None, sid: int, n: int, rng: random.Random, tag: str = ""
) -> list:
    data = ep.preset()
    if n % 2 == 0 or own is None:  # every other request: the preset
        return data
    i, how = own
    w = ep.inputs[i]
    if how == "text":
        data[i] = f"{w.value} (Student {sid}, question {n}{tag}.)"  # new in each scenario: no answer kept from before
    elif how == "range":
        step = w.step or 1
        k = rng.randint(0, int(round((w.maximum - w.minimum) / step)))
        value = w.minimum + k * step
        data[i] = int(round(value)) if float(step).is_integer() and float(w.minimum).is_integer() else round(value, 6)
    else:
        data[i] = w.choices[(sid + n) % len(w.choices)]
    return data


@dataclass
class Record:
    who: str  # the demo (students) or the endpoint (hostile clients)
    sent: float  # seconds since the scenario's start
    outcome: Outcome


@dataclass
class Scenario:
    port: int
    start: float
    stop_at: float
    think: tuple[float, float]
    records: list[Record] = field(default_factory=list)
    in_flight: dict[str, tuple[str, float]] = field(default_factory=dict)
    hostile_flight: dict[int, tuple[str, float]] = field(default_factory=dict)  # client -> (endpoint, sent)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ended: threading.Event = field(default_factory=threading.Event)  # set at stop_at: students stop thinking

    def record(self, who: str, sent: float, outcome: Outcome, key: str | None = None) -> None:
        with self.lock:
            self.records.append(Record(who, sent, outcome))
            if key is not None:
                self.in_flight.pop(key, None)


def student(sid: int, ep: Endpoint, sc: Scenario, tag: str) -> None:
    """One browser tab: open the page, then request, read the answer, think, until the end."""
    rng = random.Random(f"{tag}-{sid}")  # the own settings differ between scenarios too
    session = f"{tag}-student-{sid}-{rng.getrandbits(32):08x}"
    own = own_input(ep)
    if sc.ended.wait(rng.uniform(0, sc.think[1])):  # the class does not click in the same second
        return
    try:
        get_json(f"http://{HOST}:{sc.port}/demo/{ep.demo}/config")  # opening the page
    except OSError as err:
        sc.record(ep.demo, time.time() - sc.start, Outcome("error", 0.0, f"page: {err}"))
        return
    n = 0
    while time.time() < sc.stop_at:
        key = f"{sid}:{n}"
        sent = time.time() - sc.start
        with sc.lock:
            sc.in_flight[key] = (ep.demo, sent)
        outcome = call(sc.port, ep, student_request(ep, own, sid, n, rng, f", {tag}"), session)
        sc.record(ep.demo, sent, outcome, key)
        n += 1
        sc.ended.wait(rng.uniform(*sc.think))


# ---- hostile clients -----------------------------------------------------------------------------------------


def fill(seed: str, n: int) -> str:
    """About n characters of the preset text repeated (a list stays a list: "cat, dog" -> "cat, dog, cat, dog")."""
    seed = seed.strip() or FILLER.strip()
    sep = ", " if "," in seed else " "
    return (sep.join([seed] * (n // (len(seed) + len(sep)) + 1)))[:n].rstrip(" ,;")


class Expensive:
    """The most expensive request an endpoint accepts, learnt from its refusals (see the module docstring). Shared
    by the hostile clients: what one learns, all send.

    A refusal that names a text limit ("is N characters long; the limit is M") sets that box to M characters. Any
    other refusal moves one setting halfway back toward its preset, five times at most, then to its preset (a
    number without a maximum and a choice go straight back), in this order: numbers without a maximum, the text
    boxes after the first, then the other inputs from the last to the first, until the request is served; from
    then on these are its settings."""

    def __init__(self, ep: Endpoint, max_chars: int):
        self.ep = ep
        self.values: list[Any] = [w.value for w in ep.inputs]  # sent as is, but for lengths and cycled
        self.lengths: dict[int, int] = {}  # text box -> characters sent
        self.cycled: set[int] = set()  # dropdowns and radios: every choice in turn
        self.unbounded: list[int] = []
        texts = []
        for i, w in enumerate(ep.inputs):
            if w.kind == "textbox":
                self.lengths[i] = max_chars - i  # distinct lengths: a refusal's "N characters" names the box
                texts.append(i)
            elif w.kind in ("slider", "number"):
                if w.maximum is not None:
                    value = w.maximum
                else:
                    value = UNBOUNDED if w.kind == "number" else w.value
                    self.unbounded.append(i)
                whole = w.precision == 0 or isinstance(w.value, int)
                self.values[i] = int(value) if isinstance(value, float) and whole and value.is_integer() else value
            elif w.kind in ("dropdown", "radio") and w.choices:
                if w.multiselect:
                    self.values[i] = list(w.choices)
                else:
                    self.cycled.add(i)
            elif w.kind == "checkboxgroup" and w.choices:
                self.values[i] = list(w.choices)
            elif w.kind == "checkbox":
                self.values[i] = True
        rest = [i for i in reversed(range(len(ep.inputs))) if i not in self.unbounded and i not in texts[1:]]
        self.to_revert = self.unbounded + texts[1:] + rest
        self.spans: dict[int, float] = {}  # distance from the preset when halving began: at most 5 halvings
        self.settled = False  # served once: these are its settings from now on
        self.sent = 0
        self.version = 0  # bumped on every change, so that an answer to older settings teaches nothing
        self.lock = threading.Lock()

    def _text(self, i: int) -> str:
        preset = self.ep.inputs[i].value
        return fill(preset if isinstance(preset, str) else "", self.lengths[i])

    def data(self) -> tuple[list, int]:
        with self.lock:
            data = list(self.values)
            for i in self.lengths:
                data[i] = self._text(i)
            for i in self.cycled:
                choices = self.ep.inputs[i].choices
                data[i] = choices[self.sent % len(choices)]
            self.sent += 1
            return data, self.version

    def learn(self, outcome: Outcome, version: int) -> bool:
        """After a refusal: change one setting toward what the demo accepts. True: send again now."""
        with self.lock:
            if outcome.kind == "ok":
                self.settled = True
            if self.settled or outcome.kind != "error":
                return False
            if version != self.version:  # another client changed the settings meanwhile: try those
                return True
            self.version += 1
            m = LIMIT.search(outcome.message)
            if m:
                sent, limit = (int(g.replace(",", "")) for g in m.groups())
                for i in self.lengths:
                    if len(self._text(i)) == sent:
                        self.lengths[i] = limit
                        return True
            if self._into_range(outcome.message):
                return True
            if "413" in outcome.message:  # over the body limit: halve every text
                self.lengths = {i: max(1, n // 2) for i, n in self.lengths.items()}
                return True
            while self.to_revert:
                if self._toward_preset(self.to_revert[0]):
                    return True
                self.to_revert.pop(0)  # at its preset: the next setting
            self.settled = True  # refused even at its presets: keep sending them
            return False

    def _into_range(self, message: str) -> bool:
        """A refusal that names a number's range ("trained context must be between 16 and 10,000,000", "ε low
        (epsilon_low) must be in (0, 1)"): that number goes to the top of the range (just inside an open one)."""
        changed = False
        for name, lo, hi, bracket in BETWEEN.findall(message) + INTERVAL.findall(message):
            name = re.sub(r" \(\w+\)$", "", name.strip()).lower()  # "ε low (epsilon_low)" -> the label "ε low"
            lo, hi = float(lo.replace(",", "")), float(hi.replace(",", ""))
            for i, w in enumerate(self.ep.inputs):
                value = self.values[i]
                if w.label.lower() != name or i in self.lengths or not isinstance(value, int | float):
                    continue
                top = hi if bracket != ")" else w.value + 0.9 * (hi - w.value)
                new = min(max(value, lo), top)
                if w.precision == 0 or isinstance(w.value, int):
                    new = int(new)
                if new != value:
                    self.values[i] = round(new, 6) if isinstance(new, float) else new
                    self.unbounded = [j for j in self.unbounded if j != i]
                    self.to_revert = [j for j in self.to_revert if j != i] + [i]  # at its known top: put back last
                    changed = True
        return changed

    def _toward_preset(self, i: int) -> bool:
        """Move input i halfway back to its preset; False if it is there already."""
        w = self.ep.inputs[i]
        if i in self.lengths:
            floor = len(w.value.strip()) if isinstance(w.value, str) and w.value.strip() else len(FILLER.strip())
            half = floor + (self.lengths[i] - floor) // 2
            if half - floor >= max(8, self.spans.setdefault(i, self.lengths[i] - floor) / 32):
                self.lengths[i] = half
            elif self._text(i) != fill(w.value or "", floor):
                self.lengths[i] = floor
            else:  # the preset itself (an empty preset may mean "all", as in "heads to overlay")
                del self.lengths[i]
            return True
        if i in self.cycled:
            self.cycled.discard(i)  # its preset from now on
            return True
        value, preset = self.values[i], w.value
        if value == preset:
            return False
        if i not in self.unbounded and all(isinstance(v, int | float) for v in (value, preset)):
            half = preset + (value - preset) / 2
            if w.kind == "slider" and w.step:  # a slider only takes values on its steps; a number box any
                half = preset + round((value - preset) / 2 / w.step) * w.step
            if w.precision == 0 or isinstance(preset, int) and isinstance(value, int):
                half = int(round(half))
            span = self.spans.setdefault(i, value - preset)
            if half not in (value, preset) and abs(half - preset) >= abs(span) / 32:
                self.values[i] = round(half, 6) if isinstance(half, float) else half
                return True
        self.values[i] = preset
        return True

    def describe(self) -> str:
        parts = []
        for i, w in enumerate(self.ep.inputs):
            if i in self.lengths:
                parts.append(f"{w.label or w.kind}: {len(self._text(i)):,} chars")
            elif i in self.cycled:
                parts.append(f"{w.label or w.kind}: all {len(w.choices)} choices")
            elif self.values[i] != w.value:
                parts.append(f"{w.label or w.kind}={self.values[i]!r}"[:60])
        return "; ".join(parts) or "presets"


def hostile(hid: int, count: int, plans: list[Expensive], sc: Scenario, tag: str) -> None:
    """Loop over every expensive request without a pause, starting at a different place than the other clients."""
    session = f"{tag}-hostile-{hid}"
    k = hid * len(plans) // count
    while not sc.ended.is_set():
        plan = plans[k % len(plans)]
        sent = time.time() - sc.start
        data, version = plan.data()
        sc.hostile_flight[hid] = (plan.ep.name, sent)
        outcome = call(sc.port, plan.ep, data, session)
        if sc.ended.is_set():
            return  # still counted as running until the end (memory at the end: what was under way)
        del sc.hostile_flight[hid]
        sc.record(plan.ep.name, sent, outcome)
        if not plan.learn(outcome, version):
            k += 1  # served, busy, or nothing left to change: on to the next request


# ---- the server and its memory ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def memory(proc: psutil.Process) -> tuple[int, int, list[tuple[int, int]]]:
    """(PSS, RSS) summed over the server and its worker processes, and each one's (PSS, USS), the server's first.
    PSS counts a page that n of them share 1/n in each: the weights the workers share with the server count once,
    as the machine holds them. RSS counts them in each process. USS: the pages only that process holds."""
    pss = rss = 0
    each = []
    for p in tree(proc):
        try:
            info = p.memory_full_info()
            pss, rss = pss + info.pss, rss + info.rss
            each.append((info.pss, info.uss))
        except psutil.Error:
            pass
    return pss, rss, each


def cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in tree(proc):
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


class MemorySampler(threading.Thread):
    """The server's memory (PSS, with its worker processes) every second: (seconds since start, bytes); ``rss``:
    the RSS sum at the same times; ``each``: each process's (PSS, USS), the server's first."""

    def __init__(self, proc: psutil.Process):
        super().__init__(daemon=True)
        self.proc, self.samples, self.rss, self.each, self.t0 = proc, [], [], {}, time.time()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            pss, rss, each = memory(self.proc)
            t = time.time() - self.t0
            self.samples.append((t, pss))
            self.rss.append((t, rss))
            self.each[t] = each
            self.done.wait(1.0)

    def at(self, t: float) -> int:
        """The sample nearest to t seconds after start."""
        return min(self.samples, key=lambda s: abs(s[0] - t))[1] if self.samples else 0

    def peak(self, t_from: float, t_to: float) -> tuple[float, int]:
        """(when, bytes) of the highest sample between t_from and t_to."""
        return max(((t, b) for t, b in self.samples if t_from <= t <= t_to), key=lambda s: s[1], default=(t_from, 0))


def start_server(port: int, names: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "lecture", "serve", "--port", str(port), "--no-preload", "--demos", *names]
    # The server's output goes to a file: a pipe nobody reads fills up and blocks the server's logging.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while True:
        try:
            get_json(f"http://{HOST}:{port}/healthz", timeout=5)
            return proc
        except OSError as err:
            if proc.poll() is not None or time.time() > deadline:
                print(log.read_text()[-3000:], file=sys.stderr)
                raise SystemExit("the server did not start") from err
            time.sleep(1)


def stop_server(proc: subprocess.Popen) -> None:
    children = tree(psutil.Process(proc.pid))[1:] if proc.poll() is None else []
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass


def server_errors(log: Path) -> list[str]:
    """Distinct exceptions the server logged, but for the messages a demo gives a person: a traceback chain that
    ends in a UserError or gr.Error is a refusal ("the limit is 2,000"), unless it says "Something went wrong"."""
    exception = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: .*)?$")
    found, chain, linked = [], [], False

    def close() -> None:
        if chain:
            last = chain[-1]
            person = last.split(":")[0].endswith(("UserError", "exceptions.Error"))
            if not person or "Something went wrong" in last:
                found.append(last if len(chain) == 1 else f"{last}  (from {chain[0]})")
        chain.clear()

    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("Traceback (most recent call last)"):
            if not linked:
                close()
            linked = False
        elif line.startswith(("The above exception was", "During handling of the above exception")):
            linked = True
        elif exception.match(line):
            chain.append(line.strip())
        elif re.search(r"handler \S+ failed", line):
            found.append(line.strip())
    close()
    return list(dict.fromkeys(found))


# ---- warm-up, scenarios, report --------------------------------------------------------------------------------


def warm_up(port: int, mains: dict[str, Endpoint]) -> tuple[dict[str, float], dict[str, str]]:
    """Each demo's main request once, in turn, waiting for its answer however long it takes (models load now).
    Returns the seconds each took and the demos that failed (with the answer): those are left out of the run."""
    seconds, failed = {}, {}
    for name, ep in mains.items():
        outcome = call(port, ep, ep.preset(), f"warm-up-{name}")
        seconds[name] = outcome.seconds
        if outcome.kind != "ok":
            failed[name] = outcome.message
        status = "ok" if outcome.kind == "ok" else f"FAILED, left out of the run: {outcome.message}"
        print(f"  warm-up {ep.name}: {outcome.seconds:.1f} s, {status}", flush=True)
    return seconds, failed


def percentiles(values: list[float]) -> list[float | None]:
    if not values:
        return [None, None, None]
    return [round(float(q), 3) for q in np.percentile(np.array(values), [50, 95, 99])]


def run_scenario(
    name: str,
    args: argparse.Namespace,
    port: int,
    proc: psutil.Process,
    sampler: MemorySampler,
    mains: dict[str, Endpoint],
    plans: list[Expensive],
) -> dict:
    n_hostile = args.hostile if name == "hostile" else 0
    names = list(mains)
    start = time.time()
    sc = Scenario(port=port, start=start, stop_at=start + args.seconds, think=tuple(args.think))
    me = psutil.Process()
    cpu_server0, cpu_me0 = cpu(proc), sum(me.cpu_times()[:2])
    t_start = start - sampler.t0
    threads = [
        threading.Thread(target=student, args=(s, mains[names[s % len(names)]], sc, name), daemon=True)
        for s in range(args.students)
    ]
    hostiles = [
        threading.Thread(target=hostile, args=(h, n_hostile, plans, sc, name), daemon=True) for h in range(n_hostile)
    ]
    for t in hostiles + threads:
        t.start()
    print(
        f"scenario {name}: {args.students} students on {len(names)} demos"
        + (f" + {n_hostile} hostile clients" if n_hostile else "")
        + f", {args.seconds:.0f} s ...",
        flush=True,
    )
    time.sleep(max(0.0, sc.stop_at - time.time()))
    sc.ended.set()
    for t in threads:  # requests in flight at the end may finish within the grace time
        t.join(timeout=max(0.0, sc.stop_at + args.grace - time.time()))
    end = time.time()
    with sc.lock:
        records = list(sc.records)
        unanswered = list(sc.in_flight.values())
    cpu_server = cpu(proc) - cpu_server0
    cpu_me = sum(me.cpu_times()[:2]) - cpu_me0
    try:
        alive = proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        alive = False
    try:  # what the server's byte caches hold at the end (of their budget): part of its own memory
        health = get_json(f"http://{HOST}:{port}/healthz", timeout=30)
        kept = (health.get("cache_bytes"), health.get("cache_budget_bytes"))
    except (OSError, ValueError):
        kept = (None, None)

    per_demo, errors_total, busy_total, train_busy_total = {}, 0, 0, 0
    students = [r for r in records if r.who in mains]
    for demo in names:
        rows = [r.outcome for r in students if r.who == demo]
        lost = [u for u in unanswered if u[0] == demo]
        ok = [o.seconds for o in rows if o.kind == "ok"]
        busy = sum(o.kind == "busy" for o in rows)
        train_busy = sum(o.kind == "train_busy" for o in rows)
        errors = [o for o in rows if o.kind in ("error", "busy")]  # a training refusal is not a student's error
        messages = list(dict.fromkeys(o.message for o in errors))
        messages += [f"no answer {args.grace:.0f} s after the end (sent at {t:.0f} s)" for _, t in lost[:1]]
        per_demo[demo] = {
            "api": mains[demo].api_name,
            "served": len(ok),
            "errors": len(errors) + len(lost),
            "busy": busy,
            "train_busy": train_busy,
            **dict(zip(("p50_s", "p95_s", "p99_s"), percentiles(ok), strict=True)),
            "messages": messages[:3],
        }
        errors_total += len(errors) + len(lost)
        busy_total += busy
        train_busy_total += train_busy

    half, stop = t_start + args.seconds / 2, t_start + args.seconds
    mem_half, mem_end = sampler.at(half), sampler.at(stop)
    t_peak, mem_peak = sampler.peak(t_start, end - sampler.t0)
    rss_peak = max((b for t, b in sampler.rss if t_start <= t <= end - sampler.t0), default=0)  # shared pages twice
    each_peak = sampler.each.get(t_peak, [])  # the server's (PSS, USS), then each worker's
    t_peak -= t_start  # seconds since the scenario's start, as the records' times
    # the hostile requests running when memory peaked: what to look at first when the peak is too high
    at_peak = sorted(
        {r.who for r in records if r.who not in mains and r.sent <= t_peak <= r.sent + r.outcome.seconds}
        | {who for who, sent in sc.hostile_flight.values() if sent <= t_peak}
    )
    growth = (mem_end - mem_half) / mem_half if mem_half else float("nan")
    p95s = [d["p95_s"] for d in per_demo.values()]
    worst = max(per_demo, key=lambda d: per_demo[d]["p95_s"] if per_demo[d]["p95_s"] is not None else 1e9)
    p95_ok = all(p is not None and p <= TARGET["p95_s"] for p in p95s)
    if name == "students":
        met = errors_total == 0 and p95_ok and growth <= TARGET["mem_growth_max"] and alive
    else:
        met = errors_total == 0 and p95_ok and mem_peak / 1e9 <= TARGET["hostile_mem_peak_gb"] and alive

    # the hostile clients' own requests, per endpoint
    hostile_rows = {}
    for plan in plans if n_hostile else []:
        rows = [r.outcome for r in records if r.who == plan.ep.name]
        if not rows:
            continue
        hostile_rows[plan.ep.name] = {
            "sent": len(rows),
            "served": sum(o.kind == "ok" for o in rows),
            "busy": sum(o.kind in ("busy", "train_busy") for o in rows),
            "refused": sum(o.kind == "error" for o in rows),
            "max_s": round(max(o.seconds for o in rows), 1),
            "settings": plan.describe(),
            "last_refusal": next((o.message for o in reversed(rows) if o.kind != "ok"), ""),
        }

    # ---- the table
    print(
        f"\n{name}: {args.students} students, think {args.think[0]:g}-{args.think[1]:g} s, {args.seconds:.0f} s"
        + (f", {n_hostile} hostile clients" if n_hostile else "")
    )
    print(
        f"{'demo':<18}{'request':<14}{'served':>7}{'errors':>7}{'busy':>6}{'train':>6}{'p50 s':>8}{'p95 s':>8}"
        f"{'p99 s':>8}"
    )
    for demo, d in per_demo.items():
        q = [f"{v:8.2f}" if v is not None else f"{'-':>8}" for v in (d["p50_s"], d["p95_s"], d["p99_s"])]
        print(f"{demo:<18}{d['api']:<14}{d['served']:>7}{d['errors']:>7}{d['busy']:>6}{d['train_busy']:>6}{''.join(q)}")
        for m in d["messages"]:
            print(f"    error: {m[:160]}")
    if hostile_rows:
        print(f"hostile clients' requests ({n_hostile} clients; not counted above):")
        for ep_name, h in hostile_rows.items():
            print(
                f"  {ep_name:<32} sent {h['sent']:>3}, served {h['served']:>3}, busy {h['busy']:>3}, refused "
                f"{h['refused']:>3}, longest {h['max_s']:>6.1f} s; {h['settings'][:110]}"
            )
            if h["refused"] and h["last_refusal"]:
                print(f"      refusal: {h['last_refusal'][:150]}")
    share = cpu_me / (cpu_me + cpu_server) if cpu_me + cpu_server else float("nan")
    worst_p95 = per_demo[worst]["p95_s"]
    worst_text = f"{worst_p95:.2f} s" if worst_p95 is not None else "none: no request served"
    print(
        f"requests: {len(students)} from students, {errors_total} errors ({busy_total} busy), {train_busy_total} "
        f"training refusals (not errors); {len(unanswered)} unanswered {args.grace:.0f} s after the end"
    )
    print(
        f"server memory: {mem_half / 1e9:.2f} GB at half time, {mem_end / 1e9:.2f} GB at the end ({growth:+.1%}), "
        f"peak {mem_peak / 1e9:.2f} GB (PSS of the server and its workers); server alive: {alive}"
    )
    if each_peak:  # a process's own pages (USS); the rest of the PSS is its share of the pages they share
        own = " + ".join(f"{u / 1e9:.2f}" for _, u in each_peak[1:]) or "none"
        shared = mem_peak - sum(u for _, u in each_peak)
        server = each_peak[0][1] / 1e9
        print(f"at the peak: the server's own {server:.2f} GB, the workers' own {own} GB, shared {shared / 1e9:.2f} GB")
    if at_peak:
        print(f"at the peak ({t_peak:.0f} s) the hostile clients were running: {', '.join(at_peak)}")
    if kept[0] is not None:
        print(f"the server's byte caches hold {kept[0] / 2**20:.0f} MiB of their {kept[1] / 2**20:.0f} MiB at the end")
    print(
        f"CPU: server {cpu_server:.0f} s, the simulated clients (this process) {cpu_me:.0f} s ({share:.0%}) on "
        f"{psutil.cpu_count()} cores; worst p95 {worst_text} ({worst}); met: {met}\n",
        flush=True,
    )
    return {
        "requests": len(students),
        "errors": errors_total,
        "busy": busy_total,
        "train_busy": train_busy_total,
        "unanswered": len(unanswered),
        "worst_p95_s": per_demo[worst]["p95_s"],
        "worst_p95_demo": worst,
        "mem_half_gb": round(mem_half / 1e9, 3),
        "mem_end_gb": round(mem_end / 1e9, 3),
        "mem_growth": round(growth, 4),
        "mem_peak_gb": round(mem_peak / 1e9, 3),
        "mem_peak_rss_sum_gb": round(rss_peak / 1e9, 3),
        "mem_peak_each_pss_uss_gb": [[round(b / 1e9, 3) for b in pu] for pu in each_peak],
        "mem_peak_during": at_peak,
        "cache_mib_end": round(kept[0] / 2**20, 1) if kept[0] is not None else None,
        "alive": alive,
        "cpu_server_s": round(cpu_server, 1),
        "cpu_clients_s": round(cpu_me, 1),
        "per_demo": {k: {kk: vv for kk, vv in v.items() if kk not in ("messages", "api")} for k, v in per_demo.items()},
        **(
            {
                "hostile_requests": {
                    k: {kk: v[kk] for kk in ("sent", "served", "busy", "refused", "max_s")}
                    for k, v in hostile_rows.items()
                }
            }
            if hostile_rows
            else {}
        ),
        "met": bool(met),
    }


def main() -> int:
    from toolkit import registry

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=("both", "students", "hostile"), default="both")
    ap.add_argument("--students", type=int, default=100)
    ap.add_argument("--hostile", type=int, default=3, help="hostile clients in the hostile scenario")
    ap.add_argument("--seconds", type=float, default=300, help="length of each scenario")
    ap.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(10.0, 40.0),
        metavar=("MIN", "MAX"),
        help="seconds a student thinks between requests (uniform; default 10 40)",
    )
    ap.add_argument("--grace", type=float, default=120, help="seconds a request sent before the end may take")
    ap.add_argument("--demos", nargs="*", default=list(registry.CONCEPTS), help="default: every demo")
    args = ap.parse_args()
    unknown = [n for n in args.demos if n not in registry.CONCEPTS]
    if unknown:
        raise SystemExit(f"unknown demo {', '.join(unknown)}; known: {', '.join(registry.CONCEPTS)}")
    names = [n for n in registry.CONCEPTS if n in args.demos]
    scenarios = ["students", "hostile"] if args.scenario == "both" else [args.scenario]
    max_chars = constant(ROOT / "demos" / "ui.py", "MAX_TEXT_CHARS")

    port = free_port()
    log = Path(tempfile.mkstemp(prefix="load_lecture-server-", suffix=".log")[1])
    t0 = time.time()
    server = start_server(port, names, log)
    proc = psutil.Process(server.pid)
    sampler = MemorySampler(proc)
    sampler.start()
    results: dict[str, dict] = {}
    try:
        print(f"server up in {time.time() - t0:.0f} s (log: {log}); warm-up, one request per demo:", flush=True)
        url = f"http://{HOST}:{port}"
        every = {name: endpoints(url, name) for name in names}
        mains = {name: eps[0] for name, eps in every.items()}
        warm, failed = warm_up(port, mains)
        mains = {name: ep for name, ep in mains.items() if name not in failed}
        every = {name: eps for name, eps in every.items() if name not in failed}
        if not mains:
            raise SystemExit("every demo failed its warm-up request")
        mem_warm = memory(proc)[0]
        print(f"warm-up done in {sum(warm.values()):.0f} s; server memory {mem_warm / 1e9:.2f} GB\n", flush=True)
        plans = [Expensive(ep, max_chars) for eps in every.values() for ep in eps if not ep.api_name.startswith("stop")]
        for name in scenarios:
            results[name] = run_scenario(name, args, port, proc, sampler, mains, plans)
    finally:
        sampler.done.set()
        stop_server(server)

    logged = server_errors(log)
    if logged:
        print(f"the server logged {len(logged)} distinct unexpected errors ({log}); the first:")
        for line in logged[:8]:
            print(f"    {line[:200]}")
    met = not failed and all(r["met"] for r in results.values())
    print(
        json.dumps(
            {
                "bench": "load_lecture",
                "students": args.students,
                "hostile": args.hostile if "hostile" in results else 0,
                "seconds": args.seconds,
                "think_s": list(args.think),
                "demos": len(names),
                "mem_after_warmup_gb": round(mem_warm / 1e9, 3),
                "warmup_s": round(sum(warm.values()), 1),
                "warmup_failed": failed,
                "scenarios": results,
                "server_error_lines": len(logged),
                "target": {
                    "errors": TARGET["errors"],
                    "p95_s_every_demo": TARGET["p95_s"],
                    "students_mem_growth_max": TARGET["mem_growth_max"],
                    "hostile_mem_peak_gb": TARGET["hostile_mem_peak_gb"],
                },
                "met": bool(met),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
