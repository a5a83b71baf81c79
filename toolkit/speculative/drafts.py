"""The drafts (slide "Speculative decoding"): prompt lookup, and SmolLM2 cut after its first layers.

``truncated(model, layers)`` is a causal LM made of the target's own embedding, its first ``layers`` blocks, its
final norm and its head: the same modules, no copy (a truncated draft costs no memory). With an ``adapter`` (a
distilled one, see ``speculative.distill``) the blocks are copies with the learnt low-rank updates merged in and
the final norm is the trained one. Each draft is an ordinary transformers model, so transformers' own assisted
generation (``generate(assistant_model=draft)``) can use it too.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit import arch, models

ADAPTER_FORMAT = 1


def truncated(model: models.Loaded | str, layers: int, adapter: dict[str, np.ndarray] | None = None) -> Any:
    """The target's first ``layers`` blocks + its final norm + its head, as a model of the target's class."""
    target = models.resolve(model).model
    blocks = arch.decoder_layers(target)
    if not 1 <= layers < len(blocks):
        raise ValueError(f"a draft keeps between 1 and {len(blocks) - 1} of the {len(blocks)} layers, got {layers}")
    cfg = copy.deepcopy(target.config)
    cfg.num_hidden_layers = layers
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = list(cfg.layer_types)[:layers]
    with torch.device("meta"):
        draft = type(target)(cfg)
    inner, mine = target.model, draft.model
    mine.embed_tokens = inner.embed_tokens
    mine.rotary_emb = inner.rotary_emb
    mine.norm = inner.norm
    mine.layers = torch.nn.ModuleList(blocks[i] for i in range(layers))
    draft.lm_head = target.lm_head
    draft.generation_config = copy.deepcopy(target.generation_config)
    if adapter is not None:
        _apply(draft, adapter, layers)
    for p in draft.parameters():
        p.requires_grad_(False)
    return draft.eval()


def _apply(draft: Any, adapter: dict[str, np.ndarray], layers: int) -> None:
    """Copies of the blocks with W + scaling * B A merged into each adapted weight, and the trained final norm."""
    if int(adapter.get("layers", np.array(layers))) != layers:
        raise ValueError(f"this adapter was trained for {int(adapter['layers'])} layers, not {layers}")
    hidden = draft.config.hidden_size
    if adapter["norm"].shape != (hidden,):
        raise ValueError(
            f"this distilled draft was trained for a model of width {adapter['norm'].shape[0]}, not {hidden}"
        )
    scaling = float(adapter["scaling"])
    blocks = torch.nn.ModuleList(copy.deepcopy(b) for b in draft.model.layers)
    for key in adapter:
        if key.endswith(".A"):
            name = key[:-2]  # "3.self_attn.q_proj"
            index, _, path = name.partition(".")
            lin = blocks[int(index)].get_submodule(path)
            a, b = torch.from_numpy(adapter[key]).float(), torch.from_numpy(adapter[f"{name}.B"]).float()
            lin.weight = torch.nn.Parameter(lin.weight.detach() + scaling * b @ a, requires_grad=False)  # (out, in)
    draft.model.layers = blocks
    norm = copy.deepcopy(draft.model.norm)
    norm.weight = torch.nn.Parameter(torch.from_numpy(adapter["norm"]).float(), requires_grad=False)
    draft.model.norm = norm


def save_adapter(adapter: dict[str, np.ndarray], path: str | Path) -> Path:
    """The low-rank factors in float16 (a few MB) and the norm in float32, in one .npz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: (v.astype(np.float16) if k.endswith((".A", ".B")) else v) for k, v in adapter.items()}
    np.savez_compressed(path, format=np.array(ADAPTER_FORMAT), **arrays)
    return path


def load_adapter(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no distilled draft at {path}: record it with `lecture distill`")
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    if int(data.pop("format", -1)) != ADAPTER_FORMAT:
        raise ValueError(f"{path} is not a draft adapter of format {ADAPTER_FORMAT}: re-record it")
    return data
