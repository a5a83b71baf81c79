"""The heavy lane's worker processes (demos/workers.py): work offloaded from a slot runs in a worker, takes its turns
in the server's gate, stops when its request is told "busy", and a worker that dies leaves a working server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import free_port
from test_lecture_hall import Session, until

from demos import ui, workers
from toolkit import turns

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pool(monkeypatch):
    """Workers forked from this test process, as lecture.server forks them (the work sent here uses no torch). They
    ask at a turn only when the gate changed (no periodic asking), so a test that needs them to ask shows that
    the gate's changes reach them."""
    monkeypatch.setattr(workers, "CHECK_S", 3600.0)  # before the fork: the workers' copy
    started = workers.Pool(ui.WORKERS)
    monkeypatch.setattr(ui, "_pool", started)
    monkeypatch.setattr(ui._gate, "changed", started.changed)
    monkeypatch.setattr(ui._gate, "usage", {})
    yield started
    started.close()


# ---- what runs in the workers (module level: sent by reference) ----------------------------------------------


def steps_until(path: str) -> int:
    """Steps of work, a turn after each, until ``path`` exists; how many."""
    n = 0
    while not os.path.exists(path):
        time.sleep(0.01)
        n += 1
        turns.turn()
    return n


def turns_for(seconds: float) -> int:
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        time.sleep(0.01)
        n += 1
        turns.turn()
    return n


class Odd(Exception):
    def __init__(self, a, b):  # not rebuilt from its args: it does not survive pickling
        super().__init__(f"odd {a} {b}")


def raise_odd() -> None:
    raise Odd(1, 2)


def touch_then_sleep(path: str, seconds: float) -> None:
    Path(path).touch()
    time.sleep(seconds)


@ui.safe(lane="heavy")
def heavy(fn, *args, request=None):
    return ui.offload(fn, *args)


# ---- tests ------------------------------------------------------------------------------------------------------


def test_offloaded_work_runs_in_a_worker_inside_a_slot_and_here_outside(pool):
    pids = {w.pid for w in pool.workers}
    assert len(pids) == ui.WORKERS and os.getpid() not in pids
    assert heavy(os.getpid, request=Session("student")) in pids
    assert ui.offload(os.getpid) == os.getpid()  # no slot held: nothing to lend, it runs here
    assert ui._gate.free == ui.WORKERS


def test_a_worker_s_turns_lend_the_slot_to_a_quick_forward(pool, tmp_path):
    """Every slot held by work in the workers: a quick forward still gets a slot, lent at a worker's next turn
    (the worker asks because the gate changed: nothing else makes it ask here), and the workers' work then carries
    on to its end."""
    flag, results = tmp_path / "release", []
    threads = [
        threading.Thread(target=lambda i=i: results.append(heavy(steps_until, str(flag), request=Session(f"s{i}"))))
        for i in range(ui.WORKERS)
    ]
    for t in threads:
        t.start()
    try:
        until(lambda: ui._gate.free == 0)
        assert ui._gate.free == 0

        @ui.safe
        def forward():
            return "quick"

        t0 = time.monotonic()
        assert forward() == "quick"
        assert time.monotonic() - t0 < 5
    finally:
        flag.touch()
        for t in threads:
            t.join(timeout=30)
    assert len(results) == ui.WORKERS and all(isinstance(n, int) for n in results)  # every one ran to its end
    assert ui._gate.free == ui.WORKERS and not ui._gate.waiting


def test_a_request_told_busy_at_a_turn_stops_its_worker_which_serves_the_next(pool):
    calls, done = [], threading.Event()

    def changes():  # the gate changing: the worker asks at its next turn
        while not done.is_set():
            pool.changed()
            time.sleep(0.01)

    threading.Thread(target=changes, daemon=True).start()

    def take_turn():
        calls.append(1)
        if len(calls) == 3:
            raise ui.UserError(ui.BUSY_MESSAGE)

    w = pool.workers[0]
    t0 = time.monotonic()
    try:
        with turns.taking(take_turn), pytest.raises(ui.UserError, match="busy"):
            pool.run(turns_for, (30.0,), {}, lambda: None)  # stopped at its third turn
    finally:
        done.set()
    assert time.monotonic() - t0 < 10 and len(calls) == 3
    assert pool.alive() == ui.WORKERS and w in pool.workers
    pids = {pool.run(os.getpid, (), {}, lambda: None) for _ in range(ui.WORKERS)}
    assert pids == {w.pid for w in pool.workers}


def test_errors_in_a_worker_reach_the_request(pool):
    with pytest.raises(ValueError, match="invalid literal"):
        pool.run(int, ("x",), {}, lambda: None)
    with pytest.raises(RuntimeError, match="Odd: odd 1 2"):
        pool.run(raise_odd, (), {}, lambda: None)
    for _ in range(ui.WORKERS + 1):  # a call that does not pickle is refused, and leaves its worker idle
        with pytest.raises(Exception, match="pickle"):
            pool.run(lambda: 1, (), {}, lambda: None)
    assert pool.alive() == ui.WORKERS and pool.idle.qsize() == ui.WORKERS
    assert {pool.run(os.getpid, (), {}, lambda: None) for _ in range(ui.WORKERS)} == {w.pid for w in pool.workers}


def test_with_every_worker_taken_the_work_runs_here_at_once(pool, tmp_path):
    """Requests paused at a turn keep their worker: another request does not wait for one."""
    flag, results = tmp_path / "release", []
    threads = [
        threading.Thread(target=lambda: results.append(pool.run(steps_until, (str(flag),), {}, lambda: None)))
        for _ in range(ui.WORKERS)
    ]
    for t in threads:
        t.start()
    try:
        until(lambda: pool.idle.empty())
        t0 = time.monotonic()
        assert pool.run(os.getpid, (), {}, lambda: None) == os.getpid()
        assert time.monotonic() - t0 < 0.5
    finally:
        flag.touch()
        for t in threads:
            t.join(timeout=30)
    assert len(results) == ui.WORKERS and pool.idle.qsize() == ui.WORKERS


def test_a_worker_that_dies_leaves_the_server_working(pool, caplog, tmp_path):
    first = pool.workers[0]
    os.kill(first.pid, signal.SIGKILL)  # idle: its next call runs here instead
    until(lambda: not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() == psutil.STATUS_ZOMBIE)
    pids = [pool.run(os.getpid, (), {}, lambda: None) for _ in range(ui.WORKERS)]
    assert os.getpid() in pids and first not in pool.workers and pool.alive() == ui.WORKERS - 1
    assert "has ended" in caplog.text
    if pool.workers:  # one dies during a request: the request is told, the next one is served
        second, started, outcome = pool.workers[0], tmp_path / "started", []

        def ask():
            try:
                heavy(touch_then_sleep, str(started), 30, request=Session("student"))
            except ui.UserError as err:
                outcome.append(err)

        asking = threading.Thread(target=ask)
        asking.start()
        until(started.exists)
        os.kill(second.pid, signal.SIGKILL)
        asking.join(timeout=30)
        assert outcome and "model worker stopped during this request" in str(outcome[0])
        assert heavy(os.getpid, request=Session("student")) == os.getpid()
    assert pool.alive() == 0 and ui._gate.free == ui.WORKERS


def test_lecture_serve_answers_from_its_workers(smol):
    """`lecture serve` forks its workers after loading the models (they share the weights' pages) and before any
    OpenMP thread exists (a worker on every core would hang): a KV cache question is answered by a worker, with
    the tokens the model generates in this process."""
    from gradio_client import Client

    from toolkit import kv_cache as kv

    port, kids = free_port(), []
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "lecture", "serve", "--port", str(port), "--demos", "kv_cache"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        until(lambda: any("serving" in line for line in lines) or proc.poll() is not None, 180)
        assert any("worker processes" in line for line in lines), "".join(lines)[-2000:]
        assert proc.poll() is None, "".join(lines)[-2000:]  # "serving" is printed once the port listens: no wait
        server = psutil.Process(proc.pid)
        kids += server.children()
        assert len(kids) == ui.WORKERS
        before = sum(k.cpu_times().user for k in kids)
        prompt = "The three primary colours are"
        client = Client(f"http://127.0.0.1:{port}/demo/kv_cache/", verbose=False)
        md = client.predict(prompt, 8, api_name="/run")[-1]
        client.close()  # its heartbeat's connection would hold the server's graceful shutdown
        assert sum(k.cpu_times().user for k in kids) - before > 0.3  # the work ran in a worker
        here = kv.capture(smol, prompt, ui.config(kv.KvCacheConfig, steps=8))
        assert f"Generated: `{''.join(here.tokens).strip()}`" in md
        pss = sum(p.memory_full_info().pss for p in [server, *kids])
        rss = sum(p.memory_full_info().rss for p in [server, *kids])
        assert pss < rss - 0.3e9 * ui.WORKERS  # the weights are shared, not copied into each worker
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    until(lambda: not any(running(k) for k in kids))
    assert not any(running(k) for k in kids)  # the workers end with the server (their pipe closes)


def running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
