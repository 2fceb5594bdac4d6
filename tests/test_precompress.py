"""Static bundles are gzipped once per process and served from the cache afterwards; only real
bundle files are cached, within a bound, so anonymous traffic cannot grow the process."""

import gzip
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from lib.precompress import PageHints, PrecompressedStatic

BUNDLE = ("function plot(){return 42};" * 5000).encode()
calls = {"n": 0}


async def static(request):
    calls["n"] += 1
    name = request.path_params["rest"].rsplit("/", 1)[-1]  # any path answers, as Streamlit's do
    body = BUNDLE if name.startswith("big") else b"tiny"
    return Response(body, media_type="text/javascript",
                    headers={"cache-control": "public, max-age=31536000, immutable"})  # fmt: skip


def _bundles(root: Path, *names: str) -> Path:
    """A bundle folder holding `names` (the middleware caches only files that exist)."""
    (root / "js").mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / "js" / name).write_bytes(BUNDLE if name.startswith("big") else b"tiny")
    return root


def _client(root: Path, **limits) -> TestClient:
    calls["n"] = 0
    app = Starlette(routes=[Route("/static/{rest:path}", static)])
    return TestClient(PrecompressedStatic(app, root=root, **limits))


def test_gzip_once_then_served_from_cache_with_caching_headers(tmp_path):
    client = _client(_bundles(tmp_path, "big.abc123.js"))
    for _ in range(3):
        response = client.get("/static/js/big.abc123.js", headers={"accept-encoding": "gzip"})
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == BUNDLE  # httpx decodes gzip transparently
        assert "immutable" in response.headers["cache-control"]
        assert int(response.headers["content-length"]) < len(BUNDLE) / 10
    assert calls["n"] == 1


def test_clients_without_gzip_and_small_files_get_the_original_bytes(tmp_path):
    client = _client(_bundles(tmp_path, "big.abc123.js", "small.js"))
    plain = client.get("/static/js/big.abc123.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == BUNDLE
    small = client.get("/static/js/small.js", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in small.headers and small.content == b"tiny"
    assert gzip.decompress(gzip.compress(BUNDLE)) == BUNDLE


def test_paths_that_are_no_bundle_file_are_answered_but_never_cached(tmp_path):
    """Streamlit answers any unknown /static/ path with 200: those answers must not be kept."""
    client = _client(_bundles(tmp_path, "big.abc123.js"))
    middleware = client.app
    for name in ("bigrandom1.js", "big.abc123.js/../bigx.js", "big%2F..%2Fbig2.js"):
        response = client.get(f"/static/js/{name}", headers={"accept-encoding": "gzip"})
        assert response.status_code == 200 and response.content == BUNDLE
    outside = tmp_path.parent / "bigoutside.js"
    outside.write_bytes(BUNDLE)
    client.get("/static/js/../../bigoutside.js", headers={"accept-encoding": "gzip"})
    assert len(middleware._cache) == 0
    client.get("/static/js/big.abc123.js", headers={"accept-encoding": "gzip"})
    assert list(middleware._cache) == [(tmp_path / "js" / "big.abc123.js").resolve()]


def test_the_cache_is_bounded_in_entries_and_bytes(tmp_path):
    names = [f"big{i}.js" for i in range(5)]
    root = _bundles(tmp_path, *names)
    one = len(gzip.compress(BUNDLE, 6))
    for limits, kept in (({"max_entries": 2}, 2), ({"max_bytes": 3 * one}, 3)):
        client = _client(root, **limits)
        for name in names:
            client.get(f"/static/js/{name}", headers={"accept-encoding": "gzip"})
        cached = client.app._cache
        assert [p.name for p in cached] == names[-kept:]  # the least recently used went first
        assert client.app._bytes == sum(len(entry[2]) for entry in cached.values())
        assert calls["n"] == len(names)


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _random_static_paths(base_url: str, count: int) -> None:
    headers = {"accept-encoding": "gzip"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(count):
            response = client.get(f"/static/{secrets.token_hex(8)}.js", headers=headers)
            assert response.status_code == 200  # Streamlit's index page


@pytest.mark.slow
def test_20000_random_static_paths_do_not_grow_the_server(tmp_path):
    """Anyone, without signing in, may ask for any /static/ path; 20,000 of them (16 clients at
    once: a request takes ~45 ms on loopback) leave the server's memory where it was."""
    from tests.support.server import ServerProcess

    clients = 16
    with ServerProcess(tmp_path, env={"DIALSTATUS_SYNC_ENABLED": "false"}) as server:
        _random_static_paths(server.base_url, 200)  # warm up the server's own buffers
        before = _rss_bytes(server.pid)
        started = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(_random_static_paths, [server.base_url] * clients, [1250] * clients))
        elapsed = time.monotonic() - started
        grown = _rss_bytes(server.pid) - before
    assert grown < 20 * 1024 * 1024, f"RSS grew {grown / 2**20:.1f} MiB in {elapsed:.0f} s"


PAGE_HTML = "<html><head><title>x</title></head><body></body></html>"
PRELOAD = '<link rel="modulepreload" href="./static/js/PlotlyChart.abc.js" />'
IMPORT = 'import("./static/js/PlotlyChart.abc.js")'
BASE_HINT = "BACKEND_BASE_URL"


def _hinted(base_path: str = "") -> TestClient:
    async def page(request):
        return Response(PAGE_HTML, media_type="text/html")

    async def data(request):
        return Response('{"a": "</head>"}', media_type="application/json")

    async def nested_page(request):  # what Streamlit answers for /campaign/_stcore/health
        return Response(PAGE_HTML, media_type="text/html", status_code=404)

    prefix = "/" + base_path.strip("/") if base_path else ""
    app = Starlette(
        routes=[
            Route(f"{prefix}/", page),
            Route(f"{prefix}/campaign", page),
            Route(f"{prefix}/leads", page),
            Route(f"{prefix}/nope", page),
            Route(f"{prefix}/api/data", data),
            Route(f"{prefix}/campaign/_stcore/health", nested_page),
        ]
    )
    hints = PageHints(
        app,
        pages=("overview", "campaign", "leads"),
        chart_pages=("", "overview", "campaign"),
        base_path=base_path,
        chunk="PlotlyChart.abc.js",
    )
    return TestClient(hints)


def _head(client: TestClient, path: str) -> str:
    response = client.get(path, headers={"accept-encoding": "gzip"})
    assert int(response.headers["content-length"]) == len(response.content)
    return response.text.split("</head>")[0]


def test_chart_pages_preload_and_import_plotly_and_deep_links_name_the_base_url():
    client = _hinted()
    root, campaign, leads = (_head(client, p) for p in ("/", "/campaign", "/leads"))
    # Plotly is preloaded once on every page and imported early only where charts are drawn.
    assert root.count(PRELOAD) == campaign.count(PRELOAD) == leads.count(PRELOAD) == 1
    assert IMPORT in root and IMPORT in campaign and IMPORT not in leads
    # A deep link tells the frontend its base URL; the root page needs no hint.
    assert BASE_HINT in campaign and BASE_HINT in leads and BASE_HINT not in root


def test_what_is_not_a_page_passes_through_untouched():
    client = _hinted()
    assert client.get("/api/data").text == '{"a": "</head>"}'
    for path in ("/nope", "/campaign/_stcore/health"):
        assert client.get(path).text == PAGE_HTML


def test_under_a_base_url_path_only_its_pages_are_hinted():
    client = _hinted(base_path="dash")
    assert BASE_HINT in _head(client, "/dash/campaign") and IMPORT in _head(client, "/dash/")
    assert PRELOAD not in client.get("/dash/nope").text
