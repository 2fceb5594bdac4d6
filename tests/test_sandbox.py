"""The local CloudAgent sandbox over real HTTP, checked against an independent DuckDB oracle.

Every delivery is compared with a DuckDB query over an independently generated copy of the
campaign (same name, size, seed and "now"), written with lib/fields.py's SQL buckets, not with
the sandbox's numpy filters.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import duckdb
import httpx
import pyarrow.compute as pc
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from lib.cloudagent import (
    MSG_CALLBACK_INVALID,
    ClientOptions,
    CloudAgentClient,
    DialStatusRequest,
)
from lib.config import API_PATH, PROJECT_ROOT
from lib.fields import dial_bucket_sql, lead_status_sql
from lib.sandbox import (
    WIRE_FIELDS,
    DeliveryVariant,
    SandboxConfig,
    create_sandbox_app,
    generate_campaign,
)
from lib.sandbox.datagen import campaign_profile
from lib.sandbox.encode import records_json
from tests.support.asgi import CallbackReceiver, ReceivedPost, run_asgi, serve_sandbox

IST = ZoneInfo("Asia/Kolkata")
DATA_NOW = datetime(2026, 11, 20, 15, 30, tzinfo=IST)
LOCAL_NOW = DATA_NOW.replace(tzinfo=None)
API_KEY = "sandbox-test-key-5b1d0c"
USER = "acme_ops"
SEED = 7
MUMBAI = "Loan Offers - Mumbai"
ODD = 'Q4 Renewals (Tier-2) & Co./"VIP"'
CAMPAIGNS = {MUMBAI: 3000, ODD: 800}
SECRET = "secret-segment-abcdef0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = DATA_NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def sandbox(clock):
    config = SandboxConfig(
        api_key=API_KEY,
        username=USER,
        campaigns=CAMPAIGNS,
        seed=SEED,
        clock=clock,
        delivery_delay_s=0.0,
        rate_limit=100_000,
    )
    with serve_sandbox(config) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def client(sandbox):
    options = ClientOptions(api_url=sandbox.base_url + API_PATH, username=USER, api_key=API_KEY)
    with CloudAgentClient(options) as client:
        yield client


@pytest.fixture(scope="module")
def tables():
    """Independently generated copies of the sandbox's campaigns."""
    return {name: generate_campaign(name, n, SEED, DATA_NOW) for name, n in CAMPAIGNS.items()}


# -- helpers -------------------------------------------------------------------------------------


def oracle(table, now: datetime, status="All", dial_status="All", dispositions="ALL",
           sortby="0", from_date=None, to_date=None) -> list[dict]:  # fmt: skip
    """What the API should deliver, by DuckDB SQL over every version of the leads."""
    conditions, params = [], [now]
    if status != "All":
        conditions.append(f"{lead_status_sql('Status')} = ?")
        params.append(status)
    if dial_status != "All":
        conditions.append(f"{dial_bucket_sql('DialStatus')} = ?")
        params.append(dial_status)
    if dispositions != "ALL":
        conditions.append("Disposition = ?")
        params.append(dispositions)
    if sortby in ("1", "2"):
        column = "CreatedDate" if sortby == "1" else "UpdatedDate"
        conditions.append(f"CAST({column} AS TIMESTAMP) BETWEEN ? AND ?")
        params += [from_date, to_date]
    where = " AND ".join(conditions) or "TRUE"
    con = duckdb.connect()
    con.register("versions", table)
    cursor = con.execute(
        f"""
        WITH current AS (
            SELECT * FROM versions WHERE CAST(UpdatedDate AS TIMESTAMP) <= ?
            QUALIFY row_number() OVER (
                PARTITION BY LeadID ORDER BY CAST(UpdatedDate AS TIMESTAMP) DESC) = 1
        )
        SELECT * FROM current WHERE {where} ORDER BY LeadID
        """,
        params,
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def wait_delivered(sandbox, unique_id: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = httpx.get(sandbox.base_url + "/_sandbox/deliveries").json()
        entry = next((e for e in log if e["unique_id"] == unique_id), None)
        if entry and entry["state"] != "pending":
            return entry
        time.sleep(0.02)
    raise TimeoutError(f"delivery {unique_id} not finished in {timeout} s")


def records_of(posts: list[ReceivedPost], variant: DeliveryVariant, unique_id: str, campaign):
    """Parses what the receiver got, for any variant, into a list of record dicts."""
    if variant == DeliveryVariant.SINGLE_RECORD:
        return [post.payload() for post in posts]
    assert len(posts) == 1
    payload = posts[0].payload()
    assert payload["uniqueId"] == unique_id and payload["campaignName"] == campaign
    if variant in (DeliveryVariant.CSV_LINK, DeliveryVariant.JSON_LINK):
        response = httpx.get(payload["fileUrl"])
        assert response.status_code == 200
        if variant == DeliveryVariant.JSON_LINK:
            assert response.headers["content-type"].startswith("application/json")
            return response.json()
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        for row in rows:
            row["Attempts"], row["Priority"] = int(row["Attempts"]), int(row["Priority"])
        return rows
    assert payload["status"] == "success"
    key = {DeliveryVariant.JSON_DETAILS: "details", DeliveryVariant.JSON_RECORDS: "records"}
    return payload[key.get(variant, "data")]


def fetch(sandbox, receiver, client, campaign=MUMBAI, variant=DeliveryVariant.JSON_DATA,
          **fields) -> tuple[list[dict], dict]:  # fmt: skip
    """One real request through the client; returns the delivered records and the log entry."""
    receiver.clear()
    request = DialStatusRequest(
        campaign_name=campaign, callback_url=f"{receiver.base_url}/callback/{SECRET}", **fields
    )
    accepted = client.request_dial_status(request)
    entry = wait_delivered(sandbox, accepted.unique_id)
    assert entry["state"] == "delivered", entry
    assert entry["variant"] == variant.value
    records = records_of(receiver.posts, variant, accepted.unique_id, campaign)
    assert entry["records"] == len(records)
    return records, entry


def by_lead(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: r["LeadID"])


def api_post(sandbox, body=None, headers=None, **kwargs) -> httpx.Response:
    headers = {"apiKey": API_KEY} if headers is None else headers
    return httpx.post(sandbox.base_url + API_PATH, json=body, headers=headers, **kwargs)


def valid_body(receiver, **changes) -> dict:
    body = {
        "campaignName": MUMBAI,
        "userName": USER,
        "callBackUrl": f"{receiver.base_url}/callback/{SECRET}",
        "status": "All",
        "dialstatus": "All",
        "dispositions": "ALL",
        "sortby": "0",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


# -- filters: each delivery equals the independent query -------------------------------------


WEEK_AGO = LOCAL_NOW - timedelta(days=14), LOCAL_NOW - timedelta(days=7)
LAST_3_DAYS = LOCAL_NOW - timedelta(days=3), LOCAL_NOW

FILTER_CASES = {
    "everything": {},
    "status Success": {"status": "Success"},
    "status Fail": {"status": "Fail"},
    "status Pending": {"status": "Pending"},
    "dial answered": {"dial_status": "answered"},
    "dial NoAnswer": {"dial_status": "NoAnswer"},
    "dial user_disconnected": {"dial_status": "user_disconnected"},
    "dial Fail": {"dial_status": "Fail"},
    "one disposition": {"dispositions": "<first>"},
    "sortby 1 created in a week": {"sortby": "1", "from_date": WEEK_AGO[0],
                                   "to_date": WEEK_AGO[1]},
    "sortby 2 updated in 3 days": {"sortby": "2", "from_date": LAST_3_DAYS[0],
                                   "to_date": LAST_3_DAYS[1]},
    "Pending NoAnswer updated": {"status": "Pending", "dial_status": "NoAnswer", "sortby": "2",
                                 "from_date": LAST_3_DAYS[0], "to_date": LAST_3_DAYS[1]},
    "Success answered disposition created": {
        "status": "Success", "dial_status": "answered", "dispositions": "<first>",
        "sortby": "1", "from_date": LOCAL_NOW - timedelta(days=30), "to_date": LOCAL_NOW,
    },
}  # fmt: skip


@pytest.mark.parametrize("case", list(FILTER_CASES))
@pytest.mark.parametrize("campaign", [MUMBAI, ODD])
def test_delivery_holds_exactly_the_records_the_filters_select(
    sandbox, receiver, client, tables, case, campaign
):
    fields = dict(FILTER_CASES[case])
    if fields.get("dispositions") == "<first>":
        fields["dispositions"] = campaign_profile(campaign).dispositions[0]
    records, _ = fetch(sandbox, receiver, client, campaign=campaign, **fields)
    expected = oracle(tables[campaign], LOCAL_NOW, **{
        "status": fields.get("status", "All"),
        "dial_status": fields.get("dial_status", "All"),
        "dispositions": fields.get("dispositions", "ALL"),
        "sortby": fields.get("sortby", "0"),
        "from_date": fields.get("from_date"),
        "to_date": fields.get("to_date"),
    })  # fmt: skip
    assert expected, f"{case}: the oracle selects nothing; the case proves nothing"
    assert by_lead(records) == expected
    assert all(list(record) == list(WIRE_FIELDS) for record in records)
    if case == "everything":
        assert len(records) == CAMPAIGNS[campaign]  # one (the current) version per lead
    if case == "status Pending":
        assert {r["Status"] for r in records} == {"Pending", ""}
    if case == "dial Fail":
        assert {r["DialStatus"] for r in records} <= {
            "Busy", "Congestion", "invalid_number", "exception",
        }  # fmt: skip


def test_incremental_sync_sees_later_versions_as_the_clock_moves(
    sandbox, receiver, client, tables, clock
):
    table = tables[MUMBAI]
    later = LOCAL_NOW + timedelta(hours=3)
    window = {"sortby": "2", "from_date": LOCAL_NOW, "to_date": LOCAL_NOW + timedelta(hours=6)}
    before, _ = fetch(sandbox, receiver, client, **window)
    assert before == []  # nothing was updated after "now" yet
    clock.now = DATA_NOW + timedelta(hours=3)
    try:
        after, _ = fetch(sandbox, receiver, client, **window)
        expected = oracle(table, later, sortby="2", from_date=window["from_date"],
                          to_date=window["to_date"])  # fmt: skip
        assert by_lead(after) == expected and len(after) > 50
        assert all(LOCAL_NOW.strftime("%F %T") < r["UpdatedDate"] <= later.strftime("%F %T")
                   for r in after)  # fmt: skip
        everything, _ = fetch(sandbox, receiver, client)
        assert len(everything) == CAMPAIGNS[MUMBAI]
        assert by_lead(everything) == oracle(table, later)
    finally:
        clock.now = DATA_NOW


@pytest.mark.parametrize("variant", list(DeliveryVariant))
def test_every_delivery_variant_arrives_and_parses_to_the_same_records(
    sandbox, receiver, client, tables, variant
):
    disposition = campaign_profile(ODD).dispositions[1]
    fields = {"status": "Success", "dispositions": disposition}
    expected = oracle(tables[ODD], LOCAL_NOW, status="Success", dispositions=disposition)
    assert 0 < len(expected) <= sandbox.config.single_record_cap
    response = httpx.post(sandbox.base_url + "/_sandbox/config", json={"delivery": variant})
    assert response.status_code == 200 and response.json()["delivery"] == variant.value
    try:
        records, entry = fetch(sandbox, receiver, client, campaign=ODD, variant=variant, **fields)
    finally:
        httpx.post(sandbox.base_url + "/_sandbox/config", json={"delivery": "json_data"})
    assert by_lead(records) == expected
    assert entry["posts"] == (len(expected) if variant == DeliveryVariant.SINGLE_RECORD else 1)
    content_types = {post.content_type for post in receiver.posts}
    if variant == DeliveryVariant.FORM_DATA:
        assert content_types == {"application/x-www-form-urlencoded"}
    else:
        assert content_types == {"application/json"}


def test_single_record_delivery_is_capped(sandbox, receiver, client, tables):
    sandbox.update_config({"delivery": "single_record", "single_record_cap": 5})
    try:
        records, entry = fetch(sandbox, receiver, client, campaign=ODD,
                               variant=DeliveryVariant.SINGLE_RECORD, status="Fail")  # fmt: skip
    finally:
        sandbox.update_config({"delivery": "json_data", "single_record_cap": 500})
    expected = oracle(tables[ODD], LOCAL_NOW, status="Fail")
    assert len(records) == 5 and entry["records"] == 5
    assert entry["truncated"] == len(expected) - 5
    assert records == expected[:5]


def test_the_generated_data_matches_an_independent_generation(sandbox, tables):
    for name, table in tables.items():
        assert sandbox.dataset(name).equals(table)


# -- the API surface: validation order, messages, bodies, rate limit ----------------------------


def test_validation_follows_the_documented_order(sandbox, receiver):
    bad_everything = {"userName": "", "campaignName": "", "callBackUrl": ""}
    cases = [
        ({}, {"userName": USER}, "apiKey is invalid"),  # no apiKey header at all
        ({"apiKey": ""}, {}, "apiKey is invalid"),
        ({"api_key": API_KEY}, valid_body(receiver), "apiKey is invalid"),  # misnamed header
        ({"apiKey": "wrong"}, bad_everything, "Authentication failed"),
        ({"apiKey": API_KEY}, bad_everything, "userName is invalid"),
        ({"apiKey": API_KEY}, {**bad_everything, "userName": "other"}, "Authentication failed"),
        ({"apiKey": API_KEY}, {**bad_everything, "userName": USER}, "campaignName is invalid"),
        ({"apiKey": API_KEY}, valid_body(receiver, campaignName="loan offers - mumbai"),
         "campaignName is invalid"),  # names are exact
        ({"apiKey": API_KEY}, valid_body(receiver, callBackUrl="ftp://x.y/z"),
         MSG_CALLBACK_INVALID),
        ({"apiKey": API_KEY}, valid_body(receiver, callBackUrl="http://"), MSG_CALLBACK_INVALID),
        ({"apiKey": API_KEY}, valid_body(receiver, status="Done"), "status is invalid"),
        ({"apiKey": API_KEY}, valid_body(receiver, status=None), "status is invalid"),
        ({"apiKey": API_KEY}, valid_body(receiver, dialstatus="Busy"), "dialstatus is invalid"),
        ({"apiKey": API_KEY}, valid_body(receiver, dispositions=""), "dispositions is invalid"),
        ({"apiKey": API_KEY}, valid_body(receiver, sortby="3"), "sortby is invalid"),
        ({"apiKey": API_KEY}, valid_body(receiver, sortby="1"), "fromDate is invalid"),
        ({"apiKey": API_KEY}, valid_body(receiver, sortby="2", fromDate="2026-11-01 00:00:00"),
         "toDate is invalid"),
        ({"apiKey": API_KEY}, valid_body(receiver, fromDate="2026-11-01"), "fromDate is invalid"),
        ({"apiKey": API_KEY}, valid_body(receiver, sortby="1", fromDate="2026-11-02 00:00:00",
                                         toDate="2026-11-01 00:00:00"),
         "fromDate should not be after toDate"),
    ]  # fmt: skip
    for headers, body, message in cases:
        response = api_post(sandbox, body, headers=headers)
        assert response.status_code == 200, message
        assert response.json() == {"status": "error", "message": message, "uniqueId": ""}


def test_form_encoded_requests_and_case_insensitive_filter_values_are_accepted(sandbox, receiver):
    body = valid_body(receiver, status="success", dialstatus="ALL", sortby="2",
                      fromDate="2026-11-01 00:00:00", toDate="2026-11-20 00:00:00")  # fmt: skip
    response = httpx.post(sandbox.base_url + API_PATH, data=body, headers={"apiKey": API_KEY})
    answer = response.json()
    assert answer["status"] == "success" and answer["message"] == "queued successfully"
    assert len(answer["uniqueId"]) == 36
    assert wait_delivered(sandbox, answer["uniqueId"])["state"] == "delivered"


def test_garbage_bodies_are_answered_in_the_documented_way(sandbox):
    for content in (b"not json", b"[1,2]", b"x" * 60_000, b""):
        response = httpx.post(
            sandbox.base_url + API_PATH, content=content, headers={"apiKey": API_KEY}
        )
        assert response.json()["message"] == "userName is invalid"


def test_rate_limit_per_account_with_200_or_429(sandbox, receiver):
    sandbox.reset()
    sandbox.update_config({"rate_limit": 3, "window_s": 60})
    try:
        answers = [api_post(sandbox, valid_body(receiver)) for _ in range(4)]
        assert [a.json()["status"] for a in answers] == ["success"] * 3 + ["error"]
        assert answers[3].status_code == 200
        assert answers[3].json() == {"status": "error", "message": "Max limit exceeded",
                                     "uniqueId": ""}  # fmt: skip
        # Authentication failures are not counted against the account.
        assert api_post(sandbox, valid_body(receiver), headers={"apiKey": "x"}).json()[
            "message"] == "Authentication failed"  # fmt: skip
        sandbox.update_config({"rate_limit_http_status": 429})
        limited = api_post(sandbox, valid_body(receiver))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.json()["message"] == "Max limit exceeded"
        outcomes = [entry["outcome"] for entry in sandbox.requests()]
        assert outcomes == ["accepted"] * 3 + ["rate_limited", "rejected", "rate_limited"]
    finally:
        sandbox.update_config({"rate_limit": 100_000, "rate_limit_http_status": 200})
        for entry in sandbox.requests():
            if entry["unique_id"]:
                wait_delivered(sandbox, entry["unique_id"])
        sandbox.reset()


def test_request_and_delivery_logs_hold_no_secrets(sandbox, receiver, client):
    sandbox.reset()
    fetch(sandbox, receiver, client, status="Fail")
    api_post(sandbox, valid_body(receiver, campaignName="nope"), headers={"apiKey": "typo-key"})
    requests_log = httpx.get(sandbox.base_url + "/_sandbox/requests").json()
    deliveries = httpx.get(sandbox.base_url + "/_sandbox/deliveries").json()
    text = json.dumps([requests_log, deliveries])
    assert API_KEY not in text and SECRET not in text and "typo-key" not in text
    first = requests_log[0]
    assert first["outcome"] == "accepted" and first["account"] == USER
    assert first["campaign"] == MUMBAI and first["message"] == "queued successfully"
    assert first["params"]["callBackUrl"] == f"{receiver.base_url}/callback/***"
    assert first["params"]["status"] == "Fail" and "apiKey" not in first["params"]
    assert isinstance(first["monotonic"], float) and first["wall_time"].startswith("2026-11-20")
    assert requests_log[1]["outcome"] == "rejected"
    assert requests_log[1]["message"] == "Authentication failed"
    delivery = deliveries[0]
    assert delivery["unique_id"] == first["unique_id"] and delivery["status_code"] == 200
    assert delivery["variant"] == "json_data" and delivery["records"] > 0
    assert delivery["url"] == f"{receiver.base_url}/callback/***"


def test_runtime_config_route_validates(sandbox):
    url = sandbox.base_url + "/_sandbox/config"
    current = httpx.get(url).json()
    assert current["delivery"] == "json_data" and current["rate_limit_http_status"] == 200
    assert current["campaigns"] == CAMPAIGNS and "api_key" not in current
    for bad in ({"delivery": "fax"}, {"rate_limit_http_status": 418}, {"api_key": "new"},
                {"window_s": 0}, {"delivery_delay_s": 3600}, [1]):  # fmt: skip
        response = httpx.post(url, json=bad)
        assert response.status_code == 400, bad
    assert httpx.get(url).json() == current


def test_a_callback_receiver_that_fails_is_logged(sandbox, client):
    failing = CallbackReceiver(status_code=503)
    with run_asgi(failing.app) as base_url:
        accepted = client.request_dial_status(
            DialStatusRequest(MUMBAI, f"{base_url}/callback/{SECRET}", status="Fail")
        )
        entry = wait_delivered(sandbox, accepted.unique_id)
    assert entry["state"] == "rejected" and entry["status_code"] == 503
    accepted = client.request_dial_status(
        DialStatusRequest(MUMBAI, f"{base_url}/callback/{SECRET}")  # nobody listens any more
    )
    entry = wait_delivered(sandbox, accepted.unique_id)
    assert entry["state"] == "failed" and entry["error"].startswith("ConnectError")
    assert SECRET not in entry["error"]


# -- admin token, body limits --------------------------------------------------------------


ADMIN = "sandbox-admin-token-42"


@pytest.mark.parametrize(
    ("configured", "headers", "status"),
    [
        (ADMIN, {}, 401),
        (ADMIN, {"X-Dialstatus-Token": "guess"}, 403),
        (ADMIN, {"X-Dialstatus-Token": ADMIN}, 200),
        (ADMIN, {"Authorization": f"Bearer {ADMIN}"}, 200),
        ("", {"X-Dialstatus-Token": ""}, 403),  # shut: no token opens them
        ("", {"X-Dialstatus-Token": "anything"}, 403),
        (None, {}, 200),  # a standalone sandbox with no token: open, as before
    ],
)
def test_admin_routes_need_the_configured_token(configured, headers, status):
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={"Solo": 5},
                           admin_token=configured)  # fmt: skip
    with serve_sandbox(config) as sandbox:
        for method, path in (("GET", "requests"), ("GET", "deliveries"), ("GET", "config"),
                             ("POST", "config"), ("POST", "reset")):  # fmt: skip
            body = {"json": {"delivery_delay_s": 0.5}} if method == "POST" else {}
            url = f"{sandbox.base_url}/_sandbox/{path}"
            answer = httpx.request(method, url, headers=headers, timeout=10, **body)
            assert answer.status_code == status, (path, answer.text)
        # The API itself takes the account's apiKey, never the admin token.
        assert api_post(sandbox, {}).status_code == 200
        assert sandbox.config.delivery_delay_s == (0.5 if status == 200 else 0.2)


def _unfinished_post(base_url: str, path: str, *, declared: int | None = None) -> bytes:
    """POSTs a body (chunked, or `declared` bytes long) and never sends its end: a server that
    reads the whole body before it answers never answers (the recv times out)."""
    parts = urlsplit(base_url)
    framing = f"Content-Length: {declared}" if declared else "Transfer-Encoding: chunked"
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(
            f"POST {parts.path}{path} HTTP/1.1\r\nHost: sandbox\r\n{framing}\r\n"
            "Content-Type: application/json\r\n\r\n".encode()
        )
        chunk = b"x" * 65_536
        with contextlib.suppress(OSError):  # the server may close once it has answered
            for _ in range(16):  # a megabyte, far over the limit
                connection.sendall(chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk))
        return connection.recv(65_536)


@pytest.mark.parametrize("path", [API_PATH, "/_sandbox/config"])
@pytest.mark.parametrize("declared", [None, 10**10])
def test_a_huge_body_is_refused_while_it_streams_never_read_whole(sandbox, path, declared):
    answer = _unfinished_post(sandbox.base_url, path, declared=declared)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert httpx.get(sandbox.base_url + "/_sandbox/config").status_code == 200  # still serving


# -- mounting, the event loop, the command line ---------------------------------------------


def test_mounted_under_a_prefix_with_file_links_derived_from_the_request(receiver, tables):
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={ODD: 800}, seed=SEED,
                           clock=lambda: DATA_NOW, delivery_delay_s=0.0,
                           delivery=DeliveryVariant.JSON_LINK)  # fmt: skip
    sandbox_app = create_sandbox_app(config)
    outer = Starlette(routes=[Mount("/api/sandbox", app=sandbox_app)])
    with run_asgi(outer) as base_url:
        sandbox = sandbox_app.state.sandbox
        sandbox.base_url = base_url + "/api/sandbox"
        options = ClientOptions(api_url=sandbox.base_url + API_PATH, username=USER,
                                api_key=API_KEY)  # fmt: skip
        with CloudAgentClient(options) as client:
            records, _ = fetch(
                sandbox, receiver, client, ODD, DeliveryVariant.JSON_LINK, dial_status="answered"
            )
        link = receiver.posts[0].payload()["fileUrl"]
        assert link.startswith(base_url + "/api/sandbox/files/") and link.endswith(".json")
        assert httpx.get(base_url + "/api/sandbox/files/unknown.json").status_code == 404
    assert by_lead(records) == oracle(tables[ODD], LOCAL_NOW, dial_status="answered")
    sandbox.close()


def test_the_event_loop_stays_responsive_during_a_large_delivery(receiver):
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={"Big": 150_000},
                           clock=lambda: DATA_NOW, delivery_delay_s=0.0)  # fmt: skip
    app = create_sandbox_app(config)
    with run_asgi(app) as base_url:
        sandbox = app.state.sandbox
        sandbox.base_url = base_url
        receiver.clear()
        answer = api_post(sandbox, valid_body(receiver, campaignName="Big")).json()
        latencies = []
        delivery_started = time.perf_counter()
        while True:
            started = time.perf_counter()
            entries = httpx.get(base_url + "/_sandbox/deliveries").json()
            latencies.append(time.perf_counter() - started)
            if entries[0]["state"] != "pending":
                break
            time.sleep(0.01)
        delivery_s = time.perf_counter() - delivery_started
        assert entries[0]["state"] == "delivered" and entries[0]["records"] == 150_000
    assert len(latencies) > 5  # the check really ran while the delivery was being prepared
    # Selecting and serialising run in a worker thread: the loop answers in between.
    worst = max(latencies)
    assert worst < 1.0 and worst < delivery_s / 2, (worst, delivery_s)
    assert receiver.posts[-1].payload()["uniqueId"] == answer["uniqueId"]
    sandbox.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_python_m_lib_sandbox_runs_alone_and_prints_its_credentials(receiver):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.sandbox", "--port", str(port), "--campaign", "Solo=40"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        printed = {}
        for line in process.stdout:
            if "=" in line and line.strip().startswith("CLOUDAGENT_"):
                name, _, value = line.strip().partition("=")
                printed[name] = value
            if "request log" in line:
                break
        assert printed["CLOUDAGENT_API_URL"] == f"http://127.0.0.1:{port}{API_PATH}"
        assert printed["CLOUDAGENT_USERNAME"] == "demo_manager"
        options = ClientOptions(
            api_url=printed["CLOUDAGENT_API_URL"],
            username="demo_manager",
            api_key=printed["CLOUDAGENT_API_KEY"],
            backoff_base_s=0.2,
        )
        with CloudAgentClient(options) as client:
            receiver.clear()
            accepted = client.request_dial_status(
                DialStatusRequest("Solo", f"{receiver.base_url}/callback/{SECRET}")
            )
            posts = receiver.wait_for(1)
        assert posts[0].payload()["uniqueId"] == accepted.unique_id
        assert len(posts[0].payload()["data"]) == 40
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


# -- the data generator ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Renewals_Q4", "Credit Card Upsell", ODD])
def test_generated_data_looks_like_a_call_centre(name):
    n = 20_000
    table = generate_campaign(name, n, SEED, DATA_NOW)
    assert table.column_names == list(WIRE_FIELDS)
    con = duckdb.connect()
    con.register("versions", table)
    first = f"(SELECT * FROM versions WHERE UpdatedDate <= '{LOCAL_NOW:%F %T}')"
    cursor = con.execute(f"""
        SELECT count(*) AS rows, count(DISTINCT LeadID) AS leads,
            avg((Attempts = 0)::INT) AS never,
            count(*) FILTER (DialStatus = 'answered')
                / count(*) FILTER (DialStatus NOT IN ('', 'NotDialed')) AS answer_rate,
            bool_and(Attempts BETWEEN 0 AND 5) AND bool_and(Priority BETWEEN 1 AND 5)
                AND bool_and(UpdatedDate >= CreatedDate) AS ranges_ok,
            bool_and((Disposition <> '') = (DialStatus = 'answered'))
                AND bool_and((AgentID <> '') = (DialStatus = 'answered'))
                AND bool_and((CallDuration <> '00:00:00') = (DialStatus = 'answered'))
                AS only_answered_calls_have_details,
            bool_and((Attempts = 0) = (DialStatus IN ('', 'NotDialed')))
                AND bool_and(Status IN ('Pending', '') OR Attempts > 0)
                AND bool_and(Status <> 'Success' OR DialStatus = 'answered') AS statuses_ok,
            avg((Status = 'Success')::INT) FILTER (DialStatus = 'answered') AS success_share,
            bool_and(regexp_full_match(PhoneNumber, '[6-9][0-9]{{9}}'))
                AND bool_and(UCID = '' OR regexp_full_match(UCID, '[0-9]{{16}}'))
                AND bool_and(CampaignName = ?) AS values_ok,
            min(CreatedDate) AS created_min, max(CreatedDate) AS created_max,
            avg((hour(CAST(CreatedDate AS TIMESTAMP)) BETWEEN 9 AND 19)::INT) AS business,
            avg((isodow(CAST(CreatedDate AS TIMESTAMP)) <= 5)::INT) AS weekdays,
            count(DISTINCT Disposition) AS dispositions, count(DISTINCT AgentID) AS agents
        FROM {first}
    """, [name])  # fmt: skip
    stats = dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))
    assert stats["rows"] == stats["leads"] == n
    assert 0.04 <= stats["never"] <= 0.16
    assert 0.18 <= stats["answer_rate"] <= 0.47
    assert stats["ranges_ok"] and stats["only_answered_calls_have_details"]
    assert stats["statuses_ok"] and stats["values_ok"]
    assert stats["success_share"] > 0.85
    assert stats["created_min"] >= (LOCAL_NOW - timedelta(days=49)).strftime("%F")
    assert stats["created_max"] <= LOCAL_NOW.strftime("%F %T")
    assert stats["business"] > 0.8 and stats["weekdays"] > 0.8
    assert 6 <= stats["dispositions"] <= 10 and 8 <= stats["agents"] <= 21
    wrap_up = [d for d in campaign_profile(name).dispositions if d.startswith("Wrap up time")]
    assert len(wrap_up) == 1 and wrap_up[0].startswith("Wrap up time exceeded :")

    later = pc.greater(table.column("UpdatedDate"), LOCAL_NOW.strftime("%F %T"))
    second = table.filter(later)
    assert 0.08 * n <= second.num_rows <= 0.12 * n
    horizon = (LOCAL_NOW + timedelta(hours=6)).strftime("%F %T")
    assert all(value <= horizon for value in second.column("UpdatedDate").to_pylist())
    previous = {r["LeadID"]: r for r in table.filter(pc.invert(later)).to_pylist()}
    for record in second.slice(0, 300).to_pylist():
        old = previous[record["LeadID"]]
        assert record["DialStatus"] != old["DialStatus"]
        assert record["CreatedDate"] == old["CreatedDate"] and record["Name"] == old["Name"]
        assert record["Attempts"] >= 1


def test_generation_is_deterministic_and_seeded():
    a = generate_campaign(MUMBAI, 5000, 1, DATA_NOW)
    assert a.equals(generate_campaign(MUMBAI, 5000, 1, DATA_NOW))
    assert a.equals(generate_campaign(MUMBAI, 5000, 1, DATA_NOW.astimezone(ZoneInfo("UTC"))))
    assert not a.equals(generate_campaign(MUMBAI, 5000, 2, DATA_NOW))
    rates = {
        name: campaign_profile(name).answer_rate
        for name in ("Renewals_Q4", "Loan Offers - Mumbai", "Credit Card Upsell", "Feedback")
    }
    assert all(0.2 <= rate <= 0.45 for rate in rates.values()) and len(set(rates.values())) == 4
    assert generate_campaign("Empty", 0, 1, DATA_NOW).num_rows == 0


def test_a_million_leads_generate_and_serialise_in_seconds():
    # CPU time of this process (all its threads), so other work on the machine does not count.
    started = time.process_time()
    table = generate_campaign("Big Campaign", 1_000_000, 3, DATA_NOW)
    generated = time.process_time() - started
    assert table.num_rows > 1_000_000
    first = table.slice(0, 1_000_000)
    assert pc.count_distinct(first.column("LeadID")).as_py() == 1_000_000
    started = time.process_time()
    body = records_json(first)
    serialised = time.process_time() - started
    assert json.loads(body[:1000].rsplit(b"},", 1)[0] + b"}]")[0]["LeadID"]
    # Typical here: 0.6 s and 2 s of CPU; the bounds leave room for slower machines.
    assert generated < 4 and serialised < 8, (generated, serialised)


def test_threads_can_share_one_sandbox_dataset():
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={MUMBAI: 2000},
                           seed=SEED, clock=lambda: DATA_NOW)  # fmt: skip
    sandbox = create_sandbox_app(config).state.sandbox
    results = []
    threads = [threading.Thread(target=lambda: results.append(sandbox.dataset(MUMBAI)))
               for _ in range(4)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(result is results[0] for result in results)
    sandbox.close()
