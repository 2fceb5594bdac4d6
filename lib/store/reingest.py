"""Re-ingest: every kept raw delivery parsed again, in the order received, with the current field
mapping, so a mapping fixed today also fixes the past.

- One replay per database at a time (`ReplayRunning`, the route's 409), in a background thread;
  pages keep serving from the leads meanwhile.
- Without `since`, the leads of the campaign (or all) are cleared first and rebuilt from every
  kept body: the result is what a fresh database would hold had the mapping been right from
  the start. With `since`, only the deliveries received since then are parsed again, on top of
  what is stored (latest update wins), and nothing is cleared.
- Callbacks arriving meanwhile are kept ('received') but not ingested (`replaying` tells the
  callback route); the replay ingests them after its own deliveries, in the order received.
- A body deleted by retention is counted as skipped; a body that still cannot be read is
  counted as failed (its row says why); neither stops the replay.
- The run is a `reingest_runs` row, moved after each delivery: a replay a restart interrupted
  resumes after the last delivery it finished (`resume_interrupted`), never leaving leads cleared.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lib.store import ingest
from lib.store.receive import DeliveryRejected

logger = logging.getLogger(__name__)


class ReplayRunning(RuntimeError):
    """A re-ingest is already running on this database."""


@dataclass(frozen=True)
class ReplayProgress:
    run_id: int
    campaign: str | None
    since: datetime | None
    requested_by: str | None
    started_at: datetime
    finished_at: datetime | None
    total: int
    done: int
    skipped: int
    failed: int
    error: str | None

    @property
    def running(self) -> bool:
        return self.finished_at is None


_RUN_COLUMNS = (
    "id, campaign_name, since, requested_by, started_at, finished_at, total, done, skipped, "
    "failed, error"
)

# The databases with a replay running in this process (their resolved paths).
_RUNNING: set[str] = set()
_GUARD = threading.Lock()


def parse_since(text: str | None, zone) -> datetime | None:
    """`since` as given to the route: an ISO date or date and time; without a zone it is the
    account's local time. ValueError in plain words for anything else."""
    if text is None or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            "since must be an ISO date or date and time, e.g. 2026-12-01 or 2026-12-01T18:00"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def _key(store) -> str:
    return str(Path(store.path).resolve())


def replaying(store) -> bool:
    """True while a replay runs: a new callback is kept and ingested after it."""
    with _GUARD:
        return _key(store) in _RUNNING


def latest_run(store) -> ReplayProgress | None:
    """The newest replay, running or finished (what the Sync page shows)."""
    with store.cursor() as cursor:
        row = cursor.execute(
            f"SELECT {_RUN_COLUMNS} FROM reingest_runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return ReplayProgress(*row) if row else None


def start_replay(
    store,
    *,
    campaign: str | None = None,
    since: datetime | None = None,
    requested_by: str | None = None,
    **ingest_options,
) -> ReplayProgress:
    """Starts a replay in the background and returns its first progress; ReplayRunning when one
    runs already. `ingest_options` are those of `ingest_delivery` (file hosts, size limit)."""
    key = _key(store)
    with _GUARD:
        if key in _RUNNING:
            raise ReplayRunning("a re-ingest is already running; wait for it to finish")
        _RUNNING.add(key)
    try:
        with store.writing() as cursor:
            run_id = cursor.execute(
                "INSERT INTO reingest_runs (campaign_name, since, requested_by, total) "
                f"VALUES (?, ?, ?, ({_COUNT_SQL})) RETURNING id",
                [campaign, since, requested_by, *_selection_params(campaign, since, 0)],
            ).fetchone()[0]
    except BaseException:
        with _GUARD:
            _RUNNING.discard(key)
        raise
    _launch(store, run_id, ingest_options)
    return _progress(store, run_id)


def resume_interrupted(store, **ingest_options) -> ReplayProgress | None:
    """At start: a replay the previous process left unfinished goes on after its last delivery
    (its leads were cleared: they must be rebuilt). None when there is none."""
    with store.cursor() as cursor:
        row = cursor.execute(
            "SELECT id FROM reingest_runs WHERE finished_at IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    key = _key(store)
    with _GUARD:
        if key in _RUNNING:
            return _progress(store, row[0])
        _RUNNING.add(key)
    logger.warning("resuming re-ingest %s, interrupted by a restart", row[0])
    _launch(store, row[0], ingest_options)
    return _progress(store, row[0])


def wait_for_replay(store, timeout_s: float) -> bool:
    """True once no replay runs on this database (tests, shutdown)."""
    deadline = time.monotonic() + timeout_s
    while replaying(store):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


# -- the replay ------------------------------------------------------------------------------

# What is replayed: kept deliveries (a duplicate's body is its original's), those that failed
# included; a campaign's own deliveries and those whose campaign was never read (a body that
# failed to parse may turn out to be the campaign's once the mapping is right).
_SELECTION = (
    "FROM raw_deliveries WHERE state IN ('ingested', 'failed') AND id > ? "
    "AND (?::VARCHAR IS NULL OR campaign_name = ? OR campaign_name IS NULL) "
    "AND (?::TIMESTAMPTZ IS NULL OR received_at >= ?)"
)
_COUNT_SQL = f"SELECT count(*) {_SELECTION}"


def _selection_params(campaign, since, after: int) -> list:
    return [after, campaign, campaign, since, since]


def _launch(store, run_id: int, ingest_options: dict) -> None:
    thread = threading.Thread(
        target=_run, args=(store, run_id, ingest_options), name="dialstatus-reingest", daemon=True
    )
    thread.start()


def _run(store, run_id: int, ingest_options: dict) -> None:
    key = _key(store)
    try:
        _replay(store, run_id, ingest_options)
        _finish(store, run_id, None)
    except Exception as exc:  # the run says why; the leads hold what was replayed so far
        logger.exception("re-ingest %s stopped", run_id)
        _finish(store, run_id, f"stopped: {type(exc).__name__}")
    finally:
        with _GUARD:
            _RUNNING.discard(key)
        # Callbacks kept meanwhile, in the order received (any that came in while the flag was
        # being cleared too: one ingest of a delivery runs at a time, lib.store.ingest.flights).
        try:
            ingest.ingest_pending(store, **ingest_options)
        except Exception:
            logger.exception("could not ingest the deliveries kept during re-ingest %s", run_id)


def _replay(store, run_id: int, ingest_options: dict) -> None:
    with store.cursor() as cursor:
        campaign, since, cleared, last = cursor.execute(
            "SELECT campaign_name, since, cleared, coalesce(last_delivery, 0) "
            "FROM reingest_runs WHERE id = ?",
            [run_id],
        ).fetchone()
    if since is None and not cleared:
        removed = ingest.clear_leads(store, campaign)
        with store.writing() as cursor:
            cursor.execute("UPDATE reingest_runs SET cleared = TRUE WHERE id = ?", [run_id])
        logger.info("re-ingest %s: cleared %d leads of %s", run_id, removed, campaign or "all")
    with store.cursor() as cursor:
        ids = [
            row[0]
            for row in cursor.execute(
                f"SELECT id {_SELECTION} ORDER BY id", _selection_params(campaign, since, last)
            ).fetchall()
        ]
    for delivery_id in ids:
        outcome = "done"
        try:
            ingest.reingest_delivery(store, delivery_id, **ingest_options)
        except ingest.BodyPruned:
            outcome = "skipped"
        except DeliveryRejected as rejected:
            outcome = "failed"
            logger.info("re-ingest %s: delivery %s failed: %s", run_id, delivery_id, rejected)
        with store.writing() as cursor:
            cursor.execute(
                f"UPDATE reingest_runs SET last_delivery = ?, {outcome} = {outcome} + 1 "
                "WHERE id = ?",
                [delivery_id, run_id],
            )


def _finish(store, run_id: int, error: str | None) -> None:
    with store.writing() as cursor:
        cursor.execute(
            "UPDATE reingest_runs SET finished_at = now(), error = ? WHERE id = ?", [error, run_id]
        )


def _progress(store, run_id: int) -> ReplayProgress:
    with store.cursor() as cursor:
        row = cursor.execute(
            f"SELECT {_RUN_COLUMNS} FROM reingest_runs WHERE id = ?", [run_id]
        ).fetchone()
    return ReplayProgress(*row)
