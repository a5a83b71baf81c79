"""Caches for a shared server, bounded by bytes rather than by entries.

A class opening the same slide asks the same question: the first answer is kept and the rest are served from
memory. ``functools.lru_cache(maxsize=4)`` of 512-token attention traces could hold 4 x 400 MB; here a cache never
holds more than its byte budget, and a single answer larger than the budget is returned but not kept.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

TRACE_CACHE_BYTES = 48 * 2**20  # per cached function; the server's whole cache budget is written in the README
_every: weakref.WeakSet = weakref.WeakSet()  # every ByteCache alive, for held()


def nbytes(value: Any) -> int:
    """Bytes of the numpy arrays a value holds (a trace, a tuple or dict of them); other fields count as small."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value)) + 1024
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value) + 64
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values()) + 64
    return 256


class ByteCache:
    """A thread-safe mapping whose values' ``nbytes`` sum to at most ``max_bytes``. Full, it drops the least
    recently used entry that was never asked for again, else the least recently used: a flood of one-off answers
    (someone cycling through every setting at its maxima) pushes out other one-off answers, not the preset that the
    whole class keeps asking for."""

    def __init__(self, max_bytes: int = TRACE_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._asked_again: set = set()  # keys read at least once since they were kept
        self._lock = threading.Lock()
        self.bytes = 0
        _every.add(self)

    def get(self, key: Any) -> Any:
        with self._lock:
            if key not in self._items:
                raise KeyError(key)
            self._items.move_to_end(key)
            self._asked_again.add(key)
            return self._items[key][0]

    def put(self, key: Any, value: Any, size: int | None = None) -> None:
        """Keep ``value``; ``size`` in bytes when the caller knows it better than ``nbytes`` does."""
        size = nbytes(value) if size is None else size
        if size > self.max_bytes:
            return  # one answer larger than the whole budget: serve it, do not keep it
        with self._lock:
            if key in self._items:
                self.bytes -= self._items.pop(key)[1]
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                once = (k for k in self._items if k not in self._asked_again and k != key)
                victim = next(once, None)
                victim = next(iter(self._items)) if victim is None else victim
                self.bytes -= self._items.pop(victim)[1]
                self._asked_again.discard(victim)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._asked_again.clear()
            self.bytes = 0


def held() -> tuple[int, int]:
    """(bytes held, byte budget) of every ByteCache in this process together."""
    caches = list(_every)
    return sum(c.bytes for c in caches), sum(c.max_bytes for c in caches)


def bytes_cached(max_bytes: int = TRACE_CACHE_BYTES, size: Callable[[Any], int | None] = nbytes) -> Callable:
    """Decorator: memoise a function of hashable arguments in a ByteCache (``fn.cache`` is the cache). ``size``
    measures a value (default ``nbytes``: traces; ``answer_size`` for figures); None means too large to keep."""

    def wrap(fn: Callable) -> Callable:
        store = ByteCache(max_bytes)

        @functools.wraps(fn)
        def cached(*args: Any) -> Any:
            try:
                return store.get(args)
            except KeyError:
                pass
            value = fn(*args)
            n = size(value)
            if n is not None:
                store.put(args, value, n)
            return value

        cached.cache = store
        return cached

    return wrap


ANSWER_BYTES = 64 * 2**20  # every model-lane demo's kept answers together (figures and text, see answers())
_answers = ByteCache(ANSWER_BYTES)


def _frozen(value: Any) -> Any:
    """A hashable copy of a handler input (text, numbers, choices, lists of them); None when it is not one (a
    session's State holding a dict, a figure): such a request is computed, never looked up."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        items = tuple(_frozen(v) for v in value)
        return None if any(i is None and v is not None for i, v in zip(items, value)) else ("seq", items)
    return None


def answer_key(fn: Callable, args: tuple, kwargs: dict, theme: bool) -> Any:
    """(handler, its inputs, the page's theme), or None when an input cannot be a key."""
    frozen = _frozen(list(args) + sorted(kwargs.items()))
    return None if frozen is None else (fn.__module__, fn.__qualname__, frozen, theme)


def answer_size(value: Any, limit: int = ANSWER_BYTES) -> int | None:
    """About the bytes an answer holds in memory: its arrays, texts and numbers, a plotly figure through its data and
    layout. The walk stops once ``limit`` is passed (None: too large to keep), so a huge answer costs nothing more
    (pickling it would have held a second copy)."""
    total, stack = 0, [value]
    while stack:
        v = stack.pop()
        if isinstance(v, np.ndarray):
            total += int(v.nbytes) + 112
        elif isinstance(v, (str, bytes)):
            total += len(v) + 49
        elif isinstance(v, dict):
            total += 64 + 40 * len(v)
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            total += 56 + 8 * len(v)
            stack.extend(v)
        elif hasattr(v, "_data") and hasattr(v, "_layout"):  # a plotly figure: its traces' and layout's properties
            stack.extend([v._data, v._layout])
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):  # a trace
            total += nbytes(v)
        else:
            total += 32  # a number, None, a flag
        if total > limit:
            return None
    return total


def answers() -> ByteCache:
    """The shared cache of model-lane answers (demos.ui.answers fills it)."""
    return _answers
