"""Traces: the contract between capture, figures, demos and tests.

A trace is a small frozen dataclass of numpy arrays (dimensions named in each class's docstring, with the one
vocabulary: layer, head, kv_head, query, key, pos, head_dim, expert, step, completion), the tokens, and metadata
(model, seed, toolkit version, schema version). Capture functions make traces, figure functions read them, demos
only pass them along, tests assert on them. Each concept's trace class lives in its own folder
(``toolkit/<concept>/trace.py``) and registers itself with ``@register``.

File format (one for every trace): a NumPy ``.npz`` archive, read with ``allow_pickle=False``.
  - ``__header__``: UTF-8 JSON as a uint8 array: ``{"kind", "schema", "fields": {name: json value}, "arrays": [...]}``
  - one ``.npy`` member per array field, named after the field.
Array fields travel as arrays, everything else (tokens, numbers, strings, lists, dicts, nested dataclasses) as
JSON, so a round trip is exact. Loading checks the kind, the schema version and the trace's own invariants.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

SCHEMA_VERSION = 1
MAX_TRACE_BYTES = 2_000_000_000  # a trace file larger than this is refused before it is read
_KINDS: dict[str, type[Trace]] = {}


class TraceError(ValueError):
    """A trace file that cannot be read, or a trace whose invariants do not hold."""


def make_meta(model: str = "", seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """Metadata every trace carries: which model, which seed, which toolkit and schema made it."""
    from toolkit import __version__

    return {"model": model, "seed": seed, "toolkit_version": __version__, "schema_version": SCHEMA_VERSION, **extra}


def register(cls: type[Trace]) -> type[Trace]:
    """Class decorator: ``Trace.load`` can then read files of this kind."""
    _KINDS[cls.kind] = cls
    return cls


def kinds() -> dict[str, type[Trace]]:
    """Every registered trace kind (importing each concept's trace module first)."""
    _import_all()
    return dict(_KINDS)


def _import_all() -> None:
    from toolkit.registry import CONCEPTS

    for concept in CONCEPTS.values():
        if concept.trace_module:
            importlib.import_module(concept.trace_module)


@dataclass(frozen=True)
class Trace:
    """Base class: save/load, JSON encoding of non-array fields, and the invariant check hook."""

    kind: ClassVar[str] = "trace"

    def check(self) -> Trace:
        """Raise TraceError when an invariant does not hold; return self so calls can chain."""
        return self

    def _require(self, ok: bool, message: str) -> None:
        if not ok:
            raise TraceError(f"{type(self).__name__}: {message}")

    @classmethod
    def decode(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """Turn the JSON header's fields back into constructor arguments (nested records become dataclasses)."""
        return fields

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays, fields = {}, {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            else:
                fields[f.name] = value
        header = {"kind": self.kind, "schema": SCHEMA_VERSION, "fields": fields, "arrays": sorted(arrays)}
        blob = np.frombuffer(json.dumps(header, default=_json_default).encode(), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, __header__=blob, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Load any trace (``Trace.load``) or one kind (``AttentionTrace.load``); checks invariants."""
        path = Path(path)
        if not path.is_file():
            raise TraceError(f"no trace file at {path}")
        if path.stat().st_size > MAX_TRACE_BYTES:
            raise TraceError(f"{path} is {path.stat().st_size:,} bytes: too large to be a trace")
        try:
            with np.load(path, allow_pickle=False) as archive:
                header = json.loads(bytes(archive["__header__"]).decode())
                arrays = {name: archive[name] for name in header["arrays"]}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError, TypeError) as err:
            raise TraceError(f"{path} is not a readable trace file (corrupt or truncated?): {err}") from err
        if not isinstance(header, dict) or "kind" not in header or not isinstance(header.get("fields"), dict):
            raise TraceError(f"{path} has no trace header")
        if header.get("schema") != SCHEMA_VERSION:
            raise TraceError(
                f"{path} uses trace schema {header.get('schema')!r}; this toolkit reads schema {SCHEMA_VERSION}. "
                "Recapture it with this version of the toolkit."
            )
        kind = header["kind"]
        if kind not in _KINDS:
            _import_all()
        target = _KINDS.get(kind)
        if target is None:
            raise TraceError(f"{path} holds an unknown trace kind {kind!r} (known: {', '.join(sorted(_KINDS))})")
        if cls is not Trace and target is not cls:
            raise TraceError(f"{path} holds a {kind} trace, not a {cls.kind} trace")
        try:
            trace = target(**target.decode(header["fields"]), **arrays)
        except (TypeError, KeyError, ValueError, AttributeError) as err:
            raise TraceError(f"{path} does not match the {kind} trace fields: {err}") from err
        return trace.check()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot store {type(value).__name__} in a trace header")


def rows_sum_to_one(p: np.ndarray, atol: float = 1e-3) -> bool:
    return bool(np.allclose(p.sum(-1), 1.0, atol=atol))
