"""Quantisation capture: every linear layer of a real model in each scheme, scored on held-out text.

Serves "Quantisation: fewer bits per weight" and "Quantisation summary". The shared model is never touched: each
scheme runs on a twin (new modules over the same tensors, the linear weights replaced by their dequantised
copies). GPTQ calibrates layer by layer on the training half of the stdlib text: each decoder block sees the
output of the blocks already quantised before it, as in the paper's sequential scheme.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, turns
from toolkit.config import Config, param
from toolkit.hooks import Hooks
from toolkit.quantization import corpus
from toolkit.quantization.maths import SCHEMES, fake_quantize, gptq, relative_error, scheme, weight_bytes
from toolkit.quantization.trace import QuantizationTrace
from toolkit.trace import make_meta

MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
Progress = Callable[[Iterable], Iterable]


@dataclass(frozen=True)
class QuantizationConfig(Config):
    schemes: tuple[str, ...] = param(tuple(SCHEMES), "schemes run over every linear layer", choices=tuple(SCHEMES))
    eval_tokens: int = param(2048, "tokens of the held-out text scored", lo=2, hi=16384, label="tokens scored")
    window: int = param(512, "tokens per forward pass when scoring", lo=2, hi=2048)
    calib_tokens: int = param(1024, "calibration tokens for GPTQ's Hessians", lo=16, hi=8192)
    module: str = param("model.layers.0.self_attn.q_proj", "the weight whose histogram is kept", label="weight")
    bins: int = param(80, "bins of the weight histograms", lo=4, hi=400)

    def __post_init__(self) -> None:
        if isinstance(self.schemes, str):
            object.__setattr__(self, "schemes", tuple(s.strip() for s in self.schemes.split(",") if s.strip()))
        elif isinstance(self.schemes, list):
            object.__setattr__(self, "schemes", tuple(self.schemes))
        super().__post_init__()

    def problems(self) -> list[str]:
        return [] if self.schemes else ["choose at least one scheme"]


@dataclass(frozen=True)
class Linear:
    layer: int
    module: str  # q_proj ... down_proj
    name: str  # full name in the model, e.g. model.layers.3.mlp.down_proj
    weight: torch.Tensor  # (out, in)


def linears(model: Any) -> list[Linear]:
    """The seven linear layers of every decoder block, in layer order (llama-style names)."""
    model = getattr(model, "model", model) if isinstance(model, models.Loaded) else model
    names = {id(m): n for n, m in model.named_modules()}
    found = []
    for i, block in enumerate(arch.decoder_layers(model)):
        mine = {n.rpartition(".")[2]: m for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)}
        missing = [m for m in MODULES if m not in mine]
        if missing:
            raise arch.ArchError(f"decoder layer {i} has no {', '.join(missing)}: not a llama-style block")
        found += [Linear(i, m, names[id(mine[m])], mine[m].weight.detach()) for m in MODULES]
    return found


def with_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A twin of ``model`` (new modules, same tensors) whose named linear layers use ``weights`` instead."""
    with torch.device("meta"):
        other = type(model)(model.config)
    state = model.state_dict()
    state.update({f"{name}.weight": w for name, w in weights.items()})
    other.load_state_dict(state, assign=True)
    for name, buf in model.named_buffers():  # non-persistent buffers (RoPE inv_freq) are not in state_dict
        owner, _, leaf = name.rpartition(".")
        other.get_submodule(owner).register_buffer(leaf, buf, persistent=False)
    other.tie_weights()
    return other.eval()


def quantising(
    model: torch.nn.Module, scheme_name: str, seen: Callable[[Linear, torch.Tensor], None] | None = None
) -> torch.nn.Module:
    """A twin of ``model`` whose decoder linears run with their ``scheme_name`` weights, each computed as its layer
    runs and dropped after it: one layer's quantised weight in memory at a time, not the model's 0.4 GB of them.
    The values are ``with_weights(model, {name: fake_quantize(w, scheme_name)})``'s; each pass computes them again,
    and hands them to ``seen(linear, quantised)`` if given."""
    other = with_weights(model, {})
    for lin in linears(other):
        module = other.get_submodule(lin.name)

        def swap_in(m, args, lin=lin):
            q = fake_quantize(lin.weight, scheme_name)
            if seen is not None:
                seen(lin, q)
            m.weight = torch.nn.Parameter(q, requires_grad=False)

        def swap_out(m, args, out, lin=lin):
            m.weight = torch.nn.Parameter(lin.weight, requires_grad=False)

        module.register_forward_pre_hook(swap_in)
        module.register_forward_hook(swap_out)
    return other


def nll(model: torch.nn.Module, ids: torch.Tensor, window: int) -> float:
    """Mean negative log-likelihood of ``ids`` (n,) in non-overlapping windows (each window starts fresh)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            chunk = ids[start : start + window][None]  # (1, w)
            if chunk.shape[1] < 2:
                break
            total += float(arch.token_nll(model, chunk, use_cache=False).sum())
            count += chunk.shape[1] - 1
    return total / count


def tokens(loaded: models.Loaded, text: str, n: int) -> torch.Tensor:
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"][:n]
    if len(ids) < 2:
        raise ValueError("the text gives fewer than two tokens: nothing to score")
    return torch.tensor(ids)


def gptq_weights(
    loaded: models.Loaded, calib: torch.Tensor, group: int = 128, progress: Progress = iter
) -> dict[str, torch.Tensor]:
    """GPTQ weights of every linear layer, block by block: block i is calibrated on the output of blocks < i
    already quantised. Within a block every Hessian comes from the block's float input (the paper's default)."""
    model = loaded.model
    blocks = arch.decoder_layers(model)
    with torch.no_grad(), Hooks() as h:  # how the model calls its first block: hidden states, mask, RoPE
        h.output("call", blocks[0], lambda m, args, kwargs, out: (args, kwargs))
        model(input_ids=calib[None], use_cache=False)
        args, kwargs = h["call"][0]
    hidden = args[0] if args else kwargs.pop("hidden_states")
    args = args[1:]
    names = {lin.name: lin for lin in linears(model)}
    out: dict[str, torch.Tensor] = {}
    for i in progress(range(len(blocks))):
        block = copy.deepcopy(blocks[i])  # the shared model keeps its weights
        mine = {n.rpartition(".")[2]: m for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)}
        with torch.no_grad(), Hooks() as h:
            for m in MODULES:
                h.output(m, mine[m], lambda mod, a, kw, o: a[0].detach().reshape(-1, a[0].shape[-1]))
            block(hidden, *args, **kwargs)
        for m in MODULES:
            x = h[m][0].double()  # (tokens, in)
            q = gptq(mine[m].weight, 2 * x.T @ x / x.shape[0], 4, group)
            full = next(n for n, lin in names.items() if lin.layer == i and lin.module == m)
            out[full] = q
            mine[m].weight = torch.nn.Parameter(q, requires_grad=False)
        with torch.no_grad():
            hidden = block(hidden, *args, **kwargs)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return out


def capture(
    model: models.Loaded | str,
    text: str | None = None,
    config: QuantizationConfig | None = None,
    progress: Progress = iter,
    **options: Any,
) -> QuantizationTrace:
    """Each scheme over every linear layer: perplexity of ``text`` (default: the held-out stdlib text), bytes,
    per-layer error and a histogram of one weight. ``progress`` wraps the loop over schemes (e.g. tqdm)."""
    loaded = models.resolve(model)
    cfg = QuantizationConfig.make(config, **options)
    text = corpus.held_out() if text is None else text
    ids = tokens(loaded, text, cfg.eval_tokens)
    lins = linears(loaded.model)
    n_layers = lins[-1].layer + 1
    hist_w = next((lin.weight for lin in lins if lin.name == cfg.module), None)
    if hist_w is None:
        raise ValueError(f"{loaded.name} has no linear layer {cfg.module!r} (e.g. {lins[0].name})")
    edges = np.linspace(float(hist_w.min()), float(hist_w.max()), cfg.bins + 1)
    total_params = sum(p.numel() for p in loaded.model.parameters())  # tied embeddings counted once
    other = (total_params - sum(lin.weight.numel() for lin in lins)) * 4
    rows: dict[str, list] = {k: [] for k in ("ppl", "nll", "bytes", "error", "hist", "seconds")}
    for name in progress(cfg.schemes):
        work = turns.stopwatch()  # work, not pauses for a waiting request
        s = scheme(name)
        error = np.zeros((n_layers, len(MODULES)))
        if s.needs_calibration:  # GPTQ: each layer's weights depend on the layers before it
            calib = tokens(loaded, corpus.training(), cfg.calib_tokens)
            weights = gptq_weights(loaded, calib, s.group)
            value = nll(with_weights(loaded.model, weights), ids, cfg.window)
            for lin in lins:
                error[lin.layer, MODULES.index(lin.module)] = relative_error(lin.weight, weights[lin.name])
            hist_q = weights[cfg.module]
            del weights
        else:  # one layer's quantised weight at a time (a shared server runs these live)
            first: dict[str, torch.Tensor] = {}  # name -> its quantised weight's first pass (only cfg.module's kept)

            def seen(lin: Linear, q: torch.Tensor, first=first, error=error) -> None:
                if lin.name not in first:  # every window quantises again: the same values
                    error[lin.layer, MODULES.index(lin.module)] = relative_error(lin.weight, q)
                    first[lin.name] = q if lin.name == cfg.module else None

            value = nll(quantising(loaded.model, name, seen), ids, cfg.window)
            hist_q = first[cfg.module]
        rows["nll"].append(value)
        rows["ppl"].append(float(np.exp(value)))
        rows["bytes"].append(sum(weight_bytes(name, tuple(lin.weight.shape)) for lin in lins))
        rows["error"].append(error)
        rows["hist"].append(np.histogram(hist_q.numpy().clip(edges[0], edges[-1]), edges)[0])
        rows["seconds"].append(work())
    return QuantizationTrace(
        schemes=list(cfg.schemes),
        modules=list(MODULES),
        ppl=np.array(rows["ppl"]),
        nll=np.array(rows["nll"]),
        linear_bytes=np.array(rows["bytes"], dtype=np.int64),
        other_bytes=int(other),
        layer_error=np.stack(rows["error"]).astype(np.float32),
        hist_module=cfg.module,
        hist_edges=edges,
        hist_before=np.histogram(hist_w.numpy(), edges)[0],
        hist_after=np.stack(rows["hist"]),
        eval_tokens=int(len(ids)),
        seconds=np.array(rows["seconds"]),
        meta=make_meta(
            loaded.name,
            text=corpus.fingerprint(text),
            window=cfg.window,
            calib_tokens=cfg.calib_tokens,
            threads=torch.get_num_threads(),
        ),
    ).check()


def record(model: models.Loaded | str, out: str | Path, progress: Progress = iter, **options: Any) -> list[Path]:
    """The lecture's recorded results: every scheme (``schemes.npz``) and the activations of the held-out text's
    first tokens (``activations.npz``) in folder ``out``. ``lecture quantization`` runs this."""
    from toolkit.quantization.activations import capture as activations

    loaded = models.resolve(model)
    out = Path(out)
    trace = capture(loaded, config=QuantizationConfig.make(None, **options), progress=progress)
    acts = activations(loaded, corpus.held_out())
    return [trace.save(out / "schemes.npz"), acts.save(out / "activations.npz")]
