"""Attention capture: the real weights, Q, K and V of every layer and head of a Hugging Face model.

Serves the deck's self-attention slides ("Self-Attention Computation", multi-head attention, causal masking,
the "it -> animal / tired" two-head example, encoder vs decoder). The equation it captures and recomputes:

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V,    M = 0 where allowed, −∞ above the diagonal (causal)

How: forward hooks on each attention module (its second output is the weight matrix; eager attention only)
and on its q/k/v projections (``q_proj``/``k_proj``/``v_proj`` for llama-style decoders, ``query``/``key``/
``value`` for BERT-style encoders). For RoPE models the rotation is applied to the captured q, k with the
same cos/sin the module received (``apply_rotary_pos_emb`` from transformers' llama file), so Q and K are the
post-RoPE vectors the dot product really sees. Hooks are removed in a ``finally``: a leaked hook would keep
recording on every later forward pass of the shared model.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import re
import threading
from typing import Any, Iterator

import numpy as np
import torch

from toolkit.traces import AttentionTrace, make_meta

DEFAULT_MAX_TOKENS = 256  # tokens per capture; longer texts are truncated and the trace says so

_PROJ_NAMES = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"))


class CaptureError(ValueError):
    """The model cannot be captured as asked (no eager attention, no attention modules found)."""


def attention_modules(model: torch.nn.Module) -> list[tuple[torch.nn.Module, tuple[str, str, str]]]:
    """Every self-attention module in layer order, with the names of its q/k/v projection children."""
    found = []
    for module in model.modules():
        for names in _PROJ_NAMES:
            if all(isinstance(getattr(module, n, None), torch.nn.Linear) for n in names):
                found.append((module, names))
                break
    if not found:
        raise CaptureError(f"no attention modules with q/k/v projections found in {type(model).__name__}")
    return found


def head_layout(model: torch.nn.Module) -> tuple[int, int, int]:
    """(query heads, key/value heads, head_dim) from the config."""
    cfg = model.config
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return heads, kv, head_dim


def is_causal(model: torch.nn.Module) -> bool:
    return type(model).__name__.endswith("ForCausalLM") or bool(getattr(model.config, "is_decoder", False))


class Recorder:
    """Hooks that record, per forward pass and per layer: weights, q, k, v (heads split, RoPE applied)."""

    def __init__(self, model: torch.nn.Module, with_qkv: bool = True):
        impl = getattr(model.config, "_attn_implementation", "eager")
        if impl != "eager":
            raise CaptureError(
                f"attention implementation is {impl!r}; only 'eager' returns the weight matrix. Load the model "
                "with attn_implementation='eager' (toolkit.models.load does)."
            )
        self.model = model
        self.with_qkv = with_qkv
        self.heads, self.kv_heads, self.head_dim = head_layout(model)
        self.layers = attention_modules(model)
        self.calls: list[list[dict[str, Any]]] = []  # one list of per-layer records per forward pass
        self._handles: list[Any] = []
        # The model is shared by every request: record only the forward passes of the capturing thread.
        self._thread = threading.get_ident()

    def __enter__(self) -> "Recorder":
        try:
            for i, (module, names) in enumerate(self.layers):
                self._handles.append(module.register_forward_hook(self._attn_hook(i), with_kwargs=True))
                if self.with_qkv:
                    for key, name in zip("qkv", names):
                        self._handles.append(getattr(module, name).register_forward_hook(self._proj_hook(i, key)))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _record(self, layer: int) -> dict[str, Any]:
        if layer == 0 and (not self.calls or "weights" in self.calls[-1][0]):
            self.calls.append([{} for _ in self.layers])
        return self.calls[-1][layer]

    def _proj_hook(self, layer: int, key: str):
        def hook(module, args, output):
            if threading.get_ident() != self._thread:
                return
            self._record(layer)[key] = output.detach()

        return hook

    def _attn_hook(self, layer: int):
        def hook(module, args, kwargs, output):
            if threading.get_ident() != self._thread:
                return
            rec = self._record(layer)
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise CaptureError("the attention module returned no weights (is attention eager?)")
            rec["weights"] = weights.detach()  # (batch, head, query, key)
            rec["rope"] = kwargs.get("position_embeddings")
            rec["scaling"] = float(getattr(module, "scaling", self.head_dim**-0.5))

        return hook

    def layer_arrays(self, call: int = -1) -> dict[str, np.ndarray]:
        """One forward pass as numpy: weights (layer, head, query, key); q, k, v (layer, head, query, head_dim)."""
        recs = self.calls[call]
        out = {"weights": np.stack([r["weights"][0].float().numpy() for r in recs])}
        if self.with_qkv:
            q, k, v = zip(*(self._split(r) for r in recs))
            out.update(q=np.stack(q), k=np.stack(k), v=np.stack(v))
        return out

    def _split(self, rec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        group = self.heads // self.kv_heads
        b, t, _ = rec["q"].shape
        q = rec["q"].view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)
        k = rec["k"].view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, H_kv, T, d)
        v = rec["v"].view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, H_kv, T, d)
        if rec["rope"] is not None:
            from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

            cos, sin = rec["rope"]
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k = k.repeat_interleave(group, dim=1)  # (B, H, T, d): query head h reads kv head h // group
        v = v.repeat_interleave(group, dim=1)
        return q[0].float().numpy(), k[0].float().numpy(), v[0].float().numpy()


@contextlib.contextmanager
def record(model: torch.nn.Module, with_qkv: bool = True) -> Iterator[Recorder]:
    """``with record(model) as rec: model(ids)`` then ``rec.layer_arrays()``. Hooks are always removed."""
    rec = Recorder(model, with_qkv)
    with rec:
        yield rec


def kv_head_map(model: torch.nn.Module) -> np.ndarray:
    """(head,) the key/value head each query head shares (grouped-query attention; arange for MHA)."""
    heads, kv, _ = head_layout(model)
    return np.arange(heads) // (heads // kv)


def display_tokens(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token as text, the way the tokenizer split it (leading spaces kept, special tokens by name)."""
    return [tokenizer.decode([i]) for i in ids]


def _encode(tokenizer: Any, text: str, max_tokens: int) -> tuple[list[int], bool, int]:
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if not ids:
        raise ValueError("the text gives no tokens")
    return ids[:max_tokens], len(ids) > max_tokens, len(ids)


def _no_logits(model: torch.nn.Module) -> dict:
    """The capture reads attention, not logits: a causal LM computes the last position's logits only (SmolLM2's
    vocabulary projection is a fifth of its forward pass). Encoders take no such argument."""
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def capture(
    model: torch.nn.Module,
    tokenizer: Any,
    text: str,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    with_qkv: bool = True,
    name: str = "",
) -> AttentionTrace:
    """Run ``text`` once and return every layer's and head's attention (and Q, K, V) as a checked trace."""
    ids, truncated, n_total = _encode(tokenizer, text, max_tokens)
    with torch.no_grad(), record(model, with_qkv) as rec:
        model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
              **_no_logits(model))
        arrays = rec.layer_arrays()
    return AttentionTrace(
        tokens=display_tokens(tokenizer, ids),
        kv_head=kv_head_map(model),
        causal=is_causal(model),
        meta=_meta(model, name, rec, ids, n_total),
        truncated=truncated,
        **arrays,
    ).check()


def generate(
    model: torch.nn.Module,
    tokenizer: Any,
    prompt: str,
    new_tokens: int = 8,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    with_qkv: bool = False,
    name: str = "",
) -> AttentionTrace:
    """Greedy generation with a KV cache, recording at each step how the new token attends to everything before.

    The prompt's rows come from the first forward pass; row n_prompt + s from step s, where only the newest
    token is fed (its query against the cached keys). Stops early at the end-of-sequence token.
    """
    if not is_causal(model):
        raise CaptureError("generation needs a causal (decoder) model")
    if new_tokens < 1:
        raise ValueError(f"new_tokens must be at least 1, got {new_tokens}")
    ids, truncated, n_total = _encode(tokenizer, prompt, max(1, max_tokens - new_tokens))
    n_prompt = len(ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    with torch.no_grad(), record(model, with_qkv) as rec:
        out = model(input_ids=torch.tensor([ids]), use_cache=True)
        for _ in range(new_tokens):
            nxt = int(out.logits[0, -1].argmax())
            ids.append(nxt)
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=out.past_key_values, use_cache=True)
            if nxt == eos:
                break
        steps = [rec.layer_arrays(i) for i in range(len(rec.calls))]
    n = len(ids)
    weights = np.zeros((*steps[0]["weights"].shape[:2], n, n), dtype=np.float32)  # (layer, head, query, key)
    start = 0
    for step in steps:
        w = step["weights"]  # (layer, head, new queries, keys so far)
        weights[:, :, start : start + w.shape[2], : w.shape[3]] = w
        start += w.shape[2]
    qkv = {key: np.concatenate([s[key] for s in steps], axis=2) for key in "qkv"} if with_qkv else {}
    meta = _meta(model, name, rec, ids, n_total)
    meta["generated"] = display_tokens(tokenizer, ids[n_prompt:])
    return AttentionTrace(
        tokens=display_tokens(tokenizer, ids), weights=weights, kv_head=kv_head_map(model), causal=True,
        meta=meta, truncated=truncated, n_prompt=n_prompt, **qkv,
    ).check()


def _meta(model: torch.nn.Module, name: str, rec: Recorder, ids: list[int], n_total: int) -> dict[str, Any]:
    scaling = rec.calls[0][0]["scaling"] if rec.calls else rec.head_dim**-0.5
    rope = bool(rec.calls and rec.calls[0][0].get("rope") is not None)
    return make_meta(
        model=name or getattr(model.config, "name_or_path", type(model).__name__),
        ids=list(ids), n_tokens_in_text=n_total, head_dim=rec.head_dim, scaling=scaling,
        qk="post-rope" if rope else "projections", architecture=type(model).__name__,
    )


# ---- the maths the slides show, on plain arrays -----------------------------------------------------------

def causal_mask(n: int) -> np.ndarray:
    """(query, key) additive mask: 0 on and below the diagonal, −∞ above (a token never sees the future)."""
    return np.triu(np.full((n, n), -np.inf), k=1)


def attention_steps(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, scaling: float | None = None
                    ) -> dict[str, np.ndarray]:
    """The deck's "Self-Attention Computation" for one head, step by step, in float64.

    q, k, v: (pos, head_dim). Returns scores = QKᵀ, scaled = scores·scaling (1/√d_k), masked = scaled + M,
    weights = softmax(masked) row-wise, output = weights·V (pos, head_dim).
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    scaling = 1.0 / math.sqrt(q.shape[-1]) if scaling is None else scaling
    scores = q @ k.T  # (query, key)
    scaled = scores * scaling
    masked = scaled + causal_mask(len(q)) if causal else scaled
    shifted = masked - masked.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    weights = e / e.sum(axis=-1, keepdims=True)
    return {"scores": scores, "scaled": scaled, "masked": masked, "weights": weights, "output": weights @ v}


def recompute(trace: AttentionTrace) -> np.ndarray:
    """(layer, head, query, key) softmax(QKᵀ·scaling + M) from the captured Q and K (needs q and k)."""
    if trace.q is None or trace.k is None:
        raise ValueError("this trace has no Q and K (capture with with_qkv=True)")
    scaling = trace.meta.get("scaling") or trace.q.shape[-1] ** -0.5
    scores = np.einsum("lhqd,lhkd->lhqk", trace.q.astype(np.float64), trace.k.astype(np.float64)) * scaling
    if trace.causal:
        scores = scores + causal_mask(scores.shape[-1])
    scores -= scores.max(-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(-1, keepdims=True)


def head_stats(trace: AttentionTrace) -> dict[str, np.ndarray]:
    """Per (layer, head): mean entropy of a row (bits), and the mean share of attention a token gives to the
    previous token, to the first token (the "attention sink") and to itself. Row 0 is left out of the shares
    (for a causal model it can only attend to itself)."""
    w = trace.weights.astype(np.float64)  # (layer, head, query, key)
    n = w.shape[-1]
    entropy = -(w * np.log2(np.where(w > 0, w, 1.0))).sum(-1).mean(-1)
    rows = np.arange(1, n)
    if n < 2:
        zero = np.zeros(w.shape[:2])
        return {"entropy": entropy, "previous": zero, "first": zero, "self": w[..., 0, 0]}
    return {
        "entropy": entropy,
        "previous": w[..., rows, rows - 1].mean(-1),
        "first": w[..., rows, 0].mean(-1),
        "self": w[..., rows, rows].mean(-1),
    }


def _norm(token: str) -> str:
    return re.sub(r"^(##|Ġ|▁)", "", token.strip()).lower()


def find_token(trace: AttentionTrace, word: str, after: int = -1) -> int:
    """Position of the first token after position ``after`` that spells ``word`` (case and spaces ignored)."""
    target = _norm(word)
    for i, tok in enumerate(trace.tokens):
        if i > after and _norm(tok) == target:
            return i
    raise ValueError(f"no token {word!r} in: {' | '.join(trace.tokens[:60])}")


def pair_attention(trace: AttentionTrace, query: str, keys: list[str]) -> dict[str, Any]:
    """How much the token ``query`` attends to each word in ``keys``, per (layer, head), and the top heads.

    Returns {"query": position, "keys": [positions], "weights": (key, layer, head), "top": {key word: [(layer,
    head, weight), ...] best first}}. The deck's example: query "it", keys ["animal", "tired"].
    """
    qi = find_token(trace, query)
    kis = [find_token(trace, k) for k in keys]
    w = trace.weights[:, :, qi, kis].transpose(2, 0, 1)  # (key, layer, head)
    top = {}
    for word, wk in zip(keys, w):
        order = np.argsort(wk, axis=None)[::-1][:5]
        top[word] = [(int(i // wk.shape[1]), int(i % wk.shape[1]), float(wk.flat[i])) for i in order]
    return {"query": qi, "keys": kis, "weights": w, "top": top}
