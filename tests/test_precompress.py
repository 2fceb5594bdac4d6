"""Static bundles are gzipped once per process and served from the cache afterwards."""

import gzip

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from lib.precompress import PrecompressedStatic, PreloadPlotly

BUNDLE = ("function plot(){return 42};" * 5000).encode()
calls = {"n": 0}


async def static(request):
    calls["n"] += 1
    name = request.path_params["name"]
    body = BUNDLE if name.startswith("big") else b"tiny"
    return Response(body, media_type="text/javascript",
                    headers={"cache-control": "public, max-age=31536000, immutable"})  # fmt: skip


def _client() -> TestClient:
    calls["n"] = 0
    app = Starlette(routes=[Route("/static/js/{name}", static)])
    return TestClient(PrecompressedStatic(app))


def test_gzip_once_then_served_from_cache_with_caching_headers():
    client = _client()
    for _ in range(3):
        response = client.get("/static/js/big.abc123.js", headers={"accept-encoding": "gzip"})
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == BUNDLE  # httpx decodes gzip transparently
        assert "immutable" in response.headers["cache-control"]
        assert int(response.headers["content-length"]) < len(BUNDLE) / 10
    assert calls["n"] == 1


def test_clients_without_gzip_and_small_files_get_the_original_bytes():
    client = _client()
    plain = client.get("/static/js/big.abc123.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == BUNDLE
    small = client.get("/static/js/small.js", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in small.headers and small.content == b"tiny"
    assert gzip.decompress(gzip.compress(BUNDLE)) == BUNDLE


def test_only_html_pages_get_the_preload_hint_with_a_correct_length():
    async def page(request):
        return Response("<html><head><title>x</title></head><body></body></html>",
                        media_type="text/html")  # fmt: skip

    async def data(request):
        return Response('{"a": "</head>"}', media_type="application/json")

    app = Starlette(routes=[Route("/", page), Route("/api/data", data), Route("/x", data)])
    client = TestClient(PreloadPlotly(app, chunk="PlotlyChart.abc.js"))
    html = client.get("/", headers={"accept-encoding": "gzip"})
    hint = '<link rel="modulepreload" href="./static/js/PlotlyChart.abc.js" /></head>'
    assert hint in html.text and html.text.count("modulepreload") == 1
    assert int(html.headers["content-length"]) == len(html.content)
    for path in ("/api/data", "/x"):
        assert client.get(path).text == '{"a": "</head>"}'
