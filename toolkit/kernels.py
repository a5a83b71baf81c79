"""oneDNN for the fp32 matrix products of a prompt: ``nn.Linear`` on many rows at once, not MKL.

PyTorch sends every fp32 ``nn.Linear`` to MKL, which on AMD processors runs its AVX2 code. oneDNN, also inside
PyTorch, uses AVX-512 where the processor has it: on one 2-core machine the load benchmark ran on, 64 rows times
SmolLM2's MLP weights took 0.52 ms instead of 1.08 ms, and a student's own KV cache question (8 forwards of the
whole text without the cache) 1.3 s of a core instead of 1.85 s; a speculative check of 4 drafts 65 ms instead of 72
ms (on another, 1.1x: the server kept MKL). Only 4 to 128 rows: fewer (a decoding step) are bound by memory
bandwidth or by oneDNN's cost per call; more (a long prompt, a training batch at its maxima) stay where the server's
memory was measured (oneDNN's temporaries raised the load benchmark's peak by 0.1-0.2 GB). A vocabulary-sized head
only for a check of drafts (up to 16 rows: 12 ms instead of 20 ms). The numbers are fp32 both ways; only the order
of the sums differs (relative differences of about 1e-6, as between MKL's own kernels for one row and for many).
Autograd (training) and anything that is not a plain fp32 CPU tensor stay on the usual path.

Off unless asked: ``lecture serve`` turns it on when ``speedup()`` measures it faster on the machine it runs on
(``enable_if_faster``); a notebook can call ``enable()``.

A decoding step (one row) is the other case: it reads every weight once, and MKL's product of a row with a weight
stored row by row (out, in) reads it at about 10 GB/s here. Stored column by column (``relayout``: the same tensor,
its memory transposed), a wide weight (out >= in: SmolLM2's q, o, gate, up and the tied head) is read at 17-20
GB/s: a step took 62-64 ms instead of 75 ms, with the same tokens. Narrow ones (k, v, down) were slower that way and
stay as they are. ``toolkit.models`` relayouts every model it loads.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

_plain_forward = torch.nn.Linear.forward
PLAIN = (torch.Tensor, torch.nn.Parameter)  # tensor subclasses (quantised weights and the like) keep their path
CHUNKS = (8, *range(16, 129, 16))  # rows per oneDNN call: it builds a kernel for every shape it sees, so only these
BIG_WEIGHT, BIG_ROWS = 8 * 2**20, 16  # a vocabulary-sized head (SmolLM2's: 28 M elements) only for a check of drafts


def _plain_fp32(t: torch.Tensor) -> bool:
    """A plain (no subclass), dense fp32 tensor on the CPU."""
    return type(t) in PLAIN and t.dtype == torch.float32 and t.device.type == "cpu" and t.layout == torch.strided


def _fast(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> bool:
    return (
        _plain_fp32(x)
        and _plain_fp32(w)
        and (bias is None or bias.dtype == torch.float32)
        and x.dim() >= 2
        and 4 * x.shape[-1] <= x.numel() <= CHUNKS[-1] * x.shape[-1]  # 4 to 128 rows: a short prompt, a check of drafts
        and (w.numel() <= BIG_WEIGHT or x.numel() <= BIG_ROWS * x.shape[-1])
        and not (
            torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or getattr(bias, "requires_grad", False))
        )
    )


def linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, w, bias)``, through oneDNN when it may be: the rows padded with zeros to 8 or a multiple of 16
    (a row's result does not depend on the others). oneDNN builds and keeps a kernel for every shape it sees: fed
    every prompt length as it comes, a process grew by 300 MB and more (299 lengths x 4 weights); with these nine
    shapes, by a few tens of MB."""
    if not _fast(x, w, bias):
        return F.linear(x, w, bias)
    rows = x.reshape(-1, x.shape[-1])  # (N, d_in)
    n = rows.shape[0]
    size = next(c for c in CHUNKS if c >= n)
    if size > n:
        rows = torch.cat([rows, rows.new_zeros(size - n, rows.shape[1])])  # (size, d_in)
    return _onednn(rows, w, bias)[:n].reshape(*x.shape[:-1], w.shape[0])


def relayout(model: torch.nn.Module) -> int:
    """Store every wide plain fp32 CPU ``nn.Linear`` weight (out_features >= in_features) column by column: the same
    values and shape, the memory of its transpose (a tied weight is one Parameter: its embedding moves with it).
    Done once, at load, one weight at a time; returns how many moved."""
    moved = 0
    with torch.no_grad():
        _own_memory(model)
        for mod in model.modules():
            w = getattr(mod, "weight", None)
            if not (
                isinstance(mod, torch.nn.Linear)
                and _plain_fp32(w)
                and w.dim() == 2
                and w.shape[0] >= w.shape[1] > 1
                and w.is_contiguous()
            ):
                continue
            w.data = w.data.t().contiguous().t()  # (out, in), strides (1, out)
            moved += 1
    return moved


def _own_memory(model: torch.nn.Module) -> None:
    """Copy every parameter and buffer that lives in a memory-mapped file into the process's own memory first.
    transformers maps the safetensors file; a weight moved out of it would leave its old pages mapped and counted
    (+385 MB for SmolLM2), so the file is let go of as a whole: the same bytes in memory as before."""
    files = _mapped_files()
    for t in (*model.parameters(), *model.buffers()):
        address = t.untyped_storage().data_ptr()
        if any(lo <= address < hi for lo, hi in files):
            t.data = t.data.clone()


def _mapped_files() -> list[tuple[int, int]]:
    """The address ranges where this process maps a .safetensors file (Linux; elsewhere none are known)."""
    ranges = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].rstrip().endswith(".safetensors"):
                    lo, hi = fields[0].split("-")
                    ranges.append((int(lo, 16), int(hi, 16)))
    except OSError:
        pass
    return ranges


def _onednn(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], "")


def _forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return linear(x, self.weight, self.bias)


def available() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x, w = torch.randn(4, 8), torch.randn(3, 8)
        out = _onednn(x, w, None)
    except (RuntimeError, AttributeError):
        return False
    return bool(torch.allclose(out, F.linear(x, w), rtol=1e-5, atol=1e-5))


def enabled() -> bool:
    return torch.nn.Linear.forward is _forward


def enable() -> None:
    """Every ``nn.Linear`` (and subclass that keeps its forward, such as peft's base layers) from now on."""
    if not available():
        raise RuntimeError("this PyTorch has no oneDNN linear: keep MKL")
    torch.nn.Linear.forward = _forward


def disable() -> None:
    torch.nn.Linear.forward = _plain_forward


def speedup(rows: int = 64, d_in: int = 576, d_out: int = 1536, repeats: int = 30) -> float:
    """MKL's time over oneDNN's for one (rows, d_in) x (d_in, d_out) product on this machine (> 1: oneDNN faster)."""
    x, w = torch.randn(rows, d_in), torch.randn(d_out, d_in)

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    with torch.no_grad():
        mkl = best(lambda: F.linear(x, w))
        onednn = best(lambda: _onednn(x, w, None))
    return mkl / onednn


def enable_if_faster(min_speedup: float = 1.2) -> float | None:
    """Turn oneDNN on if it is at least ``min_speedup`` times MKL here; the measured ratio (None: not available)."""
    if not available():
        return None
    ratio = speedup()
    if ratio >= min_speedup:
        enable()
    return ratio
