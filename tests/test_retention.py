"""Retention on a real store: bodies go keep-days after ingest (rows stay, marked pruned), never
before ingest or while a retry may come; log rows go after 400 days; at start and daily."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest

from lib.config import ConfigError, load_settings
from lib.server import write_body
from lib.store import Store
from lib.store.ingest import ingest_delivery
from lib.store.receive import DeliveryRejected, deliveries_dir_for, register_raw
from lib.store.retention import LOG_KEEP_DAYS, disk_space, folder_size_bytes, prune
from tests.support.server import ServerProcess

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=31)  # past the default 30 days' keeping of a body
JSON = {"Content-Type": "application/json"}


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


def _failed(store: Store) -> int:
    """A delivery that cannot be read: 'failed', which no retry mends."""
    delivery_id = _receive(store, {"status": "error", "message": "refused"})
    with pytest.raises(DeliveryRejected):
        ingest_delivery(store, delivery_id)
    return delivery_id


def _retry_due(store: Store) -> int:
    """A delivery whose first attempt failed for a transient reason: 'received', to be retried."""
    delivery_id = _receive(store, {"uniqueId": "t", "data": [{"LeadID": "T1"}]})
    store.cursor().execute(
        "UPDATE raw_deliveries SET attempts = 1, error = 'the file host timed out' WHERE id = ?",
        [delivery_id],
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
    retryable = _retry_due(store)
    failed = _failed(store)
    prune(store, 0, now=NOW + timedelta(days=365))
    assert _body(store, waiting).exists()
    assert _body(store, retryable).exists()
    assert not _body(store, failed).exists()
    assert _pruned(store) == {waiting: False, retryable: False, failed: True}


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
        # last_run is set when the prune returns, after it deleted the body: wait for that.
        deadline = time.monotonic() + 10
        while services.retention.last_run is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert services.retention.last_run is not None
        assert not _body(services.store, old).exists()
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


# -- the disk floor ------------------------------------------------------------------------

BODY = json.dumps({"uniqueId": "d1", "campaignName": "Disk", "data": [{"LeadID": "D1"}]})


def _rows_and_files(data_dir: Path) -> tuple[int, list[str]]:
    """After the server stopped: raw_deliveries rows, and the files of the deliveries folder."""
    store = Store(data_dir / "dialstatus.duckdb")
    try:
        rows = store.cursor().execute("SELECT count(*) FROM raw_deliveries").fetchone()[0]
        folder = deliveries_dir_for(store)
        return rows, sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    finally:
        store.close()


def test_below_the_floor_the_callback_answers_503_and_writes_nothing(tmp_path):
    floor_mb = disk_space(tmp_path, 0).free_bytes // 1024**2 + 1024  # more than this disk has
    env = {"DIALSTATUS_MIN_FREE_MB": str(floor_mb), "DIALSTATUS_SYNC_ENABLED": "false"}
    with ServerProcess(tmp_path / "srv", env=env) as server:
        answer = httpx.post(server.callback_url, content=BODY, headers=JSON, timeout=30)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "300"
    assert "disk is full" in answer.json()["message"]
    assert _rows_and_files(tmp_path / "srv") == (0, [])


def test_the_sync_page_says_why_deliveries_are_refused(fresh_services, monkeypatch):
    from lib.services import reset_services
    from tests.support.apptest import texts
    from tests.test_pages import app

    at = app("sync")
    assert "Deliveries are refused" not in texts(at.error)
    assert "Bodies kept" in [m.label for m in at.metric]
    monkeypatch.setenv("DIALSTATUS_MIN_FREE_MB", str(10**12))
    reset_services()
    at = app("sync")
    folder = fresh_services.settings.deliveries_dir
    refusal = texts(at.error)
    assert "Deliveries are refused: only " in refusal
    assert f"free on the disk holding {folder}; the floor is DIALSTATUS_MIN_FREE_MB=" in refusal


def test_a_full_disk_while_writing_the_body_is_a_503(tmp_path):
    async def chunks():
        yield b"x" * 100_000

    full = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC
    # A loop of its own, in its own thread: an earlier test (the browsers') may leave one
    # running in this thread.
    with ThreadPoolExecutor(1) as pool, pytest.raises(DeliveryRejected) as refused:
        pool.submit(anyio.run, write_body, chunks(), full, 10**6).result()
    assert refused.value.status_code == 503
