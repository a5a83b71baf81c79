"""LoRA and QLoRA: notes on the low-rank delta, rank r, scaling alpha, q/v projections, quantisation.

LoRA freezes a weight W (out, in) and learns W' = W + (alpha / r) * B A with B (out, r) = 0 at start and
A (r, in) random, so the update has rank <= r and costs r * (in + out) parameters instead of in * out.
Merging folds (alpha / r) B A into W: the same outputs, no extra cost at inference.

QLoRA stores the frozen W in 4 bits. Quantisation here is blockwise absmax: each block of weights shares one
scale s = max|w| / q_max and stores round(w / s); NF4 instead rounds w / max|w| to the nearest of 16 levels
placed at normal quantiles (QLoRA's codebook). Memory counts the codes plus one fp32 scale per block.

Never touches the shared model: training runs on ``twin(model)``, new modules that share the frozen weight
tensors (no copy) and are thrown away afterwards; merging uses peft's safe merge (a new tensor, not W += ...).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from toolkit.models import Loaded
from toolkit.sft import batch
from toolkit.traces import LoraTrace, QuantTrace, make_meta

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RANKS = (1, 2, 4, 8, 16, 32, 64)
MAX_STEPS = 20
# The tiny bundled example: a fact the base model cannot know, so a few steps visibly lower the loss.
EXAMPLE = [
    ("What is the name of the course mascot?", "The course mascot is a llama called Lora."),
    ("Who is Lora?", "Lora is the llama that is the mascot of the course."),
]

# QLoRA's NormalFloat4 levels (Dettmers et al. 2023, appendix E; bitsandbytes' NF4 table).
NF4 = torch.tensor([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                    0.7229568362236023, 1.0])
SCHEMES = {"int8": 8, "int4": 4, "nf4": 4}


def twin(model: torch.nn.Module) -> torch.nn.Module:
    """New module objects over the same weight tensors (no copy): safe to wrap with peft, then discard."""
    with torch.device("meta"):
        other = type(model)(model.config)
    other.load_state_dict(model.state_dict(), assign=True)
    for name, buf in model.named_buffers():  # non-persistent buffers (RoPE inv_freq) are not in state_dict
        owner, _, leaf = name.rpartition(".")
        other.get_submodule(owner).register_buffer(leaf, buf, persistent=False)
    other.tie_weights()
    other.generation_config = model.generation_config
    return other.eval()


def lora_config(r: int, alpha: float, targets: list[str]):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, bias="none",
                      task_type="CAUSAL_LM")


def count(loaded: Loaded, r: int, targets: list[str]) -> tuple[int, int]:
    """(trainable, frozen) parameters of peft's LoRA on this architecture; built on the meta device (no memory)."""
    from peft import get_peft_model

    with torch.device("meta"):
        skeleton = type(loaded.model)(loaded.config)
    peft_model = get_peft_model(skeleton, lora_config(r, 2 * r, targets))
    trainable, total = peft_model.get_nb_trainable_parameters()
    return int(trainable), int(total - trainable)


def counts(loaded: Loaded, targets: list[str], ranks=RANKS) -> list[dict]:
    """Rows {"r", "trainable", "frozen"}: peft's count at r = 1, times r (LoRA's size is linear in r)."""
    one, frozen = _count_cached(loaded.name, loaded, tuple(sorted(targets)))
    return [{"r": r, "trainable": r * one, "frozen": frozen} for r in ranks]


_counted: dict = {}


def _count_cached(name: str, loaded: Loaded, targets: tuple[str, ...]) -> tuple[int, int]:
    key = (name, targets)
    if key not in _counted:
        _counted[key] = count(loaded, 1, list(targets))
    return _counted[key]


def expected_count(loaded: Loaded, r: int, targets: list[str]) -> int:
    """r * (in + out) for every targeted Linear: what the formula says peft will add."""
    return sum(r * (m.in_features + m.out_features) for n, m in loaded.model.named_modules()
               if isinstance(m, torch.nn.Linear) and n.rpartition(".")[2] in targets)


def finetune(loaded: Loaded, r: int = 8, alpha: float = 16, targets=("q_proj", "v_proj"), steps: int = 4,
             lr: float = 3e-3, layer: int = 0, seed: int = 0) -> LoraTrace:
    """A few AdamW steps of LoRA on the bundled example, then the spectrum of the learnt delta of one layer."""
    from peft import get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(twin(loaded.model), lora_config(r, alpha, list(targets)))
    ids, mask, labels = batch(loaded, EXAMPLE)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    losses, t0 = [], time.perf_counter()
    peft_model.train()
    for _ in range(steps):
        loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    peft_model.eval()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        final = float(peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss)
    name = _module_in_layer(peft_model, layer, targets[0])
    mod = peft_model.get_submodule(name)
    with torch.no_grad():
        delta = mod.lora_B["default"].weight @ mod.lora_A["default"].weight * mod.scaling["default"]  # (out, in)
        sv_delta = torch.linalg.svdvals(delta)
        sv_weight = torch.linalg.svdvals(mod.base_layer.weight)
        unmerged = peft_model(input_ids=ids, attention_mask=mask).logits
        merged_model = peft_model.merge_and_unload(safe_merge=True)  # new tensors; the shared W is untouched
        merged = merged_model(input_ids=ids, attention_mask=mask).logits
    trainable, frozen = count(loaded, r, list(targets))
    return LoraTrace(
        r=r, alpha=float(alpha), targets=list(targets), module=name.replace("base_model.model.", ""),
        losses=np.array(losses + [final], dtype=np.float32), sv_delta=sv_delta.numpy().astype(np.float32),
        sv_weight=sv_weight.numpy().astype(np.float32), trainable=trainable, frozen=frozen,
        merge_max_diff=float((merged - unmerged).abs().max()), seconds=seconds,
        meta=make_meta(loaded.name, seed=seed, lr=lr, steps=steps)).check()


def _module_in_layer(model: torch.nn.Module, layer: int, target: str) -> str:
    for name, _ in model.named_modules():
        if name.endswith(f"layers.{layer}.self_attn.{target}") or name.endswith(f"layers.{layer}.mlp.{target}"):
            return name
    raise ValueError(f"no module {target!r} in layer {layer}")


# ---- quantisation -------------------------------------------------------------------------------------------

def quantize(w: torch.Tensor, scheme: str = "int8", block: int = 64) -> tuple[torch.Tensor, int]:
    """Quantise then dequantise ``w`` blockwise (int8: one block per row). Returns (w_hat, bytes stored)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    flat = w.detach().float()
    if scheme == "int8":
        blocks = flat.reshape(flat.shape[0], -1)  # (out, in): one scale per output row
    else:
        if flat.numel() % block:
            raise ValueError(f"{flat.numel()} weights do not split into blocks of {block}")
        blocks = flat.reshape(-1, block)  # (n_blocks, block)
    absmax = blocks.abs().amax(-1, keepdim=True).clamp(min=1e-12)  # (n_blocks, 1)
    if scheme == "nf4":
        codes = (blocks / absmax).unsqueeze(-1).sub(NF4).abs().argmin(-1)  # (n_blocks, block) nearest level
        w_hat = NF4[codes] * absmax
    else:
        qmax = 2 ** (SCHEMES[scheme] - 1) - 1  # 127 or 7 (symmetric)
        scale = absmax / qmax
        w_hat = torch.round(blocks / scale).clamp(-qmax, qmax) * scale
    stored = flat.numel() * SCHEMES[scheme] // 8 + blocks.shape[0] * 4
    return w_hat.reshape(w.shape), stored


def quant_trace(loaded: Loaded, module: str = "model.layers.0.self_attn.q_proj", scheme: str = "int8",
                block: int = 64, bins: int = 60) -> QuantTrace:
    try:
        w = loaded.model.get_submodule(module).weight.detach()
    except AttributeError:
        raise ValueError(f"{loaded.name} has no module {module!r}") from None
    w_hat, stored = quantize(w, scheme, block)
    err = (w_hat - w.float()).flatten().numpy()
    counts, edges = np.histogram(err, bins=bins)
    return QuantTrace(module=module, scheme=scheme, block=block, shape=list(w.shape), counts=counts, edges=edges,
                      fp32_bytes=w.numel() * 4, bytes=stored, max_abs_error=float(np.abs(err).max()),
                      rel_error=float(np.linalg.norm(err) / np.linalg.norm(w.float().numpy())),
                      meta=make_meta(loaded.name)).check()
