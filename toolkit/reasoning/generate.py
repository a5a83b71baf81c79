"""Chat prompts and batched generation, shared by the reasoning, agent and context concepts.

Prompts go through the model's own chat template; an assistant turn can be started for the model (``prefill``,
e.g. "The answer is"). Batches are left-padded by hand (the shared tokenizer is never reconfigured) and run with
``model.generate``: greedy, or plain temperature sampling (top-k and top-p off) under a torch seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from toolkit import models

Message = dict[str, str]


def chat_ids(loaded: models.Loaded, messages: Sequence[Message], prefill: str = "") -> list[int]:
    """Token ids of ``messages`` in the chat template, the assistant's turn opened (and ``prefill`` written in it)."""
    tok = loaded.tokenizer
    text = tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False) + prefill
    return list(tok(text, add_special_tokens=False)["input_ids"])


def generate(
    loaded: models.Loaded,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    num_return_sequences: int = 1,
    batch_size: int = 16,
    stop: str | None = None,
) -> list[str]:
    """Continuations of each prompt (token ids), decoded without special tokens; ``num_return_sequences`` per
    prompt, in order (prompt 0's samples, then prompt 1's...). temperature 0: greedy. Seed with torch first.
    ``stop``: each continuation is cut at its first occurrence of this text (kept out)."""
    tok, model = loaded.tokenizer, loaded.model
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in chunk])  # (b, T) left-padded
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])  # (b, T)
        sample = temperature > 0
        with torch.no_grad():
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_k=0 if sample else None,
                top_p=1.0 if sample else None,
                num_return_sequences=num_return_sequences,
                pad_token_id=pad,
            )  # (b * n, T + new)
        for row in gen[:, width:]:
            text = tok.decode(row, skip_special_tokens=True)
            out.append(text.split(stop, 1)[0] if stop else text)
    return out
