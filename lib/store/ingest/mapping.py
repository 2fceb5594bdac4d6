"""How delivered fields become `leads` columns: one SELECT over the records, no per-record Python.

The SELECT maps the delivered fields to the `leads` columns (`lib.fields.column_for`), parses
dates, durations and integers, derives lead_status, dial_bucket, lead_key and `extra` (the
unmapped fields), and refuses a text value over the length limit.

Field discovery: the keys of the first records decide what is read; when the file holds more
records than that sample, the keys of every record are collected on another cursor while the
write runs, and the write is done again, with every field, in the rare delivery whose later
records add fields (before the commit: nothing is ever stored without them).

The source: the write's SELECT reads the JSON records straight from the file(s), every field as
VARCHAR (no staging copy; a large array comes in pieces, read in parallel: `lib.store.receive`).
A CSV file is staged into TEMP TABLE _raw first (its columns come from DuckDB's sniffer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lib.fields import (
    API_TIMESTAMP_FORMAT,
    LEAD_FIELDS,
    column_for,
    dial_bucket_sql,
    lead_status_sql,
    name_key,
)
from lib.store.ingest.phases import Phases
from lib.store.ingest.records import (
    SAMPLE_RECORDS,
    KeyScan,
    records_objects,
    records_reader,
    refuse_keyless,
    sql_literal,
    usable_keys,
)
from lib.store.receive import RecordsFile

LEADS_COLUMNS = (
    "campaign_name", "lead_key", "lead_id", "phone_number", "name", "status", "lead_status",
    "dial_status", "dial_bucket", "disposition", "comments", "agent_id", "agent_name", "attempts",
    "priority", "ucid", "call_duration_s", "created_at", "updated_at", "extra", "delivery_id",
)  # fmt: skip
_KEY_COLUMNS = ("lead_id", "phone_number", "campaign_name")  # trimmed; other text kept as is
_TEXT_COLUMNS = ("lead_id", "phone_number", "name", "disposition", "comments", "agent_name",
                 "extra::VARCHAR")  # fmt: skip
_MAX_FIELD_CHARS = 65_536  # one value longer than this is refused with the whole delivery

# A mapped text value longer than _MAX_FIELD_CHARS makes the mapping SELECT itself fail (both
# write paths) with this marker: `strlen` (bytes, free) first, `length` (characters) only then.
LONG_FIELD_MARK = "dialstatus: field over the length limit"
LONG_FIELD_MESSAGE = f"a record has a field longer than {_MAX_FIELD_CHARS} characters"
_TOO_LONG = (
    f"greatest({', '.join(f'strlen({c})' for c in _TEXT_COLUMNS)}) > {_MAX_FIELD_CHARS} AND "
    f"greatest({', '.join(f'length({c})' for c in _TEXT_COLUMNS)}) > {_MAX_FIELD_CHARS}"
)


@dataclass
class Source:
    """What the write reads: the records' field names, a relation giving them as VARCHAR
    columns (TEMP TABLE _raw for CSV, else the JSON reader itself: no staging copy), and the
    mapped values of status and dial status seen in the sample (see `sample_lookups`)."""

    records: RecordsFile
    keys: list[str]
    relation: str
    lookups: dict[str, list[tuple[str | None, str]]]
    scan: KeyScan | None = None

    def complete_keys(self) -> list[str]:
        """Every field name of the file (waits for the key scan, when one runs)."""
        if self.scan is None:
            return self.keys
        return usable_keys(self.scan.result())

    def with_keys(self, keys: list[str]) -> Source:
        return Source(self.records, keys, records_reader(self.records, keys), self.lookups)

    def stop(self) -> None:
        if self.scan is not None:
            self.scan.join()


def discover_source(store, cursor, records: RecordsFile, phases: Phases) -> Source:
    """The field names from a sample of the records (the key scan checks them against every
    record meanwhile, on its own cursor: the write waits for it before committing)."""
    cursor.execute("DROP TABLE IF EXISTS _raw")
    if records.format == "csv":
        cursor.execute(f"CREATE TEMP TABLE _raw AS SELECT * FROM {records_reader(records, [])}")
        keys = usable_keys(r[0] for r in cursor.execute("DESCRIBE _raw").fetchall())
        phases.mark("stage")
        return Source(records, keys, "_raw", sample_lookups(cursor, keys, "_raw"))
    sampled, sample = cursor.execute(
        f"SELECT count(*), list_distinct(flatten(list(json_keys(json)))) FROM "
        f"(SELECT json FROM {records_objects(records)} LIMIT {SAMPLE_RECORDS})"
    ).fetchone()
    keys = usable_keys(sample or [])
    # A file longer than the sample gets all its keys collected on the other core meanwhile.
    scan = KeyScan(store, records) if sampled >= SAMPLE_RECORDS else None
    if scan is not None:
        scan.start()
        if not keys:  # nothing to read yet: the whole file decides
            keys, scan = usable_keys(scan.result()), None
    if not keys:
        refuse_keyless(cursor, records)
        return Source(records, [], "", {})
    relation = records_reader(records, keys)
    try:
        lookups = sample_lookups(cursor, keys, relation)
    except BaseException:
        if scan is not None:
            scan.join()
        raise
    phases.mark(f"sample keys ({len(records.files)} files)")
    return Source(records, keys, relation, lookups, scan)


def has_key_field(keys: Iterable[str]) -> bool:
    return any(column_for(k) in ("lead_id", "phone_number") for k in keys)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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


def sample_lookups(cursor, keys: list[str], relation: str) -> dict:
    """The mapped lead_status and dial_bucket of each status and dial status value in the
    sample (left out for a column with too many or too odd values: it takes the full mapping)."""
    by_column, _ = _columns(keys)
    values = {c: _column_text(by_column, c) for c in _DERIVED}
    rows = cursor.execute(
        f"""
        WITH sample AS MATERIALIZED (
            SELECT {values["status"]} AS status, {values["dial_status"]} AS dial_status
            FROM (SELECT * FROM {relation} LIMIT {SAMPLE_RECORDS})
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
        f"WHEN {column} IS NULL THEN {sql_literal(mapped)}"
        if value is None
        else f"WHEN {column} = {sql_literal(value)} THEN {sql_literal(mapped)}"
        for value, mapped in pairs
    )
    return f"CASE {whens} ELSE {full} END"


def mapped_select(source: Source, delivery_id: int, campaign: str | None) -> tuple[str, list]:
    """One SELECT giving the `leads` columns (in LEADS_COLUMNS order) from the source's
    relation. It fails with LONG_FIELD_MARK when a text value is over the length limit.

    Its one parameter is the delivery's campaignName (for records that carry none).
    """
    by_column, extras = _columns(source.keys)

    def text(column: str) -> str:
        return _column_text(by_column, column)

    if extras:
        entries = ", ".join(f"struct_pack(k := {sql_literal(k)}, v := {_ident(k)})" for k in extras)
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
                        coalesce(strftime(created_at, '{API_TIMESTAMP_FORMAT}'), '')) AS lead_key,
               lead_id, phone_number, name, status,
               {_derived("status", source.lookups)} AS lead_status,
               dial_status,
               {_derived("dial_status", source.lookups)} AS dial_bucket,
               disposition, comments, agent_id, agent_name, attempts, priority, ucid,
               call_duration_s, created_at, updated_at,
               CASE WHEN {_TOO_LONG} THEN error({sql_literal(LONG_FIELD_MARK)}) ELSE extra END
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
