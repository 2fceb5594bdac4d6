"""Ingest's incremental `event_hours` and lead summary (lib/store/events.py, summary.py) equal to
their rebuild from every event and lead, after each kind of delivery: a first load (the direct
write), a first load of a second campaign, only new leads through the general write (whose hours
come from the summary rows), and a mix of new, changed, stale and identical leads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.store import Store
from lib.store.events import hours_select
from lib.store.ingest import ingest_delivery
from lib.store.receive import register_raw
from lib.store.summary import summary_is_current, summary_select

TZ = "Asia/Kolkata"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "paths.duckdb", timezone=TZ)
    yield store
    store.close()


def lead(campaign: str, key: str, updated: str, attempts: int, **fields) -> dict:
    record = {
        "LeadID": key,
        "PhoneNumber": f"98{int(key) * 7919 % 10**8:08d}",
        "CampaignName": campaign,
        "Status": "Pending",
        "DialStatus": "NotDialed" if attempts == 0 else "not_answered",
        "Disposition": "",
        "AgentName": "",
        "Attempts": attempts,
        "CallDuration": "",
        "CreatedDate": "2026-11-01 09:00:00",
        "UpdatedDate": updated,
    }
    return record | fields


def deliver(store: Store, campaign: str, records: list[dict], unique_id: str) -> int:
    folder = store.path.parent / (store.path.stem + ".deliveries")
    folder.mkdir(exist_ok=True)
    part = folder / f"{unique_id}.part"
    doc = {"status": "success", "uniqueId": unique_id, "campaignName": campaign, "data": records}
    part.write_bytes(json.dumps(doc).encode())
    raw = register_raw(store, folder, part, "application/json")
    ingest_delivery(store, raw.id)
    return raw.id


def assert_as_rebuilt(store: Store) -> None:
    cursor = store.cursor()
    try:
        assert summary_is_current(cursor)
        for table, select in (
            ("event_hours", hours_select("TRUE")),
            ("lead_summary", summary_select("leads")),
        ):
            stored = cursor.execute(f"SELECT * FROM {table}").fetchall()
            rebuilt = cursor.execute(select).fetchall()
            assert sorted(stored, key=repr) == sorted(rebuilt, key=repr), table
    finally:
        cursor.close()


def test_incremental_hours_and_summary_equal_their_rebuild(store):
    first = [lead("A", str(i), f"2026-11-30 {9 + i % 3:02d}:15:00", i % 2) for i in range(1, 9)]
    first.append(lead("A", "9", "", 0))  # no update time: an event, but in no hour
    deliver(store, "A", first, "a-first")
    assert_as_rebuilt(store)
    second = [lead("B", str(i), "2026-11-30 10:05:00", 0) for i in range(1, 4)]
    deliver(store, "B", [*second, lead("B", "4", "", 0)], "b")  # the direct write
    assert_as_rebuilt(store)
    only_new = [lead("A", str(i), "2026-11-30 13:40:00", 1) for i in range(20, 23)]
    only_new.append(lead("A", "23", "", 0))
    deliver(store, "A", only_new, "a-new")  # the general write, every lead first seen
    assert_as_rebuilt(store)
    mixed = [
        lead("A", "1", "2026-11-30 14:00:00", 3, DialStatus="answered", Disposition="Sale"),
        lead("A", "2", "2026-11-30 08:00:00", 5),  # stale: older than the stored state
        first[2],  # identical
        lead("A", "9", "2026-11-30 15:30:00", 1),
        lead("A", "30", "2026-11-30 15:45:00", 0),
    ]
    deliver(store, "A", mixed, "a-mixed")
    assert_as_rebuilt(store)
    cursor = store.cursor()
    try:
        kinds = cursor.execute(
            "SELECT delivery_id, first_seen, count(*) FROM lead_events GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    finally:
        cursor.close()
    assert [(fs, n) for _, fs, n in kinds] == [(True, 9), (True, 4), (True, 4), (False, 2),
                                                (True, 1)]  # fmt: skip
