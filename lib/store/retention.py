"""Retention and the disk floor: what is deleted when, and how much disk is left.

- A raw delivery body (`<id>.body` in the deliveries folder) is kept for
  DIALSTATUS_KEEP_DELIVERIES_DAYS after its ingest, then deleted; its `raw_deliveries` row stays,
  with `pruned_at` set. A body still to be ingested, or one whose ingest may still be retried, is
  never deleted.
- Log rows (`sync_requests`, `api_calls`, and `raw_deliveries` rows whose body is gone) are kept
  for LOG_KEEP_DAYS, then deleted. Leads and the summary are data, not logs: never touched here.
- The lead history (lib/store/events.py) keeps DIALSTATUS_KEEP_EVENTS_DAYS (default 400) of
  local days; older events and their hourly counts are deleted.
- Below DIALSTATUS_MIN_FREE_MB of free disk where the deliveries folder is, the callback refuses
  deliveries (`disk_floor`), so a full disk is a 503 CloudAgent retries, not a lost body.

`prune` runs once at start and then daily (`RetentionSchedule`); it is idempotent and does not
mind a body file that is already gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lib.store.events import KEEP_EVENTS_DAYS, prune_events
from lib.store.receive.raw import deliveries_dir_for
from lib.store.summary import stamp_summary, summary_is_current

logger = logging.getLogger(__name__)

LOG_KEEP_DAYS = 400
RETENTION_INTERVAL_S = 24 * 3600.0
_BATCH = 500

# Bodies whose keeping time is over: ingested ones counted from the ingest, failed ones (a
# failure that retrying cannot mend, or a delivery given up) from their receipt. A 'received'
# body is still to be ingested or retried, and a 'duplicate' keeps none: neither ever matches.
_PRUNABLE_BODIES = """
    SELECT id, path FROM raw_deliveries
    WHERE pruned_at IS NULL AND (
        (state = 'ingested' AND coalesce(ingested_at, received_at) < $cutoff)
        OR (state = 'failed' AND received_at < $cutoff)
    )
    ORDER BY id LIMIT $batch
"""

# Per log table: the rows past the log's keeping time that nothing still needs.
LOG_TABLES: dict[str, tuple[str, str]] = {
    # table: (its time column, the rows that may go once that time is old enough)
    "sync_requests": ("queued_at", "state NOT IN ('queued', 'sent', 'accepted')"),
    "api_calls": ("noted_at", "coalesce(until_at, noted_at) < $cutoff"),
    "raw_deliveries": ("received_at", "(pruned_at IS NOT NULL OR state = 'duplicate')"),
}


@dataclass(frozen=True)
class Pruned:
    bodies: int = 0  # raw deliveries whose body was deleted (rows marked pruned)
    bytes_freed: int = 0
    log_rows: dict[str, int] = field(default_factory=dict)  # per table, rows deleted
    events: int = 0  # lead history rows deleted


def prune(
    store,
    keep_deliveries_days: float,
    *,
    keep_log_days: float = LOG_KEEP_DAYS,
    keep_events_days: float = KEEP_EVENTS_DAYS,
    now: datetime | None = None,
) -> Pruned:
    """Deletes the bodies and log rows past their keeping time (see the module's rules)."""
    now = now or datetime.now(UTC)
    folder = deliveries_dir_for(store).resolve()
    bodies, freed = _prune_bodies(store, folder, now - timedelta(days=keep_deliveries_days), now)
    log_cutoff = now - timedelta(days=keep_log_days)
    deleted = {}
    with store.writing() as cursor:
        for table, (time_column, condition) in LOG_TABLES.items():
            deleted[table] = cursor.execute(
                f"DELETE FROM {table} WHERE {time_column} < $cutoff AND {condition}",
                {"cutoff": log_cutoff},
            ).fetchone()[0]
        events = _prune_history(store, cursor, keep_events_days, now)
    result = Pruned(bodies=bodies, bytes_freed=freed, log_rows=deleted, events=events)
    if bodies or events or any(deleted.values()):
        logger.info("retention: %s", result)
    return result


def _prune_history(store, cursor, keep_days: float, now: datetime) -> int:
    """Old events go in one transaction with a data version bump (the pages' caches move on;
    the summary, current before, stays current)."""
    cursor.execute("BEGIN")
    try:
        current = summary_is_current(cursor)
        removed = prune_events(cursor, keep_days, now)
        if removed:
            store.bump_data_version(cursor)
            if current:
                stamp_summary(cursor)
        cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            cursor.execute("ROLLBACK")
        raise
    return removed


def _prune_bodies(store, folder: Path, cutoff: datetime, now: datetime) -> tuple[int, int]:
    """Under the writer lock, so no ingest or retry changes a row between its check and its
    pruning. A file outside the deliveries folder is never deleted (its row is still marked)."""
    bodies = freed = 0
    while True:
        with store.writing() as cursor:
            rows = cursor.execute(
                _PRUNABLE_BODIES,
                {"cutoff": cutoff, "batch": _BATCH},
            ).fetchall()
            if not rows:
                return bodies, freed
            for _, path in rows:
                freed += _delete_body(Path(path), folder)
            cursor.execute(
                "UPDATE raw_deliveries SET pruned_at = $now WHERE list_contains($ids, id)",
                {"now": now, "ids": [delivery_id for delivery_id, _ in rows]},
            )
            bodies += len(rows)


def _delete_body(path: Path, folder: Path) -> int:
    """Deletes one body file inside `folder`; the bytes freed (0 if it was already gone)."""
    if path.resolve().parent != folder:
        return 0
    with contextlib.suppress(FileNotFoundError):
        size = path.stat().st_size
        path.unlink()
        return size
    return 0


class RetentionSchedule:
    """`prune` in a background thread: once at start, then every `interval_s`. A failure is
    logged and the next run tries again; nothing here ever stops the server."""

    def __init__(
        self,
        store,
        keep_deliveries_days: float,
        keep_events_days: float = KEEP_EVENTS_DAYS,
        interval_s: float = RETENTION_INTERVAL_S,
    ) -> None:
        self._store = store
        self._keep_days = keep_deliveries_days
        self._keep_events_days = keep_events_days
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dialstatus-retention", daemon=True)
        self.last_run: Pruned | None = None

    def start(self) -> RetentionSchedule:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.last_run = prune(
                    self._store, self._keep_days, keep_events_days=self._keep_events_days
                )
            except Exception:
                logger.exception("retention could not prune; it tries again at its next run")
            self._stopping.wait(self._interval_s)


# -- the disk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskSpace:
    free_bytes: int
    floor_bytes: int

    @property
    def below_floor(self) -> bool:
        return self.free_bytes < self.floor_bytes

    @property
    def free_mb(self) -> int:
        return self.free_bytes // (1024 * 1024)


def disk_space(folder: Path | str, min_free_mb: float) -> DiskSpace:
    """Free disk (for this user) where `folder` is, or would be once created."""
    probe = Path(folder).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return DiskSpace(shutil.disk_usage(probe).free, int(min_free_mb * 1024 * 1024))


def folder_size_bytes(folder: Path | str) -> int:
    """The disk space the files of `folder` take (allocated blocks; 0 if it does not exist)."""
    total = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total
