"""The deck in a real browser (Debian's chromium, headless, offline): build it, serve it, open every slide that holds
a demo against a real demo server, check the demo's Gradio app drew its plot, that no request left the machine, and
that the snapshot fallback shows when the demo server is down. Screenshots go to artifacts/screenshots/.

Set-up: `make browser-deps` (chromium from apt, `npm ci` in slides/)."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import free_port

from toolkit import chromium, deck_cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SLIDES = ROOT / "slides"
SHOTS = ROOT / "artifacts" / "screenshots"
GRADIO_ERROR = "!!document.querySelector('.toast-body.error')"


@pytest.fixture(scope="module")
def deck_dist(tmp_path_factory) -> Path:
    slidev = SLIDES / "node_modules" / ".bin" / "slidev"
    assert slidev.exists(), "slides/node_modules is missing: run `make browser-deps`"
    assert chromium.executable()  # raises with the install hint
    out = tmp_path_factory.mktemp("deck") / "dist"
    build = subprocess.run(
        [str(slidev), "build", "--out", str(out)], cwd=SLIDES, capture_output=True, text=True, timeout=400
    )
    assert build.returncode == 0, f"slidev build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    assert (out / "index.html").is_file()
    return out


@pytest.fixture(scope="module")
def deck_url(deck_dist):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(deck_dist)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    return SHOTS


def demo_on(slide: int, name: str) -> str:
    return f"document.querySelector('.slidev-page-{slide} .lecture-demo[data-demo=\"{name}\"]')"


def settled(slide: int, name: str) -> str:
    """JS: the demo's state once its server probe has answered ('live' or 'offline'), else false."""
    return (
        f"['live', 'offline'].includes({demo_on(slide, name)}?.dataset.state) && {demo_on(slide, name)}.dataset.state"
    )


def assert_all_local(requests: list[str]) -> None:
    remote = sorted({u for u in requests if not chromium.is_local(u)})
    assert not remote, f"requests left the machine: {remote}"


def test_every_demo_slide_shows_its_live_demo(deck_url, live_server, shots):
    server = live_server.url
    deck_demos = deck_cli.demos_in_deck()
    assert deck_demos, "the deck holds no demo"
    with chromium.Browser(1920, 1080) as browser:  # a projector's size
        for d in deck_demos:
            browser.goto(f"{deck_url}/?demos={server}#/{d.slide}")
            state = browser.wait_for(settled(d.slide, d.name), timeout=60)
            assert state == "live", f"slide {d.slide}: demo {d.name} is {state!r}, not live"
            # only the active slide renders an iframe, although Slidev keeps every slide mounted
            frames = browser.evaluate("[...document.querySelectorAll('iframe')].map(f => f.src)")
            assert frames == [d.url(server)], f"slide {d.slide}: iframes {frames}"
            fits = browser.evaluate(
                f"(() => {{ const s = document.querySelector('.slidev-page-{d.slide}')"
                f".getBoundingClientRect(), r = {demo_on(d.slide, d.name)}.getBoundingClientRect();"
                " return r.bottom <= s.bottom + 1 && r.right <= s.right + 1 && r.height > 100; })()"
            )
            assert fits, f"slide {d.slide}: the {d.name} frame does not fit on the slide"
            prefix = f"{server}/demo/{d.name}/"
            drawn = browser.wait_for(deck_cli.DEMO_SETTLED, timeout=180, frame_url_prefix=prefix)
            assert drawn == "plot", f"slide {d.slide}: demo {d.name} did not draw its plot: {drawn}"
            browser.wait_for(deck_cli.BUSY, timeout=120, frame_url_prefix=prefix)
            assert browser.evaluate(GRADIO_ERROR, prefix) is False, f"{d.name} shows an error"
            browser.screenshot(shots / f"{d.slide:02d}-{d.name}.png")

        # the deck's dark mode reaches the demo
        first = deck_demos[0]
        browser.evaluate("localStorage.setItem('slidev-color-schema', 'dark')")
        browser.goto(f"{deck_url}/?demos={server}&dark=1#/{first.slide}")  # a new query: a full reload
        browser.wait_for(f"{demo_on(first.slide, first.name)}?.dataset.state === 'live'", timeout=60)
        frames = browser.evaluate("[...document.querySelectorAll('iframe')].map(f => f.src)")
        assert frames == [first.url(server, dark=True)]
        prefix = f"{server}/demo/{first.name}/"
        assert browser.wait_for(deck_cli.DEMO_SETTLED, timeout=120, frame_url_prefix=prefix) == "plot"
        assert browser.evaluate("document.body.classList.contains('dark')", prefix), "demo ignored __theme=dark"
        browser.screenshot(shots / f"{first.slide:02d}-{first.name}-dark.png")

        # a slide without a demo holds no iframe
        browser.goto(f"{deck_url}/?demos={server}#/1")
        browser.wait_for("!!document.querySelector('.slidev-page-1')", timeout=30)
        assert browser.evaluate("document.querySelectorAll('iframe').length") == 0

        requests = list(browser.requests)
    assert any(u.startswith(f"{server}/demo/") for u in requests), "the demo server was never asked"
    assert any(u.startswith(deck_url) for u in requests)
    assert_all_local(requests)


def test_snapshot_fallback_when_the_server_is_down_and_every_slide_renders(deck_url, shots):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    d = deck_cli.demos_in_deck()[0]
    with chromium.Browser(1280, 720) as browser:
        browser.goto(f"{deck_url}/?demos={down}#/{d.slide}")
        state = browser.wait_for(settled(d.slide, d.name), timeout=60)
        assert state == "offline", f"expected the offline fallback, got {state!r}"
        demo = demo_on(d.slide, d.name)
        browser.wait_for(
            f"{demo}.querySelector('img')?.complete && {demo}.querySelector('img').naturalWidth > 0", timeout=30
        )
        src = browser.evaluate(f"{demo}.querySelector('img').getAttribute('src')")
        assert src.endswith(f"/snapshots/{d.name}.png")
        hint = browser.evaluate(f"{demo}.innerText")
        assert "lecture present" in hint and down in hint, hint
        assert browser.evaluate("document.querySelectorAll('iframe').length") == 0
        browser.screenshot(shots / f"{d.slide:02d}-{d.name}-offline.png")

        # every slide: its images load, its diagrams render (no broken link, nothing from a CDN)
        sources = deck_cli.slide_sources(deck_cli.SLIDES.joinpath("slides.md").read_text(encoding="utf-8"))
        for n, source in enumerate(sources, start=1):
            page = f"document.querySelector('.slidev-page-{n}')"
            browser.evaluate(f"location.hash = '#/{n}'")
            browser.wait_for(f"!!{page} && location.hash === '#/{n}'", timeout=20)
            browser.wait_for(
                f"[...{page}.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)", timeout=20
            )
            diagrams = source.count("```mermaid")
            if diagrams:
                browser.wait_for(
                    f"[...{page}.querySelectorAll('.mermaid')].filter(m => m.shadowRoot?.querySelector"
                    f"('svg')).length === {diagrams}",
                    timeout=30,
                )
        assert n > 30
        requests = list(browser.requests)
    assert any(u.startswith(down) for u in requests), "the component never probed the server"
    assert_all_local(requests)
