"""Sparse attention on a real model (slide "Sparse attention and attention sinks").

The mask goes into the model as an additive 4-D attention mask (1, 1, query, key), which transformers hands to every
layer's eager attention unchanged: the model really attends only where the mask allows. One forward pass over a text
that ships with Python (a chapter of its reference manual, ``pydoc_data.topics``) gives the perplexity and, through
named hooks on each attention module, how much attention goes to the first token and to the oldest key in view.
``record`` sweeps the window with and without sinks for the committed replay (``lecture sparse-curves``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, turns
from toolkit.config import Config, param
from toolkit.hooks import Hooks
from toolkit.sparse_attention import maths
from toolkit.sparse_attention.trace import SparseCurveTrace, SparseTrace
from toolkit.trace import make_meta

TOPIC = "naming"  # pydoc_data.topics: "Naming and binding", English prose of about 1,400 SmolLM2 tokens
TOKENS = 1024
WINDOWS = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
SINKS = (0, 4)


@dataclass(frozen=True)
class SparseConfig(Config):
    pattern: str = param("sliding", "mask pattern", choices=maths.PATTERNS)
    window: int = param(64, "keys each query sees, itself included", lo=1, hi=8192, step=1)
    dilation: int = param(2, "gap between the keys of a dilated window", lo=1, hi=64, step=1)
    sinks: int = param(0, "first tokens every query also sees (attention sinks; global tokens)", lo=0, hi=64, step=1)
    random: int = param(2, "random older keys per query (global+local, as BigBird)", lo=0, hi=64, step=1)
    seed: int = param(0, "seed of the random keys", lo=0, hi=2**31 - 1)
    max_tokens: int = param(TOKENS, "tokens of the text scored", lo=16, hi=2048, step=1, label="tokens")

    def problems(self) -> list[str]:
        if self.pattern == "global+local" and self.sinks < 1:
            return ["global+local needs at least one global token: set sinks >= 1"]
        return []

    def mask(self, n: int) -> np.ndarray:
        return maths.mask(n, self.pattern, self.window, self.dilation, self.sinks, self.random, self.seed)


def python_text() -> str:
    """The scored text: a chapter of Python's reference manual that ships with every CPython."""
    from pydoc_data.topics import topics

    return topics[TOPIC]


def token_ids(loaded: models.Loaded, prompt: str | None, max_tokens: int) -> list[int]:
    prompt = python_text() if prompt is None else prompt
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the text is empty")
    ids = list(loaded.tokenizer(prompt)["input_ids"])[:max_tokens]
    if len(ids) < 2:
        raise ValueError("the text needs at least two tokens to score the second")
    return ids


def evaluate(loaded: models.Loaded, ids: list[int], allowed: np.ndarray | None, sinks: int = 0) -> dict[str, Any]:
    """One forward pass of ``ids`` under the (query, key) bool mask ``allowed`` (None: the model's own causal mask):
    nll (pos - 1,) per next token; first and oldest (layer, query): attention on token 0 and on the oldest key in
    view past the sinks, averaged over heads."""
    model = loaded.model
    if not arch.is_causal(model):
        raise ValueError(f"{loaded.name} is an encoder: perplexity needs a causal model")
    n = len(ids)
    causal = np.tril(np.ones((n, n), dtype=bool))
    seen = causal if allowed is None else allowed
    oldest = torch.from_numpy(np.maximum(maths.oldest_visible(seen, min(sinks, n - 1)), 0))  # (query,)
    rows = torch.arange(n)

    def keep(module, args, kwargs, out):  # reduce each layer's (1, head, query, key) weights at once
        w = out[1][0]
        return w[:, :, 0].mean(0).float(), w[:, rows, oldest].mean(0).float()  # (query,), (query,)

    mask = None if allowed is None else torch.from_numpy(maths.additive(allowed))[None, None]  # (1, 1, q, k)
    x = torch.tensor([ids])
    with torch.no_grad(), Hooks() as hooks:
        for layer in arch.attention_layers(model):
            hooks.output(str(layer.index), layer.module, keep)
        losses = arch.token_nll(model, x, attention_mask=mask, use_cache=False)  # (pos - 1,)
    layers = range(len(hooks.records))
    return {
        "nll": losses.numpy(),
        "first": torch.stack([hooks[str(i)][0][0] for i in layers]).numpy(),  # (layer, query)
        "oldest": torch.stack([hooks[str(i)][0][1] for i in layers]).numpy(),
    }


def capture(
    model: models.Loaded | str, prompt: str | None = None, config: SparseConfig | None = None, **options: Any
) -> SparseTrace:
    """Score ``prompt`` (default: the Python reference-manual text) with SmolLM2 attending only through the mask."""
    loaded = models.resolve(model)
    cfg = SparseConfig.make(config, **options)
    ids = token_ids(loaded, prompt, cfg.max_tokens)
    allowed = cfg.mask(len(ids))
    work = turns.stopwatch()
    out = evaluate(loaded, ids, allowed, cfg.sinks)
    q0 = maths.since(cfg.window, len(ids))
    return SparseTrace(
        ids=np.array(ids),
        nll=out["nll"],
        first=out["first"][:, q0:].mean(1),
        oldest=out["oldest"][:, q0:].mean(1),
        density=maths.density(allowed),
        config=cfg.to_dict(),
        source=TOPIC if prompt is None else "text",
        seconds=work(),
        meta=make_meta(loaded.name, seed=cfg.seed),
    ).check()


def record(
    model: models.Loaded | str,
    windows: Iterable[int] = WINDOWS,
    sinks: Iterable[int] = SINKS,
    max_tokens: int = TOKENS,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> SparseCurveTrace:
    """Perplexity of the Python text against the sliding window, for each number of sinks; a window as long as the
    text is the full model (evaluated once). ``progress`` wraps the list of runs (e.g. ``tqdm``)."""
    loaded = models.resolve(model)
    windows, sinks = sorted(set(windows)), sorted(set(sinks))
    ids = token_ids(loaded, None, max_tokens)
    n = len(ids)
    t0 = time.perf_counter()
    runs = [(None, 0)] + [(w, s) for s in sinks for w in windows if w < n]
    results = {}
    for w, s in (progress or (lambda x: x))(runs):
        allowed = None if w is None else maths.mask(n, "sliding", w, sinks=s)
        results[(w, s)] = evaluate(loaded, ids, allowed, s)
    full = results[(None, 0)]
    shape = (len(sinks), len(windows))
    nll = np.zeros((*shape, n - 1), dtype=np.float32)
    first = np.zeros((*shape, len(full["first"])), dtype=np.float32)
    oldest = np.zeros_like(first)
    for a, s in enumerate(sinks):
        for b, w in enumerate(windows):
            r = results.get((w, s), full)  # a window as long as the text masks nothing
            q0 = maths.since(w, n)
            nll[a, b], first[a, b], oldest[a, b] = r["nll"], r["first"][:, q0:].mean(1), r["oldest"][:, q0:].mean(1)
    return SparseCurveTrace(
        text=loaded.tokenizer.decode(ids),
        ids=np.array(ids),
        windows=np.array(windows),
        sinks=np.array(sinks),
        nll=nll,
        first=first,
        oldest=oldest,
        full_nll=full["nll"],
        full_first=full["first"],
        source=TOPIC,
        seconds=time.perf_counter() - t0,
        meta=make_meta(loaded.name, python_text_topic=TOPIC),
    ).check()
