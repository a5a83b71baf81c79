"""The one place that knows a model's architecture: sizes from its config, and where its parts are.

Every capture asks here instead of reading configs itself: layers, query heads, key/value heads (grouped-query
attention), head dimension, rotary parameters, and the attention modules with their q/k/v projections.
Works for llama-style decoders (Llama, SmolLM2, Qwen2, Mistral: ``q_proj/k_proj/v_proj``) and BERT-style
encoders (MiniLM: ``query/key/value``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_PROJ_NAMES = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"))


class ArchError(ValueError):
    """The model does not have the part a capture needs (no attention modules, no rotary embedding...)."""


@dataclass(frozen=True)
class Arch:
    """Sizes of a transformer, read from its config. ``kv_heads < heads`` means grouped-query attention."""

    architecture: str
    causal: bool
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    vocab: int
    max_positions: int
    rope_theta: float | None  # None: no rotary embedding (learned absolute positions)
    sliding_window: int | None = None

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.heads // self.kv_heads

    def kv_head(self) -> np.ndarray:
        """(head,) the key/value head each query head reads: h // group (arange for multi-head attention)."""
        return np.arange(self.heads) // self.group

    def kv_bytes_per_token(self, dtype_bytes: int = 4) -> int:
        """Keys and values of one token in every layer: 2 x layers x kv_heads x head_dim x bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


def of(model: Any) -> Arch:
    """The Arch of a transformers model (or of a ``models.Loaded``)."""
    model = getattr(model, "model", model) if hasattr(model, "tokenizer") else model
    cfg = model.config
    heads = cfg.num_attention_heads
    rope = rope_parameters(cfg)
    return Arch(
        architecture=(getattr(cfg, "architectures", None) or [type(model).__name__])[0],
        causal=is_causal(model),
        layers=cfg.num_hidden_layers,
        heads=heads,
        kv_heads=getattr(cfg, "num_key_value_heads", None) or heads,
        head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // heads,
        hidden=cfg.hidden_size,
        vocab=cfg.vocab_size,
        max_positions=int(getattr(cfg, "max_position_embeddings", 0) or 0),
        rope_theta=float(rope["rope_theta"]) if rope else None,
        sliding_window=getattr(cfg, "sliding_window", None) if getattr(cfg, "use_sliding_window", True) else None,
    )


def takes_logits_to_keep(model: Any) -> bool:
    """The model's forward takes ``logits_to_keep`` (the positions whose logits it computes); through peft's wrapper,
    which passes it on, its base model's does."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def last_logits_only(model: Any) -> dict:
    """Forward keywords for the last position's logits only, as ``generate`` asks (SmolLM2's vocabulary projection is
    a fifth of its forward pass); {} for a model that takes no such argument (an encoder)."""
    return {"logits_to_keep": 1} if takes_logits_to_keep(model) else {}


HEAD_CHUNK = 128  # positions per vocabulary projection in token_nll: (128, 49152) float32 logits, 24 MiB


def token_nll(model: Any, input_ids: torch.Tensor, chunk: int = HEAD_CHUNK, **forward: Any) -> torch.Tensor:
    """-log p(token t | the tokens before it) for t = 1 .. n - 1 of ``input_ids`` (1, n): (n - 1,) float32, from one
    forward pass (``forward``: its other keywords) whose vocabulary projection runs ``chunk`` positions at a time.
    All of a text's logits at once are (n, vocab) floats, 192 MiB for 1,024 of SmolLM2's tokens, and their
    log-softmax as much again. The chunks use the model's output embedding on its decoder's last hidden state, which
    is checked against the model's own logits at the last position. A model that takes no ``logits_to_keep`` gets
    one pass with all of its logits instead; one whose head does more (a soft cap, a scale) gets that pass after the
    check, a second forward."""
    x = input_ids
    targets = x[0, 1:]  # (n - 1,)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if head is None or decoder is None or decoder is model or not takes_logits_to_keep(model):
        return _nll(model(input_ids=x, **forward).logits[0, :-1], targets)
    seen: list[torch.Tensor] = []
    hook = decoder.register_forward_hook(lambda m, a, out: seen.append(out[0]))
    try:
        last = model(input_ids=x, logits_to_keep=1, **forward).logits[0, -1]  # (vocab,)
    finally:
        hook.remove()
    hidden = seen[-1][0]  # (n, hidden): the decoder's output, after its final norm
    if not torch.allclose(head(hidden[-1:])[0], last, rtol=1e-4, atol=1e-4):
        return _nll(model(input_ids=x, **forward).logits[0, :-1], targets)
    n = len(targets)
    return torch.cat([_nll(head(hidden[i : min(i + chunk, n)]), targets[i : i + chunk]) for i in range(0, n, chunk)])


def _nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")


def is_causal(model: Any) -> bool:
    return type(model).__name__.endswith("ForCausalLM") or bool(getattr(model.config, "is_decoder", False))


def rope_parameters(config: Any) -> dict[str, Any] | None:
    """The config's RoPE settings as transformers 5 names them (``rope_parameters``), or None without RoPE."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    theta = getattr(config, "rope_theta", None)
    if not params and theta is None:
        return None
    params = dict(params or {})
    params.setdefault("rope_theta", theta if theta is not None else 10_000.0)
    params["rope_type"] = params.get("rope_type") or params.get("type") or "default"
    return params


@dataclass(frozen=True)
class AttentionLayer:
    """One self-attention module and its query, key and value projections (``nn.Linear``)."""

    index: int
    module: torch.nn.Module
    q: torch.nn.Linear
    k: torch.nn.Linear
    v: torch.nn.Linear


def attention_layers(model: Any) -> list[AttentionLayer]:
    """Every self-attention module in layer order."""
    found = []
    for module in model.modules():
        for names in _PROJ_NAMES:
            parts = [getattr(module, n, None) for n in names]
            if all(isinstance(p, torch.nn.Linear) for p in parts):
                found.append(AttentionLayer(len(found), module, *parts))
                break
    if not found:
        raise ArchError(f"no attention modules with q/k/v projections found in {type(model).__name__}")
    return found


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The blocks of a llama-style decoder (``model.model.layers``)."""
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ArchError(f"{type(model).__name__} has no llama-style model.layers")
    return layers


def rotary(model: Any) -> tuple[np.ndarray, float] | None:
    """(inv_freq (head_dim/2,), attention_scaling) the model's rotary embedding used in its last forward pass,
    or None for a model without RoPE. Dynamic RoPE types update inv_freq per call: read it after the forward."""
    emb = getattr(getattr(model, "model", model), "rotary_emb", None)
    if emb is None or not hasattr(emb, "inv_freq"):
        return None
    return emb.inv_freq.detach().float().numpy(), float(getattr(emb, "attention_scaling", 1.0))


def experts(config: Any) -> tuple[int, int] | None:
    """(routed experts per MoE layer, experts per token) of a transformers MoE config; None for a dense model."""
    for name in ("num_local_experts", "num_experts", "n_routed_experts"):
        if getattr(config, name, None):
            return int(getattr(config, name)), int(config.num_experts_per_tok)
    return None
