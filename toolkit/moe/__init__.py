"""Mixture of experts (slides "the MoE layer replaces the FFN", "a router picks k experts per token", "experts
specialise", "load balancing", "shared experts", "total vs active parameters", "the router learning").

    from toolkit import moe
    trace = moe.capture("balanced", "def mean(xs): return sum(xs) / len(xs)")   # MoeTrace of a committed run
    moe.figures.token_experts(trace, layer=0)

config: MoeConfig (model and training) and PRESETS; maths: the routing equations (route, balance_loss, z_loss,
aux_free_update) on tensors; model: the small instrumented MoE transformer; corpus, train, runs: offline training
and the committed runs; capture: RouteConfig and capture(), from our model or a transformers MoE model (Mixtral,
Qwen2/3-MoE, OLMoE, DeepSeek-V3); trace: MoeTrace; figures: one view per function; params: total vs active.
"""

from toolkit.moe import figures, params, runs
from toolkit.moe.capture import RouteConfig, capture
from toolkit.moe.config import MAX_EXPERTS, PRESETS, SCORES, MoeConfig
from toolkit.moe.maths import (
    aux_free_update,
    balance_loss,
    importance,
    mutual_information,
    route,
    scores,
    token_fraction,
    z_loss,
)
from toolkit.moe.model import MoeTransformer
from toolkit.moe.trace import MoeTrace

__all__ = [
    "capture",
    "RouteConfig",
    "MoeConfig",
    "PRESETS",
    "MAX_EXPERTS",
    "SCORES",
    "MoeTrace",
    "MoeTransformer",
    "figures",
    "params",
    "runs",
    "route",
    "scores",
    "importance",
    "token_fraction",
    "balance_loss",
    "z_loss",
    "aux_free_update",
    "mutual_information",
]
