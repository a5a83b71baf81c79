"""Turns: between the steps of long work (a token generated, a window run), a point where a server may lend the
worker's slot to a request that ranks before it (demos/lanes.py), then carry on where it stopped.

Outside a server no one takes turns and ``turn()`` costs nothing. Time spent paused is counted per thread, so a
duration shown on screen can leave it out (``stopwatch()``); a step timed on its own runs inside
``held()``, where no turn is taken.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from toolkit import arch

_local = threading.local()
T = TypeVar("T")


def turn() -> None:
    """Let the server pause this work here if a request that ranks before it is waiting."""
    fn = getattr(_local, "fn", None)
    if fn is None or getattr(_local, "held", 0):
        return
    t0 = time.perf_counter()
    fn()
    _local.paused = paused() + time.perf_counter() - t0


def paused() -> float:
    """Seconds this thread has spent paused at turns so far."""
    return getattr(_local, "paused", 0.0)


def stopwatch() -> Callable[[], float]:
    """Started now; calling it gives the seconds of work since: wall time less this thread's pauses at turns."""
    t0, p0 = time.perf_counter(), paused()
    return lambda: time.perf_counter() - t0 - (paused() - p0)


@contextlib.contextmanager
def taking(fn: Callable[[], None]) -> Iterator[None]:
    """``fn`` runs at every ``turn()`` of this thread inside the block (it may block until the work may go on)."""
    before = getattr(_local, "fn", None)
    _local.fn = fn
    try:
        yield
    finally:
        _local.fn = before


@contextlib.contextmanager
def held() -> Iterator[None]:
    """No turn inside the block: a step that is timed on its own."""
    _local.held = getattr(_local, "held", 0) + 1
    try:
        yield
    finally:
        _local.held -= 1


def each_in(
    context: Callable[[], contextlib.AbstractContextManager],
    items: Iterator[T],
    count: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> Iterator[T]:
    """``items``, each one made inside a fresh ``context()``: a server's model slot for every step of a long run,
    given back between steps. ``count``: how many it makes at most, so that no slot is waited for only to find
    the end; ``stop``: asked before each one, ends the run without waiting for a slot."""
    made = 0
    try:
        while count is None or made < count:
            if stop is not None and stop():
                return
            with context():
                try:
                    item = next(items)
                except StopIteration:
                    return
            made += 1
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def between_layers(model: torch.nn.Module) -> None:
    """A turn before each decoder layer of ``model`` (hooks added once per model; they do nothing where no one
    takes turns, and change no output), so that one long forward (a long prompt's prefill) can pause too."""
    if getattr(model, "_turns_between_layers", False):
        return
    try:
        layers = arch.decoder_layers(model)
    except arch.ArchError:  # not llama-style: its work pauses between steps only
        return
    for layer in layers:
        layer.register_forward_pre_hook(lambda module, args: turn())
    model._turns_between_layers = True


class _Turns(StoppingCriteria):
    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        turn()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)  # never stops anything


def each_token() -> StoppingCriteriaList:
    """For ``model.generate(stopping_criteria=...)``: a turn after every generated token (it never stops one)."""
    return StoppingCriteriaList([_Turns()])
