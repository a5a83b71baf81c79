"""The MoE transformer: a nanoGPT-style decoder whose FFN in every block is a mixture-of-experts layer.

Slide "the MoE layer replaces the FFN": y = shared(x) + sum_{e in top-k} g_e(x) * E_e(x), with each expert a
SwiGLU MLP. Every MoE layer returns its router's decisions (a `Routing`) so nothing has to be hooked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from toolkit.moe import maths
from toolkit.moe.config import MoeConfig


@dataclass
class Routing:
    """One MoE layer's decisions for N = batch * time tokens."""

    logits: torch.Tensor  # (N, E)
    scores: torch.Tensor  # (N, E)
    experts: torch.Tensor  # (N, k)
    gates: torch.Tensor  # (N, k)
    routed_norm: torch.Tensor  # (N,) |routed output|
    shared_norm: torch.Tensor | None  # (N,) |shared output|, None without shared experts


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: MoeConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Experts(nn.Module):
    """n SwiGLU experts stored as stacked weights: w_gate, w_up (n, d, h), w_down (n, h, d)."""

    def __init__(self, n: int, d: int, h: int):
        super().__init__()
        self.w_gate = nn.Parameter(torch.randn(n, d, h) * d**-0.5)
        self.w_up = nn.Parameter(torch.randn(n, d, h) * d**-0.5)
        self.w_down = nn.Parameter(torch.randn(n, h, d) * h**-0.5 * 0.5)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        return (F.silu(x @ self.w_gate[e]) * (x @ self.w_up[e])) @ self.w_down[e]


class MoeLayer(nn.Module):
    def __init__(self, cfg: MoeConfig):
        super().__init__()
        self.cfg = cfg
        self.router = nn.Linear(cfg.d_model, cfg.n_experts, bias=False)
        nn.init.normal_(self.router.weight, std=0.02)
        self.register_buffer("bias", torch.zeros(cfg.n_experts))  # aux-loss-free selection bias
        self.experts = Experts(cfg.n_experts, cfg.d_model, cfg.expert_hidden)
        self.shared = Experts(1, cfg.d_model, cfg.expert_hidden * cfg.shared_experts) if cfg.shared_experts else None

    def forward(self, x: torch.Tensor, top_k: int | None = None) -> tuple[torch.Tensor, Routing]:
        B, T, C = x.shape
        flat = x.reshape(B * T, C)  # (N, d)
        logits = self.router(flat)  # (N, E)
        bias = self.bias if self.cfg.aux_free_rate > 0 else None
        s, experts, gates = maths.route(logits, top_k or self.cfg.top_k, self.cfg.score, self.cfg.renormalize, bias)
        routed = torch.zeros_like(flat)
        for e in range(self.cfg.n_experts):
            tok, slot = torch.where(experts == e)  # tokens that chose e, and in which of their k slots
            if tok.numel():
                routed.index_add_(0, tok, self.experts.expert(e, flat[tok]) * gates[tok, slot, None])
        out, shared_norm = routed, None
        if self.shared is not None:
            shared = self.shared.expert(0, flat)
            out, shared_norm = routed + shared, shared.detach().norm(dim=-1)
        info = Routing(logits, s, experts, gates, routed.detach().norm(dim=-1), shared_norm)
        return out.view(B, T, C), info


class Block(nn.Module):
    def __init__(self, cfg: MoeConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.moe = MoeLayer(cfg)

    def forward(self, x: torch.Tensor, top_k: int | None = None) -> tuple[torch.Tensor, Routing]:
        x = x + self.attn(self.ln1(x))
        y, info = self.moe(self.ln2(x), top_k)
        return x + y, info


class MoeTransformer(nn.Module):
    def __init__(self, cfg: MoeConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.block_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, idx: torch.Tensor, top_k: int | None = None) -> tuple[torch.Tensor, list[Routing]]:
        """idx (B, T) -> logits (B, T, vocab), one Routing per layer."""
        B, T = idx.shape
        if T > self.cfg.block_size:
            raise ValueError(f"{T} tokens exceed the context of {self.cfg.block_size}")
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, d)
        routings = []
        for block in self.blocks:
            x, info = block(x, top_k)
            routings.append(info)
        return self.ln_f(x) @ self.tok.weight.T, routings  # tied output head


def aux_losses(routings: list[Routing], score: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over layers of the balance loss and of the z-loss."""
    bal = torch.stack([maths.balance_loss(r.scores, r.experts, score) for r in routings]).mean()
    z = torch.stack([maths.z_loss(r.logits) for r in routings]).mean()
    return bal, z


def save(model: MoeTransformer, folder: str | Path, extra: dict | None = None) -> Path:
    """Checkpoint = config.json + weights.pt (float16 to keep the committed asset small)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.half() if v.is_floating_point() and not k.endswith("bias") else v for k, v in model.state_dict().items()
    }
    torch.save(state, folder / "weights.pt")
    (folder / "config.json").write_text(json.dumps({"config": model.cfg.to_dict(), **(extra or {})}, indent=1))
    return folder


def load(folder: str | Path) -> MoeTransformer:
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "weights.pt").is_file():
        raise FileNotFoundError(f"no MoE checkpoint in {folder} (expected config.json and weights.pt)")
    cfg = MoeConfig.from_dict(json.loads((folder / "config.json").read_text())["config"])
    model = MoeTransformer(cfg)
    state = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()
