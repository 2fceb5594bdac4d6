"""The pages' lead summary (`lead_summary`, lib/store/summary.py) always equals what every stored
lead gives: kept by ingest's deltas, rebuilt on read after other writes, and bypassed (same
numbers) while a writer holds the lock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from lib.store import Store, summary
from lib.store.ingest import ingest_delivery
from lib.store.receive import register_raw
from lib.view import metrics
from lib.view.filters import Filters
from tests.conftest import writer_lock_held

TZ = "Asia/Kolkata"
TODAY = date(2026, 11, 20)
STATUSES = ("Success", "Fail", "Pending", "")
DIALS = ("answered", "not_answered", "Busy", "NotDialed", "", "user_disconnected")
DISPOSITIONS = ("Sale Closed", "", "Call Back", "Not Interested")


def records(campaign: str, ids: range, version: int) -> list[dict]:
    out = []
    for i in ids:
        k = i + version
        out.append(
            {
                "LeadID": f"{campaign[:1]}{i}",
                "PhoneNumber": f"98{i:08d}",
                "CampaignName": campaign,
                "Status": STATUSES[k % len(STATUSES)],
                "DialStatus": DIALS[k % len(DIALS)],
                "Disposition": DISPOSITIONS[k % len(DISPOSITIONS)],
                "Attempts": k % 3,
                "CreatedDate": f"2026-11-{1 + i % 9:02d} 0{i % 10}:15:00",
                # version 2 is newer for even leads and older (stale, ignored) for odd ones
                "UpdatedDate": f"2026-11-{10 + version * (1 if i % 2 == 0 else -1) + i % 5:02d} "
                f"{(i * 7) % 24:02d}:4{i % 10}:00",
            }
        )
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "s.duckdb", timezone=TZ)
    yield store
    store.close()


def deliver(store: Store, body: list[dict], unique_id: str, campaign: str | None = None):
    folder = store.path.parent / (store.path.stem + ".deliveries")
    folder.mkdir(exist_ok=True)
    part = folder / f"{unique_id}.part"
    doc = {"status": "success", "uniqueId": unique_id, "data": body}
    if campaign:
        doc["campaignName"] = campaign
    part.write_text(json.dumps(doc))
    raw = register_raw(store, folder, part, "application/json")
    return ingest_delivery(store, raw.id)


def from_scratch(cursor) -> list[tuple]:
    sql = f"SELECT * FROM ({summary.summary_select('leads')}) ORDER BY ALL"
    return cursor.execute(sql).fetchall()


def stored(cursor) -> list[tuple]:
    """The summary; its coarse companion is checked on the way: the same counts regrouped
    straight from the leads without attempts, agent and talk band."""
    coarse = [c for c in summary.SUMMARY_COLUMNS[:-1] if c not in summary.DETAIL_COLUMNS]
    keys = ", ".join(coarse)
    expected = cursor.execute(
        f"SELECT {keys}, sum(leads) FROM ({summary.summary_select('leads')}) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    counts = cursor.execute(f"SELECT {keys}, leads FROM lead_counts ORDER BY ALL").fetchall()
    assert counts == expected
    return cursor.execute(
        f"SELECT {', '.join(summary.SUMMARY_COLUMNS)} FROM lead_summary ORDER BY ALL"
    ).fetchall()


def every_page_aggregate(cursor) -> dict:
    out = {}
    for filters in (
        Filters(),
        Filters(campaigns=("Alpha",)),
        Filters(range="custom", date_from=date(2026, 11, 11), date_to=date(2026, 11, 13)),
        Filters(range="last_7d", basis="created", statuses=("Fail", "Pending")),
    ):
        out[filters] = (
            metrics.kpi_counts(cursor, filters, TZ, TODAY),
            metrics.campaign_kpis(cursor, filters, TZ, TODAY).to_dict("list"),
            metrics.dial_buckets_by_campaign(cursor, filters, TZ, TODAY).to_dict("list"),
            metrics.dispositions_by_campaign(cursor, filters, TZ, TODAY).to_dict("list"),
            metrics.disposition_pareto(cursor, filters, TZ, TODAY).to_dict("list"),
            metrics.status_bucket_matrix(cursor, filters, TZ, TODAY).to_dict("list"),
            metrics.sunburst_paths(cursor, filters, TZ, TODAY).to_dict("list"),
            metrics.daily_trend(cursor, filters, TZ, TODAY).fillna(-1).to_dict("list"),
            metrics.hour_weekday(cursor, filters, TZ, TODAY).to_dict("list"),
        )
    return out


def test_ingest_keeps_the_summary_equal_to_a_rebuild(store):
    cursor = store.cursor()
    deliver(store, records("Alpha", range(0, 400), 0), "a-full", "Alpha")  # direct first load
    assert summary.summary_is_current(cursor)
    assert stored(cursor) == from_scratch(cursor)
    deliver(store, records("Beta", range(0, 150), 1), "b-full", "Beta")
    # Updates (newer for even leads, stale for odd ones), new leads, a lead twice in one body.
    again = records("Alpha", range(200, 600), 2) + records("Alpha", range(590, 592), 3)
    deliver(store, again, "a-inc")
    deliver(store, [], "empty", "Alpha")
    assert summary.summary_is_current(cursor)
    assert stored(cursor) == from_scratch(cursor)
    assert sum(row[-1] for row in stored(cursor)) == metrics.total_leads(cursor) == 750


def redialled(campaign: str, ids: range) -> list[dict]:
    """Every lead of `ids` called again on 19 Nov (newer than any stored state)."""
    out = records(campaign, ids, 1)
    for i, record in zip(ids, out, strict=True):
        record["UpdatedDate"] = f"2026-11-19 {i % 24:02d}:0{i % 10}:00"
        record["Attempts"] = 3 + i % 2
    return out


@pytest.mark.parametrize(
    ("changed", "label"),
    [(range(0, 400), "all of Alpha"), (range(0, 210), "just over half"), (range(0, 40), "a tenth")],
)
def test_a_redialled_list_keeps_the_summary_equal_to_a_rebuild(store, changed, label):
    """At least half of a campaign's stored leads replaced: the summary recounts the campaign
    (begin_summary_delta); fewer: it subtracts and adds. Both equal a rebuild, and the campaign
    the delivery does not touch keeps its counts."""
    cursor = store.cursor()
    deliver(store, records("Alpha", range(0, 400), 0), "a-full", "Alpha")
    deliver(store, records("Beta", range(0, 150), 1), "b-full", "Beta")
    beta = [row for row in stored(cursor) if row[0] == "Beta"]
    # The redialled leads, two new leads of Alpha and one lead of Alpha twice.
    body = redialled("Alpha", changed) + records("Alpha", range(400, 402), 0)
    body += redialled("Alpha", range(5, 6))
    result = deliver(store, body, f"a-redial-{len(changed)}")
    assert result.rows == len(changed) + 2, label  # and the two new; lead 5 twice counts once
    redialled_leads = "SELECT count(*) FROM leads WHERE updated_at >= TIMESTAMPTZ '2026-11-19'"
    assert cursor.execute(redialled_leads).fetchone()[0] == len(changed)
    assert summary.summary_is_current(cursor)
    assert stored(cursor) == from_scratch(cursor)
    assert [row for row in stored(cursor) if row[0] == "Beta"] == beta
    assert sum(row[-1] for row in stored(cursor)) == metrics.total_leads(cursor) == 552


def test_other_writes_are_rebuilt_on_read_and_bypassed_while_a_writer_is_busy(store):
    cursor = store.cursor()
    deliver(store, records("Alpha", range(0, 300), 0), "a-full", "Alpha")
    with store.writing() as writer:  # a write that does not maintain the summary
        writer.execute("UPDATE leads SET dial_bucket = 'answered' WHERE lead_id LIKE 'A1%'")
        store.bump_data_version(writer)
    assert not summary.summary_is_current(cursor)

    with writer_lock_held(store):
        assert not summary.summary_ready(cursor)  # an ingest is running: read the leads
        bypassed = every_page_aggregate(cursor)
    assert not summary.summary_is_current(cursor)
    rebuilt = every_page_aggregate(cursor)  # the first query rebuilds it
    assert summary.summary_is_current(cursor)
    assert stored(cursor) == from_scratch(cursor)
    assert rebuilt == bypassed
    answered = cursor.execute("SELECT count(*) FROM leads WHERE dial_bucket = 'answered'")
    assert rebuilt[Filters()][0]["answered"] == answered.fetchone()[0]


def test_a_stale_summary_is_rebuilt_by_the_next_ingest(store):
    cursor = store.cursor()
    deliver(store, records("Alpha", range(0, 100), 0), "a-full", "Alpha")
    with store.writing() as writer:
        writer.execute("DELETE FROM leads WHERE lead_id = 'A7'")
        store.bump_data_version(writer)
    deliver(store, records("Alpha", range(50, 120), 2), "a-inc")
    assert summary.summary_is_current(cursor)
    assert stored(cursor) == from_scratch(cursor)
