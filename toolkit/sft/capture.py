"""SFT capture: one chat exchange through the real chat template and the model, the loss of every answer token.

Serves "SFT loss masking (-100)". The chat template turns the messages into one token sequence; as in TRL's
prompt-completion format, the answer is everything after the generation prompt (the answer text, <|im_end|> and
the newline the template adds). ``build`` and ``batch`` are also how LoRA and DPO turn exchanges into labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from toolkit import models, text
from toolkit.config import Config, check_budget, param
from toolkit.sft.maths import IGNORE, answer_mask, labels, per_token_loss
from toolkit.sft.trace import SftTrace
from toolkit.trace import make_meta

MAX_CHARS = 20_000  # the ceiling of max_chars: the demos' own text limit


class Exchange(NamedTuple):
    """One chat exchange: the user's message, the assistant's answer (the part learnt), an optional system prompt
    (None or empty: the template's default). Immutable; a plain ``(user, answer)`` tuple converts with ``of``."""

    user: str
    answer: str
    system: str | None = None

    @classmethod
    def of(cls, value: Exchange | tuple) -> Exchange:
        if isinstance(value, cls):
            return value
        if isinstance(value, str) or not isinstance(value, (tuple, list)) or not 2 <= len(value) <= 3:
            raise TypeError(f"expected an Exchange or a (user, answer[, system]) tuple, got {value!r:.80}")
        return cls(*value)


@dataclass(frozen=True)
class SftConfig(Config):
    max_tokens: int = param(
        text.MAX_TOKENS,
        "tokens the templated exchange may have; a longer one is refused (cutting it would cut the answer)",
        lo=2,
        hi=text.MAX_TOKENS,
        label="token limit",
    )
    max_chars: int = param(
        1500, "characters per message (user, answer, system)", lo=1, hi=MAX_CHARS, label="character limit"
    )


class Built(NamedTuple):
    """ids: the whole exchange's tokens; labels: -100 on the prompt, the ids on the answer; text: the template."""

    ids: list[int]
    labels: list[int]
    text: str


def build(model: models.Loaded | str, exchange: Exchange | tuple, max_tokens: int = text.MAX_TOKENS) -> Built:
    """Token ids of the whole exchange, the labels row (-100 on the prompt) and the templated text."""
    loaded = models.resolve(model)
    ex = Exchange.of(exchange)
    tok = loaded.tokenizer
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"{loaded.name} has no chat template")
    messages = [{"role": "system", "content": ex.system}] if ex.system else []
    messages.append({"role": "user", "content": ex.user})
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": ex.answer}], tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not render the prompt as a prefix of the full exchange")
    # The prompt and the answer are tokenised apart and joined, as TRL does for prompt-completion data: tokenised
    # whole, an answer that starts with spaces would merge with the template's "\n" and blur the boundary.
    prompt_ids = list(tok(prompt, add_special_tokens=False)["input_ids"])
    ids = prompt_ids + list(tok(full[len(prompt) :], add_special_tokens=False)["input_ids"])
    check_budget(len(ids), max_tokens, "tokens for the whole exchange", "Shorten the texts.")
    return Built(ids, labels(ids, len(prompt_ids)), full)


def batch(
    model: models.Loaded | str, exchanges: list[Exchange | tuple], max_tokens: int = text.MAX_TOKENS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exchanges as one right-padded batch: ids, attention mask, labels (-100 off the answers), each (n, T)."""
    loaded = models.resolve(model)
    rows = [build(loaded, ex, max_tokens) for ex in exchanges]
    T = max(len(r.ids) for r in rows)
    pad = loaded.tokenizer.pad_token_id or 0
    ids = torch.tensor([r.ids + [pad] * (T - len(r.ids)) for r in rows])  # (n, T)
    mask = torch.tensor([[1] * len(r.ids) + [0] * (T - len(r.ids)) for r in rows])  # (n, T)
    labs = torch.tensor([r.labels + [IGNORE] * (T - len(r.labels)) for r in rows])  # (n, T)
    return ids, mask, labs


def check_lengths(exchange: Exchange, max_chars: int) -> None:
    """ValueError naming the message that is longer than ``max_chars`` characters."""
    for name, value in (
        ("user message", exchange.user),
        ("assistant answer", exchange.answer),
        ("system prompt", exchange.system or ""),
    ):
        if not isinstance(value, str):
            raise ValueError(f"the {name} must be text, got {type(value).__name__}")
        if len(value) > max_chars:
            raise ValueError(f"the {name} is {len(value):,} characters; the limit is {max_chars:,}")


def capture(
    model: models.Loaded | str, exchange: Exchange | tuple, config: SftConfig | None = None, **options: Any
) -> SftTrace:
    """One forward pass of the templated exchange with its labels: the loss of each token, masked and not."""
    loaded = models.resolve(model)
    cfg = SftConfig.make(config, **options)
    ex = Exchange.of(exchange)
    check_lengths(ex, cfg.max_chars)
    built = build(loaded, ex, cfg.max_tokens)
    if all(x == IGNORE for x in built.labels[1:]):
        raise ValueError("the answer has no tokens to learn")
    x = torch.tensor([built.ids])  # (1, T)
    y = torch.tensor([built.labels])  # (1, T)
    with torch.no_grad():
        out = loaded.model(input_ids=x, labels=y)
    nll, p = per_token_loss(out.logits[0], x[0], y[0])  # (T,), (T,)
    mask = answer_mask(y[0])
    tok = loaded.tokenizer
    return SftTrace(
        text=built.text,
        tokens=text.display(tok, built.ids),
        ids=np.array(built.ids),
        labels=np.array(built.labels),
        token_loss=nll.numpy().astype(np.float32),
        token_prob=p.numpy().astype(np.float32),
        predicted=[""] + text.display(tok, out.logits[0, :-1].argmax(-1).tolist()),  # aligned with targets
        loss=float(nll[mask].mean()),
        reference_loss=float(out.loss),
        unmasked_loss=float(nll[1:].mean()),  # no mask: every token after the first
        meta=make_meta(loaded.name),
    ).check()
