"""What stands between the lecture hall's network and the demos: one ASGI middleware, checked before any handler.

- Host allow-list: a request whose Host header is not this server's (loopback by default, plus the LAN address in
  classroom mode) is refused with 421 — a DNS-rebinding page gets no same-origin access.
- Request bodies: at most ``max_body`` bytes, checked on the Content-Length header and again while streaming, so a
  400 MB body is refused before it is read, not after (413).
- Uploads: no demo takes a file, so Gradio's upload route answers 403 and nothing is ever written.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

MAX_BODY_BYTES = 256 * 1024  # the largest legitimate request (a 20,000-character text as JSON) is under 100 KB
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _host(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):  # [::1]:7860
                return host[1 : host.find("]")]
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: Host allow-list, body size limit, no uploads."""

    def __init__(self, app: Callable, hosts: tuple[str, ...] = LOOPBACK_HOSTS, max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.hosts = {h.lower() for h in hosts}
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = scope.get("headers", [])
        host = _host(headers)
        if host not in self.hosts:
            return await self._refuse(scope, send, 421, f"this server does not answer for host {host!r}")
        if scope["type"] == "http" and scope.get("path", "").rstrip("/").endswith("/upload"):
            return await self._refuse(scope, send, 403, "uploads are disabled: no demo takes a file")
        if scope["type"] == "http":
            length = next((v for k, v in headers if k == b"content-length"), None)
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                return await self._refuse(scope, send, 413, f"request body over {self.max_body:,} bytes")
            receive = self._limited(receive)
        return await self.app(scope, receive, send)

    def _limited(self, receive: Callable) -> Callable:
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:  # a chunked body that said nothing (or lied): read no further
                    return {"type": "http.disconnect"}
            return message

        return limited

    @staticmethod
    async def _refuse(scope: dict, send: Callable, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def lan_address() -> str | None:
    """This machine's address on the local network (the first private IPv4 of an interface that is up)."""
    import psutil

    stats = psutil.net_if_stats()
    for name, addresses in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for a in addresses:
            if a.family.name == "AF_INET":
                ip = ipaddress.ip_address(a.address)
                if ip.is_private and not ip.is_loopback and not ip.is_link_local:
                    return a.address
    return None


def qr_terminal(url: str) -> str:
    """The URL as a QR code drawn with text blocks, for the lecturer's terminal."""
    import io

    import segno

    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def qr_svg(url: str) -> str:
    """The URL as an inline SVG QR code, for the index page on the projector."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=8, border=2, xmldecl=False, svgns=True)
    return out.getvalue().decode()
