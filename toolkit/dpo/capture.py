"""DPO capture: log π of a preference pair's answers, and a few real DPO steps with LoRA (slides "DPO loss",
"implicit reward").

The policy is the model with a fresh LoRA adapter on a twin of the shared model (``lora.twin``: new modules over
the same frozen weights); the reference is the same network with the adapter switched off, so at step 0 the two
agree, every ratio is 0 and the loss is log 2. The shared model is never changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from toolkit import arch, models
from toolkit.config import Config, check_budget, param
from toolkit.dpo.maths import dpo_loss, label_logps, target_logps
from toolkit.dpo.trace import DpoTrace
from toolkit.lora import LoraConfig, peft_config, twin
from toolkit.sft import Exchange, batch
from toolkit.sft.maths import IGNORE
from toolkit.trace import make_meta

MAX_STEPS = 10
MAX_CHARS = 20_000  # the ceiling of max_chars: the demos' own text limit
DPO_TARGETS = ("q_proj", "v_proj")  # the policy's adapter; alpha = 2r
# Tokens a row past which a step backpropagates one answer at a time: a DPO step at the limits (456 tokens a row)
# peaked at +849 MiB as one batch, +396-514 MiB so (a forked child); at the defaults one at a time took 1.6x as long.
ONE_AT_A_TIME = 128


class Pair(NamedTuple):
    """One preference: a prompt, the chosen answer y_w and the rejected one y_l. Immutable; unpacks as a tuple."""

    prompt: str
    chosen: str
    rejected: str


PAIR = Pair("What is the capital of France?", "The capital of France is Paris.", "The capital of France is Lyon.")


@dataclass(frozen=True)
class DpoConfig(Config):
    beta: float = param(0.1, "β: the implicit reward is β·log(π/π_ref)", lo=0, hi=10, open_lo=True, label="β")
    steps: int = param(3, "AdamW steps on the DPO loss", lo=1, hi=MAX_STEPS, step=1, label="DPO steps")
    r: int = param(
        8,
        "LoRA rank of the policy's adapter (alpha = 2r, on q_proj and v_proj)",
        lo=1,
        hi=LoraConfig.spec("r").hi,
        step=1,
        label="rank r",
    )
    lr: float = param(5e-3, "AdamW learning rate", lo=0, hi=1, open_lo=True, label="learning rate")
    seed: int = param(0, "torch seed: the adapter's random start", lo=0, hi=2**32 - 1)
    max_chars: int = param(
        1000, "characters per text (prompt, chosen, rejected)", lo=1, hi=MAX_CHARS, label="character limit"
    )
    budget: int = param(
        2500,
        "token-steps a run may take: the padded batch's tokens (chosen and rejected rows) x the steps; each "
        "step is a forward and a backward pass over them",
        lo=1,
        hi=10_000_000,
    )


def check_pair(pair: Pair | tuple, max_chars: int = DpoConfig.default("max_chars")) -> Pair:
    """The pair as a Pair; ValueError for a text that is not text or too long, or for two identical answers."""
    if isinstance(pair, str) or not isinstance(pair, (tuple, list)) or len(pair) != 3:
        raise TypeError(f"expected a Pair or a (prompt, chosen, rejected) tuple, got {pair!r:.80}")
    pair = Pair(*pair)
    for name, value in zip(("prompt", "chosen answer", "rejected answer"), pair):
        if not isinstance(value, str):
            raise ValueError(f"the {name} must be text, got {type(value).__name__}")
        if len(value) > max_chars:
            raise ValueError(f"the {name} is {len(value):,} characters; the limit is {max_chars:,}")
    if pair.chosen.strip() == pair.rejected.strip():
        raise ValueError("the chosen and rejected answers are the same: DPO has nothing to prefer")
    return pair


def pair_batch(model: models.Loaded | str, pair: Pair | tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chosen and rejected exchanges as one right-padded batch: ids, attention mask, labels (-100 off-answer),
    each (2, T); row 0 is the chosen answer."""
    prompt, chosen, rejected = pair
    return batch(model, [Exchange(prompt, chosen), Exchange(prompt, rejected)])


def token_logps(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p of each labelled token under ``model`` given those before it, 0 elsewhere: (B, T-1).

    The head runs only at the positions that predict an answer token (``logits_to_keep``): at the limits (a pair of
    456 tokens a row) the whole text's logits are (2, 456, 49152) floats, 171 MiB: a reference pass at the limits
    peaked at +674 MiB, now +218-320 MiB (a forked child with the server's malloc settings)."""
    target = labels[:, 1:]  # (B, T-1): position t-1 predicts token t
    if not arch.takes_logits_to_keep(model):
        return label_logps(model(input_ids=ids, attention_mask=mask).logits, labels)
    at = (target != IGNORE).any(0).nonzero().squeeze(-1)  # (K,) positions predicting an answer token in some row
    logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=at).logits  # (B, K, vocab)
    picked = target_logps(logits, target[:, at])  # (B, K)
    return torch.zeros(target.shape, device=picked.device).index_copy(1, at.to(picked.device), picked)  # (B, T-1)


def sequence_logps(
    model: models.Loaded | str, pair: Pair | tuple, config: DpoConfig | None = None, **options: Any
) -> torch.Tensor:
    """(2,) log π(chosen | prompt), log π(rejected | prompt) under the shared model, summed over answer tokens."""
    loaded = models.resolve(model)
    cfg = DpoConfig.make(config, **options)
    ids, mask, labels = pair_batch(loaded, check_pair(pair, cfg.max_chars))
    with torch.no_grad():
        return token_logps(loaded.model, ids, mask, labels).sum(-1)  # one forward for both answers


def train(
    model: models.Loaded | str, pair: Pair | tuple = PAIR, config: DpoConfig | None = None, **options: Any
) -> DpoTrace:
    """A few DPO steps with LoRA; records log-probs, implicit rewards and the loss before each step and after."""
    from peft import get_peft_model

    loaded = models.resolve(model)
    cfg = DpoConfig.make(config, **options)
    pair = check_pair(pair, cfg.max_chars)
    torch.manual_seed(cfg.seed)
    lora = peft_config(r=cfg.r, alpha=2 * cfg.r, targets=DPO_TARGETS)
    policy = get_peft_model(twin(loaded.model, training=True), lora)  # SDPA, checkpointed: see twin
    ids, mask, labels = pair_batch(loaded, pair)  # (2, T) each
    check_budget(
        ids.numel() * cfg.steps,
        cfg.budget,
        "token-steps",
        f"The pair is {ids.shape[1]} tokens a row: shorten the texts or take fewer steps.",
    )
    with torch.no_grad(), policy.disable_adapter():
        ref = token_logps(policy, ids, mask, labels).sum(-1)  # (2,): the reference never changes
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    rows, t0 = [], time.perf_counter()
    policy.train()
    for step in range(cfg.steps + 1):
        if step == cfg.steps:  # after the last update: read, nothing to learn
            with torch.no_grad():
                logps = token_logps(policy, ids, mask, labels).sum(-1)  # (2,) chosen, rejected
        else:
            opt.zero_grad(set_to_none=False)  # the same buffers each step: new ones every step fragmented the heap
            logps = _backward(policy, ids, mask, labels, ref, cfg.beta)
            opt.step()
        loss, rw, rl = dpo_loss(logps[0], logps[1], ref[0], ref[1], cfg.beta)
        rows.append([float(x) for x in (logps[0], logps[1], rw, rl, loss)])  # before the step's update
    opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    a = np.array(rows)  # (step + 1, 5)
    return DpoTrace(
        prompt=pair.prompt,
        chosen=pair.chosen,
        rejected=pair.rejected,
        beta=cfg.beta,
        ref_chosen=float(ref[0]),
        ref_rejected=float(ref[1]),
        logp_chosen=a[:, 0],
        logp_rejected=a[:, 1],
        reward_chosen=a[:, 2],
        reward_rejected=a[:, 3],
        loss=a[:, 4],
        seconds=seconds,
        meta=make_meta(loaded.name, seed=cfg.seed, r=cfg.r, lr=cfg.lr, steps=cfg.steps),
    ).check()


capture = train  # the concept's main trace under the name every concept uses


def _backward(policy, ids, mask, labels, ref: torch.Tensor, beta: float) -> torch.Tensor:
    """The DPO loss's gradients; returns the two log π, (2,), before the update. A pair longer than ONE_AT_A_TIME
    tokens a row goes one answer's graph at a time (the pair's graph at the limits was twice as large): the rejected
    answer is read first without a graph, for the loss; the chosen one's graph then gives its share, and the
    rejected one's graph its own, scaled by dL/dlog π(rejected). The same gradients as one backward through both."""
    if ids.shape[1] <= ONE_AT_A_TIME:
        logps = token_logps(policy, ids, mask, labels).sum(-1)  # (2,) chosen, rejected
        dpo_loss(logps[0], logps[1], ref[0], ref[1], beta)[0].backward()
        return logps.detach()
    row = [(ids[i : i + 1], mask[i : i + 1], labels[i : i + 1]) for i in range(2)]  # (1, T) each
    with torch.no_grad():
        rejected = token_logps(policy, *row[1]).sum()
    rejected.requires_grad_(True)
    chosen = token_logps(policy, *row[0]).sum()
    dpo_loss(chosen, rejected, ref[0], ref[1], beta)[0].backward()  # the chosen answer's share; rejected.grad
    (token_logps(policy, *row[1]).sum() * rejected.grad).backward()  # the rejected answer's share
    return torch.stack([chosen.detach(), rejected.detach()])
