"""Folders on disk that can prove their content: the machinery under the model cache (toolkit/models.py).

    hashes   ``file_sha256``; ``source_sha256`` hashes a large read-only source (a GGUF) once and remembers the
             result in ``<root>/sources.json``, keyed by (path, size, mtime_ns), so a start does not re-read it
    records  ``record(folder)``: size, mtime_ns and sha256 of every file, written into a manifest at build time;
             ``verify(folder, files)`` compares size and mtime (cheap) and re-hashes only a file whose mtime moved,
             or every file with ``deep=True``
    locks    ``locked(path)``: an exclusive ``fcntl.flock`` on ``<root>/<folder>.lock`` while a folder is built,
             so a second process (or thread) waits instead of building it again or reading it half-written
    sweeps   a build writes into ``.<folder>.tmp-XXXX`` and renames it into place; ``sweep`` removes such temp
             folders that nobody is writing any more (their lock is free, or they are over an hour old)

Nothing here knows about models; errors are plain ``OSError``/``TimeoutError`` for the caller to word.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

SOURCES_INDEX = "sources.json"
MAX_SOURCES = 64  # remembered source hashes; older ones are hashed again when needed
STALE_AFTER_S = 3600.0  # a temp folder this old is swept even if its lock is held (a hung build)
_TEMP = re.compile(r"^\.(?P<folder>.+)\.(?:tmp|old)-[^./]+$")


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON next to ``path`` and rename it over: a reader sees the old or the new file, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def source_sha256(path: Path, root: Path) -> str:
    """The sha256 of ``path``, remembered in ``root/sources.json`` per (path, size, mtime_ns)."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    index = root / SOURCES_INDEX
    try:
        known = json.loads(index.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    digest = known.get(key)
    if isinstance(digest, str) and len(digest) == 64:
        return digest
    digest = file_sha256(path)
    known.pop(key, None)
    known[key] = digest
    known = dict(list(known.items())[-MAX_SOURCES:])
    with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash at the next start
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(index, known)
    return digest


def record(folder: Path, skip: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Size, mtime_ns and sha256 of every file directly in ``folder`` (what a manifest keeps)."""
    skipped = set(skip)
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name not in skipped:
            st = p.stat()
            files[p.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(p)}
    return files


def verify(folder: Path, files: dict[str, Any], deep: bool = False) -> tuple[str | None, dict[str, int]]:
    """(problem or None, {file: new mtime_ns} for files whose mtime moved but whose content still matches).

    Cheap by default: a file of the recorded size and mtime is trusted; one whose mtime moved is re-hashed.
    ``deep`` re-hashes every file (about 1 s per 500 MB).
    """
    moved: dict[str, int] = {}
    for name, rec in files.items():
        f = folder / name
        try:
            size, mtime, digest = int(rec["size"]), int(rec["mtime_ns"]), str(rec["sha256"])
        except (KeyError, TypeError, ValueError):
            return f"the manifest's record of {name} is unreadable", {}
        if not f.is_file():
            return f"{name} is missing", {}
        st = f.stat()
        if st.st_size != size:
            return f"{name} has {st.st_size:,} bytes, the manifest says {size:,}", {}
        if deep or st.st_mtime_ns != mtime:
            if file_sha256(f) != digest:
                return f"{name}'s content does not match the sha256 recorded when it was written", {}
            if st.st_mtime_ns != mtime:
                moved[name] = st.st_mtime_ns
    return None, moved


@contextlib.contextmanager
def locked(
    path: Path, timeout_s: float = 900.0, on_wait: Callable[[], None] | None = None, wait: bool = True
) -> Iterator[bool]:
    """Hold an exclusive flock on ``path`` (created if needed). Yields True once held.

    With ``wait=False`` it yields False at once when another holder has it. Waiting longer than ``timeout_s``
    raises TimeoutError. The lock file itself is never deleted (deleting it would let two holders in).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        held = _try_flock(fd)
        if not held and wait:
            if on_wait is not None:
                on_wait()
            deadline = time.monotonic() + timeout_s
            while not held:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} has been held by another process for over {timeout_s:.0f} s")
                time.sleep(0.1)
                held = _try_flock(fd)
        try:
            yield held
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_locked(path: Path) -> bool:
    """Whether some process (or another open of it in this one) holds the flock on ``path`` now."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if not _try_flock(fd):
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def temp_dir(root: Path, folder_name: str) -> Path:
    """A fresh build folder for ``root/folder_name``; ``sweep`` recognises it by its name."""
    return Path(tempfile.mkdtemp(prefix=f".{folder_name}.tmp-", dir=root))


def old_name(root: Path, folder_name: str) -> Path:
    """Where a folder being replaced is moved before it is deleted (also swept if a process dies there)."""
    return root / f".{folder_name}.old-{os.urandom(4).hex()}"


def sweep(
    root: Path, prefixes: Iterable[str], own_locks: Iterable[Path] = (), max_age_s: float = STALE_AFTER_S
) -> list[Path]:
    """Remove the temp folders ``.<prefix>-*`` in ``root`` that no live build is writing; return them.

    A temp folder ``.<folder>.tmp-*`` (or ``.old-*``) is removed when the lock ``<folder>.lock`` is free (its
    builder died) or ``own_locks`` says this caller holds it, and in any case once it is over ``max_age_s`` old.
    A temp folder without a lock (left by an older toolkit) is removed once it is over ``max_age_s`` old.
    Removal happens while holding the lock, so a new build of that folder cannot start meanwhile.
    """
    starts = tuple(f".{p}-" for p in prefixes)
    mine = {Path(p).name for p in own_locks}
    removed: list[Path] = []
    try:
        entries = list(root.iterdir()) if starts else []
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(starts):
            continue
        try:
            if not entry.is_dir() or entry.is_symlink():
                continue
            old = now - entry.stat().st_mtime > max_age_s
        except OSError:
            continue
        match = _TEMP.match(entry.name)
        if match is None:  # no lock to ask: only its age says it is abandoned
            if old:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
            continue
        lock = root / f"{match['folder']}.lock"
        if lock.name in mine:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
            continue
        try:
            with locked(lock, wait=False) as free:
                if free or old:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
        except OSError:
            continue
    return removed
