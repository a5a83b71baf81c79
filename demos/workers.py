"""Model work in processes of its own: a generating demo's capture runs in a worker process, its figures in the server.

Why: a decoding thread needs the GIL between every torch operation. Beside a thread running Python 40 % of the time
(as the server's does: Gradio's processing, building figures), a KV cache question on one core took 3.4-3.8 s in a
thread of the same process and 1.8-2.0 s in a forked process. A worker has its own GIL.

How: ``Pool`` (``ui.start_workers``) forks the workers once the models are loaded (they share the weights' pages with
the server) and before any OpenMP thread exists in the server (libgomp's threads do not survive a fork: a child
using them hangs). The handler's thread keeps its model slot (demos/lanes.py) and lends it as before: at a turn of
the work (between decoder layers, between tokens) the worker asks the server's thread, which takes the turn in the
gate and answers with the threads to use now, or with "stop" (the request was told the server is busy). The worker
asks only when the gate changed since it last asked (a counter in shared memory) or CHECK_S has passed, so a token
costs no round trip while nobody waits. The trace, a small dataclass, comes back pickled.

A request paused at a turn keeps its worker (blocked until it may go on), so more requests than slots may want one:
one that finds none idle runs in the server's threads at once, as all of the work does where there are no workers
(tests, notebooks, ``LECTURE_PROCESSES=0``). A worker that dies (killed, out of memory) is not replaced: a request it
was working on is told so, and its share of the work runs in the server's threads from then on.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from toolkit import turns

log = logging.getLogger("lecture")
LOST = "The model worker stopped during this request ({}); please try again."
CHECK_S = 0.1  # a worker asks at a turn at least this often, for what changes with time alone (a rank, a pass)


class WorkerLost(RuntimeError):
    """The worker process ended during the call."""


class _Stop(BaseException):
    """The server's thread was told "busy" at a turn: the work ends here (not an error of the work)."""


class Worker:
    def __init__(self, conn: multiprocessing.connection.Connection, pid: int):
        self.conn, self.pid = conn, pid


class Pool:
    def __init__(self, n: int, after: Callable[[], None] = lambda: None):
        self.version = multiprocessing.Value("Q", 0, lock=False)  # the gate's changes, in shared memory
        self.idle: queue.Queue[Worker] = queue.Queue()
        self.workers: list[Worker] = []
        for _ in range(n):
            mine, theirs = multiprocessing.Pipe()
            pid = os.fork()
            if pid == 0:  # the worker: serve calls until the server closes the pipe
                mine.close()
                for w in self.workers:
                    w.conn.close()
                code = 0
                try:
                    _serve(theirs, self.version, after)
                except BaseException:
                    code = 1
                os._exit(code)
            theirs.close()
            self.workers.append(Worker(mine, pid))
            self.idle.put(self.workers[-1])

    def changed(self) -> None:
        """The gate changed (a request waits, a slot freed): workers ask at their next turn."""
        self.version.value += 1

    def each(self, fn: Callable, *args: Any) -> None:
        """``fn(*args)`` in every worker, before serving (a setting the server chose after forking them)."""
        for w in self.workers:
            _send(w, ("call", (fn, args, {}, None)))
            self._answer(w, lambda: None)

    def alive(self) -> int:
        return len(self.workers)

    def run(self, fn: Callable, args: tuple, kwargs: dict, threads: Callable[[], int | None]) -> Any:
        """``fn(*args, **kwargs)`` in an idle worker; its turns are taken in this thread (``turns.turn``), and
        ``threads()`` after each is the number of intra-op threads the worker uses from then on."""
        try:
            w = self.idle.get_nowait()  # none idle: the others' requests are paused in theirs; the work runs here
        except queue.Empty:
            return fn(*args, **kwargs)
        try:
            w.conn.send(("call", (fn, args, kwargs, threads())))
        except OSError:  # it had ended while idle: the work runs here
            self._lost(w)
            return fn(*args, **kwargs)
        except BaseException:  # a call that does not pickle: nothing was sent
            self.idle.put(w)
            raise
        try:
            return self._answer(w, threads)
        except WorkerLost:
            self._lost(w)
            raise
        finally:
            if w in self.workers:
                self.idle.put(w)

    def _lost(self, w: Worker) -> None:
        self.workers.remove(w)
        w.conn.close()
        try:
            os.kill(w.pid, signal.SIGKILL)  # if it still ran, it is of no use without its pipe
        except ProcessLookupError:
            pass
        threading.Thread(target=_reap, args=(w.pid,), daemon=True).start()  # no zombie left behind
        log.error("model worker %d has ended; its share of the work runs in the server from now on", w.pid)

    def _answer(self, w: Worker, threads: Callable[[], int | None]) -> Any:
        """What ``w`` answers to the call it was sent, taking its turns here."""
        while True:
            kind, payload = _recv(w)
            if kind == "done":
                return payload
            if kind == "error":
                raise payload
            try:  # "turn"
                turns.turn()
            except BaseException:
                _send(w, ("stop", None))
                while _recv(w)[0] == "turn":  # work that went on after the stop is told again
                    _send(w, ("stop", None))
                raise
            _send(w, ("go", threads()))

    def close(self) -> None:
        for w in self.workers:
            w.conn.close()
        for w in self.workers:
            _reap(w.pid)
        self.workers = []


def _recv(w: Worker) -> tuple[str, Any]:
    try:
        data = w.conn.recv_bytes()
    except (EOFError, OSError) as err:
        raise WorkerLost(LOST.format(type(err).__name__)) from None
    try:
        return pickle.loads(data)
    except Exception as err:  # read whole: the pipe is still in step, the worker fine
        return "error", RuntimeError(f"{type(err).__name__} reading the model worker's answer: {err}")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _send(w: Worker, message: tuple[str, Any]) -> None:
    try:
        w.conn.send(message)
    except OSError as err:
        raise WorkerLost(LOST.format(type(err).__name__)) from None


def _serve(conn: multiprocessing.connection.Connection, version: Any, after: Callable[[], None]) -> None:
    seen, asked = -1, 0.0

    def turn() -> None:  # at the work's turns: ask the server's thread when something may have changed
        nonlocal seen, asked
        now, v = time.monotonic(), version.value
        if v == seen and now - asked < CHECK_S:
            return
        seen, asked = v, now
        conn.send(("turn", None))
        kind, threads = conn.recv()
        if kind == "stop":
            raise _Stop
        _fit(threads)

    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            return
        try:
            kind, (fn, args, kwargs, threads) = pickle.loads(data)
        except Exception as err:  # read whole: the pipe is still in step
            conn.send(("error", RuntimeError(f"{type(err).__name__} reading the call in the model worker: {err}")))
            continue
        _fit(threads)
        seen, asked = -1, time.monotonic()  # its first turn asks: the gate may have changed before it began
        try:
            with turns.taking(turn):
                reply = ("done", fn(*args, **kwargs))
        except _Stop:
            reply = ("done", None)  # the server's thread raises its own error
        except Exception as err:
            if not isinstance(err, ValueError):  # a person's mistake needs no trace in the log
                log.exception("model worker: %s failed", getattr(fn, "__name__", fn))
            reply = ("error", _portable(err))
        try:
            conn.send(reply)
        except Exception as err:  # an answer that does not pickle
            conn.send(("error", RuntimeError(f"{type(err).__name__} sending the answer back: {err}")))
        after()  # freed memory back to the system (the server's malloc_trim)


def _portable(err: Exception) -> Exception:
    """``err`` if it survives pickling (its class rebuilt from its args), else its message in a RuntimeError."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")


def _fit(threads: int | None) -> None:
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
