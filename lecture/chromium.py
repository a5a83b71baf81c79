"""Drive Debian's headless chromium over the DevTools protocol (CDP) through a pipe: no websocket, no browser download.

Serves the deck's browser test and `lecture snapshots` / `lecture export-figures`: open a page, wait for something to
exist inside it (also inside a cross-origin iframe), take a screenshot, and record every request the page made.
Chromium is started with `--remote-debugging-pipe`: it reads JSON commands on fd 3 and writes on fd 4, one message
per NUL-terminated chunk (the same transport Puppeteer uses).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--mute-audio",
    "--hide-scrollbars",
    "--disable-breakpad",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
]
LOCAL_PREFIXES = (
    "http://127.0.0.1",
    "http://localhost",
    "ws://127.0.0.1",
    "ws://localhost",
    "data:",
    "blob:",
    "about:",
    "chrome-error:",
)


class BrowserError(RuntimeError):
    pass


def executable() -> str:
    """The chromium binary: $CHROMIUM, else `chromium` / `chromium-browser` on PATH."""
    for cand in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    raise BrowserError("chromium not found: run `make browser-deps` (Debian: apt-get install -y chromium)")


def is_local(url: str) -> bool:
    return url.startswith(LOCAL_PREFIXES)


class Browser:
    """One headless chromium with one page. Use as a context manager; `requests` lists every URL requested."""

    def __init__(self, width: int = 1280, height: int = 720, scale: float = 1.0, timeout: float = 60.0):
        self.timeout = timeout
        self.scale = scale
        self.requests: list[str] = []
        self._profile = tempfile.mkdtemp(prefix="lecture-chromium-")
        to_child_r, to_child_w = os.pipe()  # we write commands -> chromium reads fd 3
        from_child_r, from_child_w = os.pipe()  # chromium writes fd 4 -> we read replies/events
        args = [
            executable(),
            *FLAGS,
            f"--user-data-dir={self._profile}",
            "--remote-debugging-pipe",
            f"--window-size={width},{height}",
            f"--force-device-scale-factor={scale}",
            "about:blank",
        ]

        def child_fds():  # move both ends above 4 first, so neither dup2 clobbers the other
            read_end = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        # our own pipe ends are close-on-exec; fds 3 and 4 (made by dup2) are inherited by chromium
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=child_fds,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._out = os.fdopen(to_child_w, "wb", buffering=0)
        self._in = os.fdopen(from_child_r, "rb", buffering=0)
        self._next = 0
        self._replies: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = self._open_page(width, height, scale)

    # -- transport ---------------------------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(1 << 16)
            if not chunk:
                break
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                self._dispatch(json.loads(raw))
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _dispatch(self, msg: dict) -> None:
        if "id" in msg:
            with self._cond:
                self._replies[msg["id"]] = msg
                self._cond.notify_all()
        elif msg.get("method") == "Network.requestWillBeSent":
            self.requests.append(msg["params"]["request"]["url"])
        elif msg.get("method") == "Target.attachedToTarget":
            # a cross-origin iframe in its own process: record its requests too, then let it run
            sid = msg["params"]["sessionId"]
            threading.Thread(target=self._watch_child, args=(sid,), daemon=True).start()

    def _watch_child(self, sid: str) -> None:
        try:
            self.send("Network.enable", session=sid)
            self.send(
                "Target.setAutoAttach",
                {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
                session=sid,
            )
            self.send("Runtime.runIfWaitingForDebugger", session=sid)
        except BrowserError:
            pass

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float | None = None):
        with self._cond:
            self._next += 1
            mid = self._next
        msg = {"id": mid, "method": method, "params": params or {}}
        if session or (session is None and getattr(self, "session", None)):
            msg["sessionId"] = session or self.session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.time() + (timeout or self.timeout)
        with self._cond:
            while mid not in self._replies:
                if self._closed or time.time() > deadline:
                    raise BrowserError(f"no answer to {method}")
                self._cond.wait(0.2)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def _open_page(self, width: int, height: int, scale: float) -> str:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session="")["targetId"]
        sid = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session="")["sessionId"]
        for method, params in [
            ("Page.enable", {}),
            ("Runtime.enable", {}),
            ("Network.enable", {}),
            (
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False},
            ),
            ("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}),
        ]:
            self.send(method, params, session=sid)
        return sid

    # -- page API ------------------------------------------------------------------------------------------------
    def resize(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": self.scale, "mobile": False},
        )

    def goto(self, url: str) -> None:
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")

    def evaluate(self, expression: str, frame_url_prefix: str | None = None):
        """Value of a JS expression in the page, or in the first frame whose URL starts with frame_url_prefix."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if frame_url_prefix:
            frame = self.frame(frame_url_prefix)
            if frame is None:
                return None
            world = self.send("Page.createIsolatedWorld", {"frameId": frame, "worldName": "lecture-test"})
            params["contextId"] = world["executionContextId"]
        result = self.send("Runtime.evaluate", params)
        if "exceptionDetails" in result:
            raise BrowserError(f"JS error: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def frame(self, url_prefix: str) -> str | None:
        def walk(node):
            if node["frame"].get("url", "").startswith(url_prefix):
                return node["frame"]["id"]
            for child in node.get("childFrames", []):
                found = walk(child)
                if found:
                    return found
            return None

        return walk(self.send("Page.getFrameTree")["frameTree"])

    def wait_for(self, expression: str, timeout: float = 60.0, frame_url_prefix: str | None = None, poll: float = 0.5):
        """Poll a JS expression until it is truthy; return its value or raise BrowserError with the last value."""
        deadline = time.time() + timeout
        value = None
        while time.time() < deadline:
            try:
                value = self.evaluate(expression, frame_url_prefix)
            except BrowserError as err:  # frame navigating, context gone: try again
                value = str(err)
            if value and not (isinstance(value, str) and value.startswith(("JS error", "Runtime.", "Page."))):
                return value
            time.sleep(poll)
        raise BrowserError(f"timed out after {timeout:.0f} s waiting for {expression!r} (last: {value!r})")

    def click(self, x: float, y: float) -> None:
        """A real mouse click at page CSS coordinates (focuses whatever is there, a cross-origin iframe too)."""
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def key(self, key: str) -> None:
        """A real key press (ArrowRight, Escape, ' '...) delivered to the focused element, as a keyboard would."""
        codes = {"ArrowRight": 39, "ArrowLeft": 37, "Escape": 27, " ": 32, "PageDown": 34, "PageUp": 33}
        base = {"key": key, "code": "Space" if key == " " else key, "windowsVirtualKeyCode": codes.get(key, 0)}
        self.send("Input.dispatchKeyEvent", {"type": "rawKeyDown", **base})
        if key == " ":
            self.send("Input.dispatchKeyEvent", {"type": "char", "text": " ", **base})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def screenshot(self, path: str | Path, clip: dict | None = None) -> Path:
        params = {"format": "png", "captureBeyondViewport": False}
        if clip:
            params["clip"] = {**clip, "scale": clip.get("scale", 1)}
        data = self.send("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.send("Browser.close", session="", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self._out, self._in):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
