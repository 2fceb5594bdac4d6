"""Static delivery: Streamlit's bundles gzipped once, and plotly's chunk asked for early.

Streamlit serves its content-hashed bundles (plotly.js alone is about 4.7 MB) uncompressed;
per-request gzip costs CPU on every load. Compressing each asset once per process gets the
smaller transfer on a real network without paying for it again on every request.

Streamlit imports plotly's chunk only when the first chart element arrives, i.e. after the
WebSocket connected and the script ran that far; fetching, compiling and evaluating it then puts
seconds between "script done" and "chart drawn". `PageHints` names it as a modulepreload in the
page (fetched and compiled while the app connects) and, on pages with charts, imports it at the
browser's first idle moment (evaluated while the app waits for its connection and data).

A deep link (`/campaign?...`) also makes Streamlit's frontend guess where the server is: it first
tries `/campaign/_stcore/health`, fails, waits, then tries `/`. `PageHints` tells it the base URL
(`window.__streamlit.BACKEND_BASE_URL`, read by the frontend at start), so it connects at once.
"""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import anyio
import streamlit
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


_STATIC_JS = Path(streamlit.__file__).parent / "static" / "static" / "js"


def plotly_chunk() -> str | None:
    """The file name of the installed Streamlit's plotly chunk (content-hashed), if any."""
    found = sorted(_STATIC_JS.glob("PlotlyChart.*.js"))
    return found[0].name if found else None


class PageHints:
    """ASGI middleware: adds plotly's preload (and idle import) and the base URL to HTML pages.

    `pages`: the app's page URL paths (a deep link is `<base>/<page>`); `chart_pages`: those
    that draw charts, "" for the default page at `<base>/`; `base_path`: server.baseUrlPath."""

    def __init__(
        self,
        app: ASGIApp,
        pages: tuple[str, ...] = (),
        chart_pages: tuple[str, ...] = ("",),
        base_path: str = "",
        chunk: str | None = None,
    ) -> None:
        self.app = app
        self.pages = set(pages)
        self.chart_pages = set(chart_pages)
        self.base = "/" + base_path.strip("/") if base_path.strip("/") else ""
        chunk = chunk or plotly_chunk()
        href = f"./static/js/{chunk}"
        self._preload = f'<link rel="modulepreload" href="{href}" />'.encode() if chunk else b""
        self._import = (
            b'<script type="module">(window.requestIdleCallback || setTimeout)('
            + f'() => import("{href}").catch(() => {{}}))</script>'.encode()
            if chunk
            else b""
        )
        # A deep link: the app's base URL is the page's URL without its last segment.
        self._base_url = (
            b"<script>window.__streamlit = Object.assign({BACKEND_BASE_URL: location.origin"
            b' + location.pathname.replace(/[^/]+\\/?$/, "")}, window.__streamlit)</script>'
        )

    def _page(self, path: str) -> str | None:
        """The page a path opens ("" = the default page), or None when it is not a page."""
        if not path.startswith(self.base + "/"):
            return None
        page = path[len(self.base) + 1 :].rstrip("/")
        return page if page == "" or page in self.pages else None

    def _hints(self, page: str) -> bytes:
        hints = self._preload
        if page in self.chart_pages:
            hints += self._import
        if page:
            hints += self._base_url
        return hints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        page = (
            self._page(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        hints = self._hints(page) if page is not None else b""
        if not hints:
            await self.app(scope, receive, send)
            return
        # The page is 8 KB: ask for it uncompressed (Streamlit gzips deep-link pages) so the
        # hints can be added.
        scope = {
            **scope,
            "headers": [(n, v) for n, v in scope["headers"] if n.lower() != b"accept-encoding"],
        }
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = Headers(raw=message.get("headers", []))
                html = headers.get("content-type", "").startswith("text/html")
                if message["status"] != 200 or not html or "content-encoding" in headers:
                    await send(message)  # not a plain page: pass through untouched
                    return
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks).replace(b"</head>", hints + b"</head>", 1)
            headers = [(n, v) for n, v in start["headers"] if n.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)
