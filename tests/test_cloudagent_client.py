"""The CloudAgent client: request building, answer parsing, retries, rate limiting, secrecy.

Real HTTP throughout the integration tests: the sandbox and small misbehaving Starlette apps run
under uvicorn on 127.0.0.1 (tests/support/asgi.py). Unit tests use httpx.MockTransport.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lib.cloudagent import (
    MSG_CALLBACK_INVALID,
    Accepted,
    AuthenticationError,
    ClientOptions,
    CloudAgentClient,
    CloudAgentError,
    CloudAgentTimeoutError,
    CloudAgentUnavailableError,
    DialStatusFilter,
    DialStatusRequest,
    InvalidApiKeyError,
    InvalidCallbackUrlError,
    InvalidCampaignError,
    InvalidUserNameError,
    LeadStatus,
    RateLimitedError,
    RequestValidationError,
    SortBy,
    UnexpectedResponseError,
    error_for_message,
    parse_answer,
)
from lib.cloudagent.client import retry_after_seconds
from lib.cloudagent.ratelimit import SlidingWindowLimiter
from lib.config import API_PATH, ConfigError, load_settings, redact_callback_url
from lib.sandbox import ErrorStyle, SandboxConfig, create_sandbox_app
from lib.sync import plain_error
from tests.support.asgi import run_asgi, serve_sandbox

API_KEY = "KEY-9f8e7d6c5b4a-never-print-me"
USER = "acme_ops"
CAMPAIGN = "Loan Offers - Mumbai"
SECRET = "cb-secret-0123456789abcdef"
URL = "http://127.0.0.1:9/endpoint/dailer/data/preview/download"  # never contacted (mocks)

# The vendor page's answers, verbatim (campaign-dial-status-api.txt).
VENDOR_ANSWERS = {
    '"{""status"": ""error"", ""message"": ""apiKey is invalid"", ""uniqueId"": """"}"': (
        InvalidApiKeyError
    ),
    '{"status": "error","message": "Authentication failed","uniqueId": ""}': AuthenticationError,
    '{"status": "error","message": "apiKey is invalid","uniqueId": ""}': InvalidApiKeyError,
    '{"status": "error","message": "userName is invalid","uniqueId": ""}': InvalidUserNameError,
    '"{""status"": ""error"",""message"": ""campaignName is invalid"", ""uniqueId"": """"}"': (
        InvalidCampaignError
    ),
    '"{""status"": ""error"",""message"": ""callBackUrl cannot be empty (OR) it should contain '
    '‘http://test.com/’ or \'https://test.com/"", ""uniqueId"": """"}"': (InvalidCallbackUrlError),
}


class FakeClock:
    """Thread-safe fake monotonic clock; sleep() advances it instantly."""

    def __init__(self, start: float = 5000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds


def options(**overrides) -> ClientOptions:
    values = {"api_url": URL, "username": USER, "api_key": API_KEY, "backoff_base_s": 0.01}
    values.update(overrides)
    return ClientOptions(**values)


def mock_client(handler, **overrides) -> CloudAgentClient:
    return CloudAgentClient(options(transport=httpx.MockTransport(handler), **overrides))


def request(**fields) -> DialStatusRequest:
    values = {"campaign_name": CAMPAIGN, "callback_url": f"https://dash.example/cb/{SECRET}"}
    values.update(fields)
    return DialStatusRequest(**values)


def assert_no_secret(*objects) -> None:
    for obj in objects:
        for text in (str(obj), repr(obj)):
            assert API_KEY not in text and SECRET not in text, text
        if isinstance(obj, BaseException):
            assert API_KEY not in json.dumps([str(a) for a in obj.args])
            assert all(API_KEY not in str(v) for v in vars(obj).values())


# -- the request ----------------------------------------------------------------------------


def test_body_has_every_documented_parameter_under_its_exact_name():
    body = request(
        from_date=datetime(2026, 11, 1, 9, 0, 5, 999),
        to_date=datetime(2026, 11, 20, 18, 30),
        sortby=SortBy.UPDATED,
        status=LeadStatus.PENDING,
        dial_status=DialStatusFilter.NO_ANSWER,
        dispositions="Call Back",
    ).to_body(USER)
    assert body == {
        "fromDate": "2026-11-01 09:00:05",
        "toDate": "2026-11-20 18:30:00",
        "sortby": "2",
        "status": "Pending",
        "dialstatus": "NoAnswer",
        "dispositions": "Call Back",
        "campaignName": CAMPAIGN,
        "userName": USER,
        "callBackUrl": f"https://dash.example/cb/{SECRET}",
    }
    assert all(isinstance(value, str) for value in body.values())


def test_defaults_and_optional_dates_are_omitted():
    body = request().to_body(USER)
    assert body["sortby"] == "0" and body["status"] == "All" and body["dialstatus"] == "All"
    assert body["dispositions"] == "ALL"
    assert "fromDate" not in body and "toDate" not in body


def test_aware_dates_are_converted_to_the_account_zone_and_naive_ones_kept():
    aware = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 09:30 in India
    req = request(from_date=aware, to_date=datetime(2026, 11, 20, 23, 59, 59), sortby="1")
    body = req.to_body(USER, "Asia/Kolkata")
    assert body["fromDate"] == "2026-11-20 09:30:00"
    assert body["toDate"] == "2026-11-20 23:59:59"
    assert req.to_body(USER, "Asia/Dubai")["fromDate"] == "2026-11-20 08:00:00"


def test_string_values_are_accepted_in_any_case():
    body = request(status="success", dial_status="ANSWERED", sortby=0, dispositions="all")
    assert body.to_body(USER)["status"] == "Success"
    assert body.to_body(USER)["dialstatus"] == "answered"
    assert body.to_body(USER)["sortby"] == "0"
    assert body.to_body(USER)["dispositions"] == "ALL"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"campaign_name": ""}, "campaignName is invalid"),
        ({"campaign_name": "   "}, "campaignName is invalid"),
        ({"callback_url": ""}, MSG_CALLBACK_INVALID),
        ({"callback_url": "test.com/cb"}, MSG_CALLBACK_INVALID),
        ({"callback_url": "ftp://test.com/cb"}, MSG_CALLBACK_INVALID),
        ({"callback_url": "https://"}, MSG_CALLBACK_INVALID),
        ({"status": "Done"}, "status must be one of All, Success, Fail, Pending; got 'Done'"),
        ({"dial_status": "busy"}, "dialstatus must be one of All, Fail, NoAnswer"),
        ({"sortby": "3"}, "sortby must be one of 0, 1, 2; got '3'"),
        ({"dispositions": ""}, "dispositions must be ALL or one disposition"),
        ({"sortby": SortBy.CREATED}, "sortby 1 filters by the created date"),
        (
            {"sortby": "2", "from_date": datetime(2026, 1, 1)},
            "sortby 2 filters by the updated date: it needs both",
        ),
        (
            {"from_date": datetime(2026, 2, 1), "to_date": datetime(2026, 1, 1)},
            "fromDate (2026-02-01 00:00:00) is after toDate (2026-01-01 00:00:00)",
        ),
    ],
)
def test_validation_messages(fields, message):
    with pytest.raises(RequestValidationError) as caught:
        request(**fields).validate()
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, CloudAgentError) and isinstance(caught.value, ValueError)
    assert_no_secret(caught.value)


def test_the_callback_message_is_the_vendors_text_with_its_curly_quotes():
    assert MSG_CALLBACK_INVALID == (
        "callBackUrl cannot be empty (OR) it should contain \u2018http://test.com/\u2019 or "
        "'https://test.com/"
    )


def test_redacted_body_hides_the_callback_secret():
    body = request().redacted_body(USER)
    assert body["callBackUrl"] == "https://dash.example/cb/***"
    assert redact_callback_url("http://u:p@h:81/a/b/s3cret?x=1#f") == "http://h:81/a/b/***"
    assert SECRET not in repr(request())


# -- parsing answers -------------------------------------------------------------------------


@pytest.mark.parametrize("text", list(VENDOR_ANSWERS))
def test_every_answer_printed_on_the_vendor_page_parses_to_its_error(text):
    answer = parse_answer(text)
    assert answer["status"] == "error" and answer["uniqueId"] == ""
    assert isinstance(error_for_message(answer["message"]), VENDOR_ANSWERS[text])


@pytest.mark.parametrize("text", list(VENDOR_ANSWERS))
def test_vendor_page_answers_through_the_client(text):
    client = mock_client(lambda request: httpx.Response(200, text=text))
    with pytest.raises(VENDOR_ANSWERS[text]) as caught:
        client.request_dial_status(request())
    assert caught.value.server_message == parse_answer(text)["message"]
    assert caught.value.http_status == 200
    assert_no_secret(caught.value)


def test_double_encoded_json_parses():
    inner = json.dumps({"status": "success", "message": "queued successfully", "uniqueId": "u1"})
    assert parse_answer(json.dumps(inner))["uniqueId"] == "u1"


@pytest.mark.parametrize(
    ("body", "unique_id"),
    [
        ({"status": "success", "message": "queued successfully", "uniqueId": "abc-1"}, "abc-1"),
        ({"status": "SUCCESS", "message": "queued successfully", "uniqueId": ""}, None),
        ({"status": "Success", "message": "ok"}, None),
    ],
)
def test_success_answers(body, unique_id):
    client = mock_client(lambda request: httpx.Response(200, json=body))
    assert client.request_dial_status(request()) == Accepted(unique_id, body["message"])


def test_unknown_error_message_is_a_plain_cloudagent_error():
    client = mock_client(
        lambda r: httpx.Response(200, json={"status": "error", "message": "status is invalid"})
    )
    with pytest.raises(CloudAgentError) as caught:
        client.request_dial_status(request())
    assert type(caught.value) is CloudAgentError
    assert caught.value.server_message == "status is invalid"
    assert str(caught.value) == "CloudAgent refused the request: status is invalid"


@pytest.mark.parametrize(
    "text",
    [
        "<html><body>502 Bad Gateway from some proxy " + "x" * 500 + "</body></html>",
        "[1, 2, 3]",
        '{"unexpected": true}',
        "",
        f"echo of your header apiKey={API_KEY} " * 20,
    ],
)
def test_unexpected_answers_give_a_short_excerpt_without_the_key(text):
    client = mock_client(lambda request: httpx.Response(200, text=text))
    with pytest.raises(UnexpectedResponseError) as caught:
        client.request_dial_status(request())
    assert len(caught.value.excerpt) <= 200
    assert len(str(caught.value)) < 300
    assert_no_secret(caught.value)


def test_a_404_with_a_page_is_unexpected_and_names_the_status():
    client = mock_client(lambda request: httpx.Response(404, text="<h1>Not Found</h1>"))
    with pytest.raises(UnexpectedResponseError, match="HTTP 404"):
        client.request_dial_status(request())


def test_retry_after_in_seconds_and_as_an_http_date():
    now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 2.5 ") == 2.5
    date = email.utils.format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(date, now=now) == pytest.approx(30.0)
    past = email.utils.format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(past, now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("nan") is None


# -- retries (mock transport, fake time) ---------------------------------------------------------


def test_5xx_is_retried_with_backoff_then_unavailable():
    calls, waits = [], []
    clock = FakeClock()
    client = mock_client(
        lambda r: calls.append(r) or httpx.Response(503, text="busy"),
        max_retries=3,
        backoff_base_s=1.0,
        sleep=clock.sleep,
        on_wait=lambda reason, s: waits.append(reason),
    )
    with pytest.raises(CloudAgentUnavailableError) as caught:
        client.request_dial_status(request())
    assert len(calls) == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert waits[0] == "CloudAgent answered HTTP 503; retry 1 of 3 in 1.0 s"
    assert "after 4 attempt(s)" in str(caught.value)
    assert caught.value.http_status == 503


def test_retries_that_end_in_a_timeout_are_a_timeout_error_and_a_5xx_end_is_not():
    def timing_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = mock_client(timing_out, max_retries=2, sleep=FakeClock().sleep)
    with pytest.raises(CloudAgentTimeoutError) as caught:
        client.request_dial_status(request())
    assert "after 3 attempt(s): CloudAgent did not answer in time" in str(caught.value)
    assert plain_error(caught.value).startswith(
        "CloudAgent did not answer in time, on every attempt."
    )
    answers = iter([timing_out, lambda r: httpx.Response(503, text="busy")])
    client = mock_client(lambda r: next(answers)(r), max_retries=1, sleep=FakeClock().sleep)
    with pytest.raises(CloudAgentUnavailableError) as caught:
        client.request_dial_status(request())
    assert not isinstance(caught.value, CloudAgentTimeoutError)
    answers = iter([lambda r: httpx.Response(503, text="busy"), timing_out])
    client = mock_client(lambda r: next(answers)(r), max_retries=1, sleep=FakeClock().sleep)
    with pytest.raises(CloudAgentTimeoutError):
        client.request_dial_status(request())


def test_max_limit_exceeded_without_limiter_waits_and_retries():
    answers = iter(
        [
            httpx.Response(200, json={"status": "error", "message": "Max limit exceeded"}),
            httpx.Response(429, headers={"Retry-After": "12"}, text="slow down"),
            httpx.Response(200, json={"status": "success", "message": "q", "uniqueId": "u9"}),
        ]
    )
    clock = FakeClock()
    waits = []
    client = mock_client(
        lambda r: next(answers), sleep=clock.sleep, on_wait=lambda r, s: waits.append(r)
    )
    assert client.request_dial_status(request()).unique_id == "u9"
    assert clock.sleeps == [60.0, 12.0]
    assert waits[0].startswith("CloudAgent answered Max limit exceeded for account acme_ops")


def test_rate_limited_error_after_the_last_retry_and_for_a_too_long_retry_after():
    clock = FakeClock()
    limited = mock_client(
        lambda r: httpx.Response(200, json={"status": "error", "message": "Max limit exceeded"}),
        max_retries=2,
        sleep=clock.sleep,
    )
    with pytest.raises(RateLimitedError) as caught:
        limited.request_dial_status(request())
    assert caught.value.server_message == "Max limit exceeded"
    assert len(clock.sleeps) == 2
    calls = []
    too_long = mock_client(
        lambda r: calls.append(1) or httpx.Response(429, headers={"Retry-After": "3600"}),
        sleep=clock.sleep,
    )
    with pytest.raises(RateLimitedError) as caught:
        too_long.request_dial_status(request())
    assert caught.value.retry_after == 3600 and len(calls) == 1


def test_a_shared_limiter_is_acquired_before_every_send_and_penalised_by_the_server():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, 60, clock=clock, sleep=clock.sleep, margin_s=0.0)
    answers = iter(
        [httpx.Response(200, json={"status": "error", "message": "Max limit exceeded"})]
        + [httpx.Response(200, json={"status": "success", "message": "q", "uniqueId": "x"})] * 20
    )
    reasons = []
    client = mock_client(
        lambda r: next(answers), limiter=limiter, on_wait=lambda r, s: reasons.append((r, s))
    )
    client.request_dial_status(request())
    # No Retry-After: assume the server's window is full for a whole window.
    assert clock.sleeps == [60.0]
    assert reasons[0][0] == (
        "CloudAgent answered Max limit exceeded for account acme_ops; next try in 60.0 s"
    )
    assert limiter.state(USER)["used"] == 1  # the first send's slot expired during the wait
    for _ in range(10):  # 1 used + 9 free; the 10th waits for a window slot
        client.request_dial_status(request())
    assert reasons[-1][0].startswith("rate limit: 10 requests per 60 s reached for account")


def test_the_limiter_may_be_passed_to_the_client_directly():
    limiter = SlidingWindowLimiter()
    client = CloudAgentClient(options(), limiter=limiter)
    assert client.limiter is limiter


# -- options ------------------------------------------------------------------------------------


def test_options_from_settings(tmp_path: Path):
    env = {
        "CLOUDAGENT_API_KEY": API_KEY,
        "CLOUDAGENT_USERNAME": USER,
        "CLOUDAGENT_API_URL": "https://ca.example" + API_PATH,
        "DIALSTATUS_TIMEZONE": "Asia/Dubai",
        "DIALSTATUS_DB": str(tmp_path / "db.duckdb"),
    }
    settings = load_settings(env=env, secrets_path=tmp_path / "none.toml")
    opts = ClientOptions.from_settings(settings)
    assert (opts.api_url, opts.username, opts.api_key, opts.timezone) == (
        "https://ca.example" + API_PATH, USER, API_KEY, "Asia/Dubai",
    )  # fmt: skip
    assert opts.timeout.connect == 5.0 and opts.timeout.read == 30.0
    override = ClientOptions.from_settings(settings, api_url_override="http://127.0.0.1:1/x")
    assert override.api_url == "http://127.0.0.1:1/x"
    assert override.with_api_key("other").api_key == "other"
    assert_no_secret(opts, CloudAgentClient(opts))

    demo = load_settings(env={"DIALSTATUS_DB": str(tmp_path / "d.duckdb")},
                         secrets_path=tmp_path / "none.toml")  # fmt: skip
    with pytest.raises(ConfigError, match="api_url_override"):
        ClientOptions.from_settings(demo)
    with pytest.raises(ConfigError):
        options(api_url="ftp://nope")


def test_no_api_key_configured_is_refused_before_sending():
    calls = []
    client = mock_client(lambda r: calls.append(r), api_key="")
    with pytest.raises(RequestValidationError, match="apiKey is invalid"):
        client.request_dial_status(request())
    assert calls == []


def test_the_api_key_travels_only_in_the_header():
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"status": "success", "message": "q", "uniqueId": "1"})

    mock_client(handler).request_dial_status(request())
    sent = seen[0]
    assert sent.headers["apiKey"] == API_KEY
    assert API_KEY not in str(sent.url) and API_KEY.encode() not in sent.content
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content)["userName"] == USER


# -- real HTTP: the sandbox ---------------------------------------------------------------------


class HeaderTransport(httpx.HTTPTransport):
    """Removes or renames the apiKey header on its way out (what the client never does)."""

    def __init__(self, rename_to: str | None) -> None:
        super().__init__()
        self.rename_to = rename_to

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        value = request.headers.pop("apiKey")
        if self.rename_to:
            request.headers[self.rename_to] = value
        return super().handle_request(request)


@pytest.fixture(scope="module")
def sandbox(receiver):
    config = SandboxConfig(
        api_key=API_KEY,
        username=USER,
        campaigns={CAMPAIGN: 300, "Renewals_Q4": 200},
        rate_limit=1000,
        delivery_delay_s=0.0,
    )
    with serve_sandbox(config) as sandbox:
        yield sandbox


def sandbox_client(sandbox, **overrides) -> CloudAgentClient:
    values = {"api_url": sandbox.base_url + API_PATH, "username": USER, "api_key": API_KEY}
    values.update(overrides)
    return CloudAgentClient(ClientOptions(**values))


def full_body(receiver, **changes) -> dict:
    body = request(callback_url=f"{receiver.base_url}/callback/{SECRET}").to_body(USER)
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


ROUND_TRIPS = [
    # (label, client option overrides, transport header rename, body changes, error type)
    ("missing apiKey key", {}, "", {}, InvalidApiKeyError),
    ("misnamed apiKey key", {}, "api-key", {}, InvalidApiKeyError),
    ("missing apiKey value", {"api_key": ""}, None, {}, InvalidApiKeyError),
    ("invalid apiKey value", {"api_key": "wrong-key"}, None, {}, AuthenticationError),
    ("missing userName key", {}, None, {"userName": None}, InvalidUserNameError),
    ("invalid userName key", {}, None, {"userName": None, "username": USER},
     InvalidUserNameError),
    ("missing userName value", {}, None, {"userName": ""}, InvalidUserNameError),
    ("invalid userName value", {}, None, {"userName": "somebody"}, AuthenticationError),
    ("missing campaignName key", {}, None, {"campaignName": None}, InvalidCampaignError),
    ("invalid campaignName key", {}, None, {"campaignName": None, "campaign": CAMPAIGN},
     InvalidCampaignError),
    ("missing campaignName value", {}, None, {"campaignName": ""}, InvalidCampaignError),
    ("invalid campaignName value", {}, None, {"campaignName": "No Such"}, InvalidCampaignError),
    ("missing callBackUrl key", {}, None, {"callBackUrl": None}, InvalidCallbackUrlError),
    ("invalid callBackUrl key", {}, None, {"callBackUrl": None, "callbackUrl": "http://a.b/"},
     InvalidCallbackUrlError),
    ("missing callBackUrl value", {}, None, {"callBackUrl": ""}, InvalidCallbackUrlError),
    ("invalid callBackUrl value", {}, None, {"callBackUrl": "test.com/cb"},
     InvalidCallbackUrlError),
]  # fmt: skip


@pytest.mark.parametrize("style", [ErrorStyle.JSON, ErrorStyle.DOC_QUOTED])
def test_every_documented_error_round_trips_through_client_and_sandbox(
    sandbox, receiver, style, caplog
):
    caplog.set_level(logging.DEBUG)
    sandbox.update_config({"error_style": style})
    try:
        for label, overrides, rename, changes, error_type in ROUND_TRIPS:
            if rename is not None:
                overrides = {**overrides, "transport": HeaderTransport(rename or None)}
            client = sandbox_client(sandbox, **overrides)
            with pytest.raises(error_type) as caught:
                client.send(full_body(receiver, **changes))
            assert type(caught.value) is error_type, label
            assert caught.value.http_status == 200, label
            assert_no_secret(caught.value)
            client.close()
    finally:
        sandbox.update_config({"error_style": ErrorStyle.JSON})
    assert API_KEY not in caplog.text and SECRET not in caplog.text
    log = sandbox.requests()
    assert API_KEY not in json.dumps(log) and SECRET not in json.dumps(log)


def test_a_valid_request_is_accepted_and_delivered(sandbox, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.clear()
    client = sandbox_client(sandbox)
    accepted = client.request_dial_status(
        request(callback_url=f"{receiver.base_url}/callback/{SECRET}")
    )
    assert accepted.message == "queued successfully" and len(accepted.unique_id) == 36
    posts = receiver.wait_until(
        lambda ps: any(p.payload().get("uniqueId") == accepted.unique_id for p in ps)
    )
    payload = posts[-1].payload()
    assert payload["campaignName"] == CAMPAIGN and len(payload["data"]) == 300
    assert_no_secret(accepted, client, client.options)
    assert API_KEY not in caplog.text and SECRET not in caplog.text


# -- real HTTP: the limit is kept on the client side, measured at the sandbox --------------------


def _max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    return max(sum(1 for t in stamps[i:] if t < start + window) for i, start in enumerate(stamps))


def test_the_client_never_sends_the_eleventh_request_in_a_minute_fake_time(receiver):
    """Default limits (10 per 60 s) on one fake clock shared by the client's limiter and the
    sandbox's rate window: 25 sends; the 11th and 21st wait a fake minute, none is refused.

    One sending thread: with several, one thread's fake sleep would move time on while another
    thread's request is in flight, which no real clock does (the real-threads test below covers
    concurrency)."""
    clock = FakeClock()
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={CAMPAIGN: 20},
                           monotonic=clock, delivery_delay_s=0.0)  # fmt: skip
    app = create_sandbox_app(config)
    limiter = SlidingWindowLimiter(clock=clock, sleep=clock.sleep, margin_s=0.0)
    reasons = []
    with run_asgi(app) as base_url:
        client = CloudAgentClient(
            ClientOptions(
                api_url=base_url + API_PATH,
                username=USER,
                api_key=API_KEY,
                max_retries=0,
                on_wait=lambda reason, seconds: reasons.append(reason),
            ),
            limiter=limiter,
        )
        body = full_body(receiver)
        for _ in range(25):
            client.send(body)
        log = app.state.sandbox.requests()
    assert [entry["outcome"] for entry in log] == ["accepted"] * 25
    assert clock.sleeps == [60.0, 60.0]
    assert (
        reasons
        == [f"rate limit: 10 requests per 60 s reached for account {USER}; next slot in 60.0 s"] * 2
    )
    assert _max_in_window([entry["monotonic"] for entry in log], 60.0) == 10
    app.state.sandbox.close()


def test_the_client_keeps_a_short_window_with_real_threads(receiver):
    """Limit 3 per 1 s at the sandbox and in the client, plus a 1 s margin, as in production:
    the sandbox runs in this process, so on a busy machine a request can reach it well after
    the limiter let it go (a 0.5 s margin was once not enough in a full suite run).
    4 threads x 2 requests all arrive, never 4 inside one second at the sandbox."""
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={CAMPAIGN: 20},
                           rate_limit=3, window_s=1.0, delivery_delay_s=0.0)  # fmt: skip
    app = create_sandbox_app(config)
    limiter = SlidingWindowLimiter(max_requests=3, window_s=1.0, margin_s=1.0)
    with run_asgi(app) as base_url:
        opts = ClientOptions(api_url=base_url + API_PATH, username=USER, api_key=API_KEY,
                             max_retries=0)  # fmt: skip
        body = full_body(receiver)
        # Control: without the limiter the sandbox refuses the 4th request in the window.
        bare = CloudAgentClient(opts)
        for _ in range(3):
            bare.send(body)
        with pytest.raises(RateLimitedError):
            bare.send(body)
        app.state.sandbox.reset()

        client = CloudAgentClient(opts, limiter=limiter)
        errors = []

        def worker():
            for _ in range(2):
                try:
                    client.send(body)
                except CloudAgentError as error:
                    errors.append(error)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        log = app.state.sandbox.requests()
    assert errors == []
    assert [entry["outcome"] for entry in log] == ["accepted"] * 8
    assert _max_in_window([entry["monotonic"] for entry in log], 1.0) <= 3
    app.state.sandbox.close()


# -- real HTTP: a misbehaving server ----------------------------------------------------------


class Misbehaving:
    """Answers its calls from a script: 500, a hang past the client's timeout, 429 with
    Retry-After, 200 "Max limit exceeded", then success."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.calls = itertools.count()
        self.seen_keys: list[str] = []
        self.app = Starlette(routes=[Route(API_PATH, self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        self.seen_keys.append(request.headers.get("apikey", ""))
        step = self.script[min(next(self.calls), len(self.script) - 1)]
        if step == "500":
            return Response("Internal Server Error", 500)
        if step == "hang":
            await asyncio.sleep(1.0)
            return JSONResponse({"status": "success", "message": "late", "uniqueId": "late"})
        if step == "429":
            return JSONResponse({"status": "error", "message": "Max limit exceeded"}, 429,
                                headers={"Retry-After": "7"})  # fmt: skip
        if step == "max":
            return JSONResponse({"status": "error", "message": "Max limit exceeded",
                                 "uniqueId": ""})  # fmt: skip
        if step == "garbage":
            return Response("<html>oops</html>", 200)
        return JSONResponse({"status": "success", "message": "queued successfully",
                             "uniqueId": "job-42"})  # fmt: skip


def test_the_client_survives_5xx_timeout_429_and_max_limit(caplog):
    caplog.set_level(logging.DEBUG)
    server = Misbehaving(["500", "hang", "429", "max", "ok"])
    clock = FakeClock()
    limiter = SlidingWindowLimiter(clock=clock, sleep=clock.sleep, margin_s=0.0)
    waits = []
    with run_asgi(server.app) as base_url:
        client = CloudAgentClient(
            options(
                api_url=base_url + API_PATH,
                timeout=httpx.Timeout(5.0, read=0.3),
                max_retries=4,
                sleep=clock.sleep,
                on_wait=lambda reason, seconds: waits.append(reason),
            ),
            limiter=limiter,
        )
        accepted = client.request_dial_status(request())
    assert accepted == Accepted("job-42", "queued successfully")
    assert next(server.calls) == 5
    assert server.seen_keys == [API_KEY] * 5
    assert waits[0].startswith("CloudAgent answered HTTP 500; retry 1 of 4")
    assert waits[1].startswith("CloudAgent did not answer in time (ReadTimeout); retry 2 of 4")
    assert (
        waits[2] == "CloudAgent answered Max limit exceeded for account acme_ops; next try in 7.0 s"
    )
    assert waits[3].startswith("CloudAgent answered Max limit exceeded for account acme_ops")
    assert clock.sleeps == [pytest.approx(0.01), pytest.approx(0.02), 7.0, 60.0]
    assert API_KEY not in caplog.text


def test_unreachable_and_always_failing_servers_end_in_unavailable(caplog):
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    server = Misbehaving(["500"])
    with run_asgi(server.app) as base_url:
        failing = CloudAgentClient(options(api_url=base_url + API_PATH, sleep=clock.sleep))
        with pytest.raises(CloudAgentUnavailableError) as caught:
            failing.request_dial_status(request())
    assert next(server.calls) == 4
    assert_no_secret(caught.value)
    # The server is gone now: connection refused on the same port.
    with pytest.raises(CloudAgentUnavailableError, match="cannot reach CloudAgent") as caught:
        failing.request_dial_status(request())
    assert_no_secret(caught.value, failing)
    garbage = Misbehaving(["garbage"])
    with run_asgi(garbage.app) as base_url:
        client = CloudAgentClient(options(api_url=base_url + API_PATH))
        with pytest.raises(UnexpectedResponseError, match="oops"):
            client.request_dial_status(request())
    assert API_KEY not in caplog.text and SECRET not in caplog.text
