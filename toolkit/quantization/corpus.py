"""Offline text that ships with Python: the help topics of ``pydoc_data.topics`` (English prose about Python).

Split by topic, never by position, so no sentence is in both halves: every fourth topic (in sorted order) is the
held-out text perplexity is measured on; the others calibrate GPTQ and train the distilled draft.
"""

from __future__ import annotations

import hashlib


def _topics() -> dict[str, str]:
    from pydoc_data.topics import topics

    return topics


def held_out() -> str:
    """The held-out text: topics 3, 7, 11, ... of the sorted help topics."""
    t = _topics()
    return "\n\n".join(t[k] for i, k in enumerate(sorted(t)) if i % 4 == 3)


def training() -> str:
    """Calibration and training text: every other topic."""
    t = _topics()
    return "\n\n".join(t[k] for i, k in enumerate(sorted(t)) if i % 4 != 3)


def fingerprint(text: str) -> str:
    """A short hash of a text: recorded results say which text they were measured on."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
