"""A delivery's one transaction: the leads (`write.py`), the lead summary, the sync request the
delivery answers, the campaigns' sync state, the raw delivery's state and the data version
change together, all or nothing (the entry points around it are in `lifecycle.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from lib.store.events import clear_events
from lib.store.ingest.mapping import (
    LONG_FIELD_MARK,
    LONG_FIELD_MESSAGE,
    Source,
    discover_source,
)
from lib.store.ingest.phases import Phases
from lib.store.ingest.records import describe_data_error
from lib.store.ingest.report import build_report, source_report
from lib.store.ingest.write import Loaded, restart_transaction, write_leads
from lib.store.receive import DeliveryRejected, ParsedDelivery
from lib.store.summary import rebuild_summary, summary_is_current, update_summary

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
    # DuckDB's message quoting a value that is not valid UTF-8 (a lone surrogate's escape)
    # cannot be decoded by Python: the query failed because of the data all the same.
    UnicodeDecodeError,
)


@dataclass(frozen=True)
class IngestResult:
    delivery_id: int
    rows: int  # records stored from this delivery (after de-duplication within it)
    unique_id: str | None
    campaign_name: str | None
    duplicate: bool = False  # an identical body was already received: no lead changed
    campaigns: tuple[str, ...] = ()
    request_id: int | None = None


# -- the transaction -----------------------------------------------------------------------


def ingest_parsed(
    store,
    cursor,
    delivery_id: int,
    parsed: list[ParsedDelivery],
    phases: Phases,
    known_request,
    known: dict | None = None,
    *,
    replay: bool = False,
) -> IngestResult:
    """Writes a parsed delivery in its one transaction (the fast path first, then its
    fallbacks); `replay` for a re-ingest (lib/store/reingest.py): the request row stays.
    `known` receives the report's fields and formats as soon as the records are read, so a
    delivery that fails after that still reports them."""
    delivery = parsed[-1]
    source: Source | None = None
    try:
        while True:  # the fast path's pieces, then its one slice, then the generic parse
            try:
                source = discover_source(store, cursor, delivery.records_source, phases)
                if known is not None:
                    known.update(source_report(source))
                result = _transaction(
                    store, cursor, source, delivery, delivery_id, phases, known_request, replay
                )
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
            cursor.execute("DROP TABLE IF EXISTS _changes")
            cursor.execute("DROP TABLE IF EXISTS _summary_delta")


def _transaction(
    store,
    cursor,
    source: Source,
    delivery: ParsedDelivery,
    delivery_id: int,
    phases: Phases,
    known_request: int | None,
    replay: bool,
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
        report = build_report(cursor, source, delivery.variant, loaded)
        phases.mark("report")
        result = _bookkeeping(cursor, delivery, delivery_id, loaded, known_request, report, replay)
        store.bump_data_version(cursor)
        update_summary(
            cursor, delivery_id, incremental, loaded.written, loaded.updated > 0, loaded.recount
        )
        phases.mark("summary")
        cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        raise
    phases.mark("bookkeeping+commit")
    return result


def _bookkeeping(
    cursor,
    delivery: ParsedDelivery,
    delivery_id: int,
    loaded: Loaded,
    known_request,
    report: dict,
    replay: bool = False,
):
    rows, per_campaign = loaded.rows, loaded.per_campaign
    campaigns = tuple(name for name, _ in per_campaign)
    campaign = delivery.campaign_name or (campaigns[0] if len(campaigns) == 1 else None)
    if replay:  # only the request it answered the first time (never one open now)
        match = match_request(cursor, None, None, known_request)
    else:
        match = match_request(cursor, delivery.unique_id, campaign, known_request)
    if campaign is not None and campaign not in campaigns:
        per_campaign = [*per_campaign, (campaign, None)]  # an empty answer is a success too
    record_answer(cursor, match, delivery.unique_id, campaign, per_campaign, rows,
                  replay=replay)  # fmt: skip
    request_id = match[0]
    cursor.execute(
        "UPDATE raw_deliveries SET state = 'ingested', rows = ?, ingested_at = now(), "
        "error = NULL, unique_id = ?, campaign_name = ?, request_id = ?, report = ?, "
        "warnings = ? WHERE id = ?",
        [rows, delivery.unique_id, campaign, request_id, json.dumps(report),
         report["warnings"], delivery_id],
    )  # fmt: skip
    return IngestResult(
        delivery_id, rows, delivery.unique_id, campaign, False, campaigns, request_id
    )


def record_answer(
    cursor, match, unique_id, campaign, per_campaign, rows: int, *, replay: bool = False
) -> None:
    """The matched request is delivered and each campaign's sync state moves, for an ingest and
    for a duplicate (whose `newest` is None: its rows are stored already, the watermark stays).
    A re-ingest (`replay`) moves the sync state the same way but leaves the request's row alone
    (it was answered when the delivery first came).
    """
    request_id, kind, asked_at = match
    if request_id is not None and not replay:
        cursor.execute(
            "UPDATE sync_requests SET state = 'delivered', delivered_at = now(), rows = ?, "
            "unique_id = coalesce(unique_id, ?), error = NULL WHERE id = ?",
            [rows, unique_id, request_id],
        )
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


def _watermark_ceiling(cursor, request_id: int, asked_at):
    """The request's toDate (the account's wall clock, in the connection's zone), else the
    moment it was sent: no record it delivered can prove anything later."""
    (to_date,) = cursor.execute(
        "SELECT try_strptime(params->>'toDate', '%Y-%m-%d %H:%M:%S')::TIMESTAMPTZ "
        "FROM sync_requests WHERE id = ?",
        [request_id],
    ).fetchone()
    return to_date or asked_at or datetime.now(UTC)


def match_request(cursor, unique_id: str | None, campaign: str | None, known=None):
    """(id, kind, sent_at) of the sync request this delivery answers: the one an earlier failed
    attempt was matched to (`known`), else by uniqueId, else the campaign's newest open one
    ('sent' too: a fast callback can arrive before the engine has recorded the acceptance);
    (None, None, None) for an unsolicited delivery."""
    if known is not None:
        found = cursor.execute(
            "SELECT id, kind, sent_at FROM sync_requests WHERE id = ?", [known]
        ).fetchone()
        if found:
            return found
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


def clear_leads(store, campaign: str | None) -> int:
    """Deletes the leads of one campaign (or all) and their history before a re-ingest rebuilds
    them, with the lead summary and the data version in the same transaction. Returns the rows
    deleted."""
    where, params = ("campaign_name = ?", [campaign]) if campaign else ("TRUE", [])
    with store.writing() as cursor:
        cursor.execute("BEGIN")
        try:
            removed = cursor.execute(f"DELETE FROM leads WHERE {where}", params).fetchone()[0]
            clear_events(cursor, where, params)
            store.bump_data_version(cursor)
            rebuild_summary(cursor)
            cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                cursor.execute("ROLLBACK")
            raise
    return int(removed)
