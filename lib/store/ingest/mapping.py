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

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from lib.fields import (
    API_TIMESTAMP_FORMAT,
    LEAD_FIELDS,
    dial_bucket_sql,
    lead_status_sql,
    name_key,
)
from lib.store.ingest.formats import (
    FORMAT_SAMPLE_RECORDS,
    ValueFormat,
    candidates_sql,
    chosen_formats,
    duration_sql,
    needs_candidates,
    shape_sql,
    timestamp_sql,
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
from lib.store.mappings import DETECTED, IngestMapping, load_mapping
from lib.store.receive import RecordsFile

LEADS_COLUMNS = (
    "campaign_name", "lead_key", "lead_id", "phone_number", "name", "status", "lead_status",
    "dial_status", "dial_bucket", "disposition", "comments", "agent_id", "agent_name", "attempts",
    "priority", "ucid", "call_duration_s", "created_at", "updated_at", "extra", "delivery_id",
)  # fmt: skip
_FORMAT_COLUMNS = ("created_at", "updated_at", "call_duration")
# The parsed `leads` columns and the field (lib/fields.py column) each is read from.
PARSED_FIELDS = {
    "attempts": "attempts", "priority": "priority", "call_duration_s": "call_duration",
    "created_at": "created_at", "updated_at": "updated_at",
}  # fmt: skip
_KEY_COLUMNS = ("lead_id", "phone_number", "campaign_name")  # trimmed; other text kept as is
_TEXT_COLUMNS = ("campaign_name", "lead_id", "phone_number", "name", "status", "dial_status",
                 "disposition", "comments", "agent_id", "agent_name", "ucid",
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
    mapping: IngestMapping = field(default_factory=IngestMapping)
    formats: dict[str, ValueFormat] = field(default_factory=dict)
    first: tuple[str, ...] = ()  # the first record's fields, in the order delivered

    def delivered_keys(self) -> list[str]:
        """The fields read, in delivery order: the first record's, then the others by name."""
        ordered = [k for k in dict.fromkeys(self.first) if k in set(self.keys)]
        return ordered + [k for k in self.keys if k not in set(ordered)]

    def complete_keys(self) -> list[str]:
        """Every field name of the file (waits for the key scan, when one runs)."""
        if self.scan is None:
            return self.keys
        return usable_keys(self.scan.result())

    def with_keys(self, keys: list[str]) -> Source:
        relation = records_reader(self.records, keys)
        return Source(self.records, keys, relation, self.lookups, None, self.mapping, self.formats,
                      self.first)  # fmt: skip

    def stop(self) -> None:
        if self.scan is not None:
            self.scan.join()


def discover_source(store, cursor, records: RecordsFile, phases: Phases) -> Source:
    """The field names from a sample of the records (the key scan checks them against every
    record meanwhile, on its own cursor: the write waits for it before committing), the
    mapping in force, and the format of each date column (from the sample's values)."""
    mapping = load_mapping(store, cursor)
    cursor.execute("DROP TABLE IF EXISTS _raw")
    if records.format == "csv":
        cursor.execute(f"CREATE TEMP TABLE _raw AS SELECT * FROM {records_reader(records, [])}")
        header = [r[0] for r in cursor.execute("DESCRIBE _raw").fetchall()]
        keys = usable_keys(header)
        phases.mark("stage")
        lookups, formats = sample_facts(cursor, keys, "_raw", mapping)
        return Source(records, keys, "_raw", lookups, None, mapping, formats, tuple(header))
    sampled, sample, first = cursor.execute(
        f"SELECT count(*), list_distinct(flatten(list(json_keys(json)))), "
        f"json_keys(first(json)) FROM "
        f"(SELECT json FROM {records_objects(records)} LIMIT {SAMPLE_RECORDS})"
    ).fetchone()
    keys = usable_keys(sample or [])
    # A file longer than the sample gets all its keys collected on the other core meanwhile.
    scan = KeyScan(store, records, first or ()) if sampled >= SAMPLE_RECORDS else None
    if scan is not None:
        scan.start()
        if not keys:  # nothing to read yet: the whole file decides
            keys, scan = usable_keys(scan.result()), None
    if not keys:
        refuse_keyless(cursor, records)
        return Source(records, [], "", {}, None, mapping)
    relation = records_reader(records, keys)
    try:
        lookups, formats = sample_facts(cursor, keys, relation, mapping)
    except BaseException:
        if scan is not None:
            scan.join()
        raise
    phases.mark(f"sample keys ({len(records.files)} files)")
    return Source(records, keys, relation, lookups, scan, mapping, formats, tuple(first or ()))


def has_key_field(keys: Iterable[str], mapping: IngestMapping | None = None) -> bool:
    mapping = mapping or IngestMapping()
    return any(mapping.target(k)[0] in ("lead_id", "phone_number") for k in keys)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _trimmed(column: str) -> str:
    """trim() of a column, skipped where it cannot remove anything: trim drops the Unicode space
    separators, and an all-ASCII value (strlen = length) whose first byte is past space and
    below DEL and whose last is not a space has none at either end. trim copies every value;
    the checks are cheaper, and most values need no trim (measured: a tenth of the mapping)."""
    x = _ident(column)
    return (
        f"CASE WHEN {x} < '!' OR {x} >= chr(127) OR suffix({x}, ' ') "
        f"OR strlen({x}) <> length({x}) THEN trim({x}) ELSE {x} END"
    )


def _text(columns: list[str], *, trim: bool) -> str:
    parts = [f"NULLIF({_trimmed(c) if trim else _ident(c)}, '')" for c in columns]
    if not parts:
        return "NULL::VARCHAR"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _columns(keys: list[str], mapping: IngestMapping) -> tuple[dict[str, list[str]], list[str]]:
    """The delivered field names per `leads` column (an explicit mapping first, then the API's
    own spelling when two spellings come), and the fields no column takes (they go to `extra`)."""
    by_column: dict[str, list[str]] = {}
    extras: list[str] = []
    explicit: set[str] = set()
    preferred = {f.column: name_key(f.api_name) for f in LEAD_FIELDS}
    for key in keys:
        column, how = mapping.target(key)
        if column is None:
            extras.append(key)
        else:
            by_column.setdefault(column, []).append(key)
            if how != DETECTED:
                explicit.add(key)
    for column, spellings in by_column.items():
        spellings.sort(key=lambda k, c=column: (k not in explicit, name_key(k) != preferred[c], k))
    return by_column, extras


def field_report(keys: list[str], mapping: IngestMapping) -> list[dict]:
    """Every delivered field with the column it went to (None: kept in `extra`) and why."""
    rows = []
    by_column, _ = _columns(keys, mapping)
    used = {spellings[0] for spellings in by_column.values()}
    for key in keys:
        column, how = mapping.target(key)
        row = {"field": key, "column": column, "how": how}
        if column is not None and key not in used:
            row["note"] = "a second spelling: read where the first is empty"
        rows.append(row)
    return rows


def parsed_fields(source: Source) -> list[tuple[str, str]]:
    """(parsed `leads` column, the delivered field it is read from) for each one delivered."""
    by_column, _ = _columns(source.keys, source.mapping)
    return [
        (column, by_column[read_from][0])
        for column, read_from in PARSED_FIELDS.items()
        if read_from in by_column
    ]


def _column_text(by_column: dict[str, list[str]], column: str) -> str:
    trim = column in _KEY_COLUMNS or column in PARSED_FIELDS.values()
    return _text(by_column.get(column, []), trim=trim)


# Status and dial status hold a handful of distinct values: their mapping (a regular expression
# and IN lists per row, most of the mapping's cost) is computed once per value seen in the
# sample, and the rows take it from a CASE of plain comparisons; a value the sample did not
# have goes through the full expression. Same result either way.
_DERIVED = {"status": lead_status_sql, "dial_status": dial_bucket_sql}
_MAX_LOOKUP_VALUES = 64


def _bucket_sql(column: str, mapping: IngestMapping) -> str:
    """The bucket of a status or dial status value: an operator's value mapping first."""
    full = _DERIVED[column](column)
    overrides = mapping.values.get(column) or {}
    if not overrides:
        return full
    whens = " ".join(
        f"WHEN {sql_literal(value)} THEN {sql_literal(bucket)}"
        for value, bucket in sorted(overrides.items())
    )
    return f"CASE {column} {whens} ELSE {full} END"


def sample_lookups(cursor, keys: list[str], relation: str, mapping=None) -> dict:
    """The lookups of `sample_facts` alone (bench/ builds databases with them)."""
    return sample_facts(cursor, keys, relation, mapping or IngestMapping())[0]


def sample_facts(
    cursor, keys: list[str], relation: str, mapping: IngestMapping
) -> tuple[dict, dict[str, ValueFormat]]:
    """What the first records tell, in one query over them: the mapped lead_status and
    dial_bucket of each status and dial status value (left out for a column with too many or
    too odd values: it takes the full mapping), and the format of each date and duration
    column (`formats.py`)."""
    by_column, _ = _columns(keys, mapping)
    texts = {c: _column_text(by_column, c) for c in _DERIVED}
    formatted = [c for c in _FORMAT_COLUMNS if c in by_column]
    sample = (
        f"_sample AS MATERIALIZED (SELECT {', '.join(f'{t} AS {c}' for c, t in texts.items())} "
        f"FROM (SELECT * FROM {relation} LIMIT {SAMPLE_RECORDS}))"
    )
    # The formats from fewer records: reading three more fields of every sampled record would
    # cost the default delivery more than all of the detection.
    shaped = ", ".join(f"{_column_text(by_column, c)} AS {c}" for c in formatted)
    format_sample = (
        f"_sample AS MATERIALIZED (SELECT {shaped} FROM "
        f"(SELECT * FROM {relation} LIMIT {FORMAT_SAMPLE_RECORDS}))"
    )
    shapes_row = (
        f"UNION ALL SELECT 'formats', encode(to_json((WITH {format_sample} "
        f"SELECT {shape_sql(formatted)} FROM _sample))::VARCHAR), NULL"
        if formatted
        else ""
    )
    rows = cursor.execute(
        f"""
        WITH {sample}
        SELECT 'status', encode(status), {_bucket_sql("status", mapping)}
        FROM (SELECT DISTINCT status FROM _sample)
        UNION ALL
        SELECT 'dial_status', encode(dial_status), {_bucket_sql("dial_status", mapping)}
        FROM (SELECT DISTINCT dial_status FROM _sample)
        {shapes_row}
        """
    ).fetchall()
    lookups: dict[str, list[tuple[str | None, str]]] = {c: [] for c in _DERIVED}
    shapes: dict = {}
    for column, value, mapped in rows:
        if column == "formats":
            shapes = json.loads(value)
            continue
        try:
            lookups[column].append((None if value is None else value.decode(), mapped))
        except UnicodeDecodeError:  # not valid UTF-8 (a lone surrogate's escape): no literal
            continue  # can say it; that value takes the full mapping
    usable = {
        column: pairs
        for column, pairs in lookups.items()
        if len(pairs) <= _MAX_LOOKUP_VALUES
        and all(v is None or (len(v) <= 200 and "\x00" not in v) for v, _ in pairs)
    }
    # Values in another form than DuckDB's own (rare): the candidates counted, a second query.
    others = needs_candidates(shapes)
    candidates = {}
    if others:
        (found,) = cursor.execute(f"WITH {format_sample} {candidates_sql(others)}").fetchone()
        candidates = found
    return usable, chosen_formats(shapes, candidates, mapping.date_order)


def _derived(column: str, lookups: dict, mapping: IngestMapping) -> str:
    full = _bucket_sql(column, mapping)
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
    by_column, extras = _columns(source.keys, source.mapping)

    def text(column: str) -> str:
        return _column_text(by_column, column)

    # A value that does not parse is stored NULL and kept, as delivered, in `extra` under its
    # field's name: counted in the delivery's report, readable on the lead, never lost.
    parsed = {
        "attempts": f"TRY_CAST({text('attempts')} AS INTEGER)",
        "priority": f"TRY_CAST({text('priority')} AS INTEGER)",
        "call_duration_s": duration_sql(text("call_duration")),
        "created_at": timestamp_sql(text("created_at"), source.formats.get("created_at")),
        "updated_at": timestamp_sql(text("updated_at"), source.formats.get("updated_at")),
    }
    checked = parsed_fields(source)

    if extras:
        entries = ", ".join(f"struct_pack(k := {sql_literal(k)}, v := {_ident(k)})" for k in extras)
        extra = (
            f"NULLIF(to_json(map_from_entries(list_filter([{entries}], "
            "lambda e: e.v IS NOT NULL AND e.v <> '')))::VARCHAR, '{}')::JSON"
        )
    else:
        extra = "NULL::JSON"
    if checked:
        kept = ", ".join(
            f"struct_pack(k := {sql_literal(name)}, v := CASE WHEN {column} IS NULL "
            f"THEN _text_{column} END)"
            for column, name in checked
        )
        failed = " OR ".join(f"({c} IS NULL AND _text_{c} IS NOT NULL)" for c, _ in checked)
        with_failed = (
            "json_merge_patch(coalesce(extra, '{}'::JSON), to_json(map_from_entries("
            f"list_filter([{kept}], lambda e: e.v IS NOT NULL))))"
        )
        extra_out = f"CASE WHEN {failed} THEN {with_failed} ELSE extra END"
        texts = "".join(f", {text(PARSED_FIELDS[c])} AS _text_{c}" for c, _ in checked)
    else:
        extra_out, texts = "extra", ""
    return (
        f"""
        SELECT campaign_name,
               coalesce(lead_id, phone_number || '|' ||
                        coalesce(strftime(created_at, '{API_TIMESTAMP_FORMAT}'), '')) AS lead_key,
               lead_id, phone_number, name, status,
               {_derived("status", source.lookups, source.mapping)} AS lead_status,
               dial_status,
               {_derived("dial_status", source.lookups, source.mapping)} AS dial_bucket,
               disposition, comments, agent_id, agent_name, attempts, priority, ucid,
               call_duration_s, created_at, updated_at,
               CASE WHEN {_TOO_LONG} THEN error({sql_literal(LONG_FIELD_MARK)})
                    ELSE {extra_out} END AS extra,
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
                   {parsed["attempts"]} AS attempts,
                   {parsed["priority"]} AS priority,
                   {text("ucid")} AS ucid,
                   {parsed["call_duration_s"]} AS call_duration_s,
                   {parsed["created_at"]} AS created_at,
                   {parsed["updated_at"]} AS updated_at,
                   {extra} AS extra{texts}
            FROM {source.relation}
        )
        """,
        [campaign],
    )
