"""Speculative decoding capture: one run step by step, a sweep over k, the soft targets of distillation.

Serves "Speculative decoding" and "Small models and distillation". Prompts go through the model's chat template
(SmolLM2 is an instruct model). The bundled prompts ask for answers that reuse their input (correct, reorder,
reformat, complete code), the everyday case where prompt lookup pays.
"""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, text
from toolkit.config import Config, ConfigError, param
from toolkit.speculative import decode, drafts
from toolkit.speculative.maths import distillation_loss, hard_loss, soft_targets
from toolkit.speculative.trace import SpeculativeTrace, TargetsTrace
from toolkit.trace import make_meta

DRAFTS = ("lookup", "layers", "distilled")
DRAFT_LAYERS = 4  # the truncated draft: SmolLM2's first 4 of 30 blocks + final norm + head
MAX_NEW = 256
PROMPTS = (
    "Correct the spelling in this sentence and write it out again: 'The quick brwon fox jumpd over the lazy dog "
    "and then it ran bak into the forrest to sleep under a big old tree.'",
    "Rewrite this list in alphabetical order, one item per line: pears, apples, kiwis, bananas, cherries, "
    "mangoes, grapes, dates.",
    "Add a docstring to this Python function and return the whole function:\n\ndef area(width, height):\n"
    "    if width < 0 or height < 0:\n        raise ValueError('negative size')\n    return width * height",
    "Turn this sentence into a bulleted list of its parts: The recipe needs two cups of flour, one cup of sugar, "
    "three eggs, half a cup of milk and a spoon of butter.",
)
DEFAULT_PROMPT = PROMPTS[0]


def assets_dir() -> Path:
    return Path(
        os.environ.get("LECTURE_SPECULATIVE_ASSETS", Path(__file__).resolve().parents[2] / "assets" / "speculative")
    )


@dataclass(frozen=True)
class SpeculativeConfig(Config):
    draft: str = param("lookup", "what proposes the tokens", choices=DRAFTS, label="draft")
    k: int = param(4, "tokens drafted per target pass", lo=1, hi=12, step=1, label="k")
    layers: int = param(DRAFT_LAYERS, "blocks the truncated draft keeps", lo=1, hi=64, step=1, label="draft layers")
    ngram: int = param(2, "prompt lookup: longest n-gram matched", lo=1, hi=6, step=1, label="n-gram")
    max_new_tokens: int = param(24, "tokens generated at most", lo=1, hi=MAX_NEW, step=1, label="new tokens")
    mode: str = param("greedy", "greedy (output = plain greedy) or sampling", choices=("greedy", "sample"))
    temperature: float = param(1.0, "sampling temperature", lo=0, hi=5, open_lo=True, step=0.05, label="T")
    seed: int = param(0, "seed of the sampling", lo=0, hi=2**32 - 1)
    check: bool = param(True, "also decode plainly and compare (greedy only)")
    chat: bool = param(True, "wrap the prompt in the model's chat template")


def prompt_ids(loaded: models.Loaded, prompt: str, chat: bool = True, max_tokens: int = text.MAX_TOKENS) -> list[int]:
    """The prompt's token ids: through the chat template (with the assistant's turn opened) or as plain text."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty")
    tok = loaded.tokenizer
    if chat and getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        ids = list(ids)
        if len(ids) > max_tokens:
            raise ConfigError(f"The prompt is {len(ids)} tokens long; the limit is {max_tokens}. Shorten it.")
        return ids
    return text.encode(tok, prompt, max_tokens).ids


_drafts: dict[tuple, tuple[Any, Any]] = {}


def draft_model(loaded: models.Loaded, kind: str, layers: int) -> Any:
    """The truncated ("layers") or distilled draft of a model; built once per model (it shares the target's
    tensors; the distilled one holds copies of its few blocks)."""
    if kind not in ("layers", "distilled"):
        raise ValueError(f"{kind!r} is not a model draft; choose layers or distilled")
    key = (id(loaded.model), kind, layers)
    entry = _drafts.get(key)
    if entry is None or entry[0] is not loaded.model:
        adapter = drafts.load_adapter(assets_dir() / "draft.npz") if kind == "distilled" else None
        if len(_drafts) >= 8:
            _drafts.pop(next(iter(_drafts)))
        entry = _drafts[key] = (loaded.model, drafts.truncated(loaded, layers, adapter))
    return entry[1]


def drafter(loaded: models.Loaded, cfg: SpeculativeConfig) -> decode.ModelDraft | decode.LookupDraft:
    if cfg.draft == "lookup":
        return decode.LookupDraft(cfg.ngram)
    return decode.ModelDraft(draft_model(loaded, cfg.draft, cfg.layers))


def capture(
    model: models.Loaded | str, prompt: str = DEFAULT_PROMPT, config: SpeculativeConfig | None = None, **options: Any
) -> SpeculativeTrace:
    """Speculative decoding of ``prompt`` step by step; greedy runs are checked against plain greedy decoding."""
    loaded = models.resolve(model)
    cfg = SpeculativeConfig.make(config, **options)
    n_layers = arch.of(loaded).layers
    if cfg.draft != "lookup" and cfg.layers >= n_layers:
        raise ValueError(f"the draft must keep fewer than the model's {n_layers} layers, got {cfg.layers}")
    ids = prompt_ids(loaded, prompt, cfg.chat)
    temperature = None if cfg.mode == "greedy" else cfg.temperature
    start = decode.prefilled(loaded.model, ids)  # read once, for both runs: each gets its own copy of the cache
    ahead = (copy.deepcopy(start[0]), start[1])
    run = decode.speculative(
        loaded.model, drafter(loaded, cfg), ids, cfg.max_new_tokens, cfg.k, temperature, cfg.seed, ahead
    )
    same = plain_seconds = None
    if cfg.check and cfg.mode == "greedy":
        plain = decode.greedy(loaded.model, ids, cfg.max_new_tokens, start)
        same, plain_seconds = plain.new == run.new, plain.seconds
    drafted = np.full((len(run.steps), cfg.k), -1, dtype=np.int64)
    for i, step in enumerate(run.steps):
        drafted[i, : len(step.drafted)] = step.drafted
    show = functools.partial(text.display, loaded.tokenizer)
    return SpeculativeTrace(
        prompt=prompt,
        draft=cfg.draft,
        k=cfg.k,
        mode=cfg.mode,
        temperature=float(cfg.temperature),
        drafted=drafted,
        accepted=np.array([s.accepted for s in run.steps], dtype=np.int64),
        appended=np.array([s.token for s in run.steps], dtype=np.int64),
        new_ids=np.array(run.new, dtype=np.int64),
        tokens=show(run.new),
        drafted_text=[show(s.drafted) for s in run.steps],
        seconds=run.seconds,
        draft_seconds=run.draft_seconds,
        target_seconds=run.target_seconds,
        same_as_greedy=same,
        greedy_seconds=plain_seconds,
        meta=make_meta(loaded.name, seed=cfg.seed, prompt_tokens=len(ids), layers=cfg.layers, ngram=cfg.ngram),
    ).check()


@dataclass(frozen=True)
class TargetsConfig(Config):
    temperature: float = param(2.0, "distillation temperature T", lo=0.1, hi=20, step=0.1, label="T")
    top: int = param(12, "teacher's top tokens shown", lo=2, hi=50, step=1)
    position: int = param(
        -1, "position in the text (-1: the last one with a next token)", lo=-text.MAX_TOKENS, hi=text.MAX_TOKENS
    )
    layers: int = param(DRAFT_LAYERS, "blocks of the student (the truncated draft)", lo=1, hi=64, step=1)
    distilled: bool = param(False, "use the distilled draft as the student")


def targets(
    model: models.Loaded | str, prompt: str, config: TargetsConfig | None = None, **options: Any
) -> TargetsTrace:
    """Teacher (the full model) and student (the truncated draft) at one position of ``prompt``: their soft
    targets at T, the one-hot label (the next token of the text) and the three losses."""
    loaded = models.resolve(model)
    cfg = TargetsConfig.make(config, **options)
    ids = text.encode(loaded.tokenizer, prompt, text.MAX_TOKENS).ids
    if len(ids) < 2:
        raise ValueError("the text needs at least two tokens: one to read, one to predict")
    pos = cfg.position if cfg.position >= 0 else len(ids) - 1 + cfg.position
    if not 0 <= pos < len(ids) - 1:
        raise ValueError(
            f"position must be between 0 and {len(ids) - 2} (or negative from the end), got {cfg.position}"
        )
    student = draft_model(loaded, "distilled" if cfg.distilled else "layers", cfg.layers)
    x = torch.tensor([ids[: pos + 1]])
    with torch.no_grad():
        t_logits = loaded.model(input_ids=x, use_cache=False).logits[0, -1]
        s_logits = student(input_ids=x, use_cache=False).logits[0, -1]
    p_t, p_s = soft_targets(t_logits, cfg.temperature), soft_targets(s_logits, cfg.temperature)
    top = torch.topk(soft_targets(t_logits), cfg.top).indices
    label = ids[pos + 1]
    return TargetsTrace(
        context=text.display(loaded.tokenizer, ids[: pos + 1]),
        position=pos,
        top_ids=top.numpy(),
        top_tokens=text.display(loaded.tokenizer, top.tolist()),
        teacher=p_t[top].numpy(),
        student=p_s[top].numpy(),
        teacher_1=soft_targets(t_logits)[top].numpy(),
        label=int(label),
        label_token=loaded.tokenizer.decode([label]),
        temperature=float(cfg.temperature),
        kl=float(distillation_loss(s_logits, t_logits, cfg.temperature)),
        ce_label=float(hard_loss(s_logits[None], torch.tensor([label]))),
        ce_teacher=float(-(soft_targets(t_logits) * torch.log_softmax(s_logits.float(), -1)).sum()),
        meta=make_meta(loaded.name, layers=cfg.layers, distilled=cfg.distilled),
    ).check()
