"""Distil the truncated draft toward the full model (slide "Small models and distillation").

Student: the target's first ``layers`` blocks (frozen, shared tensors) with LoRA adapters on their seven linear
layers, and a trainable copy of the final norm; the embedding and the head stay the target's (frozen, tied).
Teacher: the full model. Loss: T^2 KL(teacher || student) on every position of windows (``maths.distillation_loss``)
drawn half from the stdlib training text and half from the teacher's own greedy answers to instructions built from
that text (the kind of text the draft will be asked to draft; never the bundled benchmark prompts). What it buys
is measured where it matters: draft acceptance and the speculative speed-up on the bundled prompts, before and
after (``lecture distill`` records both; slide "Distilling the draft").
"""

from __future__ import annotations

import copy
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models
from toolkit.config import Config, param
from toolkit.quantization import corpus
from toolkit.quantization.capture import MODULES
from toolkit.speculative import decode, drafts
from toolkit.speculative.capture import DRAFT_LAYERS, PROMPTS, prompt_ids
from toolkit.speculative.maths import distillation_loss
from toolkit.speculative.trace import DistillationTrace
from toolkit.trace import make_meta

Progress = Callable[[Iterable], Iterable]


@dataclass(frozen=True)
class DistillConfig(Config):
    layers: int = param(DRAFT_LAYERS, "blocks the draft keeps", lo=1, hi=64, step=1)
    rank: int = param(16, "LoRA rank on each of the draft's linear layers", lo=1, hi=256, step=1)
    steps: int = param(400, "AdamW steps", lo=1, hi=10_000, step=1)
    batch: int = param(4, "windows per step: half stdlib text, half the teacher's chat answers", lo=2, hi=64, step=2)
    seq_len: int = param(96, "tokens per window", lo=8, hi=1024, step=8)
    lr: float = param(3e-3, "AdamW learning rate", lo=0, hi=1, open_lo=True)
    chats: int = param(
        64, "instructions (built from the stdlib text) the teacher answers for the training mix", lo=0, hi=4096, step=1
    )
    temperature: float = param(1.0, "distillation temperature T", lo=0.1, hi=20, step=0.1, label="T")
    seed: int = param(0, "seed of the windows and of LoRA's A", lo=0, hi=2**32 - 1)
    eval_windows: int = param(8, "held-out windows scored before and after", lo=1, hi=256)
    k: int = param(3, "draft length when measuring acceptance", lo=1, hi=12, step=1)
    max_new_tokens: int = param(96, "tokens generated per bundled prompt when measuring", lo=1, hi=512)


def student(loaded: models.Loaded, layers: int, rank: int) -> Any:
    """A trainable draft: new modules over the target's frozen tensors, LoRA on every block's linear layers."""
    from peft import LoraConfig, get_peft_model

    target = loaded.model
    cfg = copy.deepcopy(target.config)
    cfg.num_hidden_layers = layers
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = list(cfg.layer_types)[:layers]
    with torch.device("meta"):
        s = type(target)(cfg)
    wanted = set(s.state_dict())
    s.load_state_dict({k: v for k, v in target.state_dict().items() if k in wanted}, assign=True)
    for name, buf in target.named_buffers():  # RoPE's inv_freq is not in the state dict
        owner, _, leaf = name.rpartition(".")
        if owner.startswith("model.rotary_emb") or owner == "model.rotary_emb":
            s.get_submodule(owner).register_buffer(leaf, buf, persistent=False)
    s.tie_weights()
    peft_model = get_peft_model(
        s, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(MODULES), lora_dropout=0.0, bias="none")
    )
    norm = peft_model.get_base_model().model.norm
    norm.weight = torch.nn.Parameter(norm.weight.detach().clone(), requires_grad=True)  # the draft's own norm
    return peft_model


def adapter_of(peft_model: Any, layers: int) -> dict[str, np.ndarray]:
    """The learnt factors A (r, in), B (out, r), their scaling and the norm, keyed "3.self_attn.q_proj.A"."""
    out: dict[str, np.ndarray] = {}
    scaling = None
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            key = name.split(".layers.", 1)[1]  # "3.self_attn.q_proj"
            out[f"{key}.A"] = module.lora_A["default"].weight.detach().numpy().copy()
            out[f"{key}.B"] = module.lora_B["default"].weight.detach().numpy().copy()
            scaling = float(module.scaling["default"])
    out["scaling"] = np.array(scaling)
    out["layers"] = np.array(layers)
    out["norm"] = peft_model.get_base_model().model.norm.weight.detach().numpy().copy()
    return out


TASKS = (
    "Correct the spelling in this sentence and write it out again: '{typos}'",
    "Repeat this sentence exactly: '{sentence}'",
    "Rewrite this sentence in simpler words: '{sentence}'",
    "Turn this sentence into a bulleted list of its parts: {sentence}",
    "Explain this sentence to a beginner: '{sentence}'",
)


def sentences(text: str) -> list[str]:
    """Sentences of 40-160 characters from the stdlib help text (paragraph lines joined)."""
    flat = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
    found = [s.strip() for s in re.split(r"(?<=[.!?])\s+", flat)]
    return [s for s in found if 40 < len(s) < 160 and not re.search(r"[*=>|\\{}]|\s{2,}", s)]


def typos(sentence: str, rng: random.Random) -> str:
    """Swap two letters in about a third of the longer words."""
    words = sentence.split(" ")
    for i, w in enumerate(words):
        if len(w) > 4 and w.isalpha() and rng.random() < 0.35:
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def chat_prompts(n: int, seed: int = 0) -> list[str]:
    """Instructions built from the training half of the stdlib text (never the bundled benchmark prompts)."""
    rng = random.Random(seed)
    pool = sentences(corpus.training())
    out = []
    for i in range(n):
        s = pool[rng.randrange(len(pool))]
        out.append(TASKS[i % len(TASKS)].format(sentence=s, typos=typos(s, rng)))
    return out


def transcripts(loaded: models.Loaded, prompts: list[str], max_new: int, progress: Progress = iter) -> list[int]:
    """The teacher's own greedy answers to ``prompts``, in its chat template, as one stream of token ids: the
    draft learns the text it will be asked to draft."""
    stream: list[int] = []
    for prompt in progress(prompts):
        ids = prompt_ids(loaded, prompt)
        stream += ids + decode.greedy(loaded.model, ids, max_new).new
    return stream


def windows(ids: list[int], n: int, length: int, rng: random.Random) -> torch.Tensor:
    """(n, length) random windows of ``ids``."""
    starts = [rng.randrange(0, len(ids) - length) for _ in range(n)]
    return torch.tensor([ids[s : s + length] for s in starts])


def held_out_loss(loaded: models.Loaded, draft: Any, ids: torch.Tensor, temperature: float) -> float:
    with torch.no_grad():
        return float(distillation_loss(draft(input_ids=ids).logits, loaded.model(input_ids=ids).logits, temperature))


def measure(loaded: models.Loaded, draft: Any, k: int, max_new: int) -> dict[str, float]:
    """Greedy speculative decoding of the bundled prompts with ``draft``: acceptance, tokens per target pass and
    wall-time speed-up over plain greedy decoding (each output checked equal to plain greedy)."""
    accepted = drafted = passes = made = 0
    plain_s = spec_s = 0.0
    for prompt in PROMPTS:
        ids = prompt_ids(loaded, prompt)
        plain = decode.greedy(loaded.model, ids, max_new)
        run = decode.speculative(loaded.model, decode.ModelDraft(draft), ids, max_new, k)
        if run.new != plain.new:
            raise RuntimeError("speculative output differs from plain greedy decoding")
        accepted += sum(s.accepted for s in run.steps)
        drafted += sum(len(s.drafted) for s in run.steps)
        passes += len(run.steps)
        made += len(run.new)
        plain_s += plain.seconds
        spec_s += run.seconds
    return {"acceptance": accepted / max(drafted, 1), "tokens_per_pass": made / passes, "speedup": plain_s / spec_s}


def distill(
    model: models.Loaded | str,
    config: DistillConfig | None = None,
    progress: Progress = iter,
    on_step: Callable[[int, float], None] | None = None,
    **options: Any,
) -> tuple[dict[str, np.ndarray], DistillationTrace]:
    """Train the draft; returns its adapter (``drafts.save_adapter``) and the run's trace."""
    loaded = models.resolve(model)
    cfg = DistillConfig.make(config, **options)
    n_layers = arch.of(loaded).layers
    if cfg.layers >= n_layers:
        raise ValueError(f"the draft must keep fewer than the model's {n_layers} layers, got {cfg.layers}")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    train_ids = loaded.tokenizer(corpus.training(), add_special_tokens=False)["input_ids"]
    chat_ids = transcripts(loaded, chat_prompts(cfg.chats, cfg.seed), cfg.max_new_tokens) if cfg.chats else []
    if chat_ids and len(chat_ids) <= cfg.seq_len:
        raise ValueError(f"the teacher's answers give {len(chat_ids)} tokens: fewer than one window of {cfg.seq_len}")
    eval_ids = loaded.tokenizer(corpus.held_out(), add_special_tokens=False)["input_ids"]
    held = windows(eval_ids, cfg.eval_windows, cfg.seq_len, random.Random(cfg.seed + 1))
    before_draft = drafts.truncated(loaded, cfg.layers)
    before = measure(loaded, before_draft, cfg.k, cfg.max_new_tokens)
    eval_before = held_out_loss(loaded, before_draft, held, cfg.temperature)
    pm = student(loaded, cfg.layers, cfg.rank)
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    losses, t0 = [], time.perf_counter()
    for step in progress(range(cfg.steps)):
        if chat_ids:  # (batch, seq): half stdlib text, half chat transcripts
            x = torch.cat(
                [
                    windows(train_ids, cfg.batch // 2, cfg.seq_len, rng),
                    windows(chat_ids, cfg.batch // 2, cfg.seq_len, rng),
                ]
            )
        else:
            x = windows(train_ids, cfg.batch, cfg.seq_len, rng)
        with torch.no_grad():
            teacher = loaded.model(input_ids=x, use_cache=False).logits
        pm.train()
        loss = distillation_loss(pm(input_ids=x, use_cache=False).logits, teacher, cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        if on_step is not None:
            on_step(step, losses[-1])
    seconds = time.perf_counter() - t0
    pm.eval()
    adapter = adapter_of(pm, cfg.layers)
    after_draft = drafts.truncated(loaded, cfg.layers, adapter)
    after = measure(loaded, after_draft, cfg.k, cfg.max_new_tokens)
    eval_after = held_out_loss(loaded, after_draft, held, cfg.temperature)
    trace = DistillationTrace(
        layers=cfg.layers,
        rank=cfg.rank,
        temperature=float(cfg.temperature),
        lr=float(cfg.lr),
        batch=cfg.batch,
        seq_len=cfg.seq_len,
        losses=np.array(losses, dtype=np.float32),
        eval_loss=np.array([eval_before, eval_after]),
        acceptance=np.array([before["acceptance"], after["acceptance"]]),
        tokens_per_pass=np.array([before["tokens_per_pass"], after["tokens_per_pass"]]),
        speedup=np.array([before["speedup"], after["speedup"]]),
        k=cfg.k,
        trainable=sum(p.numel() for p in params),
        seconds=seconds,
        meta=make_meta(
            loaded.name,
            seed=cfg.seed,
            steps=cfg.steps,
            chats=cfg.chats,
            chat_tokens=len(chat_ids),
            text=corpus.fingerprint(corpus.training()),
            threads=torch.get_num_threads(),
        ),
    ).check()
    return adapter, trace
