"""A shared deep link as the very first page request a freshly started server sees.

This is what broke with a `pages/` folder (stack-notes): on a fresh server the first session's
deep link ran the page file alone, without the entry script's filters. Here the server gets its
own empty database; only /api/health is polled (by ServerProcess and to wait for the demo
load, which is not a page run) before the browser opens the link.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest

from tests.browser import helpers
from tests.browser.conftest import ALL_CAMPAIGNS_LOADED_TIMEOUT, STILL_DATA_ENV, settled
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

CAMPAIGN = "Renewals_Q4"


def test_deep_link_is_the_first_request_of_a_fresh_server(new_context, tmp_path):
    with ServerProcess(tmp_path / "fresh", env=STILL_DATA_ENV) as server:
        rows = server.wait_for(settled, timeout=ALL_CAMPAIGNS_LOADED_TIMEOUT)["campaigns"]
        link = (
            f"{server.base_url}/campaign?campaign={quote(CAMPAIGN)}"
            "&range=last_30d&dialstatus=answered"
        )
        context = new_context()
        watch = helpers.Watch(server.base_url).attach(context)
        page = context.new_page()
        helpers.open_page(page, link, heading="Campaign", charts=2, metrics=8)

        assert watch.requests[0] == link  # nothing opened a page before the link
        # The page names the app's base URL: no probe of /campaign/_stcore/health first.
        assert [url for url in watch.requests if "/campaign/_stcore/" in url] == []
        assert helpers.exceptions(page) == []
        assert page.get_by_test_id("stHeading").filter(has_text=CAMPAIGN).count() == 1
        assert helpers.tags(page, "Campaign") == [CAMPAIGN]
        assert helpers.tags(page, "Dial status") == ["Answered"]  # the link says answered
        assert helpers.selected(page, "Date range") == "Last 30 days (incl. today)"
        assert urlsplit(page.url).path == "/campaign"
        assert helpers.query(page.url) == {
            "campaign": [CAMPAIGN],
            "range": ["last_30d"],
            "dialstatus": ["answered"],
        }

        # The filters are applied, not just shown: only answered leads of the last 30 days.
        tiles = helpers.kpis(page)
        assert tiles["Leads"] == tiles["Answered"] == tiles["Attempted"]
        assert tiles["Answer rate"] == "100.0%"
        campaign_rows = next(c["rows"] for c in rows if c["name"] == CAMPAIGN)
        assert 0 < helpers.number(tiles["Leads"]) < campaign_rows
        assert [(t["group"], t["name"]) for t in helpers.figure(page, "campaign_dial_chart")] == [
            ("answered", "Answered")
        ]

        assert watch.problems() == []
        assert "Traceback" not in server.log_text()
