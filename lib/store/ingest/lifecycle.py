"""A delivery's life around its one transaction: the entry points (ingest, recovery at start,
retries, duplicates), its attempts and how each ends.

- Each attempt is counted (committed) before it starts; after MAX_ATTEMPTS, failed or
  interrupted (the process died while reading it), the delivery is given up, with a plain reason.
- A transient failure (a file host's 5xx or timeout, the machine's trouble) keeps the delivery
  'received': a file link is tried again inside the attempt, the whole delivery later
  (`retry_pending`, or `ingest_pending` at the next start). Anything else makes it 'failed'.
- One ingest of a delivery at a time (`flights.py`): a second caller waits for the first's outcome.
- A duplicate (the same body again) writes no lead but still answers its request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from lib.config import mask_secrets
from lib.store.ingest.flights import FLIGHTS
from lib.store.ingest.phases import Phases
from lib.store.ingest.report import failure_report
from lib.store.ingest.transaction import (
    IngestResult,
    ingest_parsed,
    match_request,
    record_answer,
)
from lib.store.receive import (
    DEFAULT_DOWNLOAD_TIMEOUT_S,
    DEFAULT_MAX_BYTES,
    GAVE_UP_PREFIX,
    DeliveryRejected,
    Fetcher,
    ParsedDelivery,
    RawDelivery,
    adopt_orphans,
    check_link,
    deliveries_dir_for,
    make_fetcher,
    parse_delivery,
    remove_stale_artefacts,
)

logger = logging.getLogger(__name__)

# A delivery is given up after this many attempts, failed or interrupted (a body that kills the
# process must not kill it at every start).
MAX_ATTEMPTS = 3
# After a transient failure, the next attempt waits this long times the attempts made so far.
RETRY_DELAY_S = 60.0
# A file link's transient failure is tried again inside the attempt after these pauses.
FETCH_RETRY_DELAYS_S = (1.0, 3.0)


@dataclass(frozen=True)
class _RawRow:
    id: int
    path: str
    content_type: str | None
    state: str
    rows: int | None
    unique_id: str | None
    campaign_name: str | None
    request_id: int | None
    attempts: int
    error: str | None


# -- public entry points -------------------------------------------------------------------


def ingest_delivery(
    store,
    delivery_id: int,
    *,
    fetch_file: Fetcher | None = None,
    allowed_hosts: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    download_timeout_s: float = DEFAULT_DOWNLOAD_TIMEOUT_S,
) -> IngestResult:
    """Parses and ingests one registered delivery, all or nothing.

    File links are fetched only from `allowed_hosts` (http/https), with `fetch_file` when given,
    else with `lib.store.receive.make_fetcher`; a file host's 5xx or timeout is tried again a few
    times. A delivery already ingested, or a duplicate, returns `duplicate=True` and changes
    nothing. One ingest of a delivery runs at a time: a second caller waits for the first and
    returns its outcome (or, after a transient failure, tries itself).

    Each attempt is counted (committed) before it starts. On failure leads are untouched and
    DeliveryRejected is raised (400 for bad data); the raw row stays 'received' for a retry when
    the failure was transient and attempts are left, else becomes 'failed' with a short error.
    After MAX_ATTEMPTS the delivery is given up, whether its attempts failed or were interrupted
    (the process died while reading it).
    """
    fetch = _guarded_fetcher(fetch_file, tuple(allowed_hosts), max_bytes, download_timeout_s)
    with FLIGHTS.flying(store, delivery_id) as (flight, waited_for):
        row = _raw_row(store, delivery_id)
        if row is None:
            raise DeliveryRejected(404, f"unknown delivery {delivery_id}")
        if row.state in ("ingested", "duplicate"):
            return _already(row)
        if waited_for is not None and row.state == "failed" and waited_for.rejected is not None:
            # The copy in flight failed for good while this caller waited: the same answer.
            raise _same_rejection(waited_for.rejected)
        try:
            return _attempt(store, row, fetch, max_bytes)
        except DeliveryRejected as rejected:
            flight.rejected = rejected
            raise


def ingest_pending(
    store,
    *,
    deliveries_dir: Path | str | None = None,
    on_failed: Callable[[int, DeliveryRejected], None] | None = None,
    stopping: threading.Event | None = None,
    **ingest_options,
) -> list[IngestResult]:
    """Finishes what a crash interrupted: adopts body files without a row, then ingests every
    delivery still in state 'received', oldest first (each attempt counted, so one that keeps
    killing the process is given up after MAX_ATTEMPTS). A failure is logged and passed to
    `on_failed`; `stopping` ends the work after the current delivery. `ingest_options` are
    those of `ingest_delivery`.

    `deliveries_dir` defaults to the folder beside the store's database (Settings rule).
    """
    folder = Path(deliveries_dir) if deliveries_dir is not None else deliveries_dir_for(store)
    adopt_orphans(store, folder)
    results = _ingest_each(store, _received_ids(store), ingest_options, on_failed, stopping)
    # Files a crash left half-made (slices, downloads): those of finished deliveries go.
    remove_stale_artefacts(folder, keep_ids=_received_ids(store))
    return results


def retry_pending(
    store,
    *,
    on_failed: Callable[[int, DeliveryRejected], None] | None = None,
    stopping: threading.Event | None = None,
    **ingest_options,
) -> list[IngestResult]:
    """Tries again the deliveries a transient failure left 'received' in this process, once
    their wait (RETRY_DELAY_S per attempt made) is over; the server runs it periodically."""
    return _ingest_each(store, FLIGHTS.due(store), ingest_options, on_failed, stopping)


def settle_duplicate(store, raw: RawDelivery, **ingest_options) -> IngestResult:
    """A body identical to an earlier delivery's: no lead is written again, but it still
    answers its request.

    While the earlier copy is in flight (or still to be ingested), this waits for its outcome
    (taking over after a transient failure): a failure is raised as DeliveryRejected. Once it
    landed, the request this copy answers (matched like an ingest matches: by uniqueId, else the
    campaign's newest open request) is closed as delivered and the campaign's "data as of"
    moves, as an ingest of the same rows would; a plain resend of the delivery that already
    answered that request changes nothing. `ingest_options` are those of `ingest_delivery`.
    """
    if raw.duplicate_of is None:
        raise ValueError(f"delivery {raw.id} is not a duplicate")
    ingest_delivery(store, raw.duplicate_of, **ingest_options)
    with store.writing() as cursor:
        original = _raw_row(store, raw.duplicate_of, cursor)
        campaign, rows = original.campaign_name, original.rows or 0
        match = match_request(cursor, original.unique_id, campaign)
        if match[0] is None or match[0] == original.request_id:
            return IngestResult(raw.id, rows, original.unique_id, campaign, duplicate=True)
        cursor.execute("BEGIN")
        try:
            per_campaign = [(campaign, None)] if campaign is not None else []
            record_answer(cursor, match, original.unique_id, campaign, per_campaign, rows)
            cursor.execute(
                "UPDATE raw_deliveries SET unique_id = ?, campaign_name = ?, request_id = ? "
                "WHERE id = ?",
                [original.unique_id, campaign, match[0], raw.id],
            )
            cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                cursor.execute("ROLLBACK")
            raise
    logger.info("duplicate delivery %s answers request %s", raw.id, match[0])
    return IngestResult(raw.id, rows, original.unique_id, campaign, True, (), match[0])


class BodyPruned(DeliveryRejected):
    """A kept delivery whose body is gone (deleted by retention): a re-ingest skips it."""

    def __init__(self, delivery_id: int) -> None:
        super().__init__(410, f"the body of delivery {delivery_id} was deleted by retention",
                         transient=False)  # fmt: skip


def reingest_delivery(store, delivery_id: int, **ingest_options) -> IngestResult:
    """Parses a kept delivery again and writes it with the current mapping, whatever it ended
    as ('ingested' or 'failed'), in one transaction like an ingest; the sync state moves as it
    would, the request it answered stays as it was. Attempts are not counted (they guard against
    bodies that crash the process at start). Raises BodyPruned when the body is gone, and
    DeliveryRejected when it still cannot be used (the row says why, its leads untouched);
    ValueError for a duplicate or a delivery still to be ingested."""
    options = {k: v for k, v in ingest_options.items() if k != "fetch_file"}
    fetch = _guarded_fetcher(
        ingest_options.get("fetch_file"),
        tuple(options.get("allowed_hosts", ())),
        options.get("max_bytes", DEFAULT_MAX_BYTES),
        options.get("download_timeout_s", DEFAULT_DOWNLOAD_TIMEOUT_S),
    )
    max_bytes = options.get("max_bytes", DEFAULT_MAX_BYTES)
    with FLIGHTS.flying(store, delivery_id):
        row = _raw_row(store, delivery_id)
        if row is None:
            raise DeliveryRejected(404, f"unknown delivery {delivery_id}")
        if row.state not in ("ingested", "failed"):
            raise ValueError(f"delivery {delivery_id} is {row.state}: it is not re-ingested")
        if _pruned(store, delivery_id) or not Path(row.path).exists():
            raise BodyPruned(delivery_id)
        parsed: list[ParsedDelivery] = []
        known: dict = {}
        try:
            parsed.append(
                parse_delivery(row.path, row.content_type, fetch_file=fetch, max_bytes=max_bytes)
            )
            with store.writing() as cursor:
                return ingest_parsed(
                    store, cursor, row.id, parsed, Phases(), row.request_id, known, replay=True
                )
        except DeliveryRejected as rejected:
            _mark_failed(store, row.id, _whose(rejected, parsed), (parsed, known), replay=True)
            raise
        except Exception:
            logger.exception("re-ingest of delivery %s failed", row.id)
            rejected = DeliveryRejected(500, "internal error while ingesting", transient=False)
            _mark_failed(store, row.id, rejected, (parsed, known), replay=True)
            raise rejected from None
        finally:
            for item in parsed:
                item.cleanup()


def _pruned(store, delivery_id: int) -> bool:
    with store.cursor() as cursor:
        row = cursor.execute(
            "SELECT pruned_at IS NOT NULL FROM raw_deliveries WHERE id = ?", [delivery_id]
        ).fetchone()
    return bool(row and row[0])


# -- attempts ------------------------------------------------------------------------------


def _ingest_each(store, delivery_ids, options: dict, on_failed, stopping) -> list[IngestResult]:
    results = []
    for delivery_id in delivery_ids:
        if stopping is not None and stopping.is_set():
            break
        try:
            results.append(ingest_delivery(store, delivery_id, **options))
        except DeliveryRejected as rejected:
            logger.warning("pending delivery %s rejected: %s", delivery_id, rejected.message)
            if on_failed is not None:
                on_failed(delivery_id, rejected)
    return results


def _attempt(store, row: _RawRow, fetch: Fetcher, max_bytes: int) -> IngestResult:
    """One counted attempt at a delivery this thread holds (see `ingest_delivery`)."""
    if row.attempts >= MAX_ATTEMPTS:
        raise _give_up(store, row)
    attempt = _count_attempt(store, row.id)
    parsed: list[ParsedDelivery] = []
    known: dict = {}
    phases = Phases()
    try:
        parsed.append(
            parse_delivery(row.path, row.content_type, fetch_file=fetch, max_bytes=max_bytes)
        )
        phases.mark("parse")
        with store.writing() as cursor:
            result = ingest_parsed(store, cursor, row.id, parsed, phases, row.request_id, known)
        FLIGHTS.forget(store, row.id)
        return result
    except DeliveryRejected as rejected:
        raise _failed(store, row, attempt, _whose(rejected, parsed), (parsed, known)) from None
    except FileNotFoundError:
        rejected = DeliveryRejected(500, "the delivery body file is missing", transient=False)
        raise _failed(store, row, attempt, _whose(rejected, parsed), (parsed, known)) from None
    except Exception:
        logger.exception("ingest of delivery %s failed", row.id)
        rejected = DeliveryRejected(500, "internal error while ingesting")
        raise _failed(store, row, attempt, _whose(rejected, parsed), (parsed, known)) from None
    finally:
        for item in parsed:
            item.cleanup()


def _count_attempt(store, delivery_id: int) -> int:
    """Committed before the body is read, so an attempt that kills the process still counts."""
    with store.writing() as cursor:
        return cursor.execute(
            "UPDATE raw_deliveries SET attempts = coalesce(attempts, 0) + 1 WHERE id = ? "
            "RETURNING attempts",
            [delivery_id],
        ).fetchone()[0]


def _interrupted_reason(row: _RawRow) -> str:
    before = f"; before that: {row.error}" if row.error else ""
    return (
        f"{GAVE_UP_PREFIX} {row.attempts} times (the server stopped or ran out of memory "
        f"while reading it{before}); it is kept but skipped"
    )


def _failed(
    store, row: _RawRow, attempt: int, rejected: DeliveryRejected, seen: tuple
) -> DeliveryRejected:
    """Records a failed attempt: kept for a retry when transient and attempts are left (the
    message says so), else the delivery is failed. Returns the rejection to raise."""
    if rejected.transient and attempt < MAX_ATTEMPTS:
        rejected.message = f"{rejected.message}; it is kept and tried again later"
        _note_error(store, row.id, rejected, seen)
        FLIGHTS.retry_later(store, row.id, RETRY_DELAY_S * attempt)
        return rejected
    if rejected.transient:
        rejected.message = f"{rejected.message} (tried {attempt} times; it is kept but skipped)"
    _mark_failed(store, row.id, rejected, seen)
    FLIGHTS.forget(store, row.id)
    return rejected


def _give_up(store, row: _RawRow) -> DeliveryRejected:
    """No attempts left: 422, so a sender does not keep sending a body that cannot be read. A
    delivery still 'received' was interrupted last (a failed attempt ends 'failed' itself)."""
    interrupted = row.state == "received" or not row.error
    rejected = DeliveryRejected(
        422, _interrupted_reason(row) if interrupted else row.error, transient=False
    )
    rejected.unique_id, rejected.campaign_name = row.unique_id, row.campaign_name
    if interrupted:
        _mark_failed(store, row.id, rejected)
    FLIGHTS.forget(store, row.id)
    return rejected


def _same_rejection(rejected: DeliveryRejected) -> DeliveryRejected:
    """A fresh exception with the same answer (one exception object is not raised twice)."""
    again = DeliveryRejected(rejected.status_code, rejected.message, transient=False)
    again.unique_id, again.campaign_name = rejected.unique_id, rejected.campaign_name
    return again


# -- bookkeeping ---------------------------------------------------------------------------


def _received_ids(store) -> list[int]:
    with store.cursor() as cursor:
        rows = cursor.execute(
            "SELECT id FROM raw_deliveries WHERE state = 'received' ORDER BY id"
        ).fetchall()
    return [row[0] for row in rows]


def _raw_row(store, delivery_id: int, cursor=None) -> _RawRow | None:
    query = (
        "SELECT id, path, content_type, state, rows, unique_id, campaign_name, request_id, "
        "coalesce(attempts, 0), error FROM raw_deliveries WHERE id = ?"
    )
    if cursor is not None:
        found = cursor.execute(query, [delivery_id]).fetchone()
    else:
        with store.cursor() as own:
            found = own.execute(query, [delivery_id]).fetchone()
    return _RawRow(*found) if found else None


def _already(row: _RawRow) -> IngestResult:
    return IngestResult(
        row.id,
        row.rows or 0,
        row.unique_id,
        row.campaign_name,
        duplicate=True,
        request_id=row.request_id,
    )


def _guarded_fetcher(
    fetch_file: Fetcher | None, allowed_hosts: tuple[str, ...], max_bytes: int, timeout_s: float
) -> Fetcher:
    """Every link is checked against the allowed hosts, whoever downloads it; a transient
    failure (a 5xx, a timeout, a dropped connection) is tried again after FETCH_RETRY_DELAYS_S,
    while less than `timeout_s` has passed since the first try."""
    download = fetch_file or make_fetcher(allowed_hosts, max_bytes=max_bytes, timeout_s=timeout_s)

    def fetch(url: str, dest: Path) -> None:
        checked = check_link(url, allowed_hosts)
        started = time.monotonic()
        for delay in (*FETCH_RETRY_DELAYS_S, None):
            try:
                download(checked, dest)
                return
            except DeliveryRejected as rejected:
                if not rejected.transient or delay is None:
                    raise
                if time.monotonic() - started + delay >= timeout_s:
                    raise
                logger.info("file link failed (%s); trying again in %s s", rejected.message, delay)
            time.sleep(delay)

    return fetch


def _whose(rejected: DeliveryRejected, parsed: list[ParsedDelivery]) -> DeliveryRejected:
    """Names the request and campaign on the rejection when parsing found them (the server
    closes that sync request at once instead of waiting for its timeout)."""
    if parsed:
        rejected.unique_id = rejected.unique_id or parsed[0].unique_id
        rejected.campaign_name = rejected.campaign_name or parsed[0].campaign_name
    return rejected


def _note_error(store, delivery_id: int, rejected: DeliveryRejected, seen) -> None:
    """A transient failure: the delivery stays 'received' (to be retried), with why."""
    _update_failed_row(store, delivery_id, rejected, "received", seen)


def _mark_failed(
    store, delivery_id: int, rejected: DeliveryRejected, seen=((), {}), *, replay: bool = False
) -> None:
    _update_failed_row(store, delivery_id, rejected, "failed", seen, replay)


def _update_failed_row(
    store, delivery_id: int, rejected: DeliveryRejected, state: str, seen, replay=False
) -> None:
    """The failure and its report (the shape, when parsing got that far). A re-ingest that
    fails marks a delivery failed even if it was ingested before: its leads stay as they were
    stored, and the row says the current mapping cannot read it. The reason (partly the
    sender's own words) is masked against the settings' secrets here, for the row and for
    whoever raises the rejection on."""
    rejected.message = mask_secrets(rejected.message, store.secret_values)
    message, unique_id, campaign = rejected.message, rejected.unique_id, rejected.campaign_name
    parsed, known = seen  # the parse results and what ingest learnt of the records
    report = failure_report(parsed[-1].variant if parsed else None, message[:500], known)
    try:
        with store.writing() as cursor:
            cursor.execute(
                "UPDATE raw_deliveries SET state = ?, error = ?, report = ?, "
                "unique_id = coalesce(?, unique_id), campaign_name = coalesce(?, campaign_name) "
                "WHERE id = ? AND state NOT IN ('duplicate', ?)",
                [
                    state,
                    message[:500],
                    json.dumps(report),
                    unique_id,
                    campaign,
                    delivery_id,
                    "duplicate" if replay else "ingested",
                ],
            )
    except duckdb.Error:
        logger.exception("could not record the failure of delivery %s", delivery_id)
