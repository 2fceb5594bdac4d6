"""Live mode against a stand-in CloudAgent: secrets never leak, hostile names stay data.

The server runs with credentials (live mode) against a sandbox this test runs itself, so the
test knows the apiKey and the callback secret and can look for them everywhere a full session
leaves traces: page HTML, websocket frames, /api/health, the server log, the database and the
raw delivery files. Campaign names with markup, quotes, emoji and RTL text must come back as
text, and links built from them must reopen the same view.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import duckdb
import httpx
import pytest

from lib.config import API_PATH
from lib.sandbox import SandboxConfig, create_sandbox_app
from lib.view.filters import Filters, to_query_string
from lib.view.pages import DEFAULT_PAGE
from lib.view.pages import PAGES as REGISTRY
from lib.view.ui import WORD_JOINER
from tests.browser import helpers
from tests.browser.conftest import ALL_CAMPAIGNS_LOADED_TIMEOUT
from tests.support.asgi import run_asgi
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.browser

API_KEY = "LIVE-KEY-5f2c9a17e0b84d3c"
CALLBACK_SECRET = "cb-secret-8d41f0a2c7e9b356"
ACCOUNT = "acme_ops"
HOSTILE = (
    "<script>alert('x')</script> & \"Q4\" 50% #1 🚀 مرحبا: see http://evil.example/x or "
    "www.evil.example or bob@evil.example"
)
PLAIN = "Renewals Live"
PAGES = ["", *(p.path for p in REGISTRY if p != DEFAULT_PAGE)]  # "" is the default page


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    port = free_port()
    config = SandboxConfig(
        api_key=API_KEY,
        username=ACCOUNT,
        campaigns={PLAIN: 800, HOSTILE: 300},
        delivery_delay_s=0.1,
    )
    with run_asgi(create_sandbox_app(config)) as sandbox_url:
        env = {
            "CLOUDAGENT_API_KEY": API_KEY,
            "CLOUDAGENT_USERNAME": ACCOUNT,
            "CLOUDAGENT_API_URL": sandbox_url + API_PATH,
            "DIALSTATUS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "DIALSTATUS_CALLBACK_SECRET": CALLBACK_SECRET,
            "DIALSTATUS_CAMPAIGNS": f"{PLAIN},{HOSTILE}",
            "DIALSTATUS_SYNC_INTERVAL": "3600",
        }
        server = ServerProcess(tmp_path_factory.mktemp("live"), env=env, port=port)
        with server:
            server.wait_for(
                lambda h: len(h["campaigns"]) == 2 and all(c["rows"] > 0 for c in h["campaigns"]),
                timeout=ALL_CAMPAIGNS_LOADED_TIMEOUT,
            )
            yield server


def _wait_idle(page) -> None:
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000
    )
    page.wait_for_timeout(500)


def test_hostile_campaign_name_is_text_and_its_link_round_trips(live_server, browser):
    health = live_server.health()
    rows = {c["name"]: c["rows"] for c in health["campaigns"]}
    assert rows.keys() == {PLAIN, HOSTILE}
    link = live_server.base_url + "/?" + to_query_string(Filters(campaigns=(HOSTILE,)))
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    helpers.open_page(page, link, heading="Overview", metrics=8)
    assert dialogs == []  # the <script> in the name never ran
    assert page.locator('[data-testid="stSidebar"]').get_by_text(HOSTILE).count() >= 1
    leads = helpers.kpis(page)["Leads"].replace(",", "")
    assert int(leads) == rows[HOSTILE]
    assert "campaign=" + quote(HOSTILE, safe="")[:12] in page.url
    assert "<script>alert" not in page.content().replace("&lt;script&gt;", "")
    # Where the name is written through markdown (headings, captions, notices), its URL and
    # e-mail address are text too: GFM would make links of them.
    query = link.split("?", 1)[1]
    for path, heading in (("progress", "Progress"), ("campaign", "Campaign")):
        helpers.open_page(page, f"{live_server.base_url}/{path}?{query}", heading=heading)
        outside = page.eval_on_selector_all(
            "a[href]",
            "(links) => links.map(a => a.href).filter("
            "h => !h.startsWith(location.origin + '/') && h.includes('evil'))",
        )  # our own links carry the name in their query; none may lead to its URL or address
        assert outside == [], path
    headings = page.locator('[data-testid="stHeading"]').all_inner_texts()
    assert HOSTILE in [h.replace(WORD_JOINER, "") for h in headings], headings
    assert dialogs == []
    context.close()


def test_no_secret_reaches_pages_websocket_health_logs_database_or_files(live_server, browser):
    context = browser.new_context()
    page = context.new_page()
    frames: list[str] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda payload: frames.append(_as_text(payload))),
    )
    seen_html: list[str] = []
    for path in PAGES:
        page.goto(f"{live_server.base_url}/{path}")
        _wait_idle(page)
        seen_html.append(page.content())
    # The manual request form on the Sync page sends a real request through the engine.
    health_text = httpx.get(live_server.base_url + "/api/health").text
    context.close()
    live_server.stop()

    db_text = _dump_database(live_server.data_dir / "dialstatus.duckdb")
    files_text = "".join(
        path.read_bytes().decode("utf-8", "replace")
        for path in live_server.data_dir.rglob("*")
        if path.is_file() and "callback_secret" not in path.name and path.suffix != ".log"
        and not path.name.endswith(".duckdb")
    )  # fmt: skip
    places = {
        "page HTML": "".join(seen_html),
        "websocket frames": "".join(frames),
        "/api/health": health_text,
        "server log": live_server.log_text(),
        "database": db_text,
        "data files": files_text,
    }
    assert frames and db_text, "the session left no traces to search"
    for secret in (API_KEY, CALLBACK_SECRET):
        leaks = [place for place, text in places.items() if secret in text]
        assert leaks == [], f"{secret[:8]}... found in {leaks}"


def _as_text(payload) -> str:
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)


def _dump_database(path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [row[0] for row in con.execute("SHOW TABLES").fetchall()]
        return "".join(
            json.dumps(con.execute(f'SELECT * FROM "{table}"').fetchall(), default=str)
            for table in tables
        )
