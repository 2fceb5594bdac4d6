"""File links are fetched only from where they belong: in live mode the API's scheme, host and
port; in demo mode the sandbox's own file path on this server. Everything else is refused
before any connection, with one plain reason (the server is no port scanner)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import httpx
import pytest

from lib.cloudagent import ClientOptions, CloudAgentClient, CloudAgentError
from lib.store.receive import DeliveryRejected, check_link
from lib.store.receive.links import OUTSIDE_REASON
from tests.support.file_host import FileHost, csv_bytes
from tests.support.server import ServerProcess

RECORDS = [
    {"LeadID": "K1", "PhoneNumber": "9800000001", "CampaignName": "Links"},
    {"LeadID": "K2", "PhoneNumber": "9800000002", "CampaignName": "Links"},
]
OFF = {"DIALSTATUS_SYNC_ENABLED": "false"}


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/files/a.csv",
        "https://API.example.com:443/a.csv",
    ],
)
def test_a_link_on_the_api_origin_is_allowed(url):
    assert check_link(url, ["https://api.example.com"]) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/a.csv",  # plain http beside an https API
        "https://api.example.com:8443/a.csv",  # another port of the API's host
        "https://files.example.com/a.csv",
        "https://api.example.com/../a.csv",
    ],
)
def test_a_link_off_the_api_origin_is_refused_plainly(url):
    with pytest.raises(DeliveryRejected) as refused:
        check_link(url, ["https://api.example.com"])
    assert (refused.value.status_code, refused.value.message) == (400, OUTSIDE_REASON)


def test_a_path_rule_allows_only_what_is_under_it():
    files = ["http://127.0.0.1:8501/api/sandbox/files/"]
    assert check_link("http://127.0.0.1:8501/api/sandbox/files/t.csv", files)
    for url in [
        "http://127.0.0.1:8501/api/health",
        "http://127.0.0.1:8501/api/sandbox/filesx/t.csv",
        "http://127.0.0.1:8501/api/sandbox/files/../../health",
        "http://127.0.0.1:8501/api/sandbox/files/%2e%2e/%2e%2e/health",
        "http://127.0.0.1:8502/api/sandbox/files/t.csv",
    ]:
        with pytest.raises(DeliveryRejected, match=OUTSIDE_REASON):
            check_link(url, files)


# -- the real server -------------------------------------------------------------------------


@pytest.fixture
def hosts() -> Iterator[tuple[FileHost, FileHost]]:
    """The API's host (which serves the files too) and another port of the same machine."""
    with FileHost() as api, FileHost() as other:
        api.files["/rows.csv"] = other.files["/rows.csv"] = csv_bytes(RECORDS)
        yield api, other


def _deliver(server: ServerProcess, url: str) -> httpx.Response:
    body = json.dumps({"uniqueId": "u", "campaignName": "Links", "fileUrl": url})
    headers = {"Content-Type": "application/json"}
    return httpx.post(server.callback_url, content=body, headers=headers, timeout=60)


def _stored_errors(data_dir: Path) -> list[str]:
    """Every stored error text, read after the server stopped."""
    with duckdb.connect(str(data_dir / "dialstatus.duckdb"), read_only=True) as db:
        return [
            text
            for (text,) in db.execute(
                "SELECT error FROM raw_deliveries UNION ALL SELECT error FROM sync_requests "
                "UNION ALL SELECT last_error FROM sync_state"
            ).fetchall()
            if text
        ]


def _assert_plain(errors: list[str], other: FileHost) -> None:
    """Each stored error gives the plain reason, and nothing of the other port or its answer."""
    assert errors
    for error in errors:
        assert OUTSIDE_REASON in error
        assert str(other.port) not in error and "HTTP" not in error


def test_live_mode_fetches_only_from_the_api_scheme_host_and_port(tmp_path, hosts):
    api, other = hosts
    env = {
        **OFF,
        "CLOUDAGENT_API_KEY": "live-key-for-links",
        "CLOUDAGENT_USERNAME": "links_user",
        "CLOUDAGENT_API_URL": api.base + "/endpoint/dailer/data/preview/download",
    }
    with ServerProcess(tmp_path / "live", env=env) as server:
        other_port = _deliver(server, other.base + "/rows.csv")
        other_scheme = _deliver(server, f"https://127.0.0.1:{api.port}/rows.csv")
        missing_elsewhere = _deliver(server, other.base + "/missing.csv")
        fetched = _deliver(server, api.base + "/rows.csv")
        secret = server.callback_secret
        echoed = httpx.post(  # a delivery reporting an error that names its own callBackUrl
            server.callback_url,
            json={"status": "error", "message": f"could not post to {server.callback_url} ok"},
            timeout=30,
        )
    assert echoed.status_code == 400 and secret not in echoed.text
    assert other.requests == []  # never connected to
    for refused in (other_port, other_scheme, missing_elsewhere):
        assert (refused.status_code, refused.json()["message"]) == (400, OUTSIDE_REASON)
    assert fetched.status_code == 200 and fetched.json()["rows"] == 2, fetched.text
    assert api.requests == ["/rows.csv"]
    errors = _stored_errors(tmp_path / "live")
    assert not [error for error in errors if secret in error]
    _assert_plain([error for error in errors if "reports an error" not in error], other)


def test_demo_mode_fetches_only_the_sandbox_file_path(tmp_path, hosts):
    _, other = hosts
    env = {
        "DIALSTATUS_CAMPAIGNS": "Links Demo",
        "DIALSTATUS_SANDBOX_CONFIG": json.dumps({"delivery": "csv_link"}),
    }
    with ServerProcess(tmp_path / "demo", env=env) as server:
        # the sandbox's own links (its CSV files on this server) are fetched and stored
        loaded = server.wait_for(lambda h: h["campaigns"][0]["rows"] > 0, timeout=90)
        other_port = _deliver(server, other.base + "/rows.csv")
        other_path = _deliver(server, server.base_url + "/api/health")
        climbing = _deliver(server, server.base_url + "/api/sandbox/files/../../health")
    assert loaded["campaigns"][0]["last_error"] is None
    assert other.requests == []
    for refused in (other_port, other_path, climbing):
        assert (refused.status_code, refused.json()["message"]) == (400, OUTSIDE_REASON)
    _assert_plain(_stored_errors(tmp_path / "demo"), other)


# -- the callback secret in what CloudAgent answers -------------------------------------------

SECRET = "cb-secret-0123456789abcdef"
API_KEY = "api-key-0123456789abcdef"


@pytest.fixture
def echoing_api() -> Iterator[str]:
    """An API that answers every POST by echoing the body it got: as a proxy's HTML page on
    /page, as CloudAgent's error message on /error."""

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self):
            sent = self.rfile.read(int(self.headers["Content-Length"])).decode()
            if self.path == "/page":
                answer = f"<html><body>Blocked request: {sent}</body></html>".encode()
            else:
                answer = json.dumps({"status": "error", "message": f"Bad request {sent}"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/page", "/error"])
def test_the_callback_secret_is_redacted_from_what_the_api_echoes(echoing_api, path):
    options = ClientOptions(echoing_api + path, "links_user", API_KEY, max_retries=0)
    body = {
        "userName": "links_user",
        "campaignName": "Links",
        "callBackUrl": f"https://dash.example/api/callback/{SECRET}",
        "apiKey": API_KEY,
    }
    with CloudAgentClient(options) as client, pytest.raises(CloudAgentError) as failed:
        client.send(body)
    error = failed.value
    kept = " ".join(
        str(text) for text in (error, error.server_message, getattr(error, "excerpt", None)) if text
    )
    assert "dash.example" in kept  # the echo is there, and only the secrets are hidden
    assert SECRET not in kept and API_KEY not in kept
