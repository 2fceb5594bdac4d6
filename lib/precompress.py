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
from collections import OrderedDict
from pathlib import Path

import anyio
import streamlit
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_COMPRESSIBLE = (".js", ".css", ".map", ".json", ".svg", ".txt", ".html")
_MIN_SIZE = 1024
_SKIPPED_HEADERS = {b"content-length", b"content-encoding", b"accept-ranges"}


# Where Streamlit's `/static/...` URLs are files: the frontend bundles of the installed release.
_BUNDLE_ROOT = Path(streamlit.__file__).parent / "static" / "static"
_Entry = tuple[int, list[tuple[bytes, bytes]], bytes]


class PrecompressedStatic:
    """ASGI middleware: gzip `/static/...` text assets once, keep them in memory, reuse them.

    Only a path that names a real file of the bundle folder (`root`) is cached, keyed by the
    resolved file, and the cache is bounded in entries and compressed bytes (least recently used
    out first). Streamlit answers an unknown `/static/` path with its index page and status 200,
    so anyone could otherwise add an entry per random path until the process runs out of memory.
    """

    def __init__(
        self,
        app: ASGIApp,
        prefix: str = "/static/",
        root: Path = _BUNDLE_ROOT,
        max_entries: int = 512,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.root = root.resolve()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._cache: OrderedDict[Path, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        bundle = self._bundle_file(scope) if self._eligible(scope) else None
        if bundle is None:
            await self.app(scope, receive, send)
            return
        cached = self._cached(bundle)
        if cached is None:
            cached, messages = await self._capture(scope, receive)
            if cached is None:  # not cacheable: pass the original response on as it was
                for message in messages:
                    await send(message)
                return
            self._keep(bundle, cached)
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

    def _bundle_file(self, scope: Scope) -> Path | None:
        """The real file under `root` the path names, or None (unknown, or outside `root`)."""
        try:
            candidate = (self.root / scope["path"][len(self.prefix) :]).resolve()
        except (OSError, ValueError):
            return None
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    def _cached(self, bundle: Path) -> _Entry | None:
        with self._lock:
            entry = self._cache.get(bundle)
            if entry is not None:
                self._cache.move_to_end(bundle)
            return entry

    def _keep(self, bundle: Path, entry: _Entry) -> None:
        size = len(entry[2])
        if size > self.max_bytes:
            return
        with self._lock:
            previous = self._cache.pop(bundle, None)
            if previous is not None:
                self._bytes -= len(previous[2])
            self._cache[bundle] = entry
            self._bytes += size
            while len(self._cache) > self.max_entries or self._bytes > self.max_bytes:
                _, dropped = self._cache.popitem(last=False)
                self._bytes -= len(dropped[2])

    async def _capture(self, scope: Scope, receive: Receive) -> tuple[_Entry | None, list]:
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
        return (200, headers, compressed), messages


_STATIC_JS = _BUNDLE_ROOT / "js"


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
