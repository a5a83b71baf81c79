"""Shared fixtures: the embedded models, loaded once per test session (the same copy the demos use)."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest


@pytest.fixture(scope="session")
def smol():
    from toolkit import models

    return models.load("smollm2-135m")


@pytest.fixture(scope="session")
def minilm():
    from toolkit import models

    return models.load("minilm-l6")
