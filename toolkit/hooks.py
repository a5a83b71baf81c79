"""One way to look inside a model: named forward hooks, recorded per forward pass, always removed.

    with Hooks() as h:
        h.output("3.q", layer.q_proj)                      # stores output.detach() under "3.q"
        h.output("3.attn", layer.self_attn, lambda m, args, kwargs, out: out[1].detach())
        model(ids)
    h["3.q"]  # one entry per forward pass of this thread, oldest first

Traps this guards against (TransformerLens's ``hooks()`` context manager does the same):
  - a hook left registered keeps recording on every later forward pass of the shared model: hooks are removed
    in ``__exit__`` even when the forward raises;
  - the model is shared by every request of a server: only the thread that opened the ``Hooks`` records, so
    another student's forward pass running meanwhile never lands in this trace.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

Keep = Callable[[torch.nn.Module, tuple, dict, Any], Any]


def _detach(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
    return output.detach() if torch.is_tensor(output) else output


class Hooks:
    """Named forward hooks on any modules; ``self[name]`` is the list of what each forward pass recorded."""

    def __init__(self) -> None:
        self.records: dict[str, list[Any]] = defaultdict(list)
        self._handles: list[Any] = []
        self._thread = threading.get_ident()

    def output(self, name: str, module: torch.nn.Module, keep: Keep = _detach) -> None:
        """Record ``keep(module, args, kwargs, output)`` under ``name`` at each forward pass of ``module``."""

        def hook(mod, args, kwargs, out):
            if threading.get_ident() == self._thread:
                self.records[name].append(keep(mod, args, kwargs, out))

        self._handles.append(module.register_forward_hook(hook, with_kwargs=True))

    def __getitem__(self, name: str) -> list[Any]:
        if name not in self.records:
            raise KeyError(f"hook {name!r} recorded nothing (was its module run?)")
        return self.records[name]

    def __contains__(self, name: str) -> bool:
        return name in self.records

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
