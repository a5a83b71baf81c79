"""Offline training text: only what ships with Python itself, as bytes, with a class label per byte.

Prose: the `pydoc_data.topics` help texts. Code: a fixed list of standard-library modules. Labels are the
token classes the specialisation measure uses: letters and other bytes are "code" or "prose" by their source;
digits, punctuation and whitespace are their own classes wherever they occur.
"""

from __future__ import annotations

import string
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES = ["code", "prose", "digits", "punctuation", "whitespace"]
CODE, PROSE, DIGIT, PUNCT, SPACE = range(5)
# Pure-Python modules present in every CPython 3.11+ (sorted, fixed: the corpus does not depend on the machine).
CODE_MODULES = [
    "argparse",
    "bisect",
    "calendar",
    "colorsys",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "difflib",
    "enum",
    "fnmatch",
    "fractions",
    "functools",
    "heapq",
    "ipaddress",
    "operator",
    "pprint",
    "queue",
    "random",
    "shlex",
    "statistics",
    "string",
    "textwrap",
    "tokenize",
]
_PUNCT = set(string.punctuation.encode())
_SPACE = set(string.whitespace.encode())
_DIGIT = set(string.digits.encode())


@dataclass(frozen=True)
class Corpus:
    data: np.ndarray  # (n,) uint8 bytes
    labels: np.ndarray  # (n,) uint8 class per byte (index into CLASSES)
    split: int  # bytes before `split` train, after it evaluate

    def batch(self, rng: np.random.Generator, batch_size: int, block: int, train: bool = True):
        """Random windows: x, y (B, T) int64 (y = x shifted by one), labels (B, T) of x."""
        lo, hi = (0, self.split - block - 1) if train else (self.split, len(self.data) - block - 1)
        starts = rng.integers(lo, hi, size=batch_size)
        idx = starts[:, None] + np.arange(block)[None, :]  # (B, T)
        return self.data[idx].astype(np.int64), self.data[idx + 1].astype(np.int64), self.labels[idx]


def classify(raw: bytes, source: int) -> np.ndarray:
    """Class of each byte: digit / punctuation / whitespace, else the source class (CODE or PROSE)."""
    arr = np.frombuffer(raw, dtype=np.uint8)
    out = np.full(arr.shape, source, dtype=np.uint8)
    for group, cls in ((_DIGIT, DIGIT), (_PUNCT, PUNCT), (_SPACE, SPACE)):
        out[np.isin(arr, list(group))] = cls
    return out


def guess_source(text: str) -> int:
    """For text typed in the demo: CODE when it looks like Python source, else PROSE."""
    marks = ("def ", "import ", "return", "self.", " = ", "():", "):\n", "==", "    ")
    return CODE if sum(text.count(m) for m in marks) >= max(2, len(text) // 200) else PROSE


def _interleave(prose: bytes, code: bytes, chunk: int = 4096) -> tuple[bytes, np.ndarray]:
    """Alternate chunks of prose and code so train and eval splits both hold both."""
    parts, labels = [], []
    for i in range(0, max(len(prose), len(code)), chunk):
        for src, cls in ((prose, PROSE), (code, CODE)):
            piece = src[i : i + chunk]
            if piece:
                parts.append(piece)
                labels.append(classify(piece, cls))
    return b"".join(parts), np.concatenate(labels)


def build(max_bytes_each: int = 400_000, eval_fraction: float = 0.05) -> Corpus:
    from pydoc_data import topics

    prose = "\n\n".join(topics.topics[k] for k in sorted(topics.topics)).encode("utf-8")[:max_bytes_each]
    lib = Path(sysconfig.get_paths()["stdlib"])
    code = b"\n\n".join((lib / f"{m}.py").read_bytes() for m in CODE_MODULES if (lib / f"{m}.py").is_file())
    raw, labels = _interleave(prose, code[:max_bytes_each])
    data = np.frombuffer(raw, dtype=np.uint8).copy()
    return Corpus(data, labels, int(len(data) * (1 - eval_fraction)))


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def token_strings(ids: list[int]) -> list[str]:
    """One printable string per byte token (non-ASCII bytes as \\xNN)."""
    return [chr(b) if 32 <= b < 127 or b in (9, 10) else f"\\x{b:02x}" for b in ids]


class ByteTokenizer:
    """Our model's tokenizer, one token per UTF-8 byte, with the interface ``toolkit.text`` calls."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": encode(text)}

    def decode(self, ids: list[int]) -> str:
        return "".join(token_strings(ids))


BYTES = ByteTokenizer()
