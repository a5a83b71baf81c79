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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real `lecture serve` app (FastAPI + every demo) in a background thread on 127.0.0.1."""

    def __init__(self, names=None):
        import threading
        import time

        import uvicorn

        from lecture.server import build_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(build_app(names), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.1)

    def client(self, demo: str):
        from gradio_client import Client

        return Client(f"{self.url}/demo/{demo}/", verbose=False)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server():
    """Every demo on one server for the whole session; `live_server.client("attention").predict(...)`."""
    server = LiveServer()
    yield server
    server.stop()
