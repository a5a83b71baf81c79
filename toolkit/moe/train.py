"""Train the MoE transformer offline and record the replay of "the router learning".

Loss = cross-entropy + balance_coef * L_bal + z_coef * L_z (layer means); with aux_free_rate > 0 the
DeepSeek-V3 selection bias is nudged after every step. Every `snapshot_every` steps the router is evaluated on
fixed held-out windows: per layer load, balance loss, mutual information between token class and top-1 expert
(and the same with shuffled assignments), and the top-1 expert of every byte of a probe text.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from toolkit.moe import corpus as corpus_mod
from toolkit.moe import maths
from toolkit.moe.config import MoeConfig
from toolkit.moe.model import MoeTransformer, aux_losses, save

PROBE = "def mean(xs):\n    return sum(xs) / len(xs)  # 42 items\nThe mean of a list is its sum divided by its length."
EVAL_WINDOWS = 16  # fixed held-out windows for snapshots and the final measure
SHUFFLES = 20


def specialisation(top1: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """I(token class; top-1 expert) in bits, and its mean over SHUFFLES random permutations of the experts."""
    rng = np.random.default_rng(seed)
    mi = maths.mutual_information(labels, top1)
    base = float(np.mean([maths.mutual_information(labels, rng.permutation(top1)) for _ in range(SHUFFLES)]))
    return mi, base


@torch.no_grad()
def evaluate(model: MoeTransformer, x: torch.Tensor, y: torch.Tensor, labels: np.ndarray) -> dict[str, Any]:
    """Router statistics on fixed windows: x, y (B, T), labels (B, T)."""
    logits, routings = model(x)
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
    cfg = model.cfg
    out: dict[str, Any] = {"lm_loss": ce, "load": [], "balance_loss": [], "mi": [], "mi_shuffled": []}
    for r in routings:
        f = maths.token_fraction(r.experts, cfg.n_experts) / r.experts.shape[-1]
        out["load"].append(f.tolist())
        out["balance_loss"].append(float(maths.balance_loss(r.scores, r.experts, cfg.score)))
        mi, base = specialisation(r.experts[:, 0].numpy(), labels.ravel())
        out["mi"].append(mi)
        out["mi_shuffled"].append(base)
    return out


@torch.no_grad()
def probe_top1(model: MoeTransformer, text: str = PROBE) -> list[list[int]]:
    _, routings = model(torch.tensor([corpus_mod.encode(text)[: model.cfg.block_size]]))
    return [r.experts[:, 0].tolist() for r in routings]


def train(
    cfg: MoeConfig, out: str | Path | None = None, label: str = "", progress: bool = True, threads: int | None = 1
) -> tuple[MoeTransformer, dict[str, Any]]:
    """Train from scratch with cfg's seed; save checkpoint + replay.json into `out` when given."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = corpus_mod.build()
    ex, ey, elab = data.batch(np.random.default_rng(12345), EVAL_WINDOWS, cfg.block_size, train=False)
    ex, ey = torch.from_numpy(ex), torch.from_numpy(ey)
    model = MoeTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.1, 1 - s / cfg.steps))
    replay: dict[str, Any] = {
        "label": label,
        "config": cfg.to_dict(),
        "probe": PROBE,
        "classes": corpus_mod.CLASSES,
        "steps": [],
        "train_loss": [],
        "snapshots": [],
    }

    def snapshot(step: int) -> None:
        model.eval()
        rec = evaluate(model, ex, ey, elab)
        rec["step"], rec["probe_top1"] = step, probe_top1(model)
        replay["snapshots"].append(rec)
        model.train()

    t0, tokens = time.perf_counter(), 0
    snapshot(0)
    bar = tqdm(range(1, cfg.steps + 1), desc=f"train-moe {label}".strip(), disable=not progress, mininterval=1.0)
    for step in bar:
        x, y, _ = data.batch(rng, cfg.batch_size, cfg.block_size)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        logits, routings = model(x)
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        bal, z = aux_losses(routings, cfg.score)
        loss = ce + cfg.balance_coef * bal + cfg.z_coef * z
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if cfg.aux_free_rate > 0:
            for block, r in zip(model.blocks, routings):
                block.moe.bias.copy_(maths.aux_free_update(block.moe.bias, r.experts, cfg.aux_free_rate))
        tokens += x.numel()
        replay["steps"].append(step)
        replay["train_loss"].append({"ce": ce.item(), "balance": bal.item(), "z": z.item()})
        bar.set_postfix(ce=f"{ce.item():.3f}", bal=f"{bal.item():.3f}")
        if step % cfg.snapshot_every == 0 or step == cfg.steps:
            snapshot(step)
    seconds = time.perf_counter() - t0
    model.eval()
    final = replay["snapshots"][-1]
    replay.update(
        seconds=seconds,
        tokens_per_s=tokens / seconds,
        torch_threads=torch.get_num_threads(),
        final={k: final[k] for k in ("lm_loss", "load", "balance_loss", "mi", "mi_shuffled")},
    )
    if out is not None:
        out = Path(out)
        save(model, out, {"label": label, "final": replay["final"]})
        (out / "replay.json").write_text(json.dumps(_rounded(replay), separators=(",", ":")))
    return model, replay


def _rounded(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 5)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x
