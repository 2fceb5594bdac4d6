"""Retention on a real store: bodies go keep-days after ingest (rows stay, marked pruned), never
before ingest or while a retry may come; log rows go after 400 days; at start and daily."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lib.config import ConfigError, load_settings
from lib.store import Store
from lib.store.ingest import ingest_delivery
from lib.store.receive import DeliveryRejected, deliveries_dir_for, register_raw
from lib.store.retention import LOG_KEEP_DAYS, folder_size_bytes, prune

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=31)  # past the default 30 days' keeping of a body


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "r.duckdb")
    deliveries_dir_for(store).mkdir()
    yield store
    store.close()


def _receive(store: Store, body: dict) -> int:
    folder = deliveries_dir_for(store)
    part = folder / f"in-{time.monotonic_ns()}.part"
    part.write_text(json.dumps(body))
    return register_raw(store, folder, part, "application/json").id


def _ingested(store: Store, lead: str) -> int:
    record = {"LeadID": lead, "PhoneNumber": "9800000001", "CampaignName": "Keep"}
    delivery_id = _receive(store, {"uniqueId": lead, "campaignName": "Keep", "data": [record]})
    ingest_delivery(store, delivery_id)
    return delivery_id


def _failed(store: Store, attempts: int) -> int:
    delivery_id = _receive(store, {"status": "error", "message": f"bad {attempts}"})
    with pytest.raises(DeliveryRejected):
        ingest_delivery(store, delivery_id)
    store.cursor().execute(
        "UPDATE raw_deliveries SET attempts = ? WHERE id = ?", [attempts, delivery_id]
    )
    return delivery_id


def _body(store: Store, delivery_id: int) -> Path:
    return deliveries_dir_for(store) / f"{delivery_id}.body"


def _pruned(store: Store) -> dict[int, bool]:
    rows = store.cursor().execute("SELECT id, pruned_at IS NOT NULL FROM raw_deliveries").fetchall()
    return dict(rows)


def test_bodies_go_keep_days_after_ingest_and_their_rows_stay_marked(store):
    old = _ingested(store, "L1")
    size = _body(store, old).stat().st_size
    assert prune(store, 30, now=NOW).bodies == 0  # just ingested: kept
    assert _body(store, old).exists()

    result = prune(store, 30, now=LATER)
    assert (result.bodies, result.bytes_freed) == (1, size)
    assert not _body(store, old).exists()
    assert _pruned(store) == {old: True}
    state = store.cursor().execute("SELECT state FROM raw_deliveries").fetchone()[0]
    assert state == "ingested"  # the row and the leads stay
    assert store.cursor().execute("SELECT count(*) FROM leads").fetchone()[0] == 1

    assert prune(store, 30, now=LATER).bodies == 0  # idempotent
    assert prune(store, 60, now=LATER).bodies == 0


def test_bodies_not_ingested_or_still_retryable_are_never_pruned(store):
    waiting = _receive(store, {"uniqueId": "w", "data": [{"LeadID": "W1"}]})  # not ingested
    retryable = _failed(store, attempts=1)
    given_up = _failed(store, attempts=3)
    prune(store, 0, now=NOW + timedelta(days=365))
    assert _body(store, waiting).exists()
    assert _body(store, retryable).exists()
    assert not _body(store, given_up).exists()
    assert _pruned(store) == {waiting: False, retryable: False, given_up: True}


def test_a_body_already_gone_is_marked_and_a_file_elsewhere_is_kept(store, tmp_path):
    gone = _ingested(store, "G1")
    _body(store, gone).unlink()
    elsewhere = _ingested(store, "E1")
    outside = tmp_path / "outside.body"
    outside.write_text("not the deliveries folder's")
    store.cursor().execute(
        "UPDATE raw_deliveries SET path = ? WHERE id = ?", [str(outside), elsewhere]
    )
    result = prune(store, 30, now=LATER)
    assert (result.bodies, result.bytes_freed) == (2, 0)
    assert outside.exists()
    assert _pruned(store) == {gone: True, elsewhere: True}


def test_log_rows_go_after_400_days_unless_still_needed(store):
    old = NOW - timedelta(days=LOG_KEEP_DAYS + 1)
    recent = NOW - timedelta(days=LOG_KEEP_DAYS - 1)
    with store.writing() as cursor:
        for state, queued_at in [("delivered", old), ("accepted", old), ("error", recent)]:
            cursor.execute(
                "INSERT INTO sync_requests (campaign_name, kind, params, state, queued_at) "
                "VALUES ('Other', 'full', '{}', ?, ?)",
                [state, queued_at],
            )
        cursor.execute(
            "INSERT INTO api_calls (account, kind, noted_at, until_at) VALUES "
            "('a', 'send', ?, NULL), ('a', 'send', ?, NULL), ('a', 'wait', ?, ?)",
            [old, recent, old, NOW + timedelta(hours=1)],
        )
    delivery = _ingested(store, "O1")
    store.cursor().execute("UPDATE raw_deliveries SET received_at = ?, ingested_at = ?", [old, old])
    waiting = _receive(store, {"uniqueId": "w", "data": [{"LeadID": "W1"}]})
    store.cursor().execute("UPDATE raw_deliveries SET received_at = ? WHERE id = ?", [old, waiting])

    result = prune(store, 30, now=NOW)
    assert result.bodies == 1  # its row, over 400 days old and its body gone, goes too
    assert result.log_rows == {"sync_requests": 1, "api_calls": 1, "raw_deliveries": 1}
    cursor = store.cursor()
    assert sorted(r[0] for r in cursor.execute("SELECT state FROM sync_requests").fetchall()) == [
        "accepted",
        "error",
    ]
    assert cursor.execute("SELECT count(*) FROM api_calls").fetchone()[0] == 2
    assert [r[0] for r in cursor.execute("SELECT id FROM raw_deliveries").fetchall()] == [waiting]
    assert delivery != waiting


def test_the_process_prunes_at_start_in_the_background(tmp_path, monkeypatch):
    from lib.services import get_services, reset_services

    db = tmp_path / "start.duckdb"
    store = Store(db)
    deliveries_dir_for(store).mkdir()
    old = _ingested(store, "S1")
    past = NOW - timedelta(days=3)
    store.cursor().execute("UPDATE raw_deliveries SET ingested_at = ?", [past])
    store.close()
    for name, value in {
        "DIALSTATUS_DB": str(db),
        "DIALSTATUS_SECRETS_FILE": str(tmp_path / "none.toml"),
        "DIALSTATUS_KEEP_DELIVERIES_DAYS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CLOUDAGENT_API_KEY", raising=False)
    reset_services()
    try:
        services = get_services()
        deadline = time.monotonic() + 10
        while _body(services.store, old).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _body(services.store, old).exists()
        assert services.retention.last_run is not None
        assert folder_size_bytes(deliveries_dir_for(services.store)) == 0
    finally:
        reset_services()


def test_keep_days_and_floor_settings(tmp_path):
    base = {"DIALSTATUS_DB": str(tmp_path / "s.duckdb")}
    settings = load_settings(base, secrets_path=tmp_path / "none.toml")
    assert (settings.keep_deliveries_days, settings.min_free_mb) == (30, 1024)
    settings = load_settings(
        {**base, "DIALSTATUS_KEEP_DELIVERIES_DAYS": "7", "DIALSTATUS_MIN_FREE_MB": "50"},
        secrets_path=tmp_path / "none.toml",
    )
    assert (settings.keep_deliveries_days, settings.min_free_mb) == (7, 50)
    with pytest.raises(
        ConfigError, match="DIALSTATUS_KEEP_DELIVERIES_DAYS must be a number of days"
    ):
        load_settings({**base, "DIALSTATUS_KEEP_DELIVERIES_DAYS": "a month"}, tmp_path / "x")
