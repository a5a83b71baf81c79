"""MoE capture: one text through a mixture-of-experts model, every router's decisions as a MoeTrace.

Serves "a router picks k experts per token", "experts specialise", "load balancing" and "shared experts".
One signature, two paths:
  - our MoeTransformer (a committed run by name, "balanced", "no_balance", "aux_free", or the model itself):
    every MoE layer returns its ``Routing``, so nothing is hooked; ``top_k`` may differ from the trained k.
  - a transformers MoE model (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V3), as a ``models.Loaded``, a model
    name, or the bare model with token ids: each router returns (logits, gates, experts); they are recorded with
    ``toolkit.hooks.Hooks`` and the logits are checked equal to what the model returns through
    ``output_router_logits=True``.
Per layer and token: router logits, scores, chosen experts, gate weights; per layer: load (share of routed
(token, slot) pairs, sums to 1; Mixtral's f_i = k * load), importance P_i and the balance loss N * sum f_i P_i.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import models, text
from toolkit.config import Config, ConfigError, param
from toolkit.hooks import Hooks
from toolkit.moe import corpus, maths, runs
from toolkit.moe.model import MoeTransformer
from toolkit.moe.trace import MoeTrace
from toolkit.trace import make_meta

Text = str | Sequence[int] | torch.Tensor  # a text, or its token ids: a list or a (1, T) tensor


@dataclass(frozen=True)
class RouteConfig(Config):
    top_k: int | None = param(
        None,
        "experts per token, our MoE transformer only (checked against its MoeConfig: 1 to n_experts); None: as trained",
        label="top-k",
    )
    max_tokens: int = param(
        text.DEFAULT_TOKENS,
        "tokens routed; a longer text is cut (the trace says so). Our "
        "model also stops at its context, block_size bytes",
        lo=1,
        hi=text.MAX_TOKENS,
        label="token limit",
    )


def capture(
    model: MoeTransformer | models.Loaded | torch.nn.Module | str,
    prompt: Text,
    config: RouteConfig | None = None,
    **options: Any,
) -> MoeTrace:
    """Route ``prompt`` through ``model`` and return every MoE layer's decisions as a checked trace.

    ``model``: a committed run name, our MoeTransformer, a transformers MoE model (then ``prompt`` must be token
    ids: a bare model has no tokenizer), a ``models.Loaded`` or any model name ``models.load`` knows.
    """
    cfg = RouteConfig.make(config, **options)
    if isinstance(model, str) and model in runs.RUNS:
        return _ours(runs.model(model), prompt, cfg, f"moe/{model}")
    if isinstance(model, MoeTransformer):
        return _ours(model, prompt, cfg, "moe")
    if isinstance(model, torch.nn.Module):
        return _hf(model, None, prompt, cfg, model.config.model_type)
    loaded = models.resolve(model)
    if isinstance(loaded.model, MoeTransformer):
        return _ours(loaded.model, prompt, cfg, loaded.name)
    return _hf(loaded.model, loaded.tokenizer, prompt, cfg, loaded.name)


def _ids(prompt: Text, tokenizer: Any, limit: int) -> text.Encoded:
    """Token ids cut to ``limit`` through ``text.encode`` (the one token policy), or the given ids cut alike."""
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ValueError(
                "a bare transformers model has no tokenizer: pass a models.Loaded (or a model name), "
                "or the text's token ids"
            )
        return text.encode(tokenizer, prompt, limit)
    ids = torch.as_tensor(prompt)
    if ids.ndim == 2:
        if ids.shape[0] != 1:
            raise ValueError(f"capture takes one text: token ids of shape (1, T), got {tuple(ids.shape)}")
        ids = ids[0]  # (1, T) -> (T,)
    if ids.ndim != 1 or not len(ids):
        raise ValueError(f"token ids must be a non-empty list or a (1, T) tensor, got shape {tuple(ids.shape)}")
    ids = ids.tolist()
    return text.Encoded(ids[: text.check_limit(limit)], len(ids))


def _layer_stats(s: torch.Tensor, experts: torch.Tensor, score: str) -> tuple[np.ndarray, np.ndarray, float]:
    """load (E,) summing to 1, importance P_i (E,), balance loss, for one layer's routing of N tokens."""
    n_experts, k = s.shape[-1], experts.shape[-1]
    f = maths.token_fraction(experts, n_experts)  # sums to k
    return (f / k).numpy(), maths.importance(s, score).numpy(), float(maths.balance_loss(s, experts, score))


def _stack(xs: list[torch.Tensor] | None) -> np.ndarray | None:
    """One tensor per layer -> (layer, ...) float32."""
    return None if xs is None else np.stack([x.detach().float().numpy() for x in xs]).astype(np.float32)


def _trace(tokens, logits, s, experts, gates, score, k, meta, shared=None, routed=None, bias=None) -> MoeTrace:
    loads, imps, losses = zip(*(_layer_stats(s[i], experts[i], score) for i in range(len(s))))
    return MoeTrace(
        tokens=tokens,
        router_logits=_stack(logits),
        probs=_stack(s),
        experts=np.stack([e.numpy() for e in experts]).astype(np.int64),
        gates=_stack(gates),
        expert_load=np.stack(loads).astype(np.float32),
        importance=np.stack(imps).astype(np.float32),
        balance_loss=np.array(losses, dtype=np.float32),
        top_k=k,
        score=score,
        meta=meta,
        shared_norm=_stack(shared),
        routed_norm=_stack(routed),
        bias=_stack(bias),
    ).check()


@torch.no_grad()
def _ours(model: MoeTransformer, prompt: Text, cfg: RouteConfig, name: str) -> MoeTrace:
    """Our transformer: its layers return their Routing; the text's bytes are the tokens (cut to the context)."""
    mc = model.cfg if cfg.top_k is None else model.cfg.replace(top_k=cfg.top_k)  # ConfigError unless 1..n_experts
    enc = _ids(prompt, corpus.BYTES, min(cfg.max_tokens, mc.block_size, text.MAX_TOKENS))
    if not all(0 <= i < mc.vocab_size for i in enc.ids):
        raise ValueError(f"token ids must lie in 0..{mc.vocab_size - 1} (our model reads bytes)")
    _, routings = model(torch.tensor([enc.ids]), mc.top_k)
    raw = bytes(enc.ids)
    source = corpus.guess_source(prompt if isinstance(prompt, str) else raw.decode("utf-8", errors="replace"))
    meta = make_meta(
        name,
        mc.seed,
        config=model.cfg.to_dict(),
        classes=corpus.classify(raw, source).tolist(),
        n_tokens_in_text=enc.n_total,
    )
    shared = [r.shared_norm for r in routings] if mc.shared_experts else None
    bias = [b.moe.bias for b in model.blocks] if mc.aux_free_rate > 0 else None
    return _trace(
        corpus.token_strings(enc.ids),
        [r.logits for r in routings],
        [r.scores for r in routings],
        [r.experts for r in routings],
        [r.gates for r in routings],
        mc.score,
        mc.top_k,
        meta,
        shared,
        [r.routed_norm for r in routings],
        bias,
    )


def _routers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The router modules, in layer order: the class transformers itself records ``router_logits`` from."""
    base = getattr(model, "model", model)
    recorder = getattr(base, "_can_record_outputs", None) or {}
    target = getattr(recorder.get("router_logits"), "target_class", None)
    if target is None:
        raise ValueError(f"{type(model).__name__} does not record router logits (not a transformers MoE model?)")
    return [m for m in model.modules() if isinstance(m, target)]


def _decisions(module: torch.nn.Module, args: tuple, kwargs: dict, out: Any) -> tuple[torch.Tensor, ...]:
    """A transformers router's output: (logits (N, E), gates (N, k), experts (N, k))."""
    return tuple(t.detach() for t in out[:3])


@torch.no_grad()
def _hf(model: torch.nn.Module, tokenizer: Any, prompt: Text, cfg: RouteConfig, name: str) -> MoeTrace:
    if cfg.top_k is not None:
        raise ConfigError(
            "top_k applies to our MoE transformer only: a transformers model routes with its own num_experts_per_tok"
        )
    routers = _routers(model)
    enc = _ids(prompt, tokenizer, cfg.max_tokens)
    with Hooks() as h:
        for i, router in enumerate(routers):
            h.output(f"{i}.router", router, _decisions)
        out = model(input_ids=torch.tensor([enc.ids]), output_router_logits=True)
    if not all(f"{i}.router" in h and len(h[f"{i}.router"]) == 1 for i in range(len(routers))):
        raise RuntimeError("every router must run exactly once per forward pass")
    seen = [h[f"{i}.router"][0] for i in range(len(routers))]
    returned = [t.detach().float() for t in out.router_logits]
    if len(returned) != len(seen) or not all(torch.allclose(a.float(), b) for (a, _, _), b in zip(seen, returned)):
        raise RuntimeError("router logits from hooks differ from output_router_logits")
    model_type = model.config.model_type
    score = "sigmoid" if "deepseek" in model_type else "softmax"
    logits = [a.float() for a, _, _ in seen]
    bias = [getattr(r, "e_score_correction_bias", None) for r in routers]  # DeepSeek-V3's selection bias
    tokens = text.display(tokenizer, enc.ids) if tokenizer is not None else [str(i) for i in enc.ids]
    meta = make_meta(name, None, model_type=model_type, n_tokens_in_text=enc.n_total)
    return _trace(
        tokens,
        logits,
        [maths.scores(x, score) for x in logits],
        [e.long() for _, _, e in seen],
        [g.float() for _, g, _ in seen],
        score,
        seen[0][2].shape[-1],
        meta,
        bias=bias if all(b is not None for b in bias) else None,
    )
