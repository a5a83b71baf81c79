"""Fine-tuning on a narrow task while watching general text (slide "Catastrophic forgetting, measured").

Every run trains a private model: ``lora.twin(model)`` (new modules over the shared weight tensors), then either
fresh copies of the top ``top_layers`` layers' weights are trained (full fine-tuning; everything else frozen), or
a peft LoRA adapter is. The shared model is only read (for the KL penalty's base distributions and the "before"
answers): it never changes. At every step: the held-out task loss and the perplexity of held-out general text.

Methods (``METHODS``): full fine-tuning of the top layers; LoRA; LoRA at a tenth of the learning rate; LoRA with a
KL penalty toward the base model on general text; LoRA with general text replayed (its LM loss added).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, turns
from toolkit.config import Config, param
from toolkit.forgetting.data import EVAL_TOPICS, PROMPTS, REPLAY_TOPICS, general_chunks, task
from toolkit.forgetting.maths import kl_to_base, perplexity
from toolkit.forgetting.trace import ForgettingTrace
from toolkit.lora import peft_config, twin
from toolkit.sft import batch
from toolkit.trace import make_meta

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
METHODS: dict[str, dict] = {
    "full_top": {"lr": 1e-4},
    "lora": {"lr": 1e-3},
    "lora_low_lr": {"lr": 1e-4},
    "lora_kl": {"lr": 1e-3, "kl_coef": 1.0},
    "lora_replay": {"lr": 1e-3, "replay_coef": 1.0},
}
METHOD_TITLES = {
    "full_top": "full fine-tuning, top layers",
    "lora": "LoRA",
    "lora_low_lr": "LoRA, lr ÷ 10",
    "lora_kl": "LoRA + KL to base",
    "lora_replay": "LoRA + replay",
}
RECORDED = ("full_top", "lora", "lora_low_lr", "lora_kl")  # the committed runs (lora_replay: live only)
ANSWER_TOKENS = 24
EVAL_CHUNKS = 4  # general-text chunks of 96 tokens scored at every step
REPLAY_BATCH = 2


@dataclass(frozen=True)
class ForgettingConfig(Config):
    method: str = param("lora", "how to fine-tune", choices=tuple(METHODS))
    steps: int = param(16, "AdamW updates on the narrow task", lo=1, hi=200)
    lr: float = param(1e-3, "AdamW learning rate", lo=0, hi=0.1, open_lo=True, label="learning rate")
    r: int = param(8, "LoRA rank (alpha = 2r) on every linear layer", lo=1, hi=64, label="LoRA rank")
    top_layers: int = param(4, "layers trained by full fine-tuning (the last ones)", lo=1, hi=64, label="top layers")
    kl_coef: float = param(0.0, "weight of KL(base || model) on general text", lo=0, hi=100, label="KL weight")
    replay_coef: float = param(0.0, "weight of the replayed general text's LM loss", lo=0, hi=100, label="replay")
    batch_size: int = param(8, "task exchanges per update", lo=1, hi=64, label="batch size")
    seed: int = param(0, "seed of the data order and of LoRA's A", lo=0, hi=2**31 - 1)


def preset(method: str, **overrides: Any) -> ForgettingConfig:
    """The recorded run of ``method``: its learning rate and penalty, then ``overrides``."""
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    return ForgettingConfig(method=method, **{**METHODS[method], **overrides})


def private_model(loaded: models.Loaded, cfg: ForgettingConfig) -> torch.nn.Module:
    """The model this run trains: never the shared one. Full: fresh copies of the top layers' weights, trainable;
    LoRA: a peft adapter on a twin (its base weights frozen and shared, read only). A training twin: SDPA attention,
    each block's activations recomputed in the backward pass (a LoRA step on 8 exchanges kept +1.2 GB of them)."""
    model = twin(loaded.model, training=True)
    for p in model.parameters():
        p.requires_grad_(False)
    if cfg.method != "full_top":
        from peft import get_peft_model

        torch.manual_seed(cfg.seed)
        return get_peft_model(model, peft_config(r=cfg.r, alpha=2.0 * cfg.r, targets=LORA_TARGETS))
    n = arch.of(loaded).layers
    if cfg.top_layers > n:
        raise ValueError(f"top_layers must be at most {n} for {loaded.name}, got {cfg.top_layers}")
    for layer in model.model.layers[n - cfg.top_layers :]:
        for module in layer.modules():
            for name, p in list(module.named_parameters(recurse=False)):
                setattr(module, name, torch.nn.Parameter(p.detach().clone()))  # a copy: the shared tensor stays
    return model


def _base_logits(loaded: models.Loaded, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(input_ids=ids).logits  # (n, T, vocab): the shared model, read only


@dataclass(frozen=True)
class Step:
    step: int
    train_loss: float | None
    task_loss: float
    general_ppl: float
    seconds: float


def evaluate(model: torch.nn.Module, heldout, general: torch.Tensor) -> tuple[float, float]:
    """(held-out task loss, general perplexity) of a model."""
    ids, mask, labels = heldout
    with torch.no_grad():
        task_loss = float(model(input_ids=ids, attention_mask=mask, labels=labels).loss)
        ppl = perplexity(float(model(input_ids=general, labels=general).loss))
    return task_loss, ppl


def stream(
    model: models.Loaded | str,
    config: ForgettingConfig | None = None,
    stop: threading.Event | None = None,
    **options: Any,
) -> Iterator[tuple[Step, torch.nn.Module]]:
    """Yield (Step, the private model) before training (step 0) and after every update."""
    loaded = models.resolve(model)
    cfg = ForgettingConfig.make(config, **options)
    tok = loaded.tokenizer
    trained = private_model(loaded, cfg)
    heldout = batch(loaded, list(task("heldout")))
    general = torch.tensor(general_chunks(tok, EVAL_TOPICS)[:EVAL_CHUNKS])  # (chunks, 96)
    replay = general_chunks(tok, REPLAY_TOPICS)
    train = list(task("train"))
    rng = random.Random(cfg.seed)
    elapsed = 0.0  # seconds of work so far, pauses left out; each step is timed within the call that makes it
    trained.eval()  # (a server may run the next step in another thread)
    yield Step(0, None, *evaluate(trained, heldout, general), 0.0), trained
    opt = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=cfg.lr)
    order: list[int] = []
    for step in range(1, cfg.steps + 1):
        if stop is not None and stop.is_set():
            return
        clock = turns.stopwatch()
        if len(order) < cfg.batch_size:
            order += rng.sample(range(len(train)), len(train))  # epochs in a shuffled order
        picked, order = order[: cfg.batch_size], order[cfg.batch_size :]
        ids, mask, labels = batch(loaded, [train[i] for i in picked])  # (b, T) each
        trained.train()
        loss = trained(input_ids=ids, attention_mask=mask, labels=labels).loss
        if cfg.kl_coef or cfg.replay_coef:
            g = torch.tensor(rng.sample(replay, REPLAY_BATCH))  # (REPLAY_BATCH, 96)
            out = trained(input_ids=g, labels=g if cfg.replay_coef else None)
            if cfg.kl_coef:
                loss = loss + cfg.kl_coef * kl_to_base(out.logits, _base_logits(loaded, g))
            if cfg.replay_coef:
                loss = loss + cfg.replay_coef * out.loss
        opt.zero_grad(set_to_none=False)  # the same buffers each step: new ones every step fragmented the heap
        loss.backward()
        opt.step()
        trained.eval()
        scores = evaluate(trained, heldout, general)
        elapsed += clock()
        yield Step(step, float(loss.detach()), *scores, elapsed), trained


def answers(loaded: models.Loaded, model: torch.nn.Module | None = None, prompts=PROMPTS) -> list[str]:
    """Greedy answers to the general prompts by ``model`` (default: the shared model itself)."""
    from toolkit.reasoning.generate import chat_ids, generate

    runner = loaded if model is None else models.Loaded(loaded.name, model, loaded.tokenizer, loaded.kind)
    ids = [chat_ids(loaded, [{"role": "user", "content": p}]) for p in prompts]
    return [a.strip() for a in generate(runner, ids, ANSWER_TOKENS, batch_size=len(ids))]


def train(
    model: models.Loaded | str,
    methods: list[str] | tuple[str, ...] = RECORDED,
    progress: bool = False,
    **overrides: Any,
) -> ForgettingTrace:
    """One run per method (its preset plus ``overrides``), curves and answers in one trace."""
    loaded = models.resolve(model)
    rows, configs, seconds, after = [], {}, {}, {}
    for method in methods:
        cfg = preset(method, **overrides)
        steps = stream(loaded, cfg)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, total=cfg.steps + 1, desc=method, unit="step")
        history, trained = [], None
        for step, model_now in steps:
            history.append(step)
            trained = model_now
        rows.append(history)
        configs[method], seconds[method] = cfg.to_dict(), round(history[-1].seconds, 1)
        after[method] = answers(loaded, trained)
    return ForgettingTrace(
        methods=list(methods),
        task_loss=np.array([[s.task_loss for s in h] for h in rows], dtype=np.float32),
        general_ppl=np.array([[s.general_ppl for s in h] for h in rows], dtype=np.float32),
        train_loss=np.array([[s.train_loss for s in h[1:]] for h in rows], dtype=np.float32),
        prompts=list(PROMPTS),
        before=answers(loaded),
        after=after,
        configs=configs,
        seconds=seconds,
        meta=make_meta(loaded.name, seed=overrides.get("seed", 0), threads=torch.get_num_threads()),
    ).check()


capture = train
