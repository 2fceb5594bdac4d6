"""Ingest's incremental `event_hours` and lead summary (lib/store/events.py, summary.py) equal to
their rebuild from every event and lead, after each kind of delivery: a first load (the direct
write), a first load of a second campaign, only new leads through the general write (whose hours
come from the summary rows), a mix of new, changed, stale and identical leads, and a re-ingest
of a delivery whose leads are still stored (a re-ingest since a time clears nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.store import Store
from lib.store.events import hours_select
from lib.store.ingest import reingest_delivery
from lib.store.summary import summary_is_current, summary_select
from tests.support.deliveries import deliver_json, lead_record

TZ = "Asia/Kolkata"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "paths.duckdb", timezone=TZ)
    yield store
    store.close()


def lead(campaign: str, key: str, updated: str, attempts: int, **fields) -> dict:
    phone = f"98{int(key) * 7919 % 10**8:08d}"
    return lead_record(campaign, key, updated, attempts, phone=phone, **fields)


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
    deliver_json(store, "A", first, "a-first")
    assert_as_rebuilt(store)
    second = [lead("B", str(i), "2026-11-30 10:05:00", 0) for i in range(1, 4)]
    deliver_json(store, "B", [*second, lead("B", "4", "", 0)], "b")  # the direct write
    assert_as_rebuilt(store)
    only_new = [lead("A", str(i), "2026-11-30 13:40:00", 1) for i in range(20, 23)]
    only_new.append(lead("A", "23", "", 0))
    deliver_json(store, "A", only_new, "a-new")  # the general write, every lead first seen
    assert_as_rebuilt(store)
    mixed = [
        lead("A", "1", "2026-11-30 14:00:00", 3, DialStatus="answered", Disposition="Sale"),
        lead("A", "2", "2026-11-30 08:00:00", 5),  # stale: older than the stored state
        first[2],  # identical
        lead("A", "9", "2026-11-30 15:30:00", 1),
        lead("A", "30", "2026-11-30 15:45:00", 0),
    ]
    deliver_json(store, "A", mixed, "a-mixed")
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


def test_reingest_over_its_own_stored_leads_counts_each_lead_once(store):
    """The summary adds the states a delivery writes, not every stored row carrying its id: its
    leads still stored as it left them are unchanged, written again by nobody."""
    first = deliver_json(store, "A", [lead("A", str(i), "2026-11-30 09:00:00", 1)
                                      for i in range(1, 6)], "a")  # fmt: skip
    deliver_json(store, "A", [lead("A", str(i), "2026-11-30 11:00:00", 2) for i in (1, 2)], "b")
    reingest_delivery(store, first)
    assert_as_rebuilt(store)
