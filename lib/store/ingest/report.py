"""A delivery's report, written with it (`raw_deliveries.report`): what the delivery inspector and
the connection check show. The shape in words, every field and the column it went to, the date
formats read, the values that did not parse (counted, with masked examples), dial status and
status values outside the known vocabulary, and the rows new, updated and unchanged.

Everything is read from the delivery's mapped rows (every record, stored or not), one query
for the values that did not parse (each is kept in `extra` under its field's name,
lib/store/ingest/mapping.py) and one for the status values, never per record.
"""

from __future__ import annotations

import json

from lib.fields import dial_status_known_sql, lead_status_known_sql
from lib.store.ingest.mapping import PARSED_FIELDS, Source, field_report, parsed_fields
from lib.store.ingest.records import sql_literal

EXAMPLES = 3
_MAX_VALUES = 50  # unknown values listed per kind, the most frequent first
# Runs of 6 or more digits (phone numbers) keep their first and last two digits.
_MASK = r"regexp_replace({v}, '(\d{{2}})\d{{2,}}(\d{{2}})', '\1******\2', 'g')"


def shape_words(variant: str | None) -> str:
    """The variant (`json/data`, `form/json/records`, `json/link/csv`, ...) in plain words."""
    if not variant:
        return "not recognised"
    parts = variant.split("/")
    words = []
    if parts[0] == "form":
        words.append("a form body whose data= field holds")
        parts = parts[1:]
        if parts and parts[0] == "json":
            parts = parts[1:]
    elif parts[0] == "json":
        parts = parts[1:]
    if "link" in parts:
        kind = parts[parts.index("link") + 1] if len(parts) > parts.index("link") + 1 else "?"
        words.append(f"a link to a {kind.upper()} file")
    elif parts and parts[0] == "list":
        words.append("a bare JSON list of records")
    elif parts and parts[0] == "record":
        words.append("a single record object")
    elif parts and parts[0] == "ndjson":
        words.append("newline-delimited JSON records")
    elif parts:
        words.append(f'an inline list of records under the key "{parts[0]}"')
    return " ".join(words) or variant


def build_report(cursor, source: Source, variant: str, loaded) -> dict:
    """The report of a delivery written (`loaded`: its rows, and the relation holding them)."""
    checked = parsed_fields(source)
    failures, warnings = _failures(cursor, loaded.relation, checked)
    return {
        "variant": variant,
        "shape": shape_words(variant),
        **source_report(source),
        "failures": failures,
        "unknown_values": _unknown_values(cursor, loaded.relation, source),
        "rows": loaded.rows,
        "new": loaded.new,
        "updated": loaded.updated,
        "unchanged": loaded.unchanged,
        "warnings": warnings,
        "error": None,
    }


def source_report(source: Source) -> dict:
    """What the records' first reading tells: every field and its column, the formats."""
    return {
        "fields": field_report(source.delivered_keys(), source.mapping),
        "formats": {column: found.report() for column, found in source.formats.items()},
    }


def failure_report(variant: str | None, error: str, known: dict) -> dict:
    """What is known of a delivery that could not be used (`known`: `source_report`'s, when
    its records could be read); nothing of it was stored."""
    return {
        "variant": variant,
        "shape": shape_words(variant),
        "fields": [],
        "formats": {},
        **known,
        "failures": {},
        "unknown_values": {},
        "rows": 0,
        "new": 0,
        "updated": 0,
        "unchanged": 0,
        "warnings": 0,
        "error": error,
    }


def _failures(cursor, relation: str, checked: list[tuple[str, str]]) -> tuple[dict, int]:
    """Per parsed column, the values that did not parse (kept in `extra`): how many, up to
    EXAMPLES masked examples; and the records with at least one."""
    if not checked:
        return {}, 0
    parts, anyone = [], []
    for column, name in checked:
        kept = f"json_extract_string(extra, {sql_literal(json_path(name))})"
        failed = f"({column} IS NULL AND {kept} IS NOT NULL)"
        anyone.append(failed)
        parts.append(
            f"count(*) FILTER (WHERE {failed}), "
            f"list(DISTINCT encode({_MASK.format(v=kept)})) FILTER (WHERE {failed})"
        )
    nulls = " OR ".join(f"{column} IS NULL" for column, _ in checked)  # only such rows can fail
    row = cursor.execute(
        f"SELECT {', '.join(parts)}, count(*) FILTER (WHERE {' OR '.join(anyone)}) "
        f"FROM {relation} WHERE extra IS NOT NULL AND ({nulls})"
    ).fetchone()
    failures = {}
    for index, (column, _) in enumerate(checked):
        count, examples = row[2 * index], row[2 * index + 1]
        if count:
            failures[PARSED_FIELDS[column]] = {
                "count": int(count),
                "examples": sorted(_text(e) for e in examples or [])[:EXAMPLES],
            }
    return failures, int(row[-1])


def _text(value: bytes) -> str:
    """A value fetched as bytes: DuckDB may hold invalid UTF-8 (a lone surrogate's escape)."""
    return value.decode(errors="replace")


def json_path(name: str) -> str:
    """The JSON path of a top-level key, whatever its characters."""
    return "$." + json.dumps(name)


def _unknown_values(cursor, relation: str, source: Source) -> dict:
    """Dial status and status values outside the known vocabulary (or mapped in settings),
    the bucket each fell into and how many of the delivery's leads have it: one query."""
    overrides = source.mapping.values
    groups, parts = [], []
    for column, bucket, known in (
        ("dial_status", "dial_bucket", dial_status_known_sql("v")),
        ("status", "lead_status", lead_status_known_sql("v")),
    ):
        mapped = ", ".join(sql_literal(v) for v in overrides.get(column) or {}) or "NULL"
        # Materialised: the vocabulary test runs once per distinct value, not pushed below the
        # grouping onto every row.
        groups.append(
            f"_{column} AS MATERIALIZED (SELECT {column} AS v, {bucket} AS b, count(*) AS n "
            f"FROM {relation} WHERE {column} IS NOT NULL GROUP BY ALL)"
        )
        parts.append(
            f"SELECT '{column}' AS kind, v, b, n FROM _{column} "
            f"WHERE NOT {known} OR v IN ({mapped})"
        )
    rows = cursor.execute(
        f"WITH {', '.join(groups)} "
        f"SELECT kind, encode(v), b, n FROM ({' UNION ALL '.join(parts)}) "
        f"QUALIFY row_number() OVER (PARTITION BY kind ORDER BY n DESC, v) <= {_MAX_VALUES} "
        "ORDER BY kind, n DESC, v"
    ).fetchall()
    found: dict[str, list[dict]] = {}
    for kind, value, bucket, count in rows:
        text = _text(value)
        how = "settings" if text in (overrides.get(kind) or {}) else "default"
        found.setdefault(kind, []).append(
            {"value": text, "bucket": bucket, "leads": int(count), "mapped_by": how}
        )
    return found
