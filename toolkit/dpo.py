"""Reward model and DPO: slides "Bradley-Terry", "reward model loss", "DPO loss", "implicit reward".

Bradley-Terry: P(y_w preferred to y_l) = σ(r_w − r_l); a reward model is trained with −log σ(r_w − r_l).
DPO needs no reward model: with π the policy, π_ref the frozen reference and log π(y|x) the sum of the
answer tokens' log-probabilities, the implicit reward is r(x, y) = β · log(π(y|x) / π_ref(y|x)) and

    L_DPO = −log σ( β·[log π(y_w|x) − log π_ref(y_w|x)] − β·[log π(y_l|x) − log π_ref(y_l|x)] ),

TRL's ``loss_type="sigmoid"`` (its default). The policy here is SmolLM2 with a fresh LoRA adapter on a twin of
the shared model (see toolkit.lora.twin); the reference is the same network with the adapter switched off, so
at step 0 the two agree, every ratio is 0 and the loss is log 2.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.lora import lora_config, twin
from toolkit.models import Loaded
from toolkit.sft import IGNORE, batch
from toolkit.traces import DpoTrace, make_meta

MAX_STEPS = 10
PAIR = ("What is the capital of France?", "The capital of France is Paris.", "The capital of France is Lyon.")


def bradley_terry(margin):
    """P(winner preferred) = σ(r_w − r_l), for a margin or an array of them."""
    return torch.sigmoid(torch.as_tensor(margin, dtype=torch.float64))


def reward_model_loss(margin):
    """−log σ(r_w − r_l)."""
    return -F.logsigmoid(torch.as_tensor(margin, dtype=torch.float64))


def dpo_loss(logp_w, logp_l, ref_w, ref_l, beta: float):
    """(loss, reward_w, reward_l) from summed log-probs of the chosen (w) and rejected (l) answers."""
    reward_w = beta * (torch.as_tensor(logp_w) - torch.as_tensor(ref_w))
    reward_l = beta * (torch.as_tensor(logp_l) - torch.as_tensor(ref_l))
    return -F.logsigmoid(reward_w - reward_l), reward_w, reward_l


def pair_batch(loaded: Loaded, prompt: str, chosen: str, rejected: str):
    """Chosen and rejected exchanges as one right-padded batch: ids, attention mask, labels (-100 off-answer)."""
    return answers_batch(loaded, prompt, [chosen, rejected])


def answers_batch(loaded: Loaded, prompt: str, answers: list[str]):
    return batch(loaded, [(prompt, a) for a in answers])


def token_logps(model, ids, mask, labels) -> torch.Tensor:
    """log p of each labelled token given those before it, 0 elsewhere: (B, T-1), aligned with labels[:, 1:]."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (B, T-1, vocab)
    target = labels[:, 1:]  # (B, T-1)
    keep = target != IGNORE
    logp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    return logp * keep


def sequence_logps(loaded: Loaded, prompt: str, answers: list[str]) -> torch.Tensor:
    """log π(answer | prompt) under the shared model, summed over the answer's tokens: (len(answers),)."""
    ids, mask, labels = answers_batch(loaded, prompt, answers)
    with torch.no_grad():
        return token_logps(loaded.model, ids, mask, labels).sum(-1)  # one forward for all answers


def train(loaded: Loaded, prompt: str = PAIR[0], chosen: str = PAIR[1], rejected: str = PAIR[2], beta: float = 0.1,
          steps: int = 3, r: int = 8, lr: float = 5e-3, seed: int = 0) -> DpoTrace:
    """A few DPO steps with LoRA; records log-probs, implicit rewards and the loss before each step and after."""
    from peft import get_peft_model

    torch.manual_seed(seed)
    policy = get_peft_model(twin(loaded.model), lora_config(r, 2 * r, ["q_proj", "v_proj"]))
    ids, mask, labels = pair_batch(loaded, prompt, chosen, rejected)
    with torch.no_grad(), policy.disable_adapter():
        ref = token_logps(policy, ids, mask, labels).sum(-1)  # (2,): the reference never changes
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    rows, t0 = [], time.perf_counter()
    policy.train()
    for step in range(steps + 1):
        logps = token_logps(policy, ids, mask, labels).sum(-1)  # (2,) chosen, rejected
        loss, rw, rl = dpo_loss(logps[0], logps[1], ref[0], ref[1], beta)
        rows.append([float(x) for x in (logps[0].detach(), logps[1].detach(), rw.detach(), rl.detach(), loss.detach())])
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    a = np.array(rows)  # (step + 1, 5)
    return DpoTrace(prompt=prompt, chosen=chosen, rejected=rejected, beta=beta, ref_chosen=float(ref[0]),
                    ref_rejected=float(ref[1]), logp_chosen=a[:, 0], logp_rejected=a[:, 1], reward_chosen=a[:, 2],
                    reward_rejected=a[:, 3], loss=a[:, 4], seconds=seconds,
                    meta=make_meta(loaded.name, seed=seed, r=r, lr=lr, steps=steps)).check()
