"""Direct answer vs chain of thought vs self-consistency on the real model (slide "Chain of thought on a 135M
model"; Wei et al. 2022, Kojima et al. 2022, Wang et al. 2023).

- direct: the question, "Answer with just the number.", and the assistant's turn opened with "The answer is".
- cot (zero-shot chain of thought, Kojima's two stages): "Let's think step by step." and up to ``cot_tokens``
  greedy tokens of reasoning; then "Therefore, the answer is" is appended and the answer read from what follows.
- self_consistency: ``samples`` chains sampled at ``temperature`` (seeded), each answered as above; the majority
  answer wins.
Accuracy is exact match of the number read (``maths.first_number``) with the problem's answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import models, turns
from toolkit.config import Config, param
from toolkit.reasoning.generate import chat_ids, generate
from toolkit.reasoning.maths import first_number, majority
from toolkit.reasoning.problems import Problem, problems
from toolkit.reasoning.trace import METHODS, ReasoningTrace
from toolkit.trace import make_meta

DIRECT_SUFFIX = " Answer with just the number."
COT_SUFFIX = " Let's think step by step."
ANSWER_PREFILL = "The answer is"
COT_ANSWER = "\nTherefore, the answer is"
FINAL_TOKENS = 8  # tokens read after "The answer is"


@dataclass(frozen=True)
class ReasoningConfig(Config):
    cot_tokens: int = param(96, "tokens of reasoning a chain of thought may write", lo=8, hi=256, label="CoT tokens")
    samples: int = param(5, "chains sampled for self-consistency's vote", lo=1, hi=16, label="samples n")
    temperature: float = param(0.7, "sampling temperature of self-consistency", lo=0.05, hi=2.0, step=0.05)
    seed: int = param(0, "torch seed of the sampled chains", lo=0, hi=2**31 - 1)
    batch_size: int = param(20, "prompts per generate() call", lo=1, hi=64, label="batch size")
    methods: tuple[str, ...] = param(METHODS, "the methods to run", choices=METHODS)

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            object.__setattr__(self, "methods", tuple(m.strip() for m in self.methods.split(",") if m.strip()))
        elif isinstance(self.methods, list):
            object.__setattr__(self, "methods", tuple(self.methods))
        super().__post_init__()

    def problems(self) -> list[str]:
        return [] if self.methods else ["choose at least one method"]


def question_messages(question: str, suffix: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question + suffix}]


def _chunks(items: Sequence, size: int, progress: str | None):
    starts = range(0, len(items), size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=progress, unit="batch")
    for s in starts:
        yield items[s : s + size]


def answer_direct(loaded: models.Loaded, questions: Sequence[str], cfg: ReasoningConfig, progress: bool = False):
    """-> (completions, finals): the text after "The answer is", greedy (both the same for this method)."""
    out: list[str] = []
    for chunk in _chunks(list(questions), cfg.batch_size, "direct" if progress else None):
        ids = [chat_ids(loaded, question_messages(q, DIRECT_SUFFIX), ANSWER_PREFILL) for q in chunk]
        out += generate(loaded, ids, FINAL_TOKENS, batch_size=len(ids), stop="\n")
    return [[ANSWER_PREFILL + t] for t in out], [[t] for t in out]


def chains(
    loaded: models.Loaded,
    questions: Sequence[str],
    cfg: ReasoningConfig,
    *,
    samples: int = 1,
    temperature: float = 0.0,
    progress: str | None = None,
) -> tuple[list[list[str]], list[list[str]]]:
    """Chains of thought, ``samples`` per question, then each one's answer (greedy, after "Therefore, the answer
    is"). -> (reasoning texts, answer texts), each [[per sample] per question]."""
    qs = list(questions)
    reasoning: list[str] = []
    per = max(1, cfg.batch_size // samples)
    for chunk in _chunks(qs, per, progress):
        ids = [chat_ids(loaded, question_messages(q, COT_SUFFIX)) for q in chunk]
        reasoning += generate(
            loaded, ids, cfg.cot_tokens, temperature=temperature, num_return_sequences=samples, batch_size=len(ids)
        )
    second = [
        chat_ids(loaded, question_messages(qs[i // samples], COT_SUFFIX), r.rstrip() + COT_ANSWER)
        for i, r in enumerate(reasoning)
    ]
    finals = generate(loaded, second, FINAL_TOKENS, batch_size=cfg.batch_size, stop="\n")
    group = [reasoning[i : i + samples] for i in range(0, len(reasoning), samples)]
    return group, [finals[i : i + samples] for i in range(0, len(finals), samples)]


def evaluate(
    model: models.Loaded | str,
    items: Sequence[Problem] | None = None,
    config: ReasoningConfig | None = None,
    progress: bool = False,
    **options: Any,
) -> ReasoningTrace:
    """Every method of ``config.methods`` on ``items`` (default: the 60 bundled problems)."""
    loaded = models.resolve(model)
    cfg = ReasoningConfig.make(config, **options)
    items = list(items if items is not None else problems())
    if not items:
        raise ValueError("no problems to evaluate")
    questions = [p.question for p in items]
    completions, finals, seconds = {}, {}, {}
    for method in cfg.methods:
        work = turns.stopwatch()  # work, not pauses for a waiting request
        if method == "direct":
            completions[method], finals[method] = answer_direct(loaded, questions, cfg, progress)
        elif method == "cot":
            completions[method], finals[method] = chains(loaded, questions, cfg, progress="cot" if progress else None)
        else:
            torch.manual_seed(cfg.seed)
            completions[method], finals[method] = chains(
                loaded,
                questions,
                cfg,
                samples=cfg.samples,
                temperature=cfg.temperature,
                progress="self-consistency" if progress else None,
            )
        seconds[method] = round(work(), 2)
    methods = list(cfg.methods)
    predicted = np.full((len(methods), len(items)), np.nan)
    for m, method in enumerate(methods):
        for j, texts in enumerate(finals[method]):
            value, _ = majority([first_number(t) for t in texts])
            predicted[m, j] = np.nan if value is None else float(value)
    truth = np.array([float(p.answer) for p in items])
    return ReasoningTrace(
        problems=[{"id": p.id, "kind": p.kind, "question": p.question, "answer": p.answer} for p in items],
        methods=methods,
        completions=completions,
        finals=finals,
        predicted=predicted,
        correct=predicted == truth[None, :],
        config=cfg.to_dict(),
        seconds=seconds,
        meta=make_meta(loaded.name, seed=cfg.seed, threads=torch.get_num_threads()),
    ).check()


capture = evaluate
