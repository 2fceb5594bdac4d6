"""The connection probe: one request, three steps in plain words, each failure with its fix.

Against the real sandbox over HTTP (accepted, wrong credentials, unknown campaign, rate limit,
faults), small local Starlette stubs for what the sandbox never does (an HTML 404, a JSON-only
API, an echo of the secrets, a hang), a closed port, plain HTTP spoken to https, and a host
under .invalid, which never resolves, so nothing here needs the internet.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from lib.cloudagent import (
    ClientOptions,
    CloudAgentClient,
    DialStatusRequest,
    ProbeResult,
    SlidingWindowLimiter,
    TokenCache,
    probe,
)
from lib.config import API_PATH, TOKEN_PATH
from lib.sandbox import Sandbox, SandboxConfig, create_sandbox_app
from tests.support.asgi import run_asgi, serve_sandbox
from tests.support.server import free_port
from tests.test_cloudagent_client import FakeClock

API_KEY = "KEY-probe-31f9a7c2d4-never-print"
USER = "probe_ops"
CAMPAIGN = "Credit Card Upsell"
SECRET = "cb-probe-secret-0123456789abcdef"
# For servers that never get as far as delivering.
ANY_REQUEST = DialStatusRequest(CAMPAIGN, f"https://dash.example/cb/{SECRET}")
ECHOED_TOKEN = "tok-echoed-4b8f0e1c9a7d-never-print"


@pytest.fixture(scope="module")
def sandbox(receiver) -> Iterator[Sandbox]:
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={CAMPAIGN: 30},
                           rate_limit=1000, delivery_delay_s=0.0)  # fmt: skip
    with serve_sandbox(config) as sandbox:
        yield sandbox


def make_client(api_url: str, **overrides) -> CloudAgentClient:
    values = {"api_url": api_url, "username": USER, "api_key": API_KEY, "tokens": TokenCache(),
              "timeout": httpx.Timeout(3.0)}  # fmt: skip
    values.update(overrides)
    return CloudAgentClient(ClientOptions(**values))


def dial_request(receiver, campaign: str = CAMPAIGN) -> DialStatusRequest:
    return DialStatusRequest(campaign, f"{receiver.base_url}/callback/{SECRET}")


def oks(result: ProbeResult) -> tuple:
    return result.reached.ok, result.credentials.ok, result.accepted.ok


def assert_no_secret(result: ProbeResult, *secrets: str) -> None:
    text = repr(result)
    for secret in (API_KEY, SECRET, *secrets):
        assert secret not in text, text


# -- the sandbox ------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["apikey", "token"])
def test_an_accepted_request_passes_every_step(sandbox, receiver, style):
    sandbox.update_config({"auth_style": style})
    try:
        result = probe(make_client(sandbox.base_url + API_PATH, auth_style=style),
                       dial_request(receiver))  # fmt: skip
    finally:
        sandbox.update_config({"auth_style": "apikey"})
    assert oks(result) == (True, True, True) and result.failure is None
    assert [step.title for step in result.steps] == [
        "API reached?", "Credentials accepted?", "Request accepted?",
    ]  # fmt: skip
    assert result.unique_id == sandbox.requests()[-1]["unique_id"]
    assert result.unique_id in result.accepted.detail
    assert '"message": "queued successfully"' in result.answer_excerpt
    assert ("token" in result.credentials.detail) == (style == "token")
    assert_no_secret(result)


@pytest.mark.parametrize(
    ("overrides", "fix_names"),
    [
        ({"api_key": "wrong-key"}, ("CLOUDAGENT_API_KEY", "CLOUDAGENT_USERNAME")),
        ({"username": "somebody"}, ("CLOUDAGENT_API_KEY", "CLOUDAGENT_USERNAME")),
        ({"api_key": "wrong-key", "auth_style": "token"}, ("CLOUDAGENT_API_KEY",)),
        ({"username": "somebody", "auth_style": "token"}, ("CLOUDAGENT_USERNAME",)),
    ],
)
def test_wrong_credentials_fail_the_credentials_step(sandbox, receiver, overrides, fix_names):
    """CloudAgent answers "Authentication failed" (its token API "Invalid userName or apiKey")
    to a wrong key and to a wrong user alike, so the fix names both."""
    style = overrides.get("auth_style", "apikey")
    sandbox.update_config({"auth_style": style})
    try:
        result = probe(make_client(sandbox.base_url + API_PATH, **overrides),
                       dial_request(receiver))  # fmt: skip
    finally:
        sandbox.update_config({"auth_style": "apikey"})
    assert oks(result) == (True, False, None) and result.failure is result.credentials
    expected = "Invalid userName or apiKey" if style == "token" else "Authentication failed"
    assert expected in result.credentials.detail
    assert ("token API" in result.credentials.detail) == (style == "token")
    for name in fix_names:
        assert name in result.credentials.fix
    assert result.accepted.detail.startswith("Not tried")
    assert_no_secret(result, "wrong-key")


def test_an_unknown_campaign_fails_the_last_step(sandbox, receiver):
    result = probe(make_client(sandbox.base_url + API_PATH), dial_request(receiver, "No Such"))
    assert oks(result) == (True, True, False) and result.failure is result.accepted
    assert "campaignName is invalid" in result.accepted.detail
    assert result.accepted.fix == "the campaign name (exactly as CloudAgent spells it)"
    assert result.unique_id is None


def test_a_wrong_auth_style_points_at_the_auth_style(sandbox, receiver):
    sandbox.update_config({"auth_style": "token"})
    try:
        result = probe(make_client(sandbox.base_url + API_PATH, auth_style="basic"),
                       dial_request(receiver))  # fmt: skip
    finally:
        sandbox.update_config({"auth_style": "apikey"})
    assert oks(result) == (True, False, None)
    assert "apiKey is invalid" in result.credentials.detail
    assert result.credentials.fix == (
        "CLOUDAGENT_AUTH_STYLE (auth_style in [cloudagent]): try apikey or token "
        "(this request sent basic)"
    )


def test_nothing_is_sent_for_a_request_that_fails_validation(sandbox, receiver):
    before = len(sandbox.requests())
    no_key = probe(make_client(sandbox.base_url + API_PATH, api_key=""), dial_request(receiver))
    assert oks(no_key) == (None, False, None)
    assert no_key.credentials.fix == "CLOUDAGENT_API_KEY (api_key in [cloudagent])"
    no_campaign = probe(make_client(sandbox.base_url + API_PATH), dial_request(receiver, " "))
    assert oks(no_campaign) == (None, None, False)
    assert no_campaign.accepted.detail == "Not sent: campaignName is invalid"
    assert len(sandbox.requests()) == before


def test_one_request_through_the_limiter_and_the_rate_limit_in_plain_words(receiver):
    clock = FakeClock()
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={CAMPAIGN: 10},
                           rate_limit=1, window_s=30, rate_limit_http_status=429,
                           monotonic=clock, delivery_delay_s=0.0)  # fmt: skip
    app = create_sandbox_app(config)
    limiter = SlidingWindowLimiter(max_requests=1, window_s=60, clock=clock, sleep=clock.sleep,
                                   margin_s=0.0)  # fmt: skip
    with run_asgi(app) as base_url:
        limited = make_client(base_url + API_PATH, limiter=limiter)
        assert oks(probe(limited, dial_request(receiver))) == (True, True, True)
        assert oks(probe(limited, dial_request(receiver))) == (True, True, True)
        assert clock.sleeps == [60.0]  # the second probe waited for the limiter's window
        bare = make_client(base_url + API_PATH, max_retries=3)
        result = probe(bare, dial_request(receiver))  # the sandbox's third in its window
        sandbox = app.state.sandbox
        assert [entry["outcome"] for entry in sandbox.requests()] == [
            "accepted", "accepted", "rate_limited",
        ]  # fmt: skip
        sandbox.update_config({"fault": "http_500", "fault_count": 5})
        failing = probe(bare, dial_request(receiver))
        assert len(sandbox.requests()) == 4  # no retry, though max_retries is 3
        sandbox.update_config({"fault": "html", "fault_count": 1})
        html = probe(bare, dial_request(receiver))
    app.state.sandbox.close()
    assert oks(result) == (True, None, False)
    assert result.accepted.detail.startswith("Rate limited: CloudAgent answered “Max limit")
    assert result.accepted.fix == "wait 30 s before the next request"  # its Retry-After
    assert oks(failing) == (False, None, None)
    assert failing.reached.detail == f"HTTP 500 from {base_url}{API_PATH}"
    assert oks(html) == (False, None, None)
    assert "a web page (HTML)" in html.reached.detail and "CLOUDAGENT_API_URL" in html.reached.fix


def test_a_refused_token_and_a_spent_token_budget_are_credential_steps(receiver):
    clock = FakeClock()
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={CAMPAIGN: 10},
                           auth_style="token", monotonic=clock, delivery_delay_s=0.0)  # fmt: skip
    app = create_sandbox_app(config, token_lifetime_s=0)  # every token stale at once
    tokens = TokenCache(per_hour=1, clock=clock)
    with run_asgi(app) as base_url:
        client = make_client(base_url + API_PATH, auth_style="token", tokens=tokens)
        refused = probe(client, dial_request(receiver))
        spent = probe(client, dial_request(receiver))
        sent = [entry["message"] for entry in app.state.sandbox.requests()]
    app.state.sandbox.close()
    assert oks(refused) == (True, False, None)
    assert "“Token Expired”" in refused.credentials.detail
    assert refused.credentials.fix.startswith("run the check again")
    assert sent == ["Token Expired"]  # exactly one request; the second probe sent nothing
    assert oks(spent) == (None, False, None)
    assert "1 were generated in the last hour" in spent.credentials.detail
    assert spent.credentials.fix.startswith("wait 1 h: CloudAgent generates at most 10")


# -- connections that fail ----------------------------------------------------------------------


def test_a_closed_port_is_refused():
    port = free_port()  # nothing listens there now
    result = probe(make_client(f"http://127.0.0.1:{port}{API_PATH}"), ANY_REQUEST)
    assert oks(result) == (False, None, None)
    assert result.reached.detail.startswith(f"Connection refused by 127.0.0.1:{port}")
    assert "CLOUDAGENT_API_URL" in result.reached.fix
    assert result.credentials.detail == "Not tried: “API reached?” failed"


@pytest.mark.parametrize("style", ["apikey", "token"])
def test_an_unresolvable_host_is_a_dns_failure(style):
    """.invalid never resolves (RFC 6761), offline or not. The connect timeout is 3 s: a
    resolver that hung would end as a timeout, not as DNS."""
    result = probe(
        make_client("http://no-such-host.invalid" + API_PATH, auth_style=style), ANY_REQUEST
    )
    assert oks(result) == (False, None, None)
    assert result.reached.detail.startswith("DNS: the host no-such-host.invalid cannot be resolved")
    assert ("generating the token" in result.reached.detail) == (style == "token")
    assert result.reached.fix == "CLOUDAGENT_API_URL (api_url in [cloudagent]): the host"


def test_https_to_a_plain_http_server_is_a_tls_failure(sandbox):
    https = sandbox.base_url.replace("http://", "https://")
    result = probe(make_client(https + API_PATH), ANY_REQUEST)
    assert oks(result) == (False, None, None)
    assert result.reached.detail.startswith("TLS: wrong version number")
    assert "http or https" in result.reached.fix


def test_a_server_that_hangs_up_is_named_with_what_happened():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def hang_up() -> None:
            connection, _ = listener.accept()
            connection.recv(65536)
            connection.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        result = probe(make_client(f"http://127.0.0.1:{port}{API_PATH}"), ANY_REQUEST)
        thread.join(10)
    assert oks(result) == (False, None, None)
    assert result.reached.detail == (
        f"The connection to 127.0.0.1:{port} failed: RemoteProtocolError: Server disconnected "
        "without sending a response."
    )
    assert_no_secret(result)


class Stub:
    """What the sandbox never is: an HTML 404, a JSON-only API, an echo of the secrets, a hang."""

    def __init__(self, mode: str, missing: str = "campaignName is required") -> None:
        self.mode, self.calls, self.missing = mode, 0, missing
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        self.calls += 1
        raw = await request.body()
        if self.mode == "html_404":
            return HTMLResponse("<html><body><h1>404 Not Found</h1></body></html>", 404)
        if self.mode == "hang":
            await asyncio.sleep(3)
        if self.mode == "echo" and request.url.path == TOKEN_PATH:
            return JSONResponse({"token": ECHOED_TOKEN, "message": ""})
        if self.mode == "echo":
            headers = request.headers
            said = f"no such thing: {headers.get('authorization')} {headers.get('apikey')}"
            said += " " + raw.decode()
            return JSONResponse({"status": "error", "message": said, "uniqueId": ""})
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        if not body.get("campaignName"):  # reads JSON bodies only
            return JSONResponse({"status": "error", "message": self.missing})
        return JSONResponse({"status": "success", "message": "ok", "uniqueId": "job-7"})


def test_an_html_404_is_an_http_status():
    stub = Stub("html_404")
    with run_asgi(stub.app) as base_url:
        result = probe(make_client(base_url + API_PATH), ANY_REQUEST)
    assert oks(result) == (False, None, None)
    assert result.reached.detail == f"HTTP 404 from {base_url}{API_PATH}"
    assert result.reached.fix == "CLOUDAGENT_API_URL (api_url in [cloudagent])"
    assert "404 Not Found" in result.answer_excerpt and stub.calls == 1


def test_a_hang_is_a_timeout():
    stub = Stub("hang")
    with run_asgi(stub.app) as base_url:
        client = make_client(base_url + API_PATH, timeout=httpx.Timeout(3.0, read=0.5))
        result = probe(client, ANY_REQUEST)
    assert oks(result) == (False, None, None)
    assert result.reached.detail.startswith("Timed out after 0.5 s waiting for 127.0.0.1:")
    assert stub.calls == 1


@pytest.mark.parametrize(
    ("encoding", "others"), [("form", "json or query"), ("query", "json or form")]
)
def test_a_parameter_missing_although_sent_suggests_the_other_encodings(encoding, others):
    stub = Stub("json_only")
    with run_asgi(stub.app) as base_url:
        assert oks(probe(make_client(base_url + API_PATH), ANY_REQUEST)) == (True, True, True)
        result = probe(make_client(base_url + API_PATH, request_encoding=encoding), ANY_REQUEST)
    assert oks(result) == (True, True, False)
    assert "“campaignName is required”" in result.accepted.detail
    assert result.accepted.fix == (
        f"CLOUDAGENT_REQUEST_ENCODING (request_encoding in [cloudagent]): try {others} "
        f"(campaignName was sent as {encoding} but CloudAgent did not read it); "
        "else the campaign name (exactly as CloudAgent spells it)"
    )


def test_user_name_invalid_although_sent_names_the_user_name_then_the_encodings():
    """CloudAgent's "userName is invalid" is its answer to a missing userName and to a wrong one
    alike: the user name first, then the encodings."""
    stub = Stub("json_only", missing="userName is invalid")
    with run_asgi(stub.app) as base_url:
        result = probe(make_client(base_url + API_PATH, request_encoding="query"), ANY_REQUEST)
    assert oks(result) == (True, False, None)
    assert result.credentials.fix == (
        "CLOUDAGENT_USERNAME (username in [cloudagent]); if it is right, "
        "CLOUDAGENT_REQUEST_ENCODING (request_encoding in [cloudagent]): try json or form "
        "(userName was sent as query but CloudAgent did not read it)"
    )


@pytest.mark.parametrize("style", ["apikey", "basic", "token"])
def test_the_answer_excerpt_and_details_hide_what_an_answer_echoes(style):
    stub = Stub("echo")
    with run_asgi(stub.app) as base_url:
        result = probe(make_client(base_url + API_PATH, auth_style=style), ANY_REQUEST)
    assert oks(result) == (True, True, False)
    echoed = {"apikey": "None ***", "basic": "Basic *** None", "token": "Bearer *** ***"}[style]
    assert f'"message":"no such thing: {echoed} {{' in result.answer_excerpt
    assert_no_secret(result, ECHOED_TOKEN)
