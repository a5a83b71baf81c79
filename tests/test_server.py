"""The one demo server: index, every demo mounted, presets, iframe-friendly, offline, local-only, safe files."""

from __future__ import annotations

import re
import socket
import threading
import urllib.error
import urllib.request

import pytest
import uvicorn
from conftest import free_port

from lecture import cli, server
from toolkit import registry


def _get(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode("utf-8", "replace")


def test_every_registered_concept_is_served_in_deck_order():
    infos = server.discover()
    assert list(infos) == list(registry.CONCEPTS)
    for name, info in infos.items():
        assert info.title and info.description, name
    with pytest.raises(KeyError, match="unknown demo"):
        server.discover(["no_such_demo"])


def test_index_and_each_demo_page(live_server):
    status, _, page = _get(live_server.url + "/")
    assert status == 200
    for name, info in server.discover().items():
        assert f'href="/demo/{name}/"' in page
        entry = re.sub(r"<[^>]+>", "", re.search(rf'<li><a href="/demo/{name}/">.*?</li>', page)[0])
        assert entry.count(info.title) == 1 and entry.endswith("."), entry  # "Model card: layers…", said once, whole
        status, headers, html = _get(f"{live_server.url}/demo/{name}/")
        assert status == 200, name
        assert "x-frame-options" not in {k.lower() for k in headers}, "demos must load inside an iframe"
        assert "lecture-embed" in html, "the ?embed=1 switch (used by the deck) must be on every demo page"
        # nothing fetched from the internet: no remote scripts, styles or fonts
        remote = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
        assert not [u for u in remote if not u.startswith(live_server.url)], remote


def test_theme_css_uses_no_web_fonts(live_server):
    status, _, css = _get(f"{live_server.url}/demo/model_card/theme.css")
    assert status == 200
    assert "fonts.googleapis" not in css and "@import url(http" not in css


def test_model_card_through_gradio_client(live_server):
    facts, figure = live_server.client("model_card").predict("smollm2-135m", api_name="/show")
    assert "9 query heads share 3 key/value heads" in facts and "100,000" in facts
    assert figure  # a plotly figure payload


def test_unknown_model_is_a_message_and_server_survives(live_server, capfd):
    from gradio_client.exceptions import AppError

    client = live_server.client("model_card")
    capfd.readouterr()
    with pytest.raises(AppError, match="could not load model"):
        client.predict("nobody/no-such-model", api_name="/show")
    assert "Traceback" not in capfd.readouterr().err  # a refusal is a message, not a fault in the server's log
    facts, _ = client.predict("minilm-l6", api_name="/show")
    assert "12 heads" in facts


def test_server_serves_no_files_outside_the_project(live_server):
    for path in (
        "/demo/model_card/gradio_api/file=/etc/passwd",
        "/demo/model_card/file=/etc/passwd",
        "/demo/model_card/gradio_api/file=../../../../etc/passwd",
        "/../../etc/passwd",
    ):
        status, _, body = _get(live_server.url + path)
        assert "root:x:0:0" not in body, path
        assert status in (400, 403, 404, 405), (path, status)


def test_cli_defaults_bind_localhost():
    args = cli.parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 7860
    assert server.DEFAULT_HOST == "127.0.0.1"


def test_cli_models_lists_cache_state(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m" in out and "minilm-l6" in out and "cache:" in out


def test_cli_unknown_demo_and_model_fail_clearly(capsys, monkeypatch):
    from toolkit import models

    models.allow_any_model(True)
    try:
        assert cli.main(["demo", "no_such_demo", "--no-preload"]) == 2
        assert "unknown demo" in capsys.readouterr().err
        models.allow_any_model(True)  # the call above closed it, as a server does
        assert cli.main(["serve", "--model", "nobody/no-such-model"]) == 2
        assert "could not load model" in capsys.readouterr().err
    finally:
        models.allow_any_model(True)  # `serve` closes it for the process; later tests load tiny models by name


async def _hello(scope, receive, send):  # a minimal ASGI app: the line's timing is uvicorn's, not the demos'
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_serving_line_is_printed_once_the_port_listens(monkeypatch):
    """A lecturer clicks the printed URL at once: it must answer (uvicorn binds after the app's startup; the line
    used to come about 0.1 s before). When the line is printed, the port already accepts a connection; a port
    already taken prints no line and fails."""
    port, printed = free_port(), []

    def print_and_connect(line, **_):  # the moment the line appears, a click
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            printed.append((line, "connected"))
        except OSError as err:
            printed.append((line, f"refused: {err}"))

    monkeypatch.setattr(server, "print", print_and_connect, raising=False)
    config = uvicorn.Config(_hello, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    srv = server.Listening(config, "[lecture] serving test")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if printed:
                break
            threading.Event().wait(0.05)
        assert printed == [("[lecture] serving test", "connected")]
        assert _get(f"http://127.0.0.1:{port}/")[::2] == (200, "hello")
    finally:
        srv.should_exit = True
        thread.join(10)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = uvicorn.Config(_hello, host="127.0.0.1", port=taken.getsockname()[1], log_level="critical")
        with pytest.raises(SystemExit):
            server.Listening(config, "[lecture] serving taken").run()
    assert len(printed) == 1
