"""The sync engine against a real sandbox and the real callback route, in one test process.

The sandbox and this project's own routes each run under uvicorn on loopback; the engine sends
real requests through the real client, and deliveries come back through the callback route.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from lib.cloudagent import ClientOptions, CloudAgentClient, DialStatusRequest, LeadStatus, SortBy
from lib.cloudagent.ratelimit import SlidingWindowLimiter
from lib.config import API_PATH
from lib.fields import API_TIMESTAMP_FORMAT
from lib.sandbox import SandboxConfig, create_sandbox_app
from lib.server import ALREADY_PENDING, CALLBACK_PREFIX, routes
from lib.services import Services, get_services, reset_services
from lib.store import catalog
from lib.sync import WATERMARK_OVERLAP, SyncEngine
from lib.view import metrics
from tests.support.asgi import CallbackReceiver, run_asgi

API_KEY = "engine-test-key-0123"
ACCOUNT = "engine_acct"
SECRET = "engine-callback-secret-0123456789"
CAMPAIGNS = {"Alpha Renewals": 400, "Beta & Co": 300}


@dataclass
class Rig:
    services: Services
    sandbox: object
    sandbox_url: str
    server_url: str

    def engine(self, *, callback_url: str | None = None, timeout_s: float = 30.0, interval_s=3600):
        options = ClientOptions(
            api_url=self.sandbox_url + API_PATH, username=ACCOUNT, api_key=API_KEY
        )
        limiter = SlidingWindowLimiter(max_requests=100, window_s=60, margin_s=0)
        return SyncEngine(
            self.services.store,
            CloudAgentClient(options, limiter=limiter),
            limiter,
            account=ACCOUNT,
            callback_url=callback_url or self.server_url + CALLBACK_PREFIX + SECRET,
            timezone="Asia/Kolkata",
            interval_s=interval_s,
            callback_timeout_s=timeout_s,
        )

    def rows(self, sql: str, params: list | None = None) -> list[tuple]:
        with self.services.store.cursor() as cursor:
            return cursor.execute(sql, params or []).fetchall()

    def wait(self, sql: str, expected, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while (got := self.rows(sql)) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"{sql!r} gave {got}, expected {expected}")
            time.sleep(0.2)


@pytest.fixture
def rig(tmp_path, monkeypatch) -> Iterator[Rig]:
    for name in ("CLOUDAGENT_API_KEY", "DIALSTATUS_CAMPAIGNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIALSTATUS_DB", str(tmp_path / "engine.duckdb"))
    monkeypatch.setenv("DIALSTATUS_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DIALSTATUS_CALLBACK_SECRET", SECRET)
    reset_services()
    services = get_services()
    catalog.ensure_config_campaigns(services.store, list(CAMPAIGNS))
    app = create_sandbox_app(
        SandboxConfig(api_key=API_KEY, username=ACCOUNT, campaigns=CAMPAIGNS, delivery_delay_s=0)
    )
    with run_asgi(app) as sandbox_url, run_asgi(Starlette(routes=routes())) as server_url:
        yield Rig(services, app.state.sandbox, sandbox_url, server_url)
    reset_services()


def test_first_a_full_load_then_incremental_from_the_watermark_with_overlap(rig):
    engine = rig.engine()
    engine.start()  # the first scheduled round queues every enabled campaign
    try:
        rig.wait("SELECT count(*) FROM sync_requests WHERE state = 'delivered'", [(2,)])
        stored = dict(rig.rows("SELECT campaign_name, count(*) FROM leads GROUP BY ALL"))
        assert stored == {name: size for name, size in CAMPAIGNS.items()}
        newest = rig.rows(
            "SELECT max(updated_at)::TIMESTAMP FROM leads WHERE campaign_name = 'Alpha Renewals'"
        )[0][0]
        assert engine.request_sync("Alpha Renewals", trigger="test") == 1
        rig.wait("SELECT count(*) FROM sync_requests WHERE state = 'delivered'", [(3,)])
    finally:
        engine.stop()
    full = [e for e in rig.sandbox.requests() if e["params"].get("sortby") == "0"]
    incremental = [e for e in rig.sandbox.requests() if e["params"].get("sortby") == "2"]
    assert {e["campaign"] for e in full} == set(CAMPAIGNS)
    assert all("fromDate" not in e["params"] for e in full)
    (refresh,) = incremental
    assert refresh["campaign"] == "Alpha Renewals"
    assert refresh["params"]["status"] == "All" and refresh["params"]["dialstatus"] == "All"
    sent_from = datetime.strptime(refresh["params"]["fromDate"], "%Y-%m-%d %H:%M:%S")
    assert sent_from == newest - WATERMARK_OVERLAP
    kinds = rig.rows("SELECT kind FROM sync_requests ORDER BY id")
    assert kinds == [("full",), ("full",), ("incremental",)]
    stored_params = "".join(str(row) for row in rig.rows("SELECT params FROM sync_requests"))
    assert SECRET not in stored_params and API_KEY not in stored_params


def test_an_api_error_is_recorded_and_other_campaigns_go_on(rig):
    catalog.add_campaign(rig.services.store, "Ghost Campaign")
    engine = rig.engine()
    engine.start()
    try:
        rig.wait("SELECT count(*) FROM sync_requests WHERE state IN ('delivered', 'error')", [(3,)])
    finally:
        engine.stop()
    errors = rig.rows("SELECT campaign_name, error FROM sync_requests WHERE state = 'error'")
    assert (
        errors == [("Ghost Campaign", errors[0][1])] and "campaignName is invalid" in errors[0][1]
    )
    state = rig.rows("SELECT last_error FROM sync_state WHERE campaign_name = 'Ghost Campaign'")
    assert "campaignName is invalid" in state[0][0]
    assert rig.rows("SELECT count(DISTINCT campaign_name) FROM leads") == [(2,)]


def test_a_request_whose_callback_never_comes_times_out_and_is_retried(rig):
    silent = CallbackReceiver()  # accepts deliveries and stores nothing
    with run_asgi(silent.app) as silent_url:
        engine = rig.engine(callback_url=silent_url + "/callback/x", timeout_s=1, interval_s=4)
        engine.start()
        try:
            rig.wait(
                "SELECT count(*) > 0 FROM sync_requests WHERE state = 'timed_out' "
                "AND campaign_name = 'Alpha Renewals'",
                [(True,)],
            )
            rig.wait(
                "SELECT count(*) >= 2 FROM sync_requests WHERE campaign_name = 'Alpha Renewals'",
                [(True,)],
                timeout=20,
            )
        finally:
            engine.stop()
    state = rig.rows("SELECT last_error FROM sync_state WHERE campaign_name = 'Alpha Renewals'")
    assert "No callback within 1 s" in state[0][0]


def test_a_hand_made_filtered_request_stores_rows_but_keeps_the_watermark(rig):
    engine = rig.engine()
    engine.start()
    try:
        rig.wait(
            "SELECT count(*) FROM sync_requests WHERE state = 'delivered' "
            "AND campaign_name = 'Beta & Co'",
            [(1,)],
        )
        before = rig.rows("SELECT watermark FROM sync_state WHERE campaign_name = 'Beta & Co'")
        # Hours pass at CloudAgent: leads are updated again, so the filtered answer holds
        # records newer than the watermark, and other newer updates it does not select.
        later = rig.sandbox.config.clock() + timedelta(hours=8)
        rig.sandbox.config.clock = lambda: later
        request = DialStatusRequest(
            campaign_name="Beta & Co",
            callback_url="",
            from_date=datetime(2020, 1, 1),
            to_date=datetime(2100, 1, 1),
            sortby=SortBy.CREATED,
            status=LeadStatus.FAIL,
        )
        request_id = engine.send_manual(request)
        rig.wait(f"SELECT state FROM sync_requests WHERE id = {request_id}", [("delivered",)])
    finally:
        engine.stop()
    manual = rig.sandbox.requests()[-1]["params"]
    assert manual["status"] == "Fail" and manual["sortby"] == "1"
    newest_fail = rig.rows(
        "SELECT max(updated_at) FROM leads WHERE campaign_name = 'Beta & Co' "
        "AND lead_status = 'Fail'"
    )[0][0]
    assert newest_fail > before[0][0]  # the filtered answer did carry newer records
    after = rig.rows("SELECT watermark FROM sync_state WHERE campaign_name = 'Beta & Co'")
    assert after == before


def test_a_lead_dated_tomorrow_neither_stops_the_campaign_nor_passes_the_to_date(rig):
    rig.sandbox.config.clock_offset_s = -6 * 3600  # CloudAgent's data as of six hours ago
    engine = rig.engine()
    engine.start()
    try:
        rig.wait("SELECT count(*) FROM sync_requests WHERE state = 'delivered'", [(2,)])
        loaded_until = rig.rows(
            "SELECT max(updated_at) FROM leads WHERE campaign_name = 'Alpha Renewals'"
        )[0][0]
        # A refresh whose delivery holds one record dated tomorrow (an agent's clock, a zone
        # set wrong): it answers an incremental request asked up to six hours ago + overlap.
        now_local = datetime.now(ZoneInfo("Asia/Kolkata")).replace(tzinfo=None, microsecond=0)
        to_date = now_local - timedelta(hours=6) + WATERMARK_OVERLAP
        with rig.services.store.writing() as cursor:
            cursor.execute(
                "INSERT INTO sync_requests (campaign_name, kind, params, unique_id, state, "
                "sent_at) VALUES ('Alpha Renewals', 'incremental', ?, 'future-1', 'accepted', "
                "now())",
                [json.dumps({"toDate": to_date.strftime(API_TIMESTAMP_FORMAT), "sortby": "2"})],
            )
        tomorrow = (now_local + timedelta(days=1)).strftime(API_TIMESTAMP_FORMAT)
        record = {"LeadID": "FUTURE-1", "PhoneNumber": "9800000001", "Name": "Clock Wrong",
                  "CampaignName": "Alpha Renewals", "Status": "Pending", "DialStatus": "",
                  "CreatedDate": tomorrow, "UpdatedDate": tomorrow}  # fmt: skip
        answer = httpx.post(
            rig.server_url + CALLBACK_PREFIX + SECRET,
            json={"uniqueId": "future-1", "campaignName": "Alpha Renewals", "data": [record]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        watermark = rig.rows(
            "SELECT watermark::TIMESTAMP FROM sync_state WHERE campaign_name = 'Alpha Renewals'"
        )[0][0]
        assert watermark <= to_date
        rig.sandbox.config.clock_offset_s = 0  # six hours of dialling happen
        assert engine.request_sync("Alpha Renewals", trigger="test") == 1
        rig.wait("SELECT count(*) FROM sync_requests WHERE state = 'delivered'", [(4,)])
    finally:
        engine.stop()
    refresh = rig.sandbox.requests()[-1]
    assert refresh["outcome"] == "accepted" and refresh["params"]["sortby"] == "2"
    assert refresh["params"]["fromDate"] <= refresh["params"]["toDate"]
    new_activity = rig.rows(
        "SELECT count(*) FROM leads WHERE campaign_name = 'Alpha Renewals' AND updated_at > ? "
        "AND lead_id <> 'FUTURE-1'",
        [loaded_until],
    )[0][0]
    assert new_activity > 0
    state = rig.rows("SELECT last_error FROM sync_state WHERE campaign_name = 'Alpha Renewals'")
    assert state == [(None,)]
    with rig.services.store.cursor() as cursor:
        fresh = metrics.freshness(cursor).set_index("campaign")["dated_after_now"]
    assert fresh.to_dict() == {"Alpha Renewals": 1, "Beta & Co": 0}


def test_a_sync_press_for_a_campaign_already_waiting_says_so(rig):
    """POST /api/sync twice for one campaign before the engine sends anything: the first
    queues it, the second queues nothing and says why, instead of a bare "queued: 0"."""
    rig.services.sync = rig.engine()  # not started: the queued job stays queued
    press = {"url": rig.server_url + "/api/sync", "params": {"campaign": "Alpha Renewals"},
             "headers": {"X-Dialstatus-Token": SECRET}}  # fmt: skip
    first, second = httpx.post(**press), httpx.post(**press)
    assert (first.status_code, first.json()) == (202, {"status": "queued", "queued": 1})
    assert second.status_code == 202
    assert second.json() == {"status": "pending", "queued": 0, "message": ALREADY_PENDING}
