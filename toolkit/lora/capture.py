"""LoRA capture: peft's parameter counts, a few real LoRA steps, one weight quantised (slides "LoRA", "QLoRA").

Never touches the shared model: training runs on ``twin(model)``, new modules that share the frozen weight
tensors (no copy) and are thrown away afterwards; merging uses peft's safe merge (a new tensor, not W += ...).
Counting builds the model on the meta device (no memory). Every entry point takes a model (a Loaded or a name),
its inputs, then a ``LoraConfig`` / ``QuantConfig`` and/or its fields as keywords.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, turns
from toolkit.config import Config, param
from toolkit.lora.maths import SCHEMES, lora_parameters, quantize
from toolkit.lora.trace import LoraTrace, QuantTrace
from toolkit.sft import Exchange, batch
from toolkit.trace import make_meta

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RANKS = (1, 2, 4, 8, 16, 32, 64)  # the ranks the parameter figure shows
MAX_STEPS = 20
DEFAULT_MODULE = "model.layers.0.self_attn.q_proj"
# The tiny bundled example: a fact the base model cannot know, so a few steps visibly lower the loss.
EXAMPLE = (
    Exchange("What is the name of the course mascot?", "The course mascot is a llama called Lora."),
    Exchange("Who is Lora?", "Lora is the llama that is the mascot of the course."),
)


@dataclass(frozen=True)
class LoraConfig(Config):
    r: int = param(8, "rank of the update B A", lo=1, hi=max(RANKS), step=1, label="rank r")
    alpha: float = param(16.0, "scaling α: the update is (α / r) · B A", lo=0, hi=1024, open_lo=True, label="alpha")
    targets: tuple[str, ...] = param(
        ("q_proj", "v_proj"), "the Linear layers that get an adapter", choices=TARGETS, label="target modules"
    )
    steps: int = param(4, "AdamW steps on the example", lo=1, hi=MAX_STEPS, step=1, label="steps")
    lr: float = param(3e-3, "AdamW learning rate", lo=0, hi=1, open_lo=True, label="learning rate")
    layer: int = param(
        0, "the layer whose ΔW spectrum is shown (below the model's layer count)", lo=0, label="layer to inspect"
    )
    seed: int = param(0, "torch seed: A's random start", lo=0, hi=2**32 - 1)

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):  # "q_proj,v_proj"
            object.__setattr__(self, "targets", tuple(t.strip() for t in self.targets.split(",") if t.strip()))
        elif isinstance(self.targets, list):
            object.__setattr__(self, "targets", tuple(self.targets))
        super().__post_init__()

    def problems(self) -> list[str]:
        if not self.targets:
            return ["choose at least one target module (q_proj and v_proj are the classic choice)"]
        return []


@dataclass(frozen=True)
class QuantConfig(Config):
    scheme: str = param("int8", "storage of the frozen weight", choices=tuple(SCHEMES), label="scheme")
    block: int = param(64, "weights sharing one scale (int4, nf4; int8 has one per output row)", lo=2, hi=4096)
    bins: int = param(60, "bins of the error histogram", lo=2, hi=1000)


def twin(model: models.Loaded | str | torch.nn.Module, training: bool = False) -> torch.nn.Module:
    """New module objects over the same weight tensors (no copy): safe to wrap with peft, then discard.

    ``training``: a twin to train, with memory kept low for a shared server. Its attention is PyTorch's SDPA (the
    shared model's eager attention keeps every layer's probabilities for the backward pass: 0.4 GB for a DPO pair of
    500 tokens), and in train mode each block's activations are recomputed in the backward pass rather than kept
    (activation checkpointing). Same values as the shared model's to float rounding; a DPO step at its limits
    peaked at +0.7 GB instead of +2 GB (README: what DPO's log-probs and the gradient buffers took off since)."""
    if not isinstance(model, torch.nn.Module):
        model = models.resolve(model).model
    config = model.config
    if training:
        config = copy.deepcopy(config)
        config._attn_implementation = "sdpa"  # this twin's modules only: the shared model stays eager
        config.use_cache = False  # nothing to cache while training (and checkpointing cannot keep one)
    with torch.device("meta"):
        other = type(model)(config)
    other.load_state_dict(model.state_dict(), assign=True)
    for name, buf in model.named_buffers():  # non-persistent buffers (RoPE inv_freq) are not in state_dict
        owner, _, leaf = name.rpartition(".")
        other.get_submodule(owner).register_buffer(leaf, buf, persistent=False)
    other.tie_weights()
    other.generation_config = model.generation_config
    if training:
        other.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    turns.between_layers(other)  # new modules: the shared model's hooks are not on them
    return other.eval()


def peft_config(config: LoraConfig | None = None, **options: Any):
    """peft's LoraConfig for ours: no dropout, no bias, causal LM."""
    from peft import LoraConfig as PeftLoraConfig

    cfg = LoraConfig.make(config, **options)
    return PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        target_modules=list(cfg.targets),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )


def count(model: models.Loaded | str, config: LoraConfig | None = None, **options: Any) -> tuple[int, int]:
    """(trainable, frozen) parameters of peft's LoRA on this architecture; built on the meta device (no memory)."""
    from peft import get_peft_model

    loaded = models.resolve(model)
    cfg = LoraConfig.make(config, **options)
    with torch.device("meta"):
        skeleton = type(loaded.model)(loaded.config)
    trainable, total = get_peft_model(skeleton, peft_config(cfg)).get_nb_trainable_parameters()
    return int(trainable), int(total - trainable)


_counted: dict[tuple[str, tuple[str, ...]], tuple[int, int]] = {}


def counts(
    model: models.Loaded | str, config: LoraConfig | None = None, *, ranks: tuple[int, ...] = RANKS, **options: Any
) -> list[dict]:
    """Rows {"r", "trainable", "frozen"} for the config's targets: peft's count at r = 1, times r (LoRA's size is
    linear in r). Cached per model and targets."""
    loaded = models.resolve(model)
    cfg = LoraConfig.make(config, **options)
    key = (loaded.name, tuple(sorted(cfg.targets)))
    if key not in _counted:
        _counted[key] = count(loaded, cfg, r=1)
    one, frozen = _counted[key]
    return [{"r": r, "trainable": r * one, "frozen": frozen} for r in ranks]


def expected_count(model: models.Loaded | str, config: LoraConfig | None = None, **options: Any) -> int:
    """r * (in + out) for every targeted Linear: what the formula says peft will add."""
    loaded = models.resolve(model)
    cfg = LoraConfig.make(config, **options)
    return sum(
        lora_parameters(cfg.r, m.in_features, m.out_features)
        for n, m in loaded.model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.rpartition(".")[2] in cfg.targets
    )


def finetune(
    model: models.Loaded | str,
    exchanges: tuple[Exchange, ...] | list = EXAMPLE,
    config: LoraConfig | None = None,
    **options: Any,
) -> LoraTrace:
    """A few AdamW steps of LoRA on ``exchanges``, then the spectrum of the learnt delta of one layer."""
    loaded = models.resolve(model)
    cfg = LoraConfig.make(config, **options)
    n_layers = arch.of(loaded).layers
    if cfg.layer >= n_layers:
        raise ValueError(f"layer must be between 0 and {n_layers - 1} for {loaded.name}, got {cfg.layer}")
    ids, mask, labels = batch(loaded, list(exchanges))  # (n, T) each
    work = turns.stopwatch()  # work, not pauses for a waiting request
    peft_model, losses = _train(loaded, ids, mask, labels, cfg)
    seconds = work()
    with torch.no_grad():
        final = float(peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss)
    name = _module_in_layer(peft_model, cfg.layer, cfg.targets[0])
    mod = peft_model.get_submodule(name)
    with torch.no_grad():
        delta = mod.lora_B["default"].weight @ mod.lora_A["default"].weight * mod.scaling["default"]  # (out, in)
        sv_delta = torch.linalg.svdvals(delta)
        sv_weight = torch.linalg.svdvals(mod.base_layer.weight)
        unmerged = peft_model(input_ids=ids, attention_mask=mask).logits
        merged_model = peft_model.merge_and_unload(safe_merge=True)  # new tensors; the shared W is untouched
        merged = merged_model(input_ids=ids, attention_mask=mask).logits
    trainable, frozen = count(loaded, cfg)
    return LoraTrace(
        r=cfg.r,
        alpha=float(cfg.alpha),
        targets=list(cfg.targets),
        module=name.replace("base_model.model.", ""),
        losses=np.array(losses + [final], dtype=np.float32),
        sv_delta=sv_delta.numpy().astype(np.float32),
        sv_weight=sv_weight.numpy().astype(np.float32),
        trainable=trainable,
        frozen=frozen,
        merge_max_diff=float((merged - unmerged).abs().max()),
        seconds=seconds,
        meta=make_meta(loaded.name, seed=cfg.seed, lr=cfg.lr, steps=cfg.steps),
    ).check()


capture = finetune  # the concept's main trace under the name every concept uses


def _train(loaded: models.Loaded, ids, mask, labels, cfg: LoraConfig):
    """peft's LoRA on a twin of the shared model, ``cfg.steps`` AdamW steps -> (peft model in eval mode, losses)."""
    from peft import get_peft_model

    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(twin(loaded.model, training=True), peft_config(cfg))
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=cfg.lr)
    losses = []
    peft_model.train()
    for _ in range(cfg.steps):
        loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=False)  # the same buffers each step: new ones every step fragmented the heap
        loss.backward()
        opt.step()
        losses.append(loss.item())
    opt.zero_grad(set_to_none=True)  # the last step's gradients: as large as the adapter (78 MB at r=64 everywhere)
    trained_as(peft_model.get_base_model(), loaded.model)
    return peft_model.eval(), losses


def trained_as(trained: torch.nn.Module, model: torch.nn.Module) -> None:
    """A training twin (``twin(..., training=True)``), trained, set back to run as ``model`` does: its attention
    implementation (eager, whose weights the attention views read), its cache, no checkpointing."""
    trained.gradient_checkpointing_disable()
    trained.config._attn_implementation = model.config._attn_implementation
    trained.config.use_cache = model.config.use_cache


def tuned(
    model: models.Loaded | str,
    exchanges: tuple[Exchange, ...] | list = EXAMPLE,
    config: LoraConfig | None = None,
    **options: Any,
) -> torch.nn.Module:
    """The model after ``finetune``'s steps, the adapter merged in: a new model for side-by-side views.

    Shares every untouched tensor with the shared model (twin); the merged weights are new tensors (peft's safe
    merge), so the shared model is unchanged."""
    loaded = models.resolve(model)
    cfg = LoraConfig.make(config, **options)
    ids, mask, labels = batch(loaded, list(exchanges))  # (n, T) each
    peft_model, _ = _train(loaded, ids, mask, labels, cfg)
    with torch.no_grad():
        merged = peft_model.merge_and_unload(safe_merge=True)
    for p in merged.parameters():
        p.requires_grad_(False)
    return merged.eval()


def _module_in_layer(model: torch.nn.Module, layer: int, target: str) -> str:
    for name, _ in model.named_modules():
        if name.endswith(f"layers.{layer}.self_attn.{target}") or name.endswith(f"layers.{layer}.mlp.{target}"):
            return name
    raise ValueError(f"no module {target!r} in layer {layer}")


def quant_trace(
    model: models.Loaded | str, module: str = DEFAULT_MODULE, config: QuantConfig | None = None, **options: Any
) -> QuantTrace:
    """One weight quantised and dequantised: the error histogram, the bytes stored, the relative error."""
    loaded = models.resolve(model)
    cfg = QuantConfig.make(config, **options)
    try:
        w = loaded.model.get_submodule(module).weight.detach()
    except AttributeError:
        raise ValueError(f"{loaded.name} has no module {module!r}") from None
    w_hat, stored = quantize(w, cfg.scheme, cfg.block)
    err = (w_hat - w.float()).flatten().numpy()
    hist, edges = np.histogram(err, bins=cfg.bins)
    return QuantTrace(
        module=module,
        scheme=cfg.scheme,
        block=cfg.block,
        shape=list(w.shape),
        counts=hist,
        edges=edges,
        fp32_bytes=w.numel() * 4,
        bytes=stored,
        max_abs_error=float(np.abs(err).max()),
        rel_error=float(np.linalg.norm(err) / np.linalg.norm(w.float().numpy())),
        meta=make_meta(loaded.name),
    ).check()
