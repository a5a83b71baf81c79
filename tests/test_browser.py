"""The deck in a real browser (Debian's chromium, headless, offline), as a lecturer uses it.

Built with Slidev, served, and opened against a real demo server. For every slide with a demo, light and dark, on a
1920x1080 and a 1280x720 screen: the demo's main figure (its hero) lies wholly inside the frame and covers at least
55% of it, and its smallest text is at least 14 px on the 1280x720 screen. A key pressed inside a demo moves the
deck; the expand button shows a demo over the slide and Esc brings it back. When the demo server is down the slide
shows its snapshot. The PDF export has one page per slide, each demo slide showing its snapshot. No slide overflows.
Every request stays on this machine. Screenshots go to artifacts/screenshots/; the measured fractions are printed.

Set-up: `make browser-deps` (chromium and poppler-utils from apt, `npm ci` in slides/).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import free_port

from lecture import chromium
from lecture import deck as deck_mod

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SLIDES = ROOT / "slides"
SHOTS = ROOT / "artifacts" / "screenshots"
GRADIO_ERROR = "!!document.querySelector('.toast-body.error')"
SCREENS = [(1920, 1080), (1280, 720)]
MIN_HERO_SHARE = 0.55
MIN_TEXT_PX = 14.0  # on the 1280x720 screen

# Inside a demo frame: the visible hero's box, the frame's size, and the smallest font-size (CSS px) of the text drawn
# inside the hero (plotly's svg text, or an HTML hero's text).
HERO = """(() => {
  const heroes = [...document.querySelectorAll('.lecture-hero')].filter(e => e.getBoundingClientRect().height > 0);
  if (!heroes.length) return null;
  const hero = heroes[0], r = hero.getBoundingClientRect();
  const texts = [...hero.querySelectorAll('svg text, [data-lecture-view] *, span, p, td, th')]
    .filter(t => t.getBoundingClientRect().width > 0 && (t.textContent || '').trim()
                 && !t.closest('.modebar-container'));
  const sizes = texts.map(t => parseFloat(getComputedStyle(t).fontSize)).filter(x => x > 0);
  return JSON.stringify({x: r.left, y: r.top, w: r.width, h: r.height, vw: innerWidth, vh: innerHeight,
                         min_font: sizes.length ? Math.min(...sizes) : null, texts: sizes.length});
})()"""


@pytest.fixture(scope="module")
def deck_dist(tmp_path_factory) -> Path:
    slidev = SLIDES / "node_modules" / ".bin" / "slidev"
    assert slidev.exists(), "slides/node_modules is missing: run `make browser-deps`"
    assert chromium.executable()  # raises with the install hint
    out = tmp_path_factory.mktemp("deck") / "dist"
    build = subprocess.run(
        [str(slidev), "build", "--out", str(out)], cwd=SLIDES, capture_output=True, text=True, timeout=600
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
    demo = demo_on(slide, name)
    return f"['live', 'offline'].includes({demo}?.dataset.state) && {demo}.dataset.state"


def assert_all_local(requests: list[str]) -> None:
    remote = sorted({u for u in requests if not chromium.is_local(u)})
    assert not remote, f"requests left the machine: {remote}"


def slide_scale(browser, slide: int) -> float:
    """Screen px per slide px: Slidev scales its 980 px wide slide to the window."""
    return browser.evaluate(f"document.querySelector('.slidev-page-{slide}').getBoundingClientRect().width") / 980


def deck_demos() -> list[deck_mod.DeckDemo]:
    """Every <Demo> of the deck; LECTURE_BROWSER_ONLY=name,name limits a developer's run (CI never sets it)."""
    only = [n for n in os.environ.get("LECTURE_BROWSER_ONLY", "").split(",") if n]
    return [d for d in deck_mod.demos_in_deck() if not only or d.name in only or d.snapshot in only]


def open_live(browser, deck_url: str, server: str, d: deck_mod.DeckDemo, dark: bool) -> str:
    """Open the demo's slide, wait until its frame drew the hero; return the frame's URL prefix."""
    query = f"demos={server}" + ("&dark=1" if dark else "")
    if not browser.evaluate("location.href").startswith(deck_url):
        browser.goto(f"{deck_url}/")
        browser.wait_for("!!document.querySelector('.slidev-page-1')", timeout=30)
    browser.evaluate(f"localStorage.setItem('slidev-color-schema', '{'dark' if dark else 'light'}')")
    browser.goto(f"{deck_url}/?{query}#/{d.slide}")
    state = browser.wait_for(settled(d.slide, d.name), timeout=60)
    assert state == "live", f"slide {d.slide}: demo {d.name} is {state!r}, not live"
    frames = browser.evaluate("[...document.querySelectorAll('iframe')].map(f => f.src)")
    assert frames == [d.url(server, dark)], f"slide {d.slide}: iframes {frames}"  # only the active slide's
    prefix = f"{server}/demo/{d.name}/"
    drawn = browser.wait_for(deck_mod.DEMO_SETTLED, timeout=240, frame_url_prefix=prefix)
    assert drawn == "plot", f"slide {d.slide}: demo {d.name} did not draw its picture: {drawn}"
    browser.wait_for(deck_mod.BUSY, timeout=180, frame_url_prefix=prefix)
    assert browser.evaluate(GRADIO_ERROR, prefix) is False, f"slide {d.slide}: {d.name} shows an error"
    assert browser.evaluate("document.body.classList.contains('dark')", prefix) == dark, "theme not followed"
    return prefix


def measure_hero(browser, prefix: str) -> dict:
    """The hero's box once the page script has sized it (it settles within a second or two)."""
    last = None
    for _ in range(12):
        browser.wait_for("new Promise(r => setTimeout(() => r(true), 400))", timeout=10)
        raw = browser.evaluate(HERO, prefix)
        hero = json.loads(raw) if raw else None
        if hero and last and abs(hero["h"] - last["h"]) < 1 and hero["min_font"]:
            return hero
        last = hero
    assert last, "the demo shows no hero (.lecture-hero)"
    return last


def test_every_demo_slide_leads_with_its_picture(deck_url, live_server, shots):
    server = live_server.url
    demos = deck_demos()
    assert demos, "the deck holds no demo"
    rows, failures = [], []
    with chromium.Browser(*SCREENS[0]) as browser:
        for d in demos:
            zoom = d.zoom
            for dark in (False, True):
                browser.resize(*SCREENS[0])
                prefix = open_live(browser, deck_url, server, d, dark)
                fits = browser.evaluate(
                    f"(() => {{ const s = document.querySelector('.slidev-page-{d.slide}').getBoundingClientRect(),"
                    f" r = {demo_on(d.slide, d.name)}.getBoundingClientRect();"
                    " return r.bottom <= s.bottom + 1 && r.right <= s.right + 1 && r.height > 100; })()"
                )
                assert fits, f"slide {d.slide}: the {d.name} frame does not fit on the slide"
                hero = measure_hero(browser, prefix)
                inside = (
                    hero["x"] >= -1
                    and hero["y"] >= -1
                    and hero["x"] + hero["w"] <= hero["vw"] + 1
                    and hero["y"] + hero["h"] <= hero["vh"] + 1
                )
                share = hero["w"] * hero["h"] / (hero["vw"] * hero["vh"])
                theme = "dark" if dark else "light"
                for w, h in SCREENS:
                    browser.resize(w, h)
                    expected = min(w / 980, h / 552)  # Slidev fits its 980 x 552 slide to the window
                    browser.wait_for(
                        f"Math.abs(document.querySelector('.slidev-page-{d.slide}').getBoundingClientRect().width"
                        f" / 980 - {expected}) < 0.01",
                        timeout=10,
                    )
                    scale = slide_scale(browser, d.slide)
                    font = hero["min_font"] * zoom * scale
                    browser.screenshot(shots / f"{d.slide:02d}-{d.snapshot}-{w}x{h}-{theme}.png")
                    rows.append((d.slide, d.snapshot, f"{w}x{h}", theme, share, font))
                    if (w, h) == SCREENS[1] and font < MIN_TEXT_PX:
                        failures.append(f"slide {d.slide} {d.snapshot} {theme}: smallest text {font:.1f} px")
                if not inside:
                    failures.append(f"slide {d.slide} {d.snapshot} {theme}: hero {hero} is not wholly in the frame")
                if share < MIN_HERO_SHARE:
                    failures.append(f"slide {d.slide} {d.snapshot} {theme}: hero covers {share:.0%} of the frame")
        requests = list(browser.requests)
    table = ["slide  demo                      screen     theme  hero share  smallest text (px on screen)"]
    for slide, shot, screen, theme, share, font in rows:
        table.append(f"{slide:>5}  {shot:<25} {screen:<10} {theme:<6} {share:>9.0%}  {font:>6.1f}")
    print("\n" + "\n".join(table))
    (shots.parent / "stage-measurements.txt").write_text("\n".join(table) + "\n")  # kept beside the screenshots
    assert not failures, "\n".join(failures)
    assert any(u.startswith(f"{server}/demo/") for u in requests), "the demo server was never asked"
    assert_all_local(requests)


def test_the_lecturers_hands_keys_and_expand(deck_url, live_server, shots):
    server = live_server.url
    d = next(x for x in deck_demos() if x.name == "attention")  # a strip with a text field and a button
    with chromium.Browser(*SCREENS[1]) as browser:
        prefix = open_live(browser, deck_url, server, d, dark=False)
        measure_hero(browser, prefix)

        def click_in_frame(selector: str) -> None:
            """A real click on an element of the demo page (focus moves into the frame, as a lecturer's click)."""
            box = json.loads(
                browser.evaluate(
                    f"JSON.stringify({demo_on(d.slide, d.name)}.querySelector('iframe').getBoundingClientRect())"
                )
            )
            inner = json.loads(
                browser.evaluate(
                    f"JSON.stringify({{r: document.querySelector({selector!r}).getBoundingClientRect(),"
                    " w: innerWidth})",
                    prefix,
                )
            )
            scale = box["width"] / inner["w"]
            r = inner["r"]
            browser.click(box["x"] + (r["x"] + r["width"] / 2) * scale, box["y"] + (r["y"] + r["height"] / 2) * scale)
            browser.wait_for("document.activeElement && document.activeElement.tagName === 'IFRAME'", timeout=10)

        # in a text field the arrows edit the text: the deck stays
        click_in_frame(".lecture-strip textarea, .lecture-strip input[type=text]")
        browser.key("ArrowRight")
        browser.wait_for("new Promise(r => setTimeout(() => r(true), 800))", timeout=5)
        assert browser.evaluate(f"location.hash.startsWith('#/{d.slide}')"), "typing in the demo moved the deck"
        # on a button (any control that is not a text field) → goes to the deck
        click_in_frame(".lecture-strip button")
        browser.key("ArrowRight")
        browser.wait_for(f"location.hash.startsWith('#/{d.slide + 1}')", timeout=10)
        browser.key("ArrowLeft")  # the deck has the focus again: its own keys work
        browser.wait_for(f"location.hash.startsWith('#/{d.slide}')", timeout=10)
        # expand: over the whole slide; Esc pressed inside the demo returns
        browser.wait_for(settled(d.slide, d.name), timeout=60)
        browser.evaluate(f"{demo_on(d.slide, d.name)}.querySelector('.lecture-demo-expand').click()")
        browser.wait_for(f"{demo_on(d.slide, d.name)}.dataset.expanded === '1'", timeout=10)
        covers = browser.evaluate(
            f"(() => {{ const s = document.querySelector('.slidev-page-{d.slide}').getBoundingClientRect(),"
            f" r = {demo_on(d.slide, d.name)}.getBoundingClientRect();"
            " return r.width >= s.width - 2 && r.height >= s.height - 2; })()"
        )
        assert covers, "the expanded demo does not cover the slide"
        browser.wait_for(deck_mod.DEMO_SETTLED, timeout=120, frame_url_prefix=prefix)
        browser.screenshot(shots / f"{d.slide:02d}-{d.snapshot}-expanded.png")
        click_in_frame(".lecture-strip button")
        browser.key("Escape")
        browser.wait_for(f"{demo_on(d.slide, d.name)}.dataset.expanded === '0'", timeout=10)
        assert browser.evaluate(f"location.hash.startsWith('#/{d.slide}')")


def test_snapshot_fallback_and_no_slide_overflows(deck_url, shots):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    d = deck_mod.demos_in_deck()[0]
    overflows = []
    with chromium.Browser(*SCREENS[1]) as browser:
        browser.goto(f"{deck_url}/?demos={down}#/{d.slide}")
        state = browser.wait_for(settled(d.slide, d.name), timeout=60)
        assert state == "offline", f"expected the offline fallback, got {state!r}"
        demo = demo_on(d.slide, d.name)
        browser.wait_for(
            f"{demo}.querySelector('img')?.complete && {demo}.querySelector('img').naturalWidth > 0", timeout=30
        )
        src = browser.evaluate(f"{demo}.querySelector('img').getAttribute('src')")
        assert src.endswith(f"/snapshots/{d.snapshot}.png")
        hint = browser.evaluate(f"{demo}.innerText")
        assert "lecture present" in hint and down in hint, hint
        assert browser.evaluate("document.querySelectorAll('iframe').length") == 0
        browser.screenshot(shots / f"{d.slide:02d}-{d.snapshot}-offline.png")

        # every slide: images load, diagrams render, nothing overflows the slide or scrolls sideways
        sources = deck_mod.deck_slides()
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
            found = browser.evaluate(f"""(() => {{
              const p = {page}, s = p.getBoundingClientRect(), out = [];
              for (const el of p.querySelectorAll('pre, .katex-display, table, img, .lecture-demo, .mermaid, p, li')) {{
                const r = el.getBoundingClientRect();
                if (r.width === 0 || el.closest('.lecture-demo-scroll')) continue;
                if (r.right > s.right + 1 || r.bottom > s.bottom + 1)
                  out.push(el.tagName + ' past the slide edge: ' + (el.innerText || el.className).slice(0, 60));
                if (el.tagName === 'PRE' && el.scrollWidth > el.clientWidth + 1)
                  out.push('a code block scrolls sideways: ' + el.innerText.slice(0, 60));
              }}
              return out; }})()""")
            overflows += [f"slide {n}: {x}" for x in found]
        assert n == len(sources) > 40
        requests = list(browser.requests)
    assert not overflows, "\n".join(overflows)
    assert any(u.startswith(down) for u in requests), "the component never probed the server"
    assert_all_local(requests)


def test_pdf_has_every_slide_and_demo_snapshots(tmp_path):
    """`make pdf`'s command: Slidev's exporter with Debian's chromium; a page per slide, snapshots on demo slides."""
    out = tmp_path / "deck.pdf"
    export = subprocess.run(
        ["npx", "slidev", "export", "--executable-path", chromium.executable(), "--output", str(out),
         "--timeout", "60000"],
        cwd=SLIDES, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert export.returncode == 0, f"slidev export failed:\n{export.stdout[-3000:]}\n{export.stderr[-3000:]}"
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    assert pages == len(deck_mod.deck_slides())
    images = subprocess.run(["pdfimages", "-list", str(out)], capture_output=True, text=True, check=True).stdout
    pages_with_pictures = {int(line.split()[0]) for line in images.splitlines()[2:] if line.split()}
    for d in deck_mod.demos_in_deck():
        assert d.slide in pages_with_pictures, f"page {d.slide} ({d.snapshot}) shows no snapshot"
        text = subprocess.run(
            ["pdftotext", "-f", str(d.slide), "-l", str(d.slide), str(out), "-"], capture_output=True, text=True
        ).stdout
        assert "not answering" not in text, f"page {d.slide}: a handout shows the 'server down' hint"
