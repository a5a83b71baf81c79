"""Model card: the architecture facts a lecture quotes (slide "What are large language models?": layers, heads,
grouped-query attention, RoPE theta, context length and where the parameters live). Sizes come from
``toolkit.arch``; the parameter counts from the model's own tensors (tied embeddings counted once)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from toolkit import arch, models

# Parameter name fragment -> part of the model, first match wins (llama-style and BERT-style names).
PARTS = (
    ("embed", "embeddings"),
    ("lm_head", "output head"),
    ("attn", "attention"),
    ("attention", "attention"),
    ("mlp", "feed-forward"),
    ("intermediate", "feed-forward"),
    ("output.dense", "feed-forward"),
    ("norm", "norms"),
)


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
    rope_theta: float | None  # None: learned absolute positions
    total_params: int
    params_by_part: dict[str, int] = field(default_factory=dict)  # largest part first


def part(param_name: str) -> str:
    """Which part of the model a parameter belongs to, from its name."""
    n = param_name.lower()
    for key, name in PARTS:
        if key in n:
            return name
    return "other"


def card(model: models.Loaded | str) -> ModelCard:
    """The card of a model (a name or a ``models.Loaded``)."""
    loaded = models.resolve(model)
    a = arch.of(loaded)
    parts: dict[str, int] = defaultdict(int)
    seen = set()
    for pname, p in loaded.model.named_parameters(remove_duplicate=False):
        if p.data_ptr() in seen:  # tied embeddings count once
            continue
        seen.add(p.data_ptr())
        parts[part(pname)] += p.numel()
    return ModelCard(
        name=loaded.name,
        architecture=a.architecture,
        kind=loaded.kind,
        layers=a.layers,
        heads=a.heads,
        kv_heads=a.kv_heads,
        hidden=a.hidden,
        head_dim=a.head_dim,
        vocab=a.vocab,
        max_positions=a.max_positions,
        rope_theta=a.rope_theta,
        total_params=sum(parts.values()),
        params_by_part=dict(sorted(parts.items(), key=lambda kv: -kv[1])),
    )
