"""A page left open shows new deliveries by itself: the header's live check (every 15 s) reruns
the page when the data version moves past the one it shows."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.browser import helpers
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

CAMPAIGN = "Live Refresh"


def _deliver(server: ServerProcess, first: int, count: int) -> None:
    records = [
        {"LeadID": f"L{i}", "PhoneNumber": f"98765{i:05d}", "CampaignName": CAMPAIGN,
         "Status": "Pending", "DialStatus": "answered", "Attempts": 1,
         "CreatedDate": "2026-11-30 10:00:00", "UpdatedDate": "2026-11-30 11:00:00"}
        for i in range(first, first + count)
    ]  # fmt: skip
    body = {"status": "success", "uniqueId": f"live-{first}", "campaignName": CAMPAIGN}
    response = httpx.post(server.callback_url, content=json.dumps({**body, "data": records}),
                          headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text


def test_an_open_page_shows_new_deliveries_without_a_reload(page, tmp_path):
    env = {"DIALSTATUS_SYNC_ENABLED": "false", "DIALSTATUS_CAMPAIGNS": CAMPAIGN}
    with ServerProcess(tmp_path / "srv", env=env) as server:
        _deliver(server, 0, 5)
        helpers.open_page(page, server.base_url + "/", heading="Overview", metrics=8)
        assert helpers.kpis(page)["Leads"] == "5"
        _deliver(server, 5, 3)
        helpers.eventually(
            page, lambda: helpers.kpis(page).get("Leads") == "8", "Leads 8 without a reload",
            timeout=45_000,
        )  # fmt: skip
