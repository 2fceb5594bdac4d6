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

Cost: the sample's values are sorted by shape with LIKE (a cast or a regular expression per
value would double the sample's cost); the candidates (whose failed parses are what is
expensive) only see the values not shaped `YYYY-...`, at most `_CANDIDATE_VALUES` of them.

Durations: `HH:MM:SS`, `MM:SS` (two parts are minutes and seconds) or plain seconds, each
value by its own shape; the sample only names the form for the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.store.ingest.records import sql_literal

FORMAT_SAMPLE_RECORDS = 2_048  # the first records, whose values decide the formats
_CANDIDATE_VALUES = 1_000  # the sample's non-ISO values the strptime candidates are tried on
_ISO_PREFIX = "____-%"  # the shape of what DuckDB's own cast reads (a LIKE: cheap)

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


def _zoned(v: str) -> str:
    """An ISO value ending in a zone (`Z`, `+05:30`, `-0400`); LIKE, not a regular expression:
    this runs on every sampled value of the default delivery."""
    ends = ("%Z", "%+__:__", "%-__:__", "%+____", "%-____")
    return " OR ".join(f"{v} LIKE '{e}'" for e in ends)


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


def shape_sql(columns: list[str]) -> str:
    """One aggregate over CTE `_sample` (the columns' text; `call_duration` a duration, the
    others timestamps): how many values of each shape, LIKE only. Read by `chosen_formats`;
    `needs_candidates` says when the candidates must be counted too."""
    parts = []
    for c in columns:
        if c == "call_duration":
            counts = {
                "hms": f"{c} LIKE '%:%:%'",
                "ms": f"{c} LIKE '%:%' AND {c} NOT LIKE '%:%:%'",
                "seconds": f"{c} NOT LIKE '%:%'",
            }
        else:
            iso = f"{c} LIKE '{_ISO_PREFIX}'"
            counts = {
                "values": f"{c} IS NOT NULL",
                "iso": iso,
                "t": f"{iso} AND {c}[11] = 'T'",
                "zoned": f"{iso} AND {c}[11] = 'T' AND ({_zoned(c)})",
                "date_only": f"{iso} AND length({c}) = 10",
            }
        fields = ", ".join(f"'{k}': count(*) FILTER (WHERE {w})" for k, w in counts.items())
        parts.append(f"'{c}': {{{fields}}}")
    return "{" + ", ".join(parts) + "}"


def needs_candidates(shapes: dict) -> list[str]:
    """The timestamp columns with values DuckDB's own cast does not read."""
    return [c for c, n in shapes.items() if c != "call_duration" and n["values"] > n["iso"]]


def candidates_sql(columns: list[str]) -> str:
    """A SELECT over CTE `_sample` counting, per timestamp column, the values each strptime
    candidate and the epoch forms read (among at most `_CANDIDATE_VALUES` values not shaped
    like ISO), and whether a day field is over 12 (among all of them)."""
    parts = []
    for c in columns:
        others = f"(SELECT {c} AS v FROM _sample WHERE {c} NOT LIKE '{_ISO_PREFIX}')"
        first = f"(SELECT v FROM {others} LIMIT {_CANDIDATE_VALUES})"
        number = r"^\s*(\d{1,2})[-/](\d{1,2})[-/]"
        tried = {"s": "regexp_full_match(v, '\\d{10}')",
                 "ms": "regexp_full_match(v, '\\d{13}')"}  # fmt: skip
        for family, (date, _) in _DATES.items():
            for i, (time, _) in enumerate(_TIMES):
                tried[f"{family}{i}"] = (
                    f"v LIKE '%{family[-1]}%' AND "
                    f"try_strptime(v, {sql_literal(date + time)}) IS NOT NULL"
                )
        counts = ", ".join(f"'{k}': count(*) FILTER (WHERE {w})" for k, w in tried.items())
        over = ", ".join(
            f"'{name}': max(TRY_CAST(regexp_extract(v, '{number}', {n}) AS INT)) > 12"
            for n, name in ((1, "first"), (2, "second"))
        )
        parts.append(
            f"'{c}': {{'tried': (SELECT {{{counts}}} FROM {first}), "
            f"'day_over_12': (SELECT {{{over}}} FROM {others})}}"
        )
    return "SELECT {" + ", ".join(parts) + "}"


def chosen_formats(shapes: dict, candidates: dict, date_order: str) -> dict[str, ValueFormat]:
    """The format of each column from its counts (`shape_sql`, and `candidates_sql` for the
    columns `needs_candidates` named): none for a column without values."""
    chosen = {}
    for column, counts in shapes.items():
        if column == "call_duration":
            chosen[column] = _duration_format(counts)
        elif column in candidates:
            chosen[column] = _timestamp_format(counts, candidates[column], date_order)
        elif counts["values"]:
            chosen[column] = _iso_format(counts)
    return {c: f for c, f in chosen.items() if f is not None}


def _duration_format(counts: dict) -> ValueFormat | None:
    labels = {"hms": "HH:MM:SS", "ms": "MM:SS", "seconds": "seconds"}
    seen = sorted((n, labels[k]) for k, n in counts.items() if n)
    if not seen:
        return None
    label = " / ".join(name for _, name in reversed(seen))
    return ValueFormat("duration", label, label)


def _timestamp_format(shapes: dict, candidates: dict, date_order: str) -> ValueFormat:
    """The family reading the most sample values (DuckDB's own cast on a tie)."""
    tried = candidates["tried"]
    epoch = tried["s"] + tried["ms"]
    families = {f: sum(tried[f"{f}{i}"] for i in range(len(_TIMES))) for f in _DATES}
    best = max(families, key=lambda f: (families[f], f[:3] == date_order))
    if shapes["iso"] >= max(epoch, families[best]) or not max(epoch, families[best]):
        return _iso_format(shapes)
    if epoch > families[best]:
        unit = "milliseconds" if tried["ms"] > tried["s"] else "seconds"
        return ValueFormat("epoch", f"epoch {unit}", f"epoch {unit}")
    ambiguous, decided_by = False, "a day over 12"
    twin = ("MDY" if best.startswith("DMY") else "DMY") + best[-1]
    if families[twin] == families[best]:  # none of them tells day-first from month-first
        over = candidates["day_over_12"]
        if over["first"] and not over["second"]:
            best = "DMY" + best[-1]
        elif over["second"] and not over["first"]:
            best = "MDY" + best[-1]
        else:
            best, ambiguous = date_order + best[-1], True
            decided_by = f"date_order {date_order}"
    date, date_label = _DATES[best]
    ranked = sorted(range(len(_TIMES)), key=lambda i: -tried[f"{best}{i}"])
    patterns = tuple(date + _TIMES[i][0] for i in ranked)
    label = date_label + _TIMES[ranked[0]][1]
    return ValueFormat("strptime", patterns[0], label, patterns, ambiguous, decided_by)


def _iso_format(shapes: dict) -> ValueFormat:
    iso = shapes | {"n": shapes["iso"]}
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
    """Whole seconds of a duration: `HH:MM:SS`, `MM:SS` or seconds, each value by its shape;
    more than three parts, or a negative length, is unreadable (NULL)."""
    minutes = f"TRY_CAST(split_part({text}, ':', 1) AS INTEGER)"
    seconds = f"TRY_CAST(split_part({text}, ':', 2) AS DOUBLE)"
    return (
        f"CASE WHEN {text} LIKE '%:%:%:%' OR ltrim({text}) LIKE '-%' THEN NULL "
        f"WHEN {text} LIKE '%:%' AND {text} NOT LIKE '%:%:%' "
        f"THEN TRY_CAST({minutes} * 60 + {seconds} AS INTEGER) "
        f"ELSE TRY_CAST(epoch(TRY_CAST({text} AS INTERVAL)) AS INTEGER) END"
    )
