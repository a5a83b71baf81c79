"""Configs that document themselves: each field carries its help text and its range, checked in ``__post_init__``.

    @dataclass(frozen=True)
    class SamplingConfig(Config):
        temperature: float = param(0.8, "softmax temperature T", lo=0.01, hi=5.0, step=0.05)

A config is valid as soon as it exists: a bad value raises ``ConfigError`` (a ValueError) naming the field, its
range and the value. Demos build their widgets from the same metadata (``demos/ui.py``), so the UI, the API and
the library agree on every limit. ``Config.coerce(**raw)`` takes what a widget or an HTTP call sends (strings,
floats for whole numbers) and returns a checked config.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A config value out of its range, of the wrong type or inconsistent with another field."""


class BudgetError(ValueError):
    """A request whose work (tokens x steps...) exceeds its concept's budget: the message says by how much and how
    to bring it down. Budgets keep every request of a shared server within a few seconds."""


def check_budget(work: int, budget: int, unit: str, fix: str) -> None:
    """Raise BudgetError when ``work`` (in ``unit``) exceeds ``budget``; ``fix`` says what to shorten."""
    if work > budget:
        raise BudgetError(f"This request needs {work:,} {unit}; the limit is {budget:,}. {fix}")


@dataclass(frozen=True)
class Spec:
    """What a field accepts: help text, numeric range (inclusive unless ``open_lo``), choices, slider step."""

    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    step: float | None = None
    open_lo: bool = False  # lo itself is not allowed (e.g. temperature > 0)
    open_hi: bool = False  # hi itself is not allowed (e.g. epsilon < 1)
    label: str | None = None  # short widget label; defaults to the field name

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.open_lo else '['}{self.lo:g}, {self.hi:g}{')' if self.open_hi else ']'}"
        if self.lo is not None:
            return f"{'>' if self.open_lo else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{'<' if self.open_hi else '<='} {self.hi:g}"
        return ""


def param(
    default: Any,
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices=None,
    step: float | None = None,
    open_lo: bool = False,
    open_hi: bool = False,
    label: str | None = None,
) -> Any:
    """A config field with its documentation and limits (TRL's ``field(metadata={"help": ...})``, plus ranges)."""
    spec = Spec(help, lo, hi, tuple(choices) if choices is not None else None, step, open_lo, open_hi, label)
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class Config:
    """Base of every concept's config: frozen, validated at creation, documented field by field."""

    def __post_init__(self) -> None:
        problems = []
        for f in dataclasses.fields(self):
            spec = f.metadata.get("spec")
            if spec is not None:
                shown = f"{spec.label} ({f.name})" if spec.label and spec.label != f.name else f.name
                problem = _check(shown, getattr(self, f.name), spec)
                if problem:
                    problems.append(problem)
        if not problems:
            problems = self.problems()
        if problems:
            raise ConfigError(f"{type(self).__name__}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Cross-field rules of a concept (override); each entry a sentence naming the fix."""
        return []

    @classmethod
    def spec(cls, name: str) -> Spec:
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f.metadata.get("spec") or Spec(name)
        raise KeyError(f"{cls.__name__} has no field {name!r}")

    @classmethod
    def default(cls, name: str) -> Any:
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f.default if f.default is not dataclasses.MISSING else f.default_factory()
        raise KeyError(f"{cls.__name__} has no field {name!r}")

    @classmethod
    def help(cls) -> str:
        """One line per field: name, default, range and help text."""
        lines = []
        for f in dataclasses.fields(cls):
            spec = f.metadata.get("spec")
            if spec:
                rng = spec.describe()
                lines.append(f"{f.name} = {cls.default(f.name)!r}{' (' + rng + ')' if rng else ''}: {spec.help}")
        return "\n".join(lines)

    @classmethod
    def coerce(cls, base: Config | None = None, **raw: Any) -> Config:
        """A checked config from loosely typed values (widget numbers, query strings) over ``base`` or defaults."""
        hints = typing.get_type_hints(cls)
        values = {}
        for name, value in raw.items():
            if name not in hints:
                raise ConfigError(f"{cls.__name__} has no field {name!r}")
            values[name] = _convert(name, value, hints[name])
        if base is not None:
            return dataclasses.replace(base, **values)
        return cls(**values)

    @classmethod
    def make(cls, config: Config | None = None, **options: Any) -> Config:
        """``config`` with ``options`` applied, or the defaults with them: how every capture takes its knobs."""
        if config is not None and not isinstance(config, cls):
            raise TypeError(f"expected a {cls.__name__}, got {type(config).__name__}")
        if not options:
            return config if config is not None else cls()
        return dataclasses.replace(config, **options) if config is not None else cls(**options)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls.coerce(**{k: v for k, v in data.items() if k in known})


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def _convert(name: str, value: Any, hint: Any) -> Any:
    """Convert one raw value to the field's type; a clear ConfigError when it cannot be."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType:
        origin = typing.Union
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None:
        return None
    if hint is bool:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if hint is int or (origin is typing.Union and args == [int]):
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
        if not math.isfinite(f) or f != round(f):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        return int(round(f))
    if hint is float or (origin is typing.Union and float in args):
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{name} must be text, got {type(value).__name__}")
        return str(value).strip()
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if origin is tuple and isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


def _check(name: str, value: Any, spec: Spec) -> str | None:
    if spec.choices is not None:
        if isinstance(value, (tuple, list)):
            bad = [v for v in value if v not in spec.choices]
            if bad:
                return f"{name}: unknown {bad[0]!r}; choose from {', '.join(map(str, spec.choices))}"
            return None
        if value not in spec.choices:
            return f"{name} must be one of {', '.join(map(str, spec.choices))}, got {value!r}"
        return None
    if spec.lo is None and spec.hi is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
    too_low = spec.lo is not None and (value <= spec.lo if spec.open_lo else value < spec.lo)
    too_high = spec.hi is not None and (value >= spec.hi if spec.open_hi else value > spec.hi)
    if too_low or too_high:
        return f"{name} must be {spec.describe()}, got {value:g}"
    return None
