"""The sync-trouble banner (issue 16): which campaigns it names and why, and that every page shows
it above its content with a link to the Sync page.

The sync state is written by the product's own writers: a refresh request answered by a real
delivery (ingest moves "data as of"), a delivery that could not be used (`record_failed_delivery`
sets the campaign's error). Expected reasons are written out here, not computed by the code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from lib.store import catalog
from lib.store.ingest import ingest_delivery
from lib.store.receive import register_raw
from lib.store.receive.raw import deliveries_dir_for
from lib.sync import record_failed_delivery
from lib.view import metrics
from lib.view.metrics.trouble import Trouble, duration_words, troubled_campaigns
from lib.view.pages import page
from lib.view.trouble_banner import LINK_LABEL, message
from tests.conftest import CAMPAIGNS, EMPTY_CAMPAIGN
from tests.support.apptest import open_app, texts

INTERVAL_S = 300  # the default DIALSTATUS_SYNC_INTERVAL (the tests' configuration sets none)
SECRET = "test-secret-0123456789"  # the tests' DIALSTATUS_CALLBACK_SECRET (tests/conftest.py)


def _body(store, data: bytes) -> int:
    folder = deliveries_dir_for(store)
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"incoming-{len(list(folder.iterdir()))}.part"
    part.write_bytes(data)
    return register_raw(store, folder, part, "application/json").id


def _ask(store, campaign: str, unique_id: str, sent_at: datetime) -> None:
    """A refresh request CloudAgent accepted, sent at `sent_at`."""
    with store.writing() as cursor:
        cursor.execute(
            "INSERT INTO sync_requests (campaign_name, kind, params, unique_id, state, sent_at, "
            "accepted_at) VALUES (?, 'full', '{}', ?, 'accepted', ?, ?)",
            [campaign, unique_id, sent_at, sent_at],
        )


def synced(store, campaign: str, sent_at: datetime, unique_id: str) -> None:
    """A refresh asked at `sent_at` and answered: its data is CloudAgent's state from then."""
    _ask(store, campaign, unique_id, sent_at)
    record = {
        "LeadID": f"{unique_id}-1",
        "PhoneNumber": "9800000001",
        "CampaignName": campaign,
        "Status": "Pending",
        "DialStatus": "answered",
        "CreatedDate": "2026-11-01 09:30:00",
        "UpdatedDate": "2026-11-02 10:00:00",
    }
    body = {"status": "success", "uniqueId": unique_id, "campaignName": campaign, "data": [record]}
    result = ingest_delivery(store, _body(store, json.dumps(body).encode()))
    assert result.request_id is not None and result.rows == 1


def failed(store, campaign: str, unique_id: str, reason: str) -> None:
    """A refresh accepted now whose delivery could not be used (as the callback route says)."""
    _ask(store, campaign, unique_id, datetime.now(UTC))
    record_failed_delivery(store, _body(store, b"{nope"), reason, unique_id=unique_id)


def stored_error(store, campaign: str) -> str | None:
    with store.cursor() as cursor:
        row = cursor.execute(
            "SELECT last_error FROM sync_state WHERE campaign_name = ?", [campaign]
        ).fetchone()
    return row[0] if row else None


# -- which campaigns, and why ----------------------------------------------------------------

LEAKY = (
    f"the file link https://files.example/dl?x=1 answered 500 for callback /api/callback/{SECRET}"
)


@pytest.fixture
def scenario(fresh_services):
    """Healthy, failed after a success, failed without one, stale, never synced, old by its
    last delivery only, and a disabled stale campaign; `now` a little after all of it."""
    store = fresh_services.store
    now = datetime.now(UTC)
    for name in (
        "Healthy", "Failed [after] *success*", "Ghost", "Stale_#1", "Never synced", "Walk-in",
        "Switched off",
    ):  # fmt: skip
        catalog.add_campaign(store, name, source="config")
    synced(store, "Healthy", now - timedelta(minutes=1), "u-healthy")
    synced(store, "Failed [after] *success*", now - timedelta(minutes=2), "u-ok")
    failed(store, "Failed [after] *success*", "u-broken", LEAKY)
    failed(store, "Ghost", "u-ghost", "not JSON: unexpected character")
    synced(store, "Stale_#1", now - timedelta(seconds=3 * INTERVAL_S), "u-stale")
    synced(store, "Switched off", now - timedelta(days=2), "u-off")
    assert catalog.remove_campaign(store, "Switched off") == "disabled"
    # Delivered without a request of ours (no last success): the Sync page's "data as of" is the
    # delivery's time, here made an hour old.
    body = {"campaignName": "Walk-in", "data": [{"LeadID": "W1", "PhoneNumber": "9800000009"}]}
    walk_in = ingest_delivery(store, _body(store, json.dumps(body).encode()))
    with store.writing() as cursor:
        cursor.execute(
            "UPDATE raw_deliveries SET ingested_at = ? WHERE id = ?",
            [now - timedelta(hours=1, minutes=5), walk_in.delivery_id],
        )
    return fresh_services, now + timedelta(seconds=1)


def test_exactly_the_failed_and_the_old_campaigns_are_named_with_their_reasons(scenario):
    services, now = scenario
    store = services.store
    assert SECRET in stored_error(store, "Failed [after] *success*")  # stored as the route said
    with store.cursor() as cursor:
        found = troubled_campaigns(cursor, now, INTERVAL_S, [SECRET])
        as_of = metrics.data_as_of(cursor, [t.campaign for t in found])
    by_name = {t.campaign: t for t in found}
    # Failures first, then old data; each group by name. Healthy, never synced and the disabled
    # campaign are not named.
    assert [t.campaign for t in found] == [
        "Failed [after] *success*",
        "Ghost",
        "Stale_#1",
        "Walk-in",
    ]
    assert [t.failed for t in found] == [True, True, False, False]
    broken = by_name["Failed [after] *success*"].reason
    assert broken.startswith("last sync failed: CloudAgent's delivery could not be used (the file")
    assert SECRET not in broken and "/api/callback/***" in broken
    assert by_name["Ghost"].reason == (
        "last sync failed: CloudAgent's delivery could not be used (not JSON: unexpected "
        "character); nothing from it was stored. The data shown is from the last successful "
        "sync; the next sync tries again."
    )
    assert by_name["Stale_#1"].reason == "data 15 min old (sync every 5 min)"
    assert by_name["Walk-in"].reason == "data 1 h 5 min old (sync every 5 min)"
    # "data as of" is the Sync page's own.
    sync_page = {
        r.campaign: None if pd.isna(r.data_as_of) else r.data_as_of for r in as_of.itertuples()
    }
    assert sync_page == {t.campaign: t.data_as_of for t in found}


def test_the_threshold_is_two_sync_intervals(scenario):
    services, now = scenario
    with services.store.cursor() as cursor:
        # 15 min old is fine with a sync every 8 min (16 min allowed), not with every 7 min.
        relaxed = troubled_campaigns(cursor, now, 480)
        strict = troubled_campaigns(cursor, now, 420)
        # A failure that is old too says both.
        quick = troubled_campaigns(cursor, now, 30, [SECRET])
    assert "Stale_#1" not in [t.campaign for t in relaxed]
    stale = next(t for t in strict if t.campaign == "Stale_#1")
    assert stale.reason == "data 15 min old (sync every 7 min)"
    both = next(t for t in quick if t.campaign == "Failed [after] *success*")
    assert both.failed and both.reason.endswith("(data 2 min old, sync every 30 s)")
    ghost = next(t for t in quick if t.campaign == "Ghost")  # never synced: no age to tell
    assert ghost.failed and ghost.data_as_of is None and "old" not in ghost.reason


def test_a_success_clears_the_failure(scenario):
    services, now = scenario
    synced(services.store, "Ghost", now - timedelta(seconds=30), "u-ghost-2")
    with services.store.cursor() as cursor:
        names = [t.campaign for t in troubled_campaigns(cursor, now, INTERVAL_S)]
    assert "Ghost" not in names and "Failed [after] *success*" in names


def test_durations_in_words():
    assert duration_words(45) == "45 s"
    assert duration_words(300) == "5 min"
    assert duration_words(2 * 3600 + 5 * 60) == "2 h 5 min"
    assert duration_words(3 * 3600) == "3 h"
    assert duration_words(3 * 86400 + 4 * 3600) == "3 days 4 h"


def test_the_message_names_three_then_counts_the_rest():
    troubles = [Trouble(f"C*{i}", i == 0, f"reason {i}", None) for i in range(5)]
    text = message(troubles)
    assert text.startswith("**Sync trouble in 5 campaigns.**")
    assert "C\\*0" in text and "C\\*2" in text and "C\\*3" not in text
    assert text.rstrip().endswith("- and 2 more")
    assert message(troubles[1:2]).startswith("**Old data.**")
    assert message(troubles[:1]).startswith("**The last sync failed.**")


# -- on every page -------------------------------------------------------------------------------


class IdleEngine:
    """Stands for the sync engine the server's lifespan starts (AppTest runs no lifespan)."""

    def status(self) -> dict:
        return {"running": True, "queue": [], "in_flight": [], "limiter": {}}

    def request_sync(self, campaign=None, trigger="ui") -> int:
        return 0


def _all_healthy(store) -> None:
    """Every seeded campaign synced a minute ago, the seed's failure (Empty Campaign) cleared."""
    with store.writing() as cursor:
        cursor.execute(
            "UPDATE sync_state SET last_success_at = ?, last_error = NULL",
            [datetime.now(UTC) - timedelta(minutes=1)],
        )


def _sync_links(at) -> list:
    return [
        link.proto
        for link in at.get("page_link")
        if link.proto.label == LINK_LABEL and link.proto.page == page("sync").path
    ]


@pytest.fixture
def running(seeded):
    from lib.services import get_services

    services = get_services()
    services.sync = IdleEngine()
    _all_healthy(services.store)
    return services


@pytest.mark.parametrize("path", [None, "agents"], ids=["overview", "agents"])
def test_every_page_names_a_failed_campaign_with_a_link_to_sync(running, path):
    hostile = CAMPAIGNS[3]  # "<script>alert(1)</script>": shown as text
    with running.store.writing() as cursor:
        cursor.execute(
            "UPDATE sync_state SET last_error = 'CloudAgent does not know this campaign.', "
            "last_error_at = now() WHERE campaign_name = ?",
            [hostile],
        )
        cursor.execute(
            "UPDATE sync_state SET last_success_at = now() - INTERVAL 2 HOUR "
            "WHERE campaign_name = ?",
            [CAMPAIGNS[1]],
        )
    at = open_app(path)
    shown = texts(at.error)
    assert "Sync trouble in 2 campaigns" in shown
    assert f"- **{hostile}**: last sync failed: CloudAgent does not know this campaign." in shown
    assert f"- **{CAMPAIGNS[1]}**: data 2 h old (sync every 5 min)" in shown
    assert len(_sync_links(at)) == 1
    # Above the page's own content: the banner comes before the page's header.
    shown_in_order = [type(element).__name__ for element in at.main]
    assert shown_in_order.index("Error") < shown_in_order.index("Header")


def test_old_data_alone_is_a_warning(running):
    with running.store.writing() as cursor:
        cursor.execute(
            "UPDATE sync_state SET last_success_at = now() - INTERVAL 11 MINUTE "
            "WHERE campaign_name = ?",
            [CAMPAIGNS[0]],
        )
    at = open_app()
    assert not at.error
    assert texts(at.warning).startswith("**Old data.**")
    assert f"- **{CAMPAIGNS[0]}**: data 11 min old (sync every 5 min)" in texts(at.warning)
    assert len(_sync_links(at)) == 1


def test_no_banner_when_every_campaign_is_healthy(running):
    for path in (None, "agents", "leads"):
        at = open_app(path)
        assert "last sync failed" not in texts(at.error) + texts(at.warning)
        assert " old (sync every" not in texts(at.warning)
        assert not _sync_links(at)


def test_the_sync_page_itself_shows_no_banner(running):
    # Its campaign table says it all; the page's own messages stay the first there.
    with running.store.writing() as cursor:
        cursor.execute(
            "UPDATE sync_state SET last_error = 'No callback within 600 s.' "
            "WHERE campaign_name = ?",
            [EMPTY_CAMPAIGN],
        )
    at = open_app("sync")
    assert "last sync failed" not in texts(at.error)
    assert not _sync_links(at)
    fresh = next(d.value for d in at.dataframe if "last_error" in d.value.columns)
    shown = fresh.set_index("campaign")["last_error"]
    assert shown[EMPTY_CAMPAIGN] == "No callback within 600 s."
    at.switch_page(page("overview").file).run()  # and the next page shows it again
    assert f"- **{EMPTY_CAMPAIGN}**: last sync failed: No callback within 600 s." in texts(at.error)
    assert len(_sync_links(at)) == 1


def test_without_a_sync_engine_in_this_process_there_is_no_banner(seeded):
    # The seed has a failed campaign (Empty Campaign): with no engine running here (sync switched
    # off, or no launcher) nothing is being synced, and the pages say nothing about it.
    at = open_app()
    assert "last sync failed" not in texts(at.error) + texts(at.warning)
    assert not _sync_links(at)
