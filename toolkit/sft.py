"""Cross-entropy and SFT loss masking: slides "Training objective", "Cross-entropy", "SFT loss masking (-100)".

The chat template turns messages into one token sequence x_1..x_T. The labels row copies x but puts -100 on
every prompt token (system, user, the "assistant" header), so only the answer is learnt. The model predicts
x_t from x_<t, so the loss is

    L = (1 / |A|) sum_{t in A} -log p(x_t | x_<t),     A = {t : label_t != -100},

exactly what transformers computes from ``model(input_ids, labels=labels)`` (it shifts labels by one and
ignores -100). As in TRL's prompt-completion format, the answer is everything after the generation prompt
(the answer text, <|im_end|> and the newline the template adds).
"""
from __future__ import annotations

import numpy as np
import torch

from toolkit.models import Loaded
from toolkit.traces import SftTrace, make_meta

IGNORE = -100  # torch.nn.CrossEntropyLoss's ignore_index, the value every trainer uses
MAX_TOKENS = 512


def build(loaded: Loaded, user: str, assistant: str, system: str | None = None) -> tuple[list[int], list[int], str]:
    """Token ids of the whole exchange, the labels row (-100 on the prompt) and the templated text."""
    tok = loaded.tokenizer
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"{loaded.name} has no chat template")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    text = tok.apply_chat_template(messages + [{"role": "assistant", "content": assistant}], tokenize=False)
    if not text.startswith(prompt):
        raise ValueError("the chat template does not render the prompt as a prefix of the full exchange")
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if ids[:n_prompt] != tok(prompt, add_special_tokens=False)["input_ids"]:
        raise ValueError("tokenizing the full exchange changed the prompt's tokens")
    labels = [IGNORE] * n_prompt + ids[n_prompt:]
    return ids, labels, text


def batch(loaded: Loaded, exchanges: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(user, answer) exchanges as one right-padded batch: ids, attention mask, labels (-100 off the answers)."""
    rows = [build(loaded, u, a) for u, a in exchanges]
    T = max(len(ids) for ids, _, _ in rows)
    pad = loaded.tokenizer.pad_token_id or 0
    ids = torch.tensor([i + [pad] * (T - len(i)) for i, _, _ in rows])  # (n, T)
    mask = torch.tensor([[1] * len(i) + [0] * (T - len(i)) for i, _, _ in rows])  # (n, T)
    labels = torch.tensor([lab + [IGNORE] * (T - len(lab)) for _, lab, _ in rows])  # (n, T)
    return ids, mask, labels


def per_token_loss(logits: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-log p(x_t | x_<t) for every t >= 1, aligned with the token it predicts: (T,), 0 at t = 0; and p: (T,)."""
    logp = torch.log_softmax(logits[:-1].float(), -1)  # (T-1, vocab): row t-1 predicts token t
    nll = -logp.gather(-1, ids[1:, None])[:, 0]  # (T-1,)
    zero = torch.zeros(1)
    return torch.cat([zero, nll]), torch.cat([zero, nll.neg().exp()])


def capture(loaded: Loaded, user: str, assistant: str, system: str | None = None) -> SftTrace:
    ids, labels, text = build(loaded, user, assistant, system)
    if len(ids) > MAX_TOKENS:
        raise ValueError(f"the exchange is {len(ids)} tokens; the limit is {MAX_TOKENS}")
    if all(x == IGNORE for x in labels[1:]):
        raise ValueError("the answer has no tokens to learn")
    x = torch.tensor([ids])  # (1, T)
    y = torch.tensor([labels])  # (1, T)
    with torch.no_grad():
        out = loaded.model(x, labels=y)
    nll, p = per_token_loss(out.logits[0], x[0], y[0])
    mask = (y[0] != IGNORE)
    mask[0] = False  # nothing predicts the first token
    loss = float(nll[mask].mean())
    tok = loaded.tokenizer
    return SftTrace(
        text=text, tokens=[tok.decode([i]) for i in ids], ids=np.array(ids), labels=np.array(labels),
        token_loss=nll.numpy().astype(np.float32), token_prob=p.numpy().astype(np.float32),
        predicted=[""] + [tok.decode([i]) for i in out.logits[0, :-1].argmax(-1).tolist()],  # aligned with targets
        loss=loss, reference_loss=float(out.loss), unmasked_loss=float(nll[1:].mean()),  # no mask: every token after the first
        meta=make_meta(loaded.name)).check()
