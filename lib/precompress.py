"""Compress Streamlit's static bundles once and serve the cached gzip bytes afterwards.

Streamlit serves its content-hashed bundles (plotly.js alone is about 4.7 MB) uncompressed;
per-request gzip costs CPU on every load. Compressing each asset once per process gets the
smaller transfer on a real network without paying for it again on every request.
"""

from __future__ import annotations

import gzip
import threading

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_COMPRESSIBLE = (".js", ".css", ".map", ".json", ".svg", ".txt", ".html")
_MIN_SIZE = 1024
_SKIPPED_HEADERS = {b"content-length", b"content-encoding", b"accept-ranges"}


class PrecompressedStatic:
    """ASGI middleware: gzip `/static/...` text assets once, keep them in memory, reuse them."""

    def __init__(self, app: ASGIApp, prefix: str = "/static/") -> None:
        self.app = app
        self.prefix = prefix
        self._cache: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._eligible(scope):
            await self.app(scope, receive, send)
            return
        cached = self._cache.get(scope["path"])
        if cached is None:
            cached, messages = await self._capture(scope, receive)
            if cached is None:  # not cacheable: pass the original response on as it was
                for message in messages:
                    await send(message)
                return
        status, headers, body = cached
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _eligible(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "GET":
            return False
        if not scope["path"].startswith(self.prefix) or not scope["path"].endswith(_COMPRESSIBLE):
            return False
        headers = Headers(scope=scope)
        if "range" in headers or "if-none-match" in headers:
            return False
        return "gzip" in headers.get("accept-encoding", "")

    async def _capture(self, scope: Scope, receive: Receive):
        messages: list[Message] = []

        async def collect(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, collect)
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        if start is None or start["status"] != 200:
            return None, messages
        raw_headers = start.get("headers", [])
        if any(name.lower() == b"content-encoding" for name, _ in raw_headers):
            return None, messages
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        if len(body) < _MIN_SIZE:
            return None, messages
        compressed = await anyio.to_thread.run_sync(gzip.compress, body, 6)
        headers = [(n, v) for n, v in raw_headers if n.lower() not in _SKIPPED_HEADERS]
        headers += [
            (b"content-encoding", b"gzip"),
            (b"content-length", str(len(compressed)).encode()),
            (b"vary", b"Accept-Encoding"),
        ]
        entry = (200, headers, compressed)
        with self._lock:
            self._cache[scope["path"]] = entry
        return entry, messages
