"""Model card: the architecture facts a lecture quotes (layers, heads, GQA, RoPE theta, parameter counts)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from toolkit.models import Loaded


@dataclass(frozen=True)
class ModelCard:
    name: str
    architecture: str
    kind: str
    layers: int
    heads: int
    kv_heads: int
    hidden: int
    head_dim: int
    vocab: int
    max_positions: int
    rope_theta: float | None
    total_params: int
    params_by_part: dict[str, int] = field(default_factory=dict)


def _part(param_name: str) -> str:
    n = param_name.lower()
    for key, part in (("embed", "embeddings"), ("lm_head", "output head"), ("attn", "attention"),
                      ("attention", "attention"), ("mlp", "feed-forward"), ("intermediate", "feed-forward"),
                      ("output.dense", "feed-forward"), ("norm", "norms")):
        if key in n:
            return part
    return "other"


def card(loaded: Loaded) -> ModelCard:
    cfg = loaded.config
    parts: dict[str, int] = defaultdict(int)
    seen = set()
    for pname, p in loaded.model.named_parameters(remove_duplicate=False):
        if p.data_ptr() in seen:  # tied embeddings count once
            continue
        seen.add(p.data_ptr())
        parts[_part(pname)] += p.numel()
    heads = cfg.num_attention_heads
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    theta = theta if theta is not None else getattr(cfg, "rope_theta", None)
    return ModelCard(
        name=loaded.name,
        architecture=(cfg.architectures or [type(loaded.model).__name__])[0],
        kind=loaded.kind,
        layers=cfg.num_hidden_layers,
        heads=heads,
        kv_heads=getattr(cfg, "num_key_value_heads", None) or heads,
        hidden=cfg.hidden_size,
        head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // heads,
        vocab=cfg.vocab_size,
        max_positions=getattr(cfg, "max_position_embeddings", 0) or 0,
        rope_theta=float(theta) if theta is not None else None,
        total_params=sum(parts.values()),
        params_by_part=dict(sorted(parts.items(), key=lambda kv: -kv[1])),
    )
