"""Set-based ingest of delivered records into `leads`: one transaction per delivery.

DuckDB reads the records (a top-level JSON array, possibly in pieces read in parallel, NDJSON or
CSV) with every field as VARCHAR; one SELECT maps the delivered fields to the `leads` columns
(`lib.fields.column_for`), parses dates, durations and integers, derives lead_status, dial_bucket,
lead_key and `extra` (the unmapped fields); the rows are written so that the newest `updated_at`
wins: a late, older delivery never overwrites newer data. The raw delivery, the sync request it
answers, the campaigns' sync state and the data version change in the same transaction. No
per-record Python anywhere.

Field discovery: the keys of the first records decide what is read; when the file holds more
records than that sample, the keys of every record are collected on another cursor while the
write runs, and the write is done again, with every field, in the rare delivery whose later
records add fields (before the commit: nothing is ever stored without them). See "loading" below.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from lib.fields import LEAD_FIELDS, column_for, dial_bucket_sql, lead_status_sql, name_key
from lib.store.receive import (
    DEFAULT_DOWNLOAD_TIMEOUT_S,
    DEFAULT_MAX_BYTES,
    DeliveryRejected,
    Fetcher,
    ParsedDelivery,
    RecordsFile,
    adopt_orphans,
    check_link,
    deliveries_dir_for,
    make_fetcher,
    parse_delivery,
    remove_stale_artefacts,
)
from lib.store.summary import begin_summary_delta, summary_is_current, update_summary

logger = logging.getLogger(__name__)

_SAMPLE_RECORDS = 20_480
_MAX_FIELDS = 2_000
_MAX_OBJECT_BYTES = 1024 * 1024  # a lead is ~1 KB; a bigger record is hostile, not data
_MAX_FIELD_CHARS = 65_536  # one value longer than this is refused with the whole delivery
_TEXT_COLUMNS = ("lead_id", "phone_number", "name", "disposition", "comments", "agent_name",
                 "extra::VARCHAR")  # fmt: skip
_KEY_COLUMNS = ("lead_id", "phone_number", "campaign_name")  # trimmed; other text kept as is
_LEADS_COLUMNS = (
    "campaign_name", "lead_key", "lead_id", "phone_number", "name", "status", "lead_status",
    "dial_status", "dial_bucket", "disposition", "comments", "agent_id", "agent_name", "attempts",
    "priority", "ucid", "call_duration_s", "created_at", "updated_at", "extra", "delivery_id",
)  # fmt: skip
_UPDATE_COLUMNS = tuple(c for c in _LEADS_COLUMNS if c not in ("campaign_name", "lead_key"))
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


class _Phases:
    """Phase timings of one ingest (wall, and CPU of the whole process: every thread), logged
    at DEBUG (bench/ingest_probe.py prints them)."""

    def __init__(self) -> None:
        self.last, self.last_cpu = time.perf_counter(), time.process_time()
        self.spent: list[tuple[str, float, float]] = []

    def mark(self, phase: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.spent.append((phase, now - self.last, cpu - self.last_cpu))
        self.last, self.last_cpu = now, cpu

    def __str__(self) -> str:
        return ", ".join(f"{phase} {wall:.2f}s (CPU {cpu:.2f})" for phase, wall, cpu in self.spent)


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
    phases = _Phases()
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


@dataclass
class _Loaded:
    rows: int
    per_campaign: list[tuple[str, object]]  # (campaign, newest updated_at) among stored rows


def _ingest_parsed(
    store, cursor, delivery_id: int, parsed: list[ParsedDelivery], phases: _Phases
) -> IngestResult:
    delivery = parsed[-1]
    source: _Source | None = None
    try:
        while True:  # the fast path's pieces, then its one slice, then the generic parse
            try:
                source = _source(store, cursor, delivery.records_source, phases)
                result = _transaction(store, cursor, source, delivery, delivery_id, phases)
                break
            except _DATA_ERRORS as exc:
                if source is not None:
                    source.stop()
                if _LONG_FIELD_MARK in str(exc):
                    raise DeliveryRejected(400, _LONG_FIELD_MESSAGE) from None
                if delivery.fallback is None:
                    raise DeliveryRejected(400, _describe(exc)) from None
                logger.info("fast path refused for delivery %s (%s)", delivery_id, _describe(exc))
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
    store, cursor, source: _Source, delivery: ParsedDelivery, delivery_id: int, phases: _Phases
) -> IngestResult:
    """The delivery's one transaction: leads, summary, bookkeeping; all or nothing."""
    cursor.execute("BEGIN")
    try:
        # The pages' lead summary moves with the leads: by this delivery's delta when it
        # was current, else rebuilt (lib/metrics.py).
        incremental = summary_is_current(cursor)
        loaded = _write(cursor, source, delivery, delivery_id, phases, incremental)
        complete = source.complete_keys()
        phases.mark("wait key scan")
        if complete != source.keys:  # later records add fields: the whole delivery again
            logger.info("delivery %s: later records add fields; reading again", delivery_id)
            _restart(cursor)
            source = source.with_keys(complete)
            loaded = _write(cursor, source, delivery, delivery_id, phases, incremental)
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


def _restart(cursor) -> None:
    """Drops everything this transaction did (a failed statement aborts it in DuckDB)."""
    cursor.execute("ROLLBACK")
    cursor.execute("BEGIN")


def _bookkeeping(cursor, delivery: ParsedDelivery, delivery_id: int, loaded: _Loaded):
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
    refresh = kind in ("full", "incremental")
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
                newest if refresh else None,
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


# -- loading -------------------------------------------------------------------------------
#
# Source: the write's SELECT reads the JSON records straight from the file(s), every field as
# VARCHAR (no staging copy; a large array comes in pieces, read in parallel: lib/delivery.py).
# A CSV file is staged into TEMP TABLE _raw first (its columns come from DuckDB's sniffer).
#
# Direct write: when the delivery's campaign has no stored leads yet (a first full load), the
# mapped rows go into `leads` with a plain INSERT. Any constraint violation (a lead twice in the
# delivery, a lead already stored under that key, a record without campaign or key) rolls it back
# to the general write.
#
# General write: the mapped rows go to TEMP TABLE _batch, which is checked (campaign and key
# present) and de-duplicated (newest updated_at wins), then written as an UPDATE of the stored
# leads it is newer than plus an INSERT of the leads not stored yet: the result of
# `INSERT .. ON CONFLICT DO UPDATE .. WHERE excluded.updated_at >= leads.updated_at`, measured
# faster here (DuckDB 2 runs ON CONFLICT as a MERGE with an extra hash aggregate).


@dataclass
class _Source:
    """What the write reads: the records' field names, a relation giving them as VARCHAR
    columns (TEMP TABLE _raw for CSV, else the JSON reader itself: no staging copy), and the
    mapped values of status and dial status seen in the sample (see `_sample_lookups`)."""

    records: RecordsFile
    keys: list[str]
    relation: str
    lookups: dict[str, list[tuple[str | None, str]]]
    scan: _KeyScan | None = None

    def complete_keys(self) -> list[str]:
        """Every field name of the file (waits for the key scan, when one runs)."""
        if self.scan is None:
            return self.keys
        return _usable(self.scan.result())

    def with_keys(self, keys: list[str]) -> _Source:
        return _Source(self.records, keys, _reader(self.records, keys), self.lookups)

    def stop(self) -> None:
        if self.scan is not None:
            self.scan.join()


def _source(store, cursor, records: RecordsFile, phases: _Phases) -> _Source:
    """The field names from a sample of the records (the key scan checks them against every
    record meanwhile, on its own cursor: the write waits for it before committing)."""
    cursor.execute("DROP TABLE IF EXISTS _raw")
    if records.format == "csv":
        cursor.execute(f"CREATE TEMP TABLE _raw AS SELECT * FROM {_reader(records, [])}")
        keys = _usable(r[0] for r in cursor.execute("DESCRIBE _raw").fetchall())
        phases.mark("stage")
        return _Source(records, keys, "_raw", _sample_lookups(cursor, keys, "_raw"))
    sampled, sample = cursor.execute(
        f"SELECT count(*), list_distinct(flatten(list(json_keys(json)))) FROM "
        f"(SELECT json FROM {_objects(records)} LIMIT {_SAMPLE_RECORDS})"
    ).fetchone()
    keys = _usable(sample or [])
    # A file longer than the sample gets all its keys collected on the other core meanwhile.
    scan = _KeyScan(store, records) if sampled >= _SAMPLE_RECORDS else None
    if scan is not None:
        scan.start()
        if not keys:  # nothing to read yet: the whole file decides
            keys, scan = _usable(scan.result()), None
    if not keys:
        _refuse_keyless(cursor, records)
        return _Source(records, [], "", {})
    relation = _reader(records, keys)
    try:
        lookups = _sample_lookups(cursor, keys, relation)
    except BaseException:
        if scan is not None:
            scan.join()
        raise
    phases.mark(f"sample keys ({len(records.files)} files)")
    return _Source(records, keys, relation, lookups, scan)


def _refuse_keyless(cursor, records: RecordsFile) -> None:
    """Records without any field: an empty delivery is fine, anything else is refused."""
    count, objects = cursor.execute(
        f"SELECT count(*), count(*) FILTER (WHERE json_type(json) = 'OBJECT') "
        f"FROM {_objects(records)}"
    ).fetchone()
    if objects < count:
        raise DeliveryRejected(400, "every record must be a JSON object")
    if count:
        raise DeliveryRejected(400, "the records have neither a lead id nor a phone number")


def _write(cursor, source: _Source, delivery: ParsedDelivery, delivery_id: int, phases, summary):
    if not source.keys:
        return _Loaded(0, [])
    if not _has_key_field(source.keys):
        raise DeliveryRejected(400, "the records have neither a lead id nor a phone number field")
    select = _mapped_select(source, delivery_id, delivery.campaign_name)
    if _first_load(cursor, delivery.campaign_name):
        loaded = _direct(cursor, select, delivery_id)
        phases.mark("direct insert" if loaded else "direct insert refused")
        if loaded is not None:
            return loaded
    return _general(cursor, select, phases, summary)


def _first_load(cursor, campaign: str | None) -> bool:
    if campaign is None:
        return False
    return not cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM leads WHERE campaign_name = ?)", [campaign]
    ).fetchone()[0]


def _direct(cursor, select: tuple[str, list], delivery_id: int) -> _Loaded | None:
    sql, params = select
    columns = ", ".join(_LEADS_COLUMNS)
    try:
        rows = cursor.execute(f"INSERT INTO leads ({columns}) {sql}", params).fetchone()[0]
    except duckdb.ConstraintException:
        _restart(cursor)
        return None
    per_campaign = cursor.execute(
        "SELECT campaign_name, max(updated_at) FROM leads "
        "WHERE delivery_id = ? GROUP BY campaign_name ORDER BY 1",
        [delivery_id],
    ).fetchall()
    return _Loaded(rows, per_campaign)


def _general(cursor, select: tuple[str, list], phases: _Phases, summary: bool) -> _Loaded:
    sql, params = select
    cursor.execute(f"CREATE TEMP TABLE _batch AS {sql}", params)
    phases.mark("map")
    rows = _check_batch(cursor, phases)
    sets = ", ".join(f"{c} = b.{c}" for c in _UPDATE_COLUMNS)
    columns = ", ".join(_LEADS_COLUMNS)
    newer = (
        "leads.campaign_name = b.campaign_name AND leads.lead_key = b.lead_key "
        "AND (b.updated_at >= leads.updated_at OR leads.updated_at IS NULL)"
    )
    if summary:  # what the rows about to be overwritten counted in the summary
        begin_summary_delta(cursor, f"(SELECT leads.* FROM leads, _batch AS b WHERE {newer})")
    cursor.execute(f"UPDATE leads SET {sets} FROM _batch AS b WHERE {newer}")
    cursor.execute(
        f"INSERT INTO leads ({columns}) SELECT {columns} FROM _batch AS b WHERE NOT EXISTS "
        "(SELECT 1 FROM leads AS l "
        "WHERE l.campaign_name = b.campaign_name AND l.lead_key = b.lead_key)"
    )
    phases.mark("update+insert")
    per_campaign = cursor.execute(
        "SELECT campaign_name, max(updated_at) FROM _batch GROUP BY campaign_name ORDER BY 1"
    ).fetchall()
    return _Loaded(rows, per_campaign)


# A mapped text value longer than _MAX_FIELD_CHARS makes the mapping SELECT itself fail (both
# write paths) with this marker: `strlen` (bytes, free) first, `length` (characters) only then.
_LONG_FIELD_MARK = "dialstatus: field over the length limit"
_LONG_FIELD_MESSAGE = f"a record has a field longer than {_MAX_FIELD_CHARS} characters"
_TOO_LONG = (
    f"greatest({', '.join(f'strlen({c})' for c in _TEXT_COLUMNS)}) > {_MAX_FIELD_CHARS} AND "
    f"greatest({', '.join(f'length({c})' for c in _TEXT_COLUMNS)}) > {_MAX_FIELD_CHARS}"
)


def _check_batch(cursor, phases: _Phases) -> int:
    total, no_campaign, no_key, distinct = cursor.execute(
        "SELECT count(*), count(*) FILTER (WHERE campaign_name IS NULL), "
        "count(*) FILTER (WHERE lead_key IS NULL), "
        "count(DISTINCT (campaign_name, lead_key)) FROM _batch"
    ).fetchone()
    if no_campaign:
        raise DeliveryRejected(
            400, f"{no_campaign} of {total} records have no campaign name (nor has the delivery)"
        )
    if no_key:
        raise DeliveryRejected(
            400, f"{no_key} of {total} records have neither a lead id nor a phone number"
        )
    if distinct < total:  # the same lead twice in one delivery: its newest state wins
        cursor.execute(
            "CREATE TEMP TABLE _dedup AS SELECT * FROM _batch QUALIFY row_number() OVER "
            "(PARTITION BY campaign_name, lead_key ORDER BY updated_at DESC NULLS LAST) = 1"
        )
        cursor.execute("DROP TABLE _batch")
        cursor.execute("ALTER TABLE _dedup RENAME TO _batch")
    phases.mark("check")
    return distinct


# -- mapping -------------------------------------------------------------------------------


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _paths(source: RecordsFile) -> str:
    files = source.files
    if len(files) == 1:
        return _literal(str(files[0]))
    return "[" + ", ".join(_literal(str(f)) for f in files) + "]"


def _reader(source: RecordsFile, keys: list[str]) -> str:
    path = _paths(source)
    if source.format == "csv":
        return f"read_csv({path}, all_varchar = true, header = true)"
    columns = ", ".join(f"{_literal(k)}: 'VARCHAR'" for k in keys)
    json_format = "array" if source.format == "json" else "newline_delimited"
    return (
        f"read_json({path}, format = '{json_format}', records = true, columns = {{{columns}}}, "
        f"maximum_object_size = {_MAX_OBJECT_BYTES})"
    )


def _objects(source: RecordsFile) -> str:
    json_format = "array" if source.format == "json" else "newline_delimited"
    return (
        f"read_json_objects({_paths(source)}, format = '{json_format}', "
        f"maximum_object_size = {_MAX_OBJECT_BYTES})"
    )


def _usable(keys: Iterable[str]) -> list[str]:
    """Keys DuckDB can read as columns: not empty, one per case-insensitive spelling."""
    chosen: dict[str, str] = {}
    for key in sorted(k for k in keys if k):
        chosen.setdefault(key.lower(), key)
    if len(chosen) > _MAX_FIELDS:
        raise DeliveryRejected(400, f"the records have more than {_MAX_FIELDS} distinct fields")
    return sorted(chosen.values())


def _has_key_field(keys: Iterable[str]) -> bool:
    return any(column_for(k) in ("lead_id", "phone_number") for k in keys)


class _KeyScan(threading.Thread):
    """Collects the keys of every record (the whole file) on its own cursor."""

    def __init__(self, store, source: RecordsFile) -> None:
        super().__init__(name="ingest-key-scan", daemon=True)
        self.cursor = store.cursor()
        self.source = source
        self.keys: set[str] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            rows = self.cursor.execute(
                f"SELECT DISTINCT unnest(json_keys(json)) FROM {_objects(self.source)}"
            ).fetchall()
            self.keys = {r[0] for r in rows}
        except BaseException as exc:  # re-raised by the caller
            self.error = exc
        finally:
            self.cursor.close()

    def result(self) -> set[str]:
        self.join()
        if self.error is not None:
            raise self.error
        return self.keys or set()


def _text(columns: list[str], *, trim: bool) -> str:
    parts = [
        f"NULLIF(trim({_ident(c)}), '')" if trim else f"NULLIF({_ident(c)}, '')" for c in columns
    ]
    if not parts:
        return "NULL::VARCHAR"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _columns(keys: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The delivered field names per `leads` column (the API's own spelling first when two
    spellings come), and the fields no column takes (they go to `extra`)."""
    by_column: dict[str, list[str]] = {}
    extras: list[str] = []
    preferred = {f.column: name_key(f.api_name) for f in LEAD_FIELDS}
    for key in keys:
        column = column_for(key)
        if column is None:
            extras.append(key)
        else:
            by_column.setdefault(column, []).append(key)
    for column, spellings in by_column.items():
        spellings.sort(key=lambda k, c=column: (name_key(k) != preferred[c], k))
    return by_column, extras


def _column_text(by_column: dict[str, list[str]], column: str) -> str:
    return _text(by_column.get(column, []), trim=column in _KEY_COLUMNS)


# Status and dial status hold a handful of distinct values: their mapping (a regular expression
# and IN lists per row, most of the mapping's cost) is computed once per value seen in the
# sample, and the rows take it from a CASE of plain comparisons; a value the sample did not
# have goes through the full expression. Same result either way.
_DERIVED = {"status": lead_status_sql, "dial_status": dial_bucket_sql}
_MAX_LOOKUP_VALUES = 64


def _sample_lookups(cursor, keys: list[str], relation: str) -> dict:
    by_column, _ = _columns(keys)
    values = {c: _column_text(by_column, c) for c in _DERIVED}
    rows = cursor.execute(
        f"""
        WITH sample AS MATERIALIZED (
            SELECT {values["status"]} AS status, {values["dial_status"]} AS dial_status
            FROM (SELECT * FROM {relation} LIMIT {_SAMPLE_RECORDS})
        )
        SELECT 'status', status, {lead_status_sql("status")}
        FROM (SELECT DISTINCT status FROM sample)
        UNION ALL
        SELECT 'dial_status', dial_status, {dial_bucket_sql("dial_status")}
        FROM (SELECT DISTINCT dial_status FROM sample)
        """
    ).fetchall()
    lookups: dict[str, list[tuple[str | None, str]]] = {c: [] for c in _DERIVED}
    for column, value, mapped in rows:
        lookups[column].append((value, mapped))
    return {
        column: pairs
        for column, pairs in lookups.items()
        if len(pairs) <= _MAX_LOOKUP_VALUES
        and all(v is None or (len(v) <= 200 and "\x00" not in v) for v, _ in pairs)
    }


def _derived(column: str, lookups: dict) -> str:
    full = _DERIVED[column](column)
    pairs = lookups.get(column)
    if not pairs:
        return full
    whens = " ".join(
        f"WHEN {column} IS NULL THEN {_literal(mapped)}"
        if value is None
        else f"WHEN {column} = {_literal(value)} THEN {_literal(mapped)}"
        for value, mapped in pairs
    )
    return f"CASE {whens} ELSE {full} END"


def _mapped_select(source: _Source, delivery_id: int, campaign: str | None) -> tuple[str, list]:
    """One SELECT giving the `leads` columns (in _LEADS_COLUMNS order) from the source's
    relation. It fails with _LONG_FIELD_MARK when a text value is over the length limit.

    Its one parameter is the delivery's campaignName (for records that carry none).
    """
    by_column, extras = _columns(source.keys)

    def text(column: str) -> str:
        return _column_text(by_column, column)

    if extras:
        entries = ", ".join(f"struct_pack(k := {_literal(k)}, v := {_ident(k)})" for k in extras)
        extra = (
            f"NULLIF(to_json(map_from_entries(list_filter([{entries}], "
            "lambda e: e.v IS NOT NULL AND e.v <> '')))::VARCHAR, '{}')::JSON"
        )
    else:
        extra = "NULL::JSON"
    return (
        f"""
        SELECT campaign_name,
               coalesce(lead_id, phone_number || '|' ||
                        coalesce(strftime(created_at, '%Y-%m-%d %H:%M:%S'), '')) AS lead_key,
               lead_id, phone_number, name, status,
               {_derived("status", source.lookups)} AS lead_status,
               dial_status,
               {_derived("dial_status", source.lookups)} AS dial_bucket,
               disposition, comments, agent_id, agent_name, attempts, priority, ucid,
               call_duration_s, created_at, updated_at,
               CASE WHEN {_TOO_LONG} THEN error({_literal(_LONG_FIELD_MARK)}) ELSE extra END
                   AS extra,
               {int(delivery_id)}::BIGINT AS delivery_id
        FROM (
            SELECT coalesce({text("campaign_name")}, ?) AS campaign_name,
                   {text("lead_id")} AS lead_id,
                   {text("phone_number")} AS phone_number,
                   {text("name")} AS name,
                   {text("status")} AS status,
                   {text("dial_status")} AS dial_status,
                   {text("disposition")} AS disposition,
                   {text("comments")} AS comments,
                   {text("agent_id")} AS agent_id,
                   {text("agent_name")} AS agent_name,
                   TRY_CAST({text("attempts")} AS INTEGER) AS attempts,
                   TRY_CAST({text("priority")} AS INTEGER) AS priority,
                   {text("ucid")} AS ucid,
                   TRY_CAST(epoch(TRY_CAST({text("call_duration")} AS INTERVAL)) AS INTEGER)
                       AS call_duration_s,
                   TRY_CAST({text("created_at")} AS TIMESTAMPTZ) AS created_at,
                   TRY_CAST({text("updated_at")} AS TIMESTAMPTZ) AS updated_at,
                   {extra} AS extra
            FROM {source.relation}
        )
        """,
        [campaign],
    )


def _describe(exc: BaseException) -> str:
    """A short message for a DuckDB error about the data: no paths, no record contents."""
    text = str(exc)
    if "UTF-8" in text or "unicode" in text.lower():
        return "the records are not valid UTF-8"
    if "Malformed JSON" in text:
        found = re.search(r"at byte (\d+)", text)
        where = f" (near byte {found.group(1)} of the records)" if found else ""
        return f"the records are not valid JSON{where}"
    if "Expected OBJECT" in text or "expected records" in text:
        return "every record must be a JSON object"
    if "duplicate key" in text:
        return "a record has the same field twice"
    if "maximum_object_size" in text or "maximum object size" in text:
        return "a record is larger than 1 MiB"
    if "CSV" in text:
        first = text.splitlines()[0]
        first = re.sub(r"(file|File)\s+\"?[^\s\"]+\"?", "file", first)
        return "the CSV file could not be read: " + first[:160]
    return "the records could not be read"
