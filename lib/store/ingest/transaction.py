"""The ingest of one delivery: its one transaction, and the entry points around it.

One transaction per delivery: the leads (`write.py`), the lead summary, the sync request the
delivery answers, the campaigns' sync state, the raw delivery's state and the data version
change together, all or nothing. A failure leaves the leads untouched and the raw delivery
'failed', its body kept for a retry.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from lib.store.ingest.mapping import (
    LONG_FIELD_MARK,
    LONG_FIELD_MESSAGE,
    Source,
    discover_source,
)
from lib.store.ingest.phases import Phases
from lib.store.ingest.records import describe_data_error
from lib.store.ingest.write import Loaded, restart_transaction, write_leads
from lib.store.receive import (
    DEFAULT_DOWNLOAD_TIMEOUT_S,
    DEFAULT_MAX_BYTES,
    DeliveryRejected,
    Fetcher,
    ParsedDelivery,
    adopt_orphans,
    check_link,
    deliveries_dir_for,
    make_fetcher,
    parse_delivery,
    remove_stale_artefacts,
)
from lib.store.summary import summary_is_current, update_summary

logger = logging.getLogger(__name__)

# DuckDB errors caused by the data itself (the rest are the machine's: disk, memory, bugs).
_DATA_ERRORS = (
    duckdb.InvalidInputException,
    duckdb.ConversionException,
    duckdb.BinderException,
    duckdb.ParserException,
    duckdb.ConstraintException,
    duckdb.OutOfRangeException,
    duckdb.NotImplementedException,
)


@dataclass(frozen=True)
class IngestResult:
    delivery_id: int
    rows: int  # records stored from this delivery (after de-duplication within it)
    unique_id: str | None
    campaign_name: str | None
    duplicate: bool = False  # an identical body was already received: nothing changed
    campaigns: tuple[str, ...] = ()
    request_id: int | None = None


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
    else with `lib.store.receive.make_fetcher`. A delivery already ingested, or a duplicate, returns
    `duplicate=True` and changes nothing. On failure the raw row becomes 'failed' (with a short
    error), leads are untouched and DeliveryRejected is raised (400 for bad data).
    """
    row = _raw_row(store, delivery_id)
    if row is None:
        raise DeliveryRejected(404, f"unknown delivery {delivery_id}")
    if row.state in ("ingested", "duplicate"):
        return _already(row)
    fetch = _guarded_fetcher(fetch_file, tuple(allowed_hosts), max_bytes, download_timeout_s)
    parsed: list[ParsedDelivery] = []
    phases = Phases()
    try:
        parsed.append(
            parse_delivery(row.path, row.content_type, fetch_file=fetch, max_bytes=max_bytes)
        )
        phases.mark("parse")
        with store.writing() as cursor:
            current = _raw_row(store, delivery_id, cursor)
            if current is not None and current.state in ("ingested", "duplicate"):
                return _already(current)
            return _ingest_parsed(store, cursor, delivery_id, parsed, phases)
    except DeliveryRejected as rejected:
        _mark_failed(store, delivery_id, _whose(rejected, parsed))
        raise
    except FileNotFoundError:
        rejected = DeliveryRejected(500, "the delivery body file is missing")
        _mark_failed(store, delivery_id, _whose(rejected, parsed))
        raise rejected from None
    except Exception:
        logger.exception("ingest of delivery %s failed", delivery_id)
        rejected = DeliveryRejected(
            500, "internal error while ingesting (the body is kept for a retry)"
        )
        _mark_failed(store, delivery_id, _whose(rejected, parsed))
        raise rejected from None
    finally:
        for item in parsed:
            item.cleanup()


def ingest_pending(
    store,
    *,
    deliveries_dir: Path | str | None = None,
    fetch_file: Fetcher | None = None,
    allowed_hosts: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    download_timeout_s: float = DEFAULT_DOWNLOAD_TIMEOUT_S,
) -> list[IngestResult]:
    """Finishes what a crash interrupted: adopts body files without a row, then ingests every
    delivery still in state 'received', oldest first. Failures are logged and left 'failed'.

    `deliveries_dir` defaults to the folder beside the store's database (Settings rule).
    """
    folder = Path(deliveries_dir) if deliveries_dir is not None else deliveries_dir_for(store)
    adopt_orphans(store, folder)
    results = []
    for delivery_id in _received_ids(store):
        try:
            results.append(
                ingest_delivery(
                    store,
                    delivery_id,
                    fetch_file=fetch_file,
                    allowed_hosts=allowed_hosts,
                    max_bytes=max_bytes,
                    download_timeout_s=download_timeout_s,
                )
            )
        except DeliveryRejected as rejected:
            logger.warning("pending delivery %s rejected: %s", delivery_id, rejected.message)
    # Files a crash left half-made (slices, downloads): those of finished deliveries go.
    remove_stale_artefacts(folder, keep_ids=_received_ids(store))
    return results


# -- bookkeeping ---------------------------------------------------------------------------


def _received_ids(store) -> list[int]:
    with store.cursor() as cursor:
        rows = cursor.execute(
            "SELECT id FROM raw_deliveries WHERE state = 'received' ORDER BY id"
        ).fetchall()
    return [row[0] for row in rows]


def _raw_row(store, delivery_id: int, cursor=None) -> _RawRow | None:
    query = (
        "SELECT id, path, content_type, state, rows, unique_id, campaign_name, request_id "
        "FROM raw_deliveries WHERE id = ?"
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
    """Every link is checked against the allowed hosts, whoever downloads it."""
    if fetch_file is None:
        return make_fetcher(allowed_hosts, max_bytes=max_bytes, timeout_s=timeout_s)

    def fetch(url: str, dest: Path) -> None:
        fetch_file(check_link(url, allowed_hosts), dest)

    return fetch


def _whose(rejected: DeliveryRejected, parsed: list[ParsedDelivery]) -> DeliveryRejected:
    """Names the request and campaign on the rejection when parsing found them (the server
    closes that sync request at once instead of waiting for its timeout)."""
    if parsed:
        rejected.unique_id = rejected.unique_id or parsed[0].unique_id
        rejected.campaign_name = rejected.campaign_name or parsed[0].campaign_name
    return rejected


def _mark_failed(store, delivery_id: int, rejected: DeliveryRejected) -> None:
    message, unique_id, campaign = rejected.message, rejected.unique_id, rejected.campaign_name
    try:
        with store.writing() as cursor:
            cursor.execute(
                "UPDATE raw_deliveries SET state = 'failed', error = ?, "
                "unique_id = coalesce(?, unique_id), campaign_name = coalesce(?, campaign_name) "
                "WHERE id = ? AND state NOT IN ('ingested', 'duplicate')",
                [message[:500], unique_id, campaign, delivery_id],
            )
    except duckdb.Error:
        logger.exception("could not mark delivery %s failed", delivery_id)


# -- the transaction -----------------------------------------------------------------------


def _ingest_parsed(
    store, cursor, delivery_id: int, parsed: list[ParsedDelivery], phases: Phases
) -> IngestResult:
    delivery = parsed[-1]
    source: Source | None = None
    try:
        while True:  # the fast path's pieces, then its one slice, then the generic parse
            try:
                source = discover_source(store, cursor, delivery.records_source, phases)
                result = _transaction(store, cursor, source, delivery, delivery_id, phases)
                break
            except _DATA_ERRORS as exc:
                if source is not None:
                    source.stop()
                if LONG_FIELD_MARK in str(exc):
                    raise DeliveryRejected(400, LONG_FIELD_MESSAGE) from None
                if delivery.fallback is None:
                    raise DeliveryRejected(400, describe_data_error(exc)) from None
                why = describe_data_error(exc)
                logger.info("fast path refused for delivery %s (%s)", delivery_id, why)
                parsed.append(delivery.fallback())
                delivery = parsed[-1]
                phases.mark("fallback parse")
        logger.debug("delivery %s (%s, %d rows): %s", delivery_id, delivery.variant, result.rows,
                     phases)  # fmt: skip
        return result
    finally:
        if source is not None:
            source.stop()
        with contextlib.suppress(duckdb.Error):
            cursor.execute("DROP TABLE IF EXISTS _raw")
            cursor.execute("DROP TABLE IF EXISTS _batch")
            cursor.execute("DROP TABLE IF EXISTS _summary_delta")


def _transaction(
    store, cursor, source: Source, delivery: ParsedDelivery, delivery_id: int, phases: Phases
) -> IngestResult:
    """The delivery's one transaction: leads, summary, bookkeeping; all or nothing."""
    cursor.execute("BEGIN")
    try:
        # The pages' lead summary moves with the leads: by this delivery's delta when it
        # was current, else rebuilt (lib.store.summary).
        incremental = summary_is_current(cursor)
        loaded = write_leads(cursor, source, delivery, delivery_id, phases, incremental)
        complete = source.complete_keys()
        phases.mark("wait key scan")
        if complete != source.keys:  # later records add fields: the whole delivery again
            logger.info("delivery %s: later records add fields; reading again", delivery_id)
            restart_transaction(cursor)
            source = source.with_keys(complete)
            loaded = write_leads(cursor, source, delivery, delivery_id, phases, incremental)
        result = _bookkeeping(cursor, delivery, delivery_id, loaded)
        store.bump_data_version(cursor)
        update_summary(cursor, delivery_id, incremental)
        phases.mark("summary")
        cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        raise
    phases.mark("bookkeeping+commit")
    return result


def _bookkeeping(cursor, delivery: ParsedDelivery, delivery_id: int, loaded: Loaded):
    rows, per_campaign = loaded.rows, loaded.per_campaign
    campaigns = tuple(name for name, _ in per_campaign)
    campaign = delivery.campaign_name or (campaigns[0] if len(campaigns) == 1 else None)
    request_id, kind, asked_at = _match_request(cursor, delivery.unique_id, campaign)
    if request_id is not None:
        cursor.execute(
            "UPDATE sync_requests SET state = 'delivered', delivered_at = now(), rows = ?, "
            "unique_id = coalesce(unique_id, ?), error = NULL WHERE id = ?",
            [rows, delivery.unique_id, request_id],
        )
    if campaign is not None and campaign not in campaigns:
        per_campaign = [*per_campaign, (campaign, None)]  # an empty answer is a success too
    # Only a refresh (status/dialstatus/dispositions = All) proves nothing older is missing, so
    # only its records may move the watermark; a hand-made filtered request or an unsolicited
    # delivery stores its rows but leaves the incremental sync's starting point alone.
    # Likewise "data as of" (last_success_at): the moment the refresh was asked for, since the
    # data is CloudAgent's state from then on, not the moment a late callback happened to land;
    # it never moves backwards.
    # The watermark never passes the request's toDate (else its sending time): one record
    # dated in the future (a wrong clock or zone) must not push every later fromDate past its
    # toDate. Such records are stored, and counted on the Sync page.
    refresh = kind in ("full", "incremental")
    ceiling = _watermark_ceiling(cursor, request_id, asked_at) if refresh else None
    for name, newest in per_campaign:
        cursor.execute(
            "INSERT INTO sync_state (campaign_name, watermark, full_load_done, last_success_at, "
            "last_error) VALUES (?, ?, ?, ?, NULL) ON CONFLICT (campaign_name) DO UPDATE SET "
            "watermark = greatest(sync_state.watermark, excluded.watermark), "
            "full_load_done = sync_state.full_load_done OR excluded.full_load_done, "
            "last_success_at = greatest(sync_state.last_success_at, excluded.last_success_at), "
            "last_error = NULL",
            [
                name,
                min(newest, ceiling) if refresh and newest is not None else None,
                kind == "full" and name == campaign,
                (asked_at or datetime.now(UTC)) if refresh else None,
            ],
        )
    cursor.execute(
        "UPDATE raw_deliveries SET state = 'ingested', rows = ?, ingested_at = now(), "
        "error = NULL, unique_id = ?, campaign_name = ?, request_id = ? WHERE id = ?",
        [rows, delivery.unique_id, campaign, request_id, delivery_id],
    )
    return IngestResult(
        delivery_id, rows, delivery.unique_id, campaign, False, campaigns, request_id
    )


def _watermark_ceiling(cursor, request_id: int, asked_at):
    """The request's toDate (the account's wall clock, in the connection's zone), else the
    moment it was sent: no record it delivered can prove anything later."""
    (to_date,) = cursor.execute(
        "SELECT try_strptime(params->>'toDate', '%Y-%m-%d %H:%M:%S')::TIMESTAMPTZ "
        "FROM sync_requests WHERE id = ?",
        [request_id],
    ).fetchone()
    return to_date or asked_at or datetime.now(UTC)


def _match_request(cursor, unique_id: str | None, campaign: str | None):
    """(id, kind, sent_at) of the sync request this delivery answers: by uniqueId, else the
    campaign's newest open one ('sent' too: a fast callback can arrive before the engine has
    recorded the acceptance); (None, None, None) for an unsolicited delivery."""
    if unique_id is not None:
        found = cursor.execute(
            "SELECT id, kind, sent_at FROM sync_requests WHERE unique_id = ? "
            "ORDER BY id DESC LIMIT 1",
            [unique_id],
        ).fetchone()
        if found:
            return found
    if campaign is not None:
        found = cursor.execute(
            "SELECT id, kind, sent_at FROM sync_requests WHERE campaign_name = ? "
            "AND state IN ('accepted', 'sent') ORDER BY id DESC LIMIT 1",
            [campaign],
        ).fetchone()
        if found:
            return found
    return None, None, None
