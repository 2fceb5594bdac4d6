"""The connection check and the re-ingest route, against a real sandbox and this project's own
routes under uvicorn on loopback, in one test process: the engine sends real requests through the
real client, and callbacks come back through the real callback route."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette

from lib.cloudagent import ClientOptions, CloudAgentClient
from lib.cloudagent.ratelimit import SlidingWindowLimiter
from lib.config import API_PATH
from lib.connection_check import latest_check, start_check
from lib.sandbox import SandboxConfig, create_sandbox_app
from lib.server import CALLBACK_PREFIX, routes
from lib.services import Services, get_services, reset_services
from lib.store import catalog
from lib.store.ingest.flights import FLIGHTS
from lib.store.reingest import replaying, wait_for_replay
from lib.sync import SyncEngine
from tests.support.asgi import run_asgi

API_KEY = "check-test-key-0123"
ACCOUNT = "check_acct"
SECRET = "check-callback-secret-0123456789"
TOKEN = "check-admin-token-0123456789"
CAMPAIGN = "Check & Co"
CALLBACK_TIMEOUT_S = 3


@dataclass
class Rig:
    services: Services
    sandbox: object
    sandbox_url: str
    server_url: str

    def engine(self, *, api_key: str = API_KEY, auth_style: str = "apikey") -> SyncEngine:
        options = ClientOptions(
            api_url=self.sandbox_url + API_PATH,
            username=ACCOUNT,
            api_key=api_key,
            auth_style=auth_style,
        )
        limiter = SlidingWindowLimiter(max_requests=100, window_s=60, margin_s=0)
        engine = SyncEngine(
            self.services.store,
            CloudAgentClient(options, limiter=limiter),
            limiter,
            account=ACCOUNT,
            callback_url=self.server_url + CALLBACK_PREFIX + SECRET,
            timezone="Asia/Kolkata",
            interval_s=3600,
            callback_timeout_s=CALLBACK_TIMEOUT_S,
        )
        self.services.sync = engine
        return engine

    def check(self, campaign: str = CAMPAIGN):
        start_check(self.services, campaign, poll_s=0.1)
        deadline = time.monotonic() + CALLBACK_TIMEOUT_S + 30
        while (result := latest_check()).running:
            assert time.monotonic() < deadline, "the check did not finish"
            time.sleep(0.1)
        return result


@pytest.fixture
def rig(tmp_path, monkeypatch) -> Iterator[Rig]:
    for name in ("CLOUDAGENT_API_KEY", "DIALSTATUS_CAMPAIGNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIALSTATUS_DB", str(tmp_path / "check.duckdb"))
    monkeypatch.setenv("DIALSTATUS_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DIALSTATUS_CALLBACK_SECRET", SECRET)
    monkeypatch.setenv("DIALSTATUS_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("DIALSTATUS_CALLBACK_TIMEOUT", str(CALLBACK_TIMEOUT_S))
    reset_services()
    services = get_services()
    catalog.ensure_config_campaigns(services.store, [CAMPAIGN])
    app = create_sandbox_app(
        SandboxConfig(
            api_key=API_KEY,
            username=ACCOUNT,
            campaigns={CAMPAIGN: 300},
            delivery_delay_s=0,
            update_horizon_h=0.1,  # leads keep changing: the last 10 minutes hold some
        )
    )
    with run_asgi(app) as sandbox_url, run_asgi(Starlette(routes=routes())) as server_url:
        yield Rig(services, app.state.sandbox, sandbox_url, server_url)
    reset_services()


def states(result) -> list[str]:
    return [step.state for step in result.steps]


@pytest.mark.parametrize("auth_style", ["apikey", "token"])
def test_a_good_connection_passes_every_step(rig, auth_style):
    rig.sandbox.update_config({"auth_style": auth_style})
    rig.engine(auth_style=auth_style)
    result = rig.check()
    assert states(result) == ["ok"] * 5, [s.detail for s in result.steps]
    (sent,) = rig.sandbox.requests()
    assert sent["params"]["sortby"] == "2" and sent["campaign"] == CAMPAIGN
    assert result.unique_id and result.unique_id in result.steps[2].detail
    assert f"delivery {result.delivery_id} arrived" in result.steps[3].detail
    assert "127.0.0.1" in result.steps[3].detail
    assert "fields" in result.steps[4].detail and "rows stored" in result.steps[4].detail
    with rig.services.store.cursor() as cursor:
        kind, state = cursor.execute("SELECT kind, state FROM sync_requests").fetchone()
        watermark = cursor.execute("SELECT count(watermark) FROM sync_state").fetchone()[0]
    assert (kind, state) == ("check", "delivered")
    assert watermark == 0  # a check is not a refresh: the incremental sync's start stays


def test_a_wrong_api_key_fails_the_credentials_step_and_names_the_setting(rig):
    rig.engine(api_key="wrong-key-0123456789")
    result = rig.check()
    assert states(result) == ["ok", "failed", "skipped", "skipped", "skipped"]
    assert "api_key" in result.steps[1].fix.lower() or "API_KEY" in result.steps[1].fix


def test_an_unknown_campaign_names_the_campaign(rig):
    rig.engine()
    result = rig.check("No Such Campaign")
    failed = [step for step in result.steps if step.state == "failed"]
    assert failed and "campaign" in (failed[0].fix + failed[0].detail).lower()
    assert result.steps[3].state == "skipped"


def test_a_missing_callback_explains_the_public_url_with_the_secret_masked(rig):
    rig.sandbox.update_config({"fault": "no_callback", "fault_count": 0})
    rig.engine()
    result = rig.check()
    assert states(result) == ["ok", "ok", "ok", "failed", "skipped"]
    step = result.steps[3]
    assert "DIALSTATUS_PUBLIC_URL" in step.fix
    assert SECRET not in step.detail and "/api/callback/***" in step.detail
    assert f"within {CALLBACK_TIMEOUT_S} s" in step.detail


def test_reingest_route_needs_the_token_refuses_a_second_run_and_queues_callbacks(rig):
    headers = {"X-Dialstatus-Token": TOKEN}
    url = rig.server_url + "/api/reingest"
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, params={"since": "yesterday"}, headers=headers).status_code == 400
    callback = rig.server_url + CALLBACK_PREFIX + SECRET

    def post(lead: str, when: str) -> httpx.Response:
        record = {"LeadID": lead, "PhoneNumber": "9800000001", "CampaignName": CAMPAIGN,
                  "DialStatus": "answered", "UpdatedDate": when}  # fmt: skip
        return httpx.post(callback, json={"campaignName": CAMPAIGN, "data": [record]})

    first = post("L1", "2026-12-01 10:00:00")
    assert first.status_code == 200
    # While the test holds delivery 1's ingest, the replay waits on it and stays running.
    with FLIGHTS.flying(rig.services.store, first.json()["deliveryId"]):
        started = httpx.post(url, headers=headers, timeout=10)
        assert started.status_code == 202 and started.json()["deliveries"] == 1
        assert replaying(rig.services.store)
        again = httpx.post(url, headers=headers, timeout=10)
        assert again.status_code == 409 and "already running" in again.json()["message"]
        queued = post("L2", "2026-12-01 11:00:00")
        assert queued.status_code == 202 and queued.json()["status"] == "queued"
        with rig.services.store.cursor() as cursor:
            assert cursor.execute("SELECT count(*) FROM leads").fetchone()[0] == 0  # cleared
    assert wait_for_replay(rig.services.store, 30)
    deadline = time.monotonic() + 20
    while True:
        with rig.services.store.cursor() as cursor:
            stored = cursor.execute("SELECT lead_key FROM leads ORDER BY 1").fetchall()
        if stored == [("L1",), ("L2",)] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert stored == [("L1",), ("L2",)]
    health = httpx.get(rig.server_url + "/api/health", headers=headers).json()
    assert health["reingest"]["running"] is False and health["reingest"]["done"] == 1
    assert health["deliveries_with_warnings"] == 0


def test_health_counts_deliveries_with_values_that_could_not_be_read(rig):
    callback = rig.server_url + CALLBACK_PREFIX + SECRET
    records = [
        {"LeadID": "W1", "CampaignName": CAMPAIGN, "UpdatedDate": "not a date"},
        {"LeadID": "W2", "CampaignName": CAMPAIGN, "UpdatedDate": "2026-12-01 10:00:00"},
    ]
    assert httpx.post(callback, json={"data": records}).status_code == 200
    health = httpx.get(rig.server_url + "/api/health").json()
    assert (health["deliveries_with_warnings"], health["records_with_warnings"]) == (1, 1)
    assert json.dumps(health).count(SECRET) == 0
