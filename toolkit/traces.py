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
        For RoPE models q and k are after the rotation: exactly what the dot product QKᵀ sees.
    truncated: the text had more tokens than the capture limit; only the first len(tokens) were run.
    n_prompt: for a generation trace, how many tokens were the prompt; row t >= n_prompt is the attention of
        generated token t over everything before it, recorded during generation. None for a plain trace.
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
    truncated: bool = False
    n_prompt: int | None = None

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
        self._require(int(self.kv_head.min(initial=0)) >= 0, "kv_head entries must be non-negative")
        if self.n_prompt is not None:
            self._require(self.causal and 0 < self.n_prompt <= len(self.tokens), "n_prompt needs a causal trace")
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
    attention_scaling: transformers multiplies cos/sin by it (YaRN); post norms = scaling * pre norms.
    embed: (pos, hidden) the tokens' input embeddings, or None.
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
    attention_scaling: float = 1.0
    embed: np.ndarray | None = None

    def check(self) -> "RopeTrace":
        self._require(self.q_pre.shape == self.q_post.shape, "q_pre and q_post differ in shape")
        self._require(self.k_pre.shape == self.k_post.shape, "k_pre and k_post differ in shape")
        self._require(self.q_pre.ndim == 4 and self.q_pre.shape[2] == len(self.tokens), "q must be (layer, head, pos, d)")
        self._require(self.k_pre.ndim == 4 and self.k_pre.shape[::2] == self.q_pre.shape[::2],
                      "k must be (layer, kv_head, pos, d) like q")
        self._require(self.k_pre.shape[1] > 0 and self.q_pre.shape[1] % self.k_pre.shape[1] == 0,
                      "query heads must be a multiple of key/value heads")
        self._require(self.q_pre.shape[-1] % 2 == 0, "head_dim must be even")
        self._require(self.positions.shape == (len(self.tokens),), "one position per token")
        self._require(self.inv_freq.shape == (self.q_pre.shape[-1] // 2,), "inv_freq must have head_dim/2 entries")
        self._require(self.layout in ("half", "adjacent"), f"unknown pair layout {self.layout!r}")
        self._require(self.embed is None or self.embed.shape[0] == len(self.tokens), "embed must be (pos, hidden)")
        for pre, post in ((self.q_pre, self.q_post), (self.k_pre, self.k_post)):
            self._require(bool(np.isfinite(post).all()), "rotated vectors contain NaN or inf")
            n0, n1 = np.linalg.norm(pre, axis=-1) * self.attention_scaling, np.linalg.norm(post, axis=-1)
            self._require(bool(np.allclose(n0, n1, rtol=1e-3, atol=1e-4)), "rotation must preserve vector norms")
        return self


@register
@dataclass(frozen=True)
class MoeTrace(Trace):
    """Router decisions of a mixture-of-experts model on one text.

    router_logits, probs: (layer, token, expert); probs are the router scores (softmax rows sum to 1, sigmoid
    scores each lie in (0, 1)). experts, gates: (layer, token, k), chosen experts (int, distinct per token) and
    their gate weights. expert_load: (layer, expert) the fraction of routed (token, slot) pairs per expert (sums to 1;
    Mixtral's f_i = k * load). importance: (layer, expert) P_i, the mean router probability per expert (sums to 1).
    balance_loss: (layer,) the Switch/Mixtral auxiliary loss N * sum_i f_i * P_i per layer (k when balanced).
    shared_norm, routed_norm: (layer, token) norms of the shared and routed expert outputs, or None.
    (The field is not called `load`: that name would shadow Trace.load and break the dataclass.)
    bias: (layer, expert) the aux-loss-free selection bias (DeepSeek-V3), or None.
    """

    kind: ClassVar[str] = "moe"
    tokens: list[str]
    router_logits: np.ndarray
    probs: np.ndarray
    experts: np.ndarray
    gates: np.ndarray
    expert_load: np.ndarray
    importance: np.ndarray
    balance_loss: np.ndarray
    top_k: int
    score: str = "softmax"
    meta: dict[str, Any] = field(default_factory=dict)
    shared_norm: np.ndarray | None = None
    routed_norm: np.ndarray | None = None
    bias: np.ndarray | None = None

    @property
    def n_layers(self) -> int:
        return self.probs.shape[0]

    @property
    def n_experts(self) -> int:
        return self.probs.shape[2]

    def check(self) -> "MoeTrace":
        self._require(self.probs.ndim == 3, f"probs must be (layer, token, expert), got {self.probs.shape}")
        n_layers, n_tokens, n_experts = self.probs.shape
        self._require(n_tokens == len(self.tokens), f"{len(self.tokens)} tokens but {n_tokens} routed positions")
        self._require(self.router_logits.shape == self.probs.shape, "router_logits and probs differ in shape")
        self._require(1 <= self.top_k <= n_experts, f"top_k={self.top_k} must lie in 1..{n_experts}")
        self._require(self.experts.shape == (n_layers, n_tokens, self.top_k), "experts must be (layer, token, k)")
        self._require(self.gates.shape == self.experts.shape, "gates must be (layer, token, k)")
        self._require(int(self.experts.min(initial=0)) >= 0 and int(self.experts.max(initial=0)) < n_experts,
                      "chosen expert out of range")
        srt = np.sort(self.experts, axis=-1)
        self._require(bool((np.diff(srt, axis=-1) != 0).all()), "a token chose the same expert twice")
        for name in ("router_logits", "probs", "gates", "expert_load", "importance", "balance_loss"):
            self._require(bool(np.isfinite(getattr(self, name)).all()), f"{name} contains NaN or inf")
        if self.score == "softmax":
            self._require(_rows_sum_to_one(self.probs), "router probabilities must sum to 1")
        else:
            self._require(bool(((self.probs >= 0) & (self.probs <= 1)).all()), "sigmoid scores must lie in [0, 1]")
        self._require(self.expert_load.shape == (n_layers, n_experts), "expert_load must be (layer, expert)")
        self._require(self.importance.shape == (n_layers, n_experts), "importance must be (layer, expert)")
        self._require(self.balance_loss.shape == (n_layers,), "balance_loss must be (layer,)")
        self._require(bool(np.allclose(self.expert_load.sum(-1), 1.0, atol=1e-4)), "expert load fractions must sum to 1")
        self._require(bool(np.allclose(self.importance.sum(-1), 1.0, atol=1e-3)), "importance P_i must sum to 1")
        if n_tokens:
            counts = np.stack([np.bincount(e.ravel(), minlength=n_experts) for e in self.experts])
            self._require(bool(np.allclose(counts / (n_tokens * self.top_k), self.expert_load, atol=1e-4)),
                          "expert_load does not match the chosen experts")
        for name in ("shared_norm", "routed_norm"):
            x = getattr(self, name)
            if x is not None:
                self._require(x.shape == (n_layers, n_tokens), f"{name} must be (layer, token)")
        if self.bias is not None:
            self._require(self.bias.shape == (n_layers, n_experts), "bias must be (layer, expert)")
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

    @property
    def group_size(self) -> int:
        """G, completions per prompt (from the config; all completions of a step form one group if absent)."""
        return int(self.config.get("num_generations") or self.rewards.shape[1])

    def check(self) -> "GrpoTrace":
        self._require(self.rewards.shape == self.advantages.shape, "rewards and advantages differ in shape")
        self._require(len(self.steps) == self.rewards.shape[0], "one step record per row of rewards")
        self._require(self.rewards.ndim == 2, f"rewards must be (step, completion), got {self.rewards.shape}")
        s, b = self.rewards.shape
        g = self.group_size
        self._require(g >= 2 and b % g == 0, f"{b} completions per step do not split into groups of G={g}")
        self._require(bool(np.isfinite(self.rewards).all() and np.isfinite(self.advantages).all()),
                      "rewards or advantages contain NaN or inf")
        group_mean = self.advantages.reshape(s, b // g, g).mean(-1)  # (step, group)
        self._require(bool(np.allclose(group_mean, 0.0, atol=1e-3)), "advantages must average 0 within each group")
        for name, values in self.metrics.items():
            self._require(len(values) == s, f"metric {name!r} has {len(values)} values for {s} steps")
        return self


@register
@dataclass(frozen=True)
class TokenizationTrace(Trace):
    """One text through several tokenizers, side by side.

    views: per tokenizer {"model", "ids", "raw", "pieces", "partial" (byte fallback), "unknown", "word"
    (index into words, -1 for none), "truncated"}, each list one entry per token.
    """

    kind: ClassVar[str] = "tokenization"
    text: str
    words: list[str]
    views: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "TokenizationTrace":
        for v in self.views:
            n = len(v["ids"])
            for key in ("raw", "pieces", "partial", "unknown", "word"):
                self._require(len(v[key]) == n, f"{v['model']}: {key} has {len(v[key])} entries for {n} tokens")
            self._require(all(-1 <= w < len(self.words) for w in v["word"]), "word index out of range")
        return self


@register
@dataclass(frozen=True)
class EmbeddingTrace(Trace):
    """Embeddings of a few words. vectors: (word, hidden); similarity: (word, word) cosine; coords: (word, 3)
    PCA coordinates; explained: (3,) variance ratio of each axis. source: "input" or "sentence"."""

    kind: ClassVar[str] = "embedding"
    words: list[str]
    source: str
    vectors: np.ndarray
    similarity: np.ndarray
    coords: np.ndarray
    explained: np.ndarray
    n_tokens: list[int]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "EmbeddingTrace":
        n = len(self.words)
        self._require(self.similarity.shape == (n, n), "similarity must be (word, word)")
        self._require(self.coords.shape == (n, 3) and self.vectors.shape[0] == n, "coords (word, 3), vectors (word, d)")
        self._require(bool(np.allclose(np.diag(self.similarity), 1.0, atol=1e-3)), "cos(u, u) must be 1")
        self._require(bool(np.allclose(self.similarity, self.similarity.T, atol=1e-5)), "similarity must be symmetric")
        self._require(float(self.explained.sum()) <= 1.0 + 1e-4, "explained variance ratios exceed 1")
        return self


@register
@dataclass(frozen=True)
class AnalogyTrace(Trace):
    """a - b + c ranked against the vocabulary. ids, scores: (k,) nearest rows by cosine, inputs kept (flagged in
    is_input). expected_rank: 1-based rank of the expected word among all rows (-1 when it is not one token)."""

    kind: ClassVar[str] = "analogy"
    a: str
    b: str
    c: str
    expected: str
    neighbours: list[str]
    ids: np.ndarray
    scores: np.ndarray
    is_input: list[bool]
    expected_rank: int
    expected_rank_without_inputs: int
    expected_score: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "AnalogyTrace":
        k = len(self.neighbours)
        self._require(self.ids.shape == (k,) and self.scores.shape == (k,) and len(self.is_input) == k, "k mismatch")
        self._require(bool(np.all(np.diff(self.scores) <= 1e-6)), "neighbours must be sorted by similarity")
        return self


@register
@dataclass(frozen=True)
class NextTokenTrace(Trace):
    """The next-token distribution through the sampling filters. probs: (stage, shown) renormalised probability
    of the shown tokens (the most likely ones, ids/tokens) after each stage; survivors: (stage,) tokens left."""

    kind: ClassVar[str] = "next_token"
    prompt: str
    stages: list[str]
    ids: np.ndarray
    tokens: list[str]
    probs: np.ndarray
    survivors: np.ndarray
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "NextTokenTrace":
        self._require(self.probs.shape == (len(self.stages), len(self.tokens)), "probs must be (stage, shown)")
        self._require(bool(np.all(self.probs.sum(-1) <= 1 + 1e-4)), "shown probabilities exceed 1")
        self._require(bool(np.all(np.diff(self.survivors) <= 0)), "a filter cannot add tokens back")
        return self


@register
@dataclass(frozen=True)
class DecodeTrace(Trace):
    """A greedy or seeded sampled continuation. ids: (step,) chosen tokens; step_ids, step_probs: (step, shown)
    the most likely tokens of the distribution each step drew from; chosen_prob: (step,) p of the chosen one."""

    kind: ClassVar[str] = "decode"
    prompt: str
    mode: str
    seed: int | None
    ids: np.ndarray
    tokens: list[str]
    step_ids: np.ndarray
    step_tokens: list[list[str]]
    step_probs: np.ndarray
    chosen_prob: np.ndarray
    survivors: np.ndarray
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "DecodeTrace":
        n = len(self.tokens)
        self._require(self.ids.shape == (n,) and self.chosen_prob.shape == (n,), "one chosen token per step")
        self._require(self.step_probs.shape[0] == n and self.step_ids.shape == self.step_probs.shape, "step arrays")
        self._require(self.mode in ("greedy", "sample"), f"unknown mode {self.mode!r}")
        self._require(bool(np.all(self.chosen_prob > 0)), "a chosen token must have probability > 0")
        return self


@register
@dataclass(frozen=True)
class SftTrace(Trace):
    """One chat exchange under the SFT loss. ids, labels: (T,) with labels -100 on the prompt; token_loss,
    token_prob: (T,) -log p and p of token t given tokens < t (0 at t = 0); predicted: the model's top-1 for
    each position t (aligned with the token it predicts). loss: mean token_loss over labelled t; reference_loss:
    transformers' loss with the same labels; unmasked_loss: with labels = ids."""

    kind: ClassVar[str] = "sft"
    text: str
    tokens: list[str]
    ids: np.ndarray
    labels: np.ndarray
    token_loss: np.ndarray
    token_prob: np.ndarray
    predicted: list[str]
    loss: float
    reference_loss: float
    unmasked_loss: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> np.ndarray:
        """(T,) bool: the positions whose loss counts."""
        mask = self.labels != -100
        mask[0] = False
        return mask

    def check(self) -> "SftTrace":
        n = len(self.tokens)
        for name in ("ids", "labels", "token_loss", "token_prob"):
            self._require(getattr(self, name).shape == (n,), f"{name} must have one entry per token")
        lab = self.labels != -100
        self._require(bool(np.all(self.labels[lab] == self.ids[lab])), "labels must copy the ids where not -100")
        self._require(bool(self.answer.any()), "no labelled token")
        self._require(abs(float(self.token_loss[self.answer].mean()) - self.loss) < 1e-4, "loss is not the mean")
        return self


@register
@dataclass(frozen=True)
class LoraTrace(Trace):
    """A few LoRA steps. losses: (step + 1,) training loss before each step, then after the last. sv_delta:
    (min(out, in),) singular values of the learnt (alpha / r) B A of ``module``; sv_weight: those of its frozen W.
    merge_max_diff: max |logits merged - logits unmerged|."""

    kind: ClassVar[str] = "lora"
    r: int
    alpha: float
    targets: list[str]
    module: str
    losses: np.ndarray
    sv_delta: np.ndarray
    sv_weight: np.ndarray
    trainable: int
    frozen: int
    merge_max_diff: float
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        """Numerical rank of the delta: singular values above 1e-5 of the largest."""
        return int((self.sv_delta > 1e-5 * max(float(self.sv_delta.max(initial=0.0)), 1e-30)).sum())

    def check(self) -> "LoraTrace":
        self._require(self.r >= 1 and self.trainable > 0, "rank and trainable parameters must be positive")
        self._require(self.rank <= self.r, f"the delta has rank {self.rank} > r = {self.r}")
        self._require(bool(np.isfinite(self.losses).all()), "loss is not finite")
        return self


@register
@dataclass(frozen=True)
class QuantTrace(Trace):
    """One weight matrix quantised and dequantised. counts, edges: histogram of w_hat - w (bins, bins + 1).
    bytes: codes plus one fp32 scale per block; fp32_bytes: the original."""

    kind: ClassVar[str] = "quant"
    module: str
    scheme: str
    block: int
    shape: list[int]
    counts: np.ndarray
    edges: np.ndarray
    fp32_bytes: int
    bytes: int
    max_abs_error: float
    rel_error: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "QuantTrace":
        self._require(self.edges.shape == (self.counts.shape[0] + 1,), "edges must have one more entry than counts")
        self._require(int(self.counts.sum()) == int(np.prod(self.shape)), "histogram must count every weight")
        self._require(0 < self.bytes < self.fp32_bytes, "quantised storage must be smaller than fp32")
        return self


@register
@dataclass(frozen=True)
class KvCacheTrace(Trace):
    """Greedy generation with and without the KV cache. Per step (step,): lengths (tokens cached after the
    step's forward), seconds_cached / seconds_uncached (wall time of that token; step 0 is the prefill of the
    prompt in both), measured_bytes (keys + values in the real cache), formula_bytes (2 x layers x kv_heads x
    head_dim x length x bytes). dims: layers, kv_heads, heads, head_dim."""

    kind: ClassVar[str] = "kv_cache"
    prompt: str
    tokens: list[str]
    same_tokens: bool
    n_prompt: int
    lengths: np.ndarray
    seconds_cached: np.ndarray
    seconds_uncached: np.ndarray
    measured_bytes: np.ndarray
    formula_bytes: np.ndarray
    dims: dict[str, int]
    bytes_per_number: int
    max_positions: int
    meta: dict[str, Any] = field(default_factory=dict)
    cpu_cached: np.ndarray | None = None  # (step,) CPU seconds of this process, robust to a busy machine
    cpu_uncached: np.ndarray | None = None

    def check(self) -> "KvCacheTrace":
        n = len(self.tokens)
        for name in ("lengths", "seconds_cached", "seconds_uncached", "measured_bytes", "formula_bytes"):
            self._require(getattr(self, name).shape == (n,), f"{name} must have one entry per generated token")
        self._require(bool(np.all(self.measured_bytes == self.formula_bytes)), "the cache does not match the formula")
        self._require(self.same_tokens, "greedy tokens with and without the cache differ")
        return self


@register
@dataclass(frozen=True)
class DpoTrace(Trace):
    """A few DPO steps on one preference pair. Per step (step + 1,), before each step and after the last:
    logp_chosen / logp_rejected = log π(y|x) summed over the answer tokens; reward_* = β·(log π − log π_ref);
    loss = −log σ(reward_chosen − reward_rejected). ref_*: log π_ref(y|x), fixed."""

    kind: ClassVar[str] = "dpo"
    prompt: str
    chosen: str
    rejected: str
    beta: float
    ref_chosen: float
    ref_rejected: float
    logp_chosen: np.ndarray
    logp_rejected: np.ndarray
    reward_chosen: np.ndarray
    reward_rejected: np.ndarray
    loss: np.ndarray
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "DpoTrace":
        n = self.loss.shape[0]
        for name in ("logp_chosen", "logp_rejected", "reward_chosen", "reward_rejected"):
            self._require(getattr(self, name).shape == (n,), f"{name} must have one entry per step")
        rw = self.beta * (self.logp_chosen - self.ref_chosen)
        self._require(bool(np.allclose(rw, self.reward_chosen, atol=1e-4)), "reward must be β·(log π − log π_ref)")
        margin = self.reward_chosen - self.reward_rejected
        self._require(bool(np.allclose(np.logaddexp(0, -margin), self.loss, atol=1e-4)), "loss must be −log σ(margin)")
        return self
