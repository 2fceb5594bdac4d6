"""The lead history (lib/store/events.py) written by real ingests into a real DuckDB file: one
event per observed change with the states before and after, "first seen" rows that count no
dial, nothing for a stale, identical or duplicate delivery, the same table after a re-ingest,
`event_hours` equal to the events, and retention. Expected values are written out by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lib.store import Store
from lib.store.reingest import start_replay, wait_for_replay
from lib.store.retention import prune
from lib.store.summary import summary_ready
from tests.support.deliveries import deliver_json, lead_record

TZ = "Asia/Kolkata"
CAMPAIGN = "History"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "events.duckdb", timezone=TZ)
    yield store
    store.close()


def lead(key: str, updated: str, attempts: int, **fields) -> dict:
    phone = f"98{abs(hash(key)) % 10**8:08d}"
    return lead_record(CAMPAIGN, key, updated, attempts, phone=phone, **fields)


def deliver(store: Store, records: list[dict], unique_id: str) -> int:
    return deliver_json(store, CAMPAIGN, records, unique_id)


EVENT_VIEW = (
    "SELECT lead_key, strftime(updated_at AT TIME ZONE 'Asia/Kolkata', '%Y-%m-%d %H:%M'), "
    "first_seen, dials, attempts_before, attempts_after, dial_bucket_before, dial_bucket_after, "
    "lead_status_before, lead_status_after, disposition_before, disposition_after, agent, "
    "call_duration_s FROM lead_events ORDER BY lead_key, updated_at, delivery_id"
)


def events(store: Store) -> list[tuple]:
    return store.cursor().execute(EVENT_VIEW).fetchall()


FIRST = [
    lead("A", "2026-11-30 09:15:00", 0),
    lead("B", "2026-11-30 09:20:00", 1),
    lead("C", "2026-11-30 09:25:00", 2, Disposition="Call Back", AgentName="Asha"),
]
# The next sync: A dialled twice and answered, converted by Ravi; B unchanged (an identical
# copy); C's disposition edited with no new call; D a new lead.
SECOND = [
    lead(
        "A",
        "2026-11-30 11:40:00",
        2,
        DialStatus="answered",
        Disposition="Sale",
        AgentName="Ravi",
        CallDuration="00:02:05",
    ),
    FIRST[1],
    lead("C", "2026-11-30 12:05:00", 2, Disposition="Not Interested", AgentName="Asha"),
    lead("D", "2026-11-30 12:10:00", 0),
]
FIRST_SEEN = [
    ("A", "2026-11-30 09:15", True, 0, None, 0, None, "Not dialled", None, "Pending", None, None,
     None, None),
    ("B", "2026-11-30 09:20", True, 0, None, 1, None, "NoAnswer", None, "Pending", None, None,
     None, None),
    ("C", "2026-11-30 09:25", True, 0, None, 2, None, "NoAnswer", None, "Pending", None,
     "Call Back", "Asha", None),
]  # fmt: skip
CHANGES = [
    ("A", "2026-11-30 11:40", False, 2, 0, 2, "Not dialled", "answered", "Pending", "Pending",
     None, "Sale", "Ravi", 125),
    ("C", "2026-11-30 12:05", False, 0, 2, 2, "NoAnswer", "NoAnswer", "Pending", "Pending",
     "Call Back", "Not Interested", "Asha", None),
    ("D", "2026-11-30 12:10", True, 0, None, 0, None, "Not dialled", None, "Pending", None, None,
     None, None),
]  # fmt: skip


def test_a_first_load_writes_one_first_seen_row_per_lead_and_counts_no_dial(store):
    deliver(store, FIRST, "first")
    assert events(store) == FIRST_SEEN


def test_an_incremental_sync_writes_exactly_the_changes(store):
    deliver(store, FIRST, "first")
    deliver(store, SECOND, "second")
    assert events(store) == sorted(FIRST_SEEN + CHANGES)
    (dials,) = store.cursor().execute("SELECT sum(dials) FROM lead_events").fetchone()
    assert dials == 2  # A's two calls between the syncs, at the time of the last one


def test_a_duplicate_and_a_late_older_delivery_add_nothing(store):
    deliver(store, FIRST, "first")
    deliver(store, SECOND, "second")
    before = events(store)
    deliver(store, SECOND, "second")  # the identical body again
    deliver(store, [*SECOND[:1], SECOND[2]], "resent")  # the same states in another body
    older = [lead("A", "2026-11-30 10:00:00", 1, DialStatus="Busy")]  # older than stored
    deliver(store, older, "late")
    assert events(store) == before


def test_reingesting_every_kept_body_gives_the_same_events(store):
    deliver(store, FIRST, "first")
    deliver(store, SECOND, "second")
    deliver(store, SECOND, "again")
    before = store.cursor().execute(f"{EVENT_VIEW}").fetchall()
    start_replay(store)
    assert wait_for_replay(store, 60)
    assert store.cursor().execute(EVENT_VIEW).fetchall() == before


def hours(store: Store) -> list[tuple]:
    return (
        store.cursor()
        .execute(
            "SELECT strftime(updated_day, '%Y-%m-%d'), updated_hour, dials, answered, conversions, "
            "first_seen, changes FROM event_hours ORDER BY 1, 2"
        )
        .fetchall()
    )


def test_event_hours_count_dials_answers_and_conversions_by_local_hour(store):
    deliver(store, FIRST, "first")
    deliver(store, SECOND, "second")
    expected = [
        ("2026-11-30", 9, 0, 0, 0, 3, 3),
        ("2026-11-30", 11, 2, 1, 1, 0, 1),  # A: 2 dials, answered, a sale
        ("2026-11-30", 12, 0, 0, 0, 1, 2),  # C's edit (no dial) and D first seen
    ]
    assert hours(store) == expected
    cursor = store.cursor()
    with store.writing() as writer:  # as a category edit does: the next reader rebuilds
        store.bump_data_version(writer)
    assert summary_ready(cursor)
    assert hours(store) == expected


def test_retention_drops_old_days_of_history(store):
    deliver(store, FIRST, "first")
    deliver(store, SECOND, "second")
    now = datetime(2026, 12, 30, 12, tzinfo=UTC)
    kept = prune(store, 3650, keep_events_days=40, now=now)
    assert kept.events == 0 and len(events(store)) == 6
    pruned = prune(store, 3650, keep_events_days=20, now=now)
    assert pruned.events == 6 and events(store) == [] and hours(store) == []
