"""Traces: the contract between capture, figures, demos and tests.

A trace is a small frozen dataclass of numpy arrays (dimensions named in each docstring), the tokens, and
metadata (model, seed, toolkit version, schema version). Capture functions make traces, figure functions read
them, demos only pass them along, tests assert on them.

File format (one for every trace): a NumPy ``.npz`` archive, read with ``allow_pickle=False``.
  - ``__header__``: UTF-8 JSON as a uint8 array: ``{"kind", "schema", "fields": {name: json value}, "arrays": [...]}``
  - one ``.npy`` member per array field, named after the field.
Array fields travel as arrays, everything else (tokens, numbers, strings, lists, dicts) as JSON, so a
round trip is exact. Loading checks the kind, the schema version and the trace's own invariants.
"""
from __future__ import annotations

import dataclasses
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

SCHEMA_VERSION = 1
_KINDS: dict[str, type["Trace"]] = {}


class TraceError(ValueError):
    """A trace file that cannot be read, or a trace whose invariants do not hold."""


def make_meta(model: str = "", seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """Metadata every trace carries: which model, which seed, which toolkit and schema made it."""
    from toolkit import __version__

    return {"model": model, "seed": seed, "toolkit_version": __version__, "schema_version": SCHEMA_VERSION, **extra}


def register(cls: type["Trace"]) -> type["Trace"]:
    _KINDS[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Trace:
    """Base class: save/load and the invariant check hook."""

    kind: ClassVar[str] = "trace"

    def check(self) -> "Trace":
        """Raise TraceError when an invariant does not hold; return self so calls can chain."""
        return self

    def _require(self, ok: bool, message: str) -> None:
        if not ok:
            raise TraceError(f"{type(self).__name__}: {message}")

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
    def load(cls, path: str | Path) -> "Trace":
        """Load any trace (``Trace.load``) or one kind (``AttentionTrace.load``); checks invariants."""
        path = Path(path)
        if not path.is_file():
            raise TraceError(f"no trace file at {path}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                header = json.loads(bytes(archive["__header__"]).decode())
                arrays = {name: archive[name] for name in header["arrays"]}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError, TypeError) as err:
            raise TraceError(f"{path} is not a readable trace file (corrupt or truncated?): {err}") from err
        if not isinstance(header, dict) or "kind" not in header:
            raise TraceError(f"{path} has no trace header")
        if header.get("schema") != SCHEMA_VERSION:
            raise TraceError(
                f"{path} uses trace schema {header.get('schema')!r}; this toolkit reads schema {SCHEMA_VERSION}. "
                "Recapture it with this version of the toolkit."
            )
        kind = header["kind"]
        target = _KINDS.get(kind)
        if target is None:
            raise TraceError(f"{path} holds an unknown trace kind {kind!r} (known: {', '.join(sorted(_KINDS))})")
        if cls is not Trace and target is not cls:
            raise TraceError(f"{path} holds a {kind} trace, not a {cls.kind} trace")
        try:
            trace = target(**header["fields"], **arrays)
        except TypeError as err:
            raise TraceError(f"{path} does not match the {kind} trace fields: {err}") from err
        return trace.check()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a trace header")


def _rows_sum_to_one(p: np.ndarray, atol: float = 1e-3) -> bool:
    return bool(np.allclose(p.sum(-1), 1.0, atol=atol))


@register
@dataclass(frozen=True)
class AttentionTrace(Trace):
    """Attention weights of one text.

    weights: (layer, head, query, key) float32, each row a softmax distribution.
    kv_head: (head,) int, the key/value head each query head reads (grouped-query attention; identity for MHA).
    q, k, v: (layer, head, pos, head_dim) float32 per query head (k, v repeated per their kv head), or None.
    """

    kind: ClassVar[str] = "attention"
    tokens: list[str]
    weights: np.ndarray
    kv_head: np.ndarray
    causal: bool
    meta: dict[str, Any] = field(default_factory=dict)
    q: np.ndarray | None = None
    k: np.ndarray | None = None
    v: np.ndarray | None = None

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]

    def check(self) -> "AttentionTrace":
        w = self.weights
        self._require(w.ndim == 4 and w.shape[2] == w.shape[3], f"weights must be (layer, head, query, key), got {w.shape}")
        self._require(w.shape[2] == len(self.tokens), f"{len(self.tokens)} tokens but {w.shape[2]} positions")
        self._require(self.kv_head.shape == (w.shape[1],), "kv_head must have one entry per query head")
        self._require(bool(np.isfinite(w).all()), "weights contain NaN or inf")
        self._require(_rows_sum_to_one(w), "attention rows must sum to 1")
        if self.causal:
            self._require(float(np.triu(w, k=1).max(initial=0.0)) < 1e-6, "causal trace attends to future tokens")
        for name in ("q", "k", "v"):
            x = getattr(self, name)
            if x is not None:
                self._require(x.shape[:3] == w.shape[:3], f"{name} must be (layer, head, pos, head_dim)")
        return self


@register
@dataclass(frozen=True)
class RopeTrace(Trace):
    """Query and key vectors before and after the rotary embedding.

    q_pre, q_post: (layer, head, pos, head_dim); k_pre, k_post: (layer, kv_head, pos, head_dim).
    positions: (pos,) int. inv_freq: (head_dim/2,) float, radians per position of each pair.
    layout: "half" (pairs i, i+d/2 as in Hugging Face) or "adjacent" (pairs 2i, 2i+1 as in the paper).
    """

    kind: ClassVar[str] = "rope"
    tokens: list[str]
    q_pre: np.ndarray
    q_post: np.ndarray
    k_pre: np.ndarray
    k_post: np.ndarray
    positions: np.ndarray
    inv_freq: np.ndarray
    layout: str = "half"
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "RopeTrace":
        self._require(self.q_pre.shape == self.q_post.shape, "q_pre and q_post differ in shape")
        self._require(self.k_pre.shape == self.k_post.shape, "k_pre and k_post differ in shape")
        self._require(self.q_pre.ndim == 4 and self.q_pre.shape[2] == len(self.tokens), "q must be (layer, head, pos, d)")
        self._require(self.inv_freq.shape == (self.q_pre.shape[-1] // 2,), "inv_freq must have head_dim/2 entries")
        self._require(self.layout in ("half", "adjacent"), f"unknown pair layout {self.layout!r}")
        for pre, post in ((self.q_pre, self.q_post), (self.k_pre, self.k_post)):
            n0, n1 = np.linalg.norm(pre, axis=-1), np.linalg.norm(post, axis=-1)
            self._require(bool(np.allclose(n0, n1, rtol=1e-3, atol=1e-4)), "rotation must preserve vector norms")
        return self


@register
@dataclass(frozen=True)
class MoeTrace(Trace):
    """Router decisions of a mixture-of-experts model on one text.

    router_logits, probs: (layer, token, expert). experts, gates: (layer, token, k), chosen experts (int) and
    their gate weights. load: (layer, expert) f_i, the fraction of routed (token, slot) pairs per expert
    (sums to 1). importance: (layer, expert) P_i, the mean router probability per expert.
    balance_loss: (layer,) the Switch/Mixtral auxiliary loss per layer.
    """

    kind: ClassVar[str] = "moe"
    tokens: list[str]
    router_logits: np.ndarray
    probs: np.ndarray
    experts: np.ndarray
    gates: np.ndarray
    load: np.ndarray
    importance: np.ndarray
    balance_loss: np.ndarray
    top_k: int
    score: str = "softmax"
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "MoeTrace":
        n_layers, n_tokens, n_experts = self.probs.shape
        self._require(n_tokens == len(self.tokens), f"{len(self.tokens)} tokens but {n_tokens} routed positions")
        self._require(self.experts.shape == (n_layers, n_tokens, self.top_k), "experts must be (layer, token, k)")
        self._require(int(self.experts.min(initial=0)) >= 0 and int(self.experts.max(initial=0)) < n_experts,
                      "chosen expert out of range")
        if self.score == "softmax":
            self._require(_rows_sum_to_one(self.probs), "router probabilities must sum to 1")
        self._require(bool(np.allclose(self.load.sum(-1), 1.0, atol=1e-4)), "expert load fractions must sum to 1")
        return self


@register
@dataclass(frozen=True)
class GrpoTrace(Trace):
    """A GRPO run, step by step.

    rewards, advantages: (step, completion) for the G completions of each step's group(s).
    metrics: {name: [value per step]} with TRL's names (reward, reward_std, kl, clip_ratio/low_mean, ...).
    steps: per step a JSON record (prompts, completions, per-reward values, per-token log-probs, ratios, ...).
    """

    kind: ClassVar[str] = "grpo"
    rewards: np.ndarray
    advantages: np.ndarray
    metrics: dict[str, list[float]]
    steps: list[dict[str, Any]]
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "GrpoTrace":
        self._require(self.rewards.shape == self.advantages.shape, "rewards and advantages differ in shape")
        self._require(len(self.steps) == self.rewards.shape[0], "one step record per row of rewards")
        return self
