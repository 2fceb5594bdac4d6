"""How a delivery writes its dates and durations, detected from its first records, and the SQL
that parses them: set-based in DuckDB, never per value in Python.

Timestamps: `YYYY-MM-DD HH:MM:SS` (CloudAgent's own) and the rest of ISO 8601 (`T`, fractions,
a zone: DuckDB's own cast reads them), `DD-MM-YYYY`, `DD/MM/YYYY`, `MM/DD/YYYY` (and
`MM-DD-YYYY`) with `HH:MM[:SS]`, 12-hour `hh:MM[:SS] AM/PM` or no time, and epoch seconds or
milliseconds (10 or 13 digits). One aggregate over the sample counts the values each candidate
reads; the family reading the most wins. Day-first and month-first read the same values when
no day is over 12: then the account's `date_order` decides, and the report says so.

Zone-less values are the account's local time (the connection's TimeZone is the account's
zone, and a naive timestamp cast to TIMESTAMPTZ is read in it); a value with a zone, or an
epoch, keeps its instant.

Cost: the default delivery's values all pass DuckDB's cast, so the candidates (whose failed
parses are what is expensive) only ever see the sample's other values, at most
`_CANDIDATE_VALUES` of them.

Durations: `HH:MM:SS`, `MM:SS` (two parts are minutes and seconds) or plain seconds, each
value by its own shape; the sample only names the form for the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.store.ingest.records import sql_literal

_CANDIDATE_VALUES = 1_000  # the sample's non-ISO values the strptime candidates are tried on
_ISO_PREFIX = "____-%"  # what DuckDB's own cast may read (checked first: cheap)

_TIMES = (  # (strptime suffix, label suffix)
    (" %H:%M:%S", " HH:MM:SS"),
    (" %H:%M", " HH:MM"),
    (" %I:%M:%S %p", " hh:mm:ss AM/PM"),
    (" %I:%M %p", " hh:mm AM/PM"),
    ("", ""),
)
_DATES = {  # family -> (strptime date, label date)
    "DMY-": ("%d-%m-%Y", "DD-MM-YYYY"),
    "DMY/": ("%d/%m/%Y", "DD/MM/YYYY"),
    "MDY-": ("%m-%d-%Y", "MM-DD-YYYY"),
    "MDY/": ("%m/%d/%Y", "MM/DD/YYYY"),
}
_ZONED = r"(Z|[+-]\d\d:?\d\d)$"


@dataclass(frozen=True)
class ValueFormat:
    """The format a column's values were read with. `kind`: cast (DuckDB's own ISO reading),
    strptime (`patterns`, the most frequent first), epoch, or duration."""

    kind: str
    pattern: str
    label: str
    patterns: tuple[str, ...] = ()
    ambiguous: bool = False
    decided_by: str | None = None

    def report(self) -> dict:
        entry = {"format": self.pattern, "label": self.label}
        if self.kind != "duration":
            entry |= {"ambiguous": self.ambiguous, "decided_by": self.decided_by}
        return entry


def _family_sql(column: str, family: str) -> str:
    date = _DATES[family][0]
    separator = family[-1]
    counts = ", ".join(
        f"'{i}': count(*) FILTER (WHERE try_strptime(v, {sql_literal(date + t)}) IS NOT NULL)"
        for i, (t, _) in enumerate(_TIMES)
    )
    return (
        f"(SELECT {{{counts}}} FROM (SELECT v FROM (SELECT {column} AS v FROM _others) "
        f"WHERE v LIKE '%{separator}%' LIMIT {_CANDIDATE_VALUES}))"
    )


def _timestamp_sql(column: str) -> str:
    """One struct of counts over the sample for a timestamp column."""

    def field(n: int) -> str:
        pattern = r"^\s*(\d{1,2})[-/](\d{1,2})[-/]"
        return f"TRY_CAST(regexp_extract({column}, '{pattern}', {n}) AS INT)"

    families = ", ".join(f"'{f}': {_family_sql(column, f)}" for f in _DATES)
    return f"""{{
        'values': (SELECT count({column}) FROM _sample),
        'iso': (SELECT {{'n': count(*), 't': count(*) FILTER (WHERE v[11] = 'T'),
                         'zoned': count(*) FILTER (WHERE regexp_matches(v, '{_ZONED}')),
                         'date_only': count(*) FILTER (WHERE length(v) = 10)}}
                FROM (SELECT {column} AS v FROM _sample WHERE {column} LIKE '{_ISO_PREFIX}'
                      AND TRY_CAST({column} AS TIMESTAMPTZ) IS NOT NULL)),
        'epoch': (SELECT {{'s': count(*) FILTER (WHERE length(v) = 10),
                           'ms': count(*) FILTER (WHERE length(v) = 13)}}
                  FROM (SELECT {column} AS v FROM _others
                        WHERE regexp_full_match({column}, '\\d{{10}}(\\d{{3}})?'))),
        'day_over_12': (SELECT {{'first': max({field(1)}) > 12,
                                 'second': max({field(2)}) > 12}} FROM _others),
        {families}
    }}"""


def _duration_sql(column: str) -> str:
    return f"""(SELECT {{
        'hms': count(*) FILTER (WHERE {column} LIKE '%:%:%'),
        'ms': count(*) FILTER (WHERE {column} LIKE '%:%' AND {column} NOT LIKE '%:%:%'),
        'seconds': count(*) FILTER (WHERE {column} NOT LIKE '%:%')
    }} FROM _sample)"""


def detection_sql(columns: list[str]) -> tuple[str, str]:
    """For `columns` of CTE `_sample` (their text; `call_duration` a duration, the others
    timestamps): the CTE `_others` (the rows some candidate must look at) and one struct of
    counts per column, to read with `chosen_formats`."""
    dates = [c for c in columns if c != "call_duration"]
    others = " OR ".join(
        f"({c} IS NOT NULL AND NOT ({c} LIKE '{_ISO_PREFIX}' AND "
        f"TRY_CAST({c} AS TIMESTAMPTZ) IS NOT NULL))"
        for c in dates
    )
    parts = [
        f"'{c}': {_duration_sql(c) if c == 'call_duration' else _timestamp_sql(c)}" for c in columns
    ]
    cte = f"_others AS MATERIALIZED (SELECT * FROM _sample WHERE {others or 'FALSE'})"
    return cte, "{" + ", ".join(parts) + "}"


def chosen_formats(found: dict, date_order: str) -> dict[str, ValueFormat]:
    """The format of each column from its counts (`detection_sql`): none for a column
    without values."""
    chosen = {}
    for column, counts in found.items():
        if column == "call_duration":
            chosen[column] = _duration_format(counts)
        elif counts["values"]:
            chosen[column] = _timestamp_format(counts, date_order)
    return {c: f for c, f in chosen.items() if f is not None}


def _duration_format(counts: dict) -> ValueFormat | None:
    labels = {"hms": "HH:MM:SS", "ms": "MM:SS", "seconds": "seconds"}
    seen = sorted((n, labels[k]) for k, n in counts.items() if n)
    if not seen:
        return None
    label = " / ".join(name for _, name in reversed(seen))
    return ValueFormat("duration", label, label)


def _timestamp_format(counts: dict, date_order: str) -> ValueFormat:
    """The family reading the most sample values (DuckDB's own cast on a tie)."""
    iso = counts["iso"]
    epoch = counts["epoch"]["s"] + counts["epoch"]["ms"]
    families = {f: sum(counts[f].values()) for f in _DATES}
    best = max(families, key=lambda f: (families[f], f[:3] == date_order))
    if iso["n"] >= max(epoch, families[best]) or not max(epoch, families[best]):
        return _iso_format(iso)
    if epoch > families[best]:
        unit = "milliseconds" if counts["epoch"]["ms"] > counts["epoch"]["s"] else "seconds"
        return ValueFormat("epoch", f"epoch {unit}", f"epoch {unit}")
    ambiguous, decided_by = False, None
    twin = ("MDY" if best.startswith("DMY") else "DMY") + best[-1]
    if families[twin] == families[best]:  # no value tells day-first from month-first
        over = counts["day_over_12"]
        if over["first"] and not over["second"]:
            best, decided_by = "DMY" + best[-1], "a day over 12 in the first field"
        elif over["second"] and not over["first"]:
            best, decided_by = "MDY" + best[-1], "a day over 12 in the second field"
        else:
            best, ambiguous = date_order + best[-1], True
            decided_by = f"date_order {date_order}"
    elif families[twin]:
        decided_by = "a day over 12"
    date, date_label = _DATES[best]
    ranked = sorted(range(len(_TIMES)), key=lambda i: -counts[best][str(i)])
    patterns = tuple(date + _TIMES[i][0] for i in ranked)
    label = date_label + _TIMES[ranked[0]][1]
    return ValueFormat("strptime", patterns[0], label, patterns, ambiguous, decided_by)


def _iso_format(iso: dict) -> ValueFormat:
    if iso["t"] * 2 > iso["n"]:
        zoned = " with zone" if iso["zoned"] * 2 > iso["n"] else ""
        return ValueFormat("cast", "%Y-%m-%dT%H:%M:%S", f"ISO 8601 YYYY-MM-DDTHH:MM:SS{zoned}")
    if iso["date_only"] * 2 > iso["n"]:
        return ValueFormat("cast", "%Y-%m-%d", "YYYY-MM-DD")
    return ValueFormat("cast", "%Y-%m-%d %H:%M:%S", "YYYY-MM-DD HH:MM:SS")


def timestamp_sql(text: str, found: ValueFormat | None) -> str:
    """TIMESTAMPTZ of a text column read with its detected format; a value in another form
    DuckDB reads by itself (ISO 8601, a date alone) is still read."""
    iso = f"TRY_CAST({text} AS TIMESTAMPTZ)"
    if found is None or found.kind == "cast":
        return iso
    if found.kind == "epoch":
        number = f"TRY_CAST({text} AS BIGINT)"
        parsed = (
            f"CASE length({text}) WHEN 10 THEN to_timestamp({number}) "
            f"WHEN 13 THEN to_timestamp({number} / 1000) END"
        )
    else:
        patterns = ", ".join(sql_literal(p) for p in found.patterns)
        parsed = f"try_strptime({text}, [{patterns}])::TIMESTAMPTZ"
    return f"coalesce({parsed}, {iso})"


def duration_sql(text: str) -> str:
    """Whole seconds of a duration: `HH:MM:SS`, `MM:SS` or seconds, each value by its shape."""
    minutes = f"TRY_CAST(split_part({text}, ':', 1) AS INTEGER)"
    seconds = f"TRY_CAST(split_part({text}, ':', 2) AS DOUBLE)"
    return (
        f"CASE WHEN {text} LIKE '%:%' AND {text} NOT LIKE '%:%:%' "
        f"THEN TRY_CAST({minutes} * 60 + {seconds} AS INTEGER) "
        f"ELSE TRY_CAST(epoch(TRY_CAST({text} AS INTERVAL)) AS INTEGER) END"
    )
