"""The corpus a vector database holds (slide "How vectors are built"): passages of text that ships with Python,
embedded by the bundled all-MiniLM-L6-v2, cached on disk like the model cache.

    passages: the Python reference's help topics (``pydoc_data.topics``) and the docstrings of the standard library
              (read with ``ast``, never imported), cut into passages of at most MAX_WORDS words at paragraph and
              sentence boundaries, de-duplicated, shuffled with a fixed seed (a prefix is a fair sample)
    vectors:  MiniLM's last hidden states, mean-pooled over the real tokens, L2-normalised (the recipe in the
              model's sentence-transformers config), (passage, 384) float32
    cache:    $LECTURE_CACHE/vectors/<key>/ {manifest.json, passages.json, vectors.npy}; the manifest records the
              recipe, the model and each file's size, so a stale or half-written cache is rebuilt, never read

Any folder of text files works the same way (``lecture index PATH``): ``folder_passages`` reads its .txt, .md and
.rst files. ``sample()`` is the committed 3,000-passage sample (assets/vector_search/sample.npz) that tests and a
fresh machine use without embedding anything.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import models

RECIPE = 1  # bump when the passage split or the embedding recipe changes: every cache is then rebuilt
MAX_WORDS = 80  # a passage is at most this many words (about 110 MiniLM tokens, under its 256-token limit)
MIN_WORDS = 8  # shorter docstrings ("Return self.") say nothing worth finding
SHUFFLE_SEED = 0
BATCH = 32
TEXT_SUFFIXES = (".txt", ".md", ".rst")
MAX_FOLDER_FILES = 5_000  # a folder with more text files than this is refused
MAX_FOLDER_BYTES = 50_000_000  # ... or with more text than this
MAX_PASSAGES = 60_000  # ... or that cuts into more passages than this (embedding them would take hours)
SKIP_PACKAGES = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "ensurepip", "pydoc_data", "encodings"}
SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "vector_search" / "sample.npz"
SAMPLE_SIZE = 3_000


class CorpusError(ValueError):
    """A corpus that cannot be built or read: the message says why and what to do."""


@dataclass(frozen=True)
class Corpus:
    """Passages and their unit embeddings: titles[i], texts[i] <-> vectors[i] (passage, dim) float32."""

    name: str
    titles: list[str]
    texts: list[str]
    vectors: np.ndarray
    model: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def head(self, n: int) -> Corpus:
        """The first n passages (a fair sample: the order is shuffled)."""
        return Corpus(f"{self.name}[:{n}]", self.titles[:n], self.texts[:n], self.vectors[:n], self.model, self.meta)


# ---- passages --------------------------------------------------------------------------------------------------


def split_passages(text: str, max_words: int = MAX_WORDS) -> list[str]:
    """Paragraphs (blank-line separated) packed into passages of at most max_words words; a longer paragraph is
    cut at sentence ends, a longer sentence at max_words."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        words = para.split()
        if len(words) <= max_words:
            pieces.append(" ".join(words))
            continue
        sentence: list[str] = []
        for w in words:  # sentences, each at most max_words words
            sentence.append(w)
            if w.endswith((".", "?", "!", ":")) or len(sentence) >= max_words:
                pieces.append(" ".join(sentence))
                sentence = []
        if sentence:
            pieces.append(" ".join(sentence))
    out: list[str] = []
    for piece in (p for p in pieces if p):
        if out and len(out[-1].split()) + len(piece.split()) <= max_words:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def _docstrings(path: Path, module: str) -> list[tuple[str, str]]:
    """(qualified name, docstring) of a module and of its classes and functions (dunder methods left out)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return []
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        doc = ast.get_docstring(node, clean=True)
        if doc:
            out.append((prefix, doc))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and not child.name.startswith(
                "__"
            ):
                visit(child, f"{prefix}.{child.name}")

    visit(tree, module)
    return out


def stdlib_passages(max_words: int = MAX_WORDS) -> list[tuple[str, str]]:
    """(title, text) of every passage of the Python help topics and standard-library docstrings, shuffled."""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    out: list[tuple[str, str]] = []

    def add(title: str, text: str) -> None:
        for passage in split_passages(text, max_words):
            if len(passage.split()) >= MIN_WORDS and passage not in seen:
                seen.add(passage)
                out.append((title, passage))

    for topic in sorted(topics):
        add(f"Python reference: {topic}", topics[topic])
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in SKIP_PACKAGES or part.startswith(("test", "site-packages", "config-")) for part in rel.parts):
            continue
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        for name, doc in _docstrings(path, module):
            add(name, doc)
    random.Random(SHUFFLE_SEED).shuffle(out)
    return out


def folder_passages(folder: str | Path, max_words: int = MAX_WORDS) -> list[tuple[str, str]]:
    """(file name, text) passages of every .txt / .md / .rst file under ``folder``; CorpusError when the folder is
    missing, holds no text, or is too large to embed here."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise CorpusError(f"{str(folder)[:200]!r} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file())
    if not files:
        raise CorpusError(f"{root} holds no text files ({', '.join(TEXT_SUFFIXES)}): nothing to index")
    if len(files) > MAX_FOLDER_FILES:
        raise CorpusError(f"{root} holds {len(files):,} text files; the limit is {MAX_FOLDER_FILES:,}")
    total = sum(p.stat().st_size for p in files)
    if total > MAX_FOLDER_BYTES:
        raise CorpusError(f"{root} holds {total / 1e6:.0f} MB of text; the limit is {MAX_FOLDER_BYTES / 1e6:.0f} MB")
    out: list[tuple[str, str]] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        out += [(str(path.relative_to(root)), p) for p in split_passages(text, max_words)]
        if len(out) > MAX_PASSAGES:
            raise CorpusError(f"{root} cuts into more than {MAX_PASSAGES:,} passages: too many to embed here")
    if not out:
        raise CorpusError(f"{root}: its text files are empty")
    return out


# ---- embeddings ----------------------------------------------------------------------------------------------


def embed(model: models.Loaded | str, texts: list[str], progress: Callable | None = None) -> np.ndarray:
    """(passage, dim) unit vectors, batched by length (less padding); ``progress(n)`` after each batch."""
    from toolkit.tokens import sentence_embeddings

    loaded = models.resolve(model)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), loaded.config.hidden_size), dtype=np.float32)
    for start in range(0, len(order), BATCH):
        rows = order[start : start + BATCH]
        out[rows] = sentence_embeddings(loaded, [texts[i] for i in rows])
        if progress is not None:
            progress(len(rows))
    return out


def _bar(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="passage", file=sys.stderr, mininterval=1.0)


# ---- the cache ---------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    return models.cache_dir() / "vectors"


def canonical(name: str) -> str:
    """'stdlib' or 'sample' as they are; a folder as its absolute path."""
    return name if name in ("stdlib", "sample") else str(Path(name).expanduser().resolve())


def key_for(name: str) -> str:
    """The cache folder name of a corpus: 'stdlib' per Python version, a folder by its absolute path."""
    if name == "stdlib":
        return f"stdlib-py{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    return f"folder-{hashlib.sha256(canonical(name).encode()).hexdigest()[:12]}"


def _fingerprint(name: str, model: str) -> dict[str, Any]:
    return {"recipe": RECIPE, "corpus": name, "model": model, "max_words": MAX_WORDS}


def state(name: str = "stdlib", model: str = models.DEFAULT_ENCODER) -> str:
    """'ready', 'missing', 'stale' (another recipe or model) or 'corrupt' (files missing or of the wrong size)."""
    folder = cache_root() / key_for(name)
    try:
        info = json.loads((folder / "manifest.json").read_text())
        files = info["files"]
    except FileNotFoundError:
        return "corrupt" if folder.exists() else "missing"
    except (OSError, ValueError, KeyError, TypeError):
        return "corrupt"
    if info.get("fingerprint") != _fingerprint(canonical(name), model):
        return "stale"
    for fname, size in files.items():
        f = folder / fname
        if not f.is_file() or f.stat().st_size != size:
            return "corrupt"
    return "ready"


def indexed(model: str = models.DEFAULT_ENCODER) -> list[str]:
    """Names of the corpora whose cache is ready: 'stdlib' first, then folders (absolute paths)."""
    names = ["stdlib"] if state("stdlib", model) == "ready" else []
    for manifest in sorted(cache_root().glob("folder-*/manifest.json")):
        try:
            path = json.loads(manifest.read_text())["path"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if state(path, model) == "ready":
            names.append(path)
    return names


def build(
    name: str = "stdlib", model: str = models.DEFAULT_ENCODER, progress: bool = True, limit: int | None = None
) -> Corpus:
    """Read, cut and embed a corpus ('stdlib' or a folder path) and write its cache atomically."""
    name = canonical(name)
    passages = stdlib_passages() if name == "stdlib" else folder_passages(name)
    passages = passages[:limit] if limit else passages
    t0 = time.time()
    bar = _bar(len(passages), f"embedding {len(passages):,} passages with {model}") if progress else None
    try:
        vectors = embed(model, [t for _, t in passages], bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    corpus = Corpus(name, [t for t, _ in passages], [p for _, p in passages], vectors, model)
    _write(corpus, time.time() - t0)
    return load(name, model)


def _write(corpus: Corpus, seconds: float) -> Path:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".corpus-", dir=root))
    try:
        np.save(tmp / "vectors.npy", corpus.vectors)
        (tmp / "passages.json").write_text(json.dumps([corpus.titles, corpus.texts]), encoding="utf-8")
        files = {p.name: p.stat().st_size for p in tmp.iterdir()}
        manifest = {
            "fingerprint": _fingerprint(corpus.name, corpus.model),
            "path": corpus.name,
            "passages": len(corpus),
            "dim": corpus.dim,
            "seconds": round(seconds, 1),
            "python": sys.version.split()[0],
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        final = root / key_for(corpus.name)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)  # atomic: a half-written cache never has the final name and a manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load(name: str = "stdlib", model: str = models.DEFAULT_ENCODER) -> Corpus:
    """A cached corpus ('stdlib', a folder path, or 'sample'); CorpusError when it is not ready."""
    if name == "sample":
        return sample()
    folder = cache_root() / key_for(name)
    st = state(name, model)
    if st != "ready":
        what = "the standard-library corpus" if name == "stdlib" else repr(name)
        cmd = "lecture index" if name == "stdlib" else f"lecture index {name}"
        raise CorpusError(f"{what} is not embedded yet (cache {st}). Run `{cmd}` once (a few minutes on 2 cores).")
    info = json.loads((folder / "manifest.json").read_text())
    titles, texts = json.loads((folder / "passages.json").read_text(encoding="utf-8"))
    vectors = np.load(folder / "vectors.npy", allow_pickle=False)
    meta = {k: info[k] for k in ("passages", "seconds", "python") if k in info}
    return Corpus(info["path"], titles, texts, vectors, model, {**meta, "cache": str(folder)})


def ensure(name: str = "stdlib", model: str = models.DEFAULT_ENCODER, progress: bool = True) -> Corpus:
    """The cached corpus, built first when missing, stale or corrupt."""
    if name == "sample":
        return sample()
    if state(name, model) == "ready":
        return load(name, model)
    return build(name, model, progress)


# ---- the committed sample ------------------------------------------------------------------------------------------


def sample(path: str | Path = SAMPLE) -> Corpus:
    """The committed sample: the first SAMPLE_SIZE passages of the stdlib corpus, vectors stored as float16 and
    re-normalised here (float16 keeps 3 significant digits: cosines move by < 1e-3)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"no corpus sample at {path}; re-record it with `lecture index --record-sample`")
    with np.load(path, allow_pickle=False) as z:
        info = json.loads(bytes(z["info"]).decode())
        vectors = z["vectors"].astype(np.float32)  # (passage, dim)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Corpus("sample", info["titles"], info["texts"], vectors, info["model"], {"python": info["python"]})


def record_sample(corpus: Corpus, path: str | Path = SAMPLE, n: int = SAMPLE_SIZE) -> Path:
    """Write the first n passages of ``corpus`` (the stdlib one) as the committed sample."""
    head = corpus.head(n)
    info = {"titles": head.titles, "texts": head.texts, "model": corpus.model, "python": sys.version.split()[0]}
    blob = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, vectors=head.vectors.astype(np.float16), info=blob)
    return path
