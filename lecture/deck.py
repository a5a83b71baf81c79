"""The Slidev deck in slides/ and its demos: the slide parser, `lecture present` and `lecture snapshots`.

- present: the demo server and the deck's dev server together (Ctrl-C stops both).
- snapshots: each `<Demo>` of slides/slides.md, opened with its preset on a running demo server, screenshotted by
  headless chromium -> slides/public/snapshots/<name>.png (the Demo component shows it when the server is down).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
SLIDES = ROOT / "slides"
DEFAULT_SERVER = "http://127.0.0.1:7860"
CONTENT_WIDTH = 880  # slide px of a full-width demo (the slide is 980 px wide, minus the layout's padding)
SNAPSHOT_SCALE = 2  # device pixels per CSS pixel: sharp on a projector
# Inside a demo's page: 'plot' once its Gradio app has drawn a figure, 'error: ...' if it shows an error toast
DEMO_SETTLED = (
    "(() => { const err = document.querySelector('.toast-body.error');"
    " if (err) return 'error: ' + err.innerText.replace(/\\s+/g, ' ').slice(0, 300);"
    " return document.querySelector('.js-plotly-plot .main-svg, [data-lecture-view]') ? 'plot' : false;"
    " })()"
)  # a plotly figure, or one of our HTML views (the MoE token colouring)
BUSY = "document.querySelectorAll('.pending, .generating').length === 0"

_TAG = re.compile(r"<Demo\b(.*?)/>", re.S)
_ATTR = re.compile(r"""(:?[\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


@dataclass(frozen=True)
class DeckDemo:
    """One `<Demo>` tag in slides.md, on slide `slide` (1-based, as Slidev numbers them)."""

    name: str
    slide: int
    preset: dict = field(default_factory=dict)
    height: int = 400
    width: int | None = None
    zoom: float = 1.0
    shot: str = ""  # snapshot file stem (`shot="attention-step"`); the demo's name when one slide shows it

    @property
    def snapshot(self) -> str:
        return self.shot or self.name

    def snapshot_files(self) -> tuple[str, str]:
        """The light and the dark snapshot the Demo component shows when the server does not answer (and in PDFs)."""
        return f"{self.snapshot}.png", f"{self.snapshot}-dark.png"

    def viewport(self) -> tuple[int, int]:
        """CSS px the demo's page lays out in: the frame's slide px divided by the zoom (as Demo.vue does)."""
        return round((self.width or CONTENT_WIDTH) / self.zoom), round(self.height / self.zoom)

    def url(self, server: str, dark: bool = False) -> str:
        query = {**{k: str(v) for k, v in self.preset.items()}, "__theme": "dark" if dark else "light", "embed": "1"}
        return f"{server.rstrip('/')}/demo/{self.name}/?{urlencode(query)}"


def slide_sources(text: str) -> list[str]:
    """Split a Slidev file into slides: `---` separators, a frontmatter block after a separator belongs to its slide."""
    lines = text.splitlines()
    slides, current, i, fence = [], [], 0, False
    if lines and lines[0].strip() == "---":  # headmatter = frontmatter of slide 1
        end = next(j for j in range(1, len(lines)) if lines[j].strip() == "---")
        current, i = lines[: end + 1], end + 1
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        if line.strip() == "---" and not fence:
            slides.append("\n".join(current))
            current = [line]
            # a frontmatter block (key: value lines closed by ---) right after the separator
            j = i + 1
            while j < len(lines) and re.match(r"^[\w-]+:", lines[j]):
                j += 1
            if j > i + 1 and j < len(lines) and lines[j].strip() == "---":
                current += lines[i + 1 : j + 1]
                i = j
        else:
            current.append(line)
        i += 1
    slides.append("\n".join(current))
    return slides


_SRC = re.compile(r"^src:\s*(\S+)\s*$", re.M)


def deck_slides(path: str | Path = SLIDES / "slides.md") -> list[str]:
    """Every slide of the deck in Slidev's order, the slides of files imported with `src: ./pages/x.md` in place."""
    path = Path(path)
    out = []
    for source in slide_sources(path.read_text(encoding="utf-8")):
        lines = source.splitlines()
        head = "\n".join(lines[1 : lines.index("---", 1)]) if lines[:1] == ["---"] and "---" in lines[1:] else ""
        match = _SRC.search(head)
        if match:
            out.extend(deck_slides(path.parent / match.group(1)))
        else:
            out.append(source)
    return out


def demos_in_deck(path: str | Path = SLIDES / "slides.md") -> list[DeckDemo]:
    """Every `<Demo>` tag with its slide number; presets must be JSON (`:preset='{"k": 1}'`).
    Bad tags raise ValueError."""
    found = []
    for number, source in enumerate(deck_slides(path), start=1):
        for tag in _TAG.finditer(source):
            attrs = {
                m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _ATTR.finditer(tag.group(1))
            }
            if "name" not in attrs:
                raise ValueError(f"slide {number}: <Demo> without name=: {tag.group(0)}")
            try:
                preset = json.loads(attrs.get(":preset", "{}"))
                height = int(attrs.get(":height", 400))
                width = int(attrs[":width"]) if ":width" in attrs else None
                zoom = float(attrs.get(":zoom", 1.0))
            except ValueError as err:
                raise ValueError(
                    f"slide {number}: <Demo name={attrs['name']!r}> has a bad attribute ({err}); write "
                    'presets as JSON: :preset=\'{"key": "value"}\''
                ) from None
            if not isinstance(preset, dict):
                raise ValueError(f"slide {number}: preset of {attrs['name']!r} is not an object")
            if not 0.3 <= zoom <= 3:
                raise ValueError(f"slide {number}: zoom of {attrs['name']!r} must be between 0.3 and 3")
            shot = attrs.get("shot", "")
            if shot and not re.fullmatch(r"[a-z0-9_-]+", shot):
                raise ValueError(f"slide {number}: shot={shot!r} must be lower-case letters, digits, - and _")
            found.append(DeckDemo(attrs["name"], number, preset, height, width, zoom, shot))
    return found


def server_up(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/healthz", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_for_server(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while not server_up(url):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with code {proc.returncode}")
        if time.time() > deadline:
            raise RuntimeError(f"no answer from {url} after {timeout:.0f} s")
        time.sleep(0.5)


def take_snapshots(
    server: str, out_dir: str | Path, names: list[str] | None = None, dark: bool | None = None, timeout: float = 180.0
) -> list[Path]:
    """Screenshot every deck demo (or the named demos or shots) as the slide shows it, light and dark (or only the
    one ``dark`` says); returns the PNG paths."""
    from lecture.chromium import Browser

    written, failed, done = [], [], set()
    for demo in demos_in_deck():
        if (names and demo.name not in names and demo.snapshot not in names) or demo.snapshot in done:
            continue
        done.add(demo.snapshot)
        width, height = demo.viewport()
        for theme_dark, file in zip((False, True), demo.snapshot_files()):
            if dark is not None and theme_dark != dark:
                continue
            with Browser(width, height, scale=SNAPSHOT_SCALE) as browser:
                browser.goto(demo.url(server, theme_dark))
                state = browser.wait_for(DEMO_SETTLED, timeout=timeout)
                if state != "plot":
                    print(f"[lecture] snapshot {file}: FAILED, the demo shows {state}", file=sys.stderr, flush=True)
                    failed.append(file)
                    continue
                browser.wait_for(BUSY, timeout=timeout)
                time.sleep(1.5)  # let plotly finish its transition and the hero take its size
                written.append(browser.screenshot(Path(out_dir) / file))  # the frame, as the slide shows it
            print(f"[lecture] snapshot {file}: {written[-1]}", flush=True)
    if failed:
        raise RuntimeError(f"no snapshot for {', '.join(failed)}")
    return written


def snapshots(
    url: str, out: str | Path, names: list[str] | None = None, serve: bool = False, dark: bool | None = None
) -> int:
    """`lecture snapshots`: screenshot the deck's demos from the server at ``url`` (started here with ``serve``)."""
    proc = None
    if not server_up(url):
        if not serve:
            print(f"lecture: no demo server at {url}; start one (`lecture serve`) or pass --serve", file=sys.stderr)
            return 2
        port = int(url.rsplit(":", 1)[1].strip("/"))
        proc = subprocess.Popen([sys.executable, "-m", "lecture", "serve", "--port", str(port), "--no-preload"])
    try:
        wait_for_server(url, 300, proc)
        take_snapshots(url, out, names, dark=dark)
    except RuntimeError as err:
        print(f"lecture: {err}", file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            stop(proc)
    return 0


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop a server we started: SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def present(port: int = 7860, deck_port: int = 3030, model_names: list[str] | None = None) -> int:
    """`lecture present`: the demo server and the deck's dev server together; Ctrl-C stops both."""
    npx = shutil.which("npx")
    if npx is None:
        print("lecture: npx not found; install Node.js 20+ and run `npm ci` in slides/", file=sys.stderr)
        return 2
    if not (SLIDES / "node_modules").is_dir():
        subprocess.run([npx.replace("npx", "npm"), "ci"], cwd=SLIDES, check=True)
    server = f"http://127.0.0.1:{port}"
    serve_cmd = [sys.executable, "-m", "lecture", "serve", "--port", str(port)]
    for name in model_names or []:
        serve_cmd += ["--model", name]
    demos = subprocess.Popen(serve_cmd)
    deck = None
    try:
        wait_for_server(server, 600, demos)
        env = {**os.environ, "VITE_DEMO_SERVER": server}
        deck = subprocess.Popen(
            [npx, "slidev", "slides.md", "--port", str(deck_port), "--open", "false"], cwd=SLIDES, env=env
        )
        print(
            f"[lecture] deck at http://localhost:{deck_port}/  (presenter: /#/presenter/), demos at {server}/",
            flush=True,
        )
        while demos.poll() is None and deck.poll() is None:
            time.sleep(0.5)
        return demos.returncode or (deck.returncode if deck.returncode is not None else 0) or 0
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (deck, demos):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
