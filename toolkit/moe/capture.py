"""MoeTrace from our MoE transformer or from a transformers MoE model (Mixtral, Qwen2/3-MoE, OLMoE, DeepSeek-V3).

Per layer and token: router logits, scores, chosen experts, gate weights; per layer: load (share of routed
(token, slot) pairs, sums to 1; Mixtral's f_i = k * load), importance P_i and the balance loss N * sum f_i P_i.
"""
from __future__ import annotations

import numpy as np
import torch

from toolkit.moe import corpus, maths
from toolkit.traces import MoeTrace, make_meta


def layer_stats(s: torch.Tensor, experts: torch.Tensor, score: str) -> tuple[np.ndarray, np.ndarray, float]:
    """load (E,) summing to 1, importance P_i (E,), balance loss, for one layer's routing of N tokens."""
    n_experts, k = s.shape[-1], experts.shape[-1]
    f = maths.token_fraction(experts, n_experts)  # sums to k
    return (f / k).numpy(), maths.importance(s, score).numpy(), float(maths.balance_loss(s, experts, score))


def _trace(tokens, logits, s, experts, gates, score, k, meta, shared=None, routed=None, bias=None) -> MoeTrace:
    loads, imps, losses = zip(*(layer_stats(s[i], experts[i], score) for i in range(len(s))))
    stack = lambda xs: np.stack([x.detach().float().numpy() for x in xs]).astype(np.float32)  # noqa: E731
    return MoeTrace(
        tokens=tokens, router_logits=stack(logits), probs=stack(s),
        experts=np.stack([e.numpy() for e in experts]).astype(np.int64), gates=stack(gates),
        expert_load=np.stack(loads).astype(np.float32), importance=np.stack(imps).astype(np.float32),
        balance_loss=np.array(losses, dtype=np.float32), top_k=k, score=score, meta=meta,
        shared_norm=None if shared is None else stack(shared), routed_norm=None if routed is None else stack(routed),
        bias=None if bias is None else stack(bias),
    ).check()


@torch.no_grad()
def trace(model, text: str, top_k: int | None = None, model_name: str = "moe") -> MoeTrace:
    """Route `text` (bytes, cut to the context length) through our MoE transformer."""
    ids = corpus.encode(text)[: model.cfg.block_size]
    if not ids:
        raise ValueError("empty text")
    _, routings = model(torch.tensor([ids]), top_k)
    cfg = model.cfg
    shared = [r.shared_norm for r in routings] if cfg.shared_experts else None
    bias = [b.moe.bias for b in model.blocks] if cfg.aux_free_rate > 0 else None
    classes = corpus.classify(bytes(ids), corpus.guess_source(text)).tolist()  # token class per byte
    meta = make_meta(model_name, cfg.seed, config=cfg.to_dict(), classes=classes)
    return _trace(corpus.token_strings(ids), [r.logits for r in routings], [r.scores for r in routings],
                  [r.experts for r in routings], [r.gates for r in routings], cfg.score, top_k or cfg.top_k, meta,
                  shared, [r.routed_norm for r in routings], bias)


def _router_class(model) -> type:
    base = getattr(model, "model", model)
    recorder = getattr(base, "_can_record_outputs", {}).get("router_logits")
    if recorder is None or getattr(recorder, "target_class", None) is None:
        raise ValueError(f"{type(model).__name__} does not record router logits (not a transformers MoE model?)")
    return recorder.target_class


@torch.no_grad()
def hf_trace(model, input_ids: torch.Tensor, tokens: list[str] | None = None, model_name: str = "") -> MoeTrace:
    """MoeTrace from a transformers MoE model: every router returns (logits, gates, experts); we hook them and
    check that the logits equal what the model itself returns through `output_router_logits=True`."""
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"hf_trace takes one text: input_ids of shape (1, T), got {tuple(input_ids.shape)}")
    router_cls = _router_class(model)
    routers = [m for m in model.modules() if isinstance(m, router_cls)]
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    hooks = [r.register_forward_hook(lambda mod, args, out: seen.append(tuple(t.detach() for t in out[:3])))
             for r in routers]
    try:  # hooks must be removed even when the forward fails
        out = model(input_ids, output_router_logits=True)
    finally:
        for h in hooks:
            h.remove()
    returned = [t.detach().float() for t in out.router_logits]
    if len(returned) != len(seen) or not all(torch.allclose(a.float(), b) for (a, _, _), b in zip(seen, returned)):
        raise RuntimeError("router logits from hooks differ from output_router_logits")
    cfg = model.config
    score = "sigmoid" if "deepseek" in cfg.model_type else "softmax"
    logits = [a.float() for a, _, _ in seen]
    k = seen[0][2].shape[-1]
    ids = input_ids[0].tolist()
    meta = make_meta(model_name or cfg.model_type, None, model_type=cfg.model_type)
    return _trace(tokens or [str(i) for i in ids], logits, [maths.scores(x, score) for x in logits],
                  [e.long() for _, _, e in seen], [g.float() for _, g, _ in seen], score, k, meta)
