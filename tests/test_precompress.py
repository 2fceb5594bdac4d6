"""Static bundles are gzipped once per process and served from the cache afterwards."""

import gzip

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from lib.precompress import PageHints, PrecompressedStatic

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
