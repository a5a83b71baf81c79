"""The recorded speculative-decoding results the demo opens instantly (``lecture speculative``): acceptance and
speed-up against k for each draft on the bundled prompts, and one step-by-step run per draft."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from toolkit import models
from toolkit.speculative import decode
from toolkit.speculative.capture import (
    DEFAULT_PROMPT,
    DRAFT_LAYERS,
    DRAFTS,
    PROMPTS,
    SpeculativeConfig,
    assets_dir,
    capture,
    drafter,
    prompt_ids,
)
from toolkit.speculative.trace import SweepTrace
from toolkit.trace import make_meta

KS = (1, 2, 3, 4, 6, 8)
SWEEP_TOKENS = 96
Progress = Callable[[Iterable], Iterable]


def sweep(
    model: models.Loaded | str,
    drafts: tuple[str, ...] = DRAFTS,
    ks: tuple[int, ...] = KS,
    prompts: tuple[str, ...] = PROMPTS,
    max_new: int = SWEEP_TOKENS,
    layers: int = DRAFT_LAYERS,
    progress: Progress = iter,
) -> SweepTrace:
    """Greedy speculative decoding of every prompt for every (draft, k), timed against plain greedy decoding."""
    loaded = models.resolve(model)
    ids = [prompt_ids(loaded, p) for p in prompts]
    plain = [decode.greedy(loaded.model, x, max_new) for x in ids]
    shape = (len(drafts), len(ks))
    acc, tpp, secs, same = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=bool)
    plain_secs = np.zeros(shape)
    for d, k in progress([(d, k) for d in range(len(drafts)) for k in range(len(ks))]):
        cfg = SpeculativeConfig(draft=drafts[d], k=ks[k], layers=layers)
        accepted = drafted = passes = made = 0
        t0, ok = time.perf_counter(), True
        for x, ref in zip(ids, plain):
            run = decode.speculative(loaded.model, drafter(loaded, cfg), x, max_new, ks[k])
            ok &= run.new == ref.new
            accepted += sum(s.accepted for s in run.steps)
            drafted += sum(len(s.drafted) for s in run.steps)
            passes += len(run.steps)
            made += len(run.new)
        secs[d, k] = time.perf_counter() - t0
        t0 = time.perf_counter()  # plain greedy timed right after: the machine's load is the same for both
        for x in ids:
            decode.greedy(loaded.model, x, max_new)
        plain_secs[d, k] = time.perf_counter() - t0
        acc[d, k], tpp[d, k], same[d, k] = accepted / max(drafted, 1), made / passes, ok
    return SweepTrace(
        drafts=list(drafts),
        ks=np.array(ks),
        acceptance=acc,
        tokens_per_pass=tpp,
        seconds=secs,
        same=same,
        greedy_seconds=plain_secs,
        new_tokens=int(sum(len(p.new) for p in plain)),
        prompts=list(prompts),
        meta=make_meta(loaded.name, max_new=max_new, layers=layers),
    ).check()


def record(model: models.Loaded | str, out: str | Path | None = None, progress: Progress = iter) -> list[Path]:
    """sweep.npz and run-<draft>.npz (the default prompt, k = 4) in ``out`` (default assets/speculative)."""
    loaded = models.resolve(model)
    out = Path(out) if out else assets_dir()
    paths = [sweep(loaded, progress=progress).save(out / "sweep.npz")]
    for draft in DRAFTS:
        paths.append(capture(loaded, DEFAULT_PROMPT, draft=draft).save(out / f"run-{draft}.npz"))
    return paths
