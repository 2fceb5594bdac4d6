"""KPI definitions and every aggregate query the pages show, computed in DuckDB.

Each query function takes a DuckDB cursor, the validated `Filters`, the account time zone and
(optionally) today's date in that zone, and returns a small pandas frame. Only the Leads page's
current page of rows and the explicit exports return lead rows.

The KPI vocabulary lives here, once: `COUNT_SQL` (how each count is computed), `KPIS` (the tiles,
in order, with their help text) and `ATTEMPTED_SQL`.

The Overview and Campaign aggregates read `lead_summary` (lib/store.py): lead counts per
combination of campaign, lead status, dial bucket, disposition, attempted, local day of the last
update, its local hour, and local day of creation, i.e. everything those pages filter or group by.
It holds thousands of rows where `leads` holds millions, and its local days and hours are computed
once instead of on every query. Ingest keeps it current in the delivery's transaction
(`update_summary`); when anything else changed the data version (a direct write, a category edit),
the first query rebuilds it (`summary_ready`), or, when a writer is busy, reads `leads` directly
with the same SQL (one row per lead, `leads` = 1), so an answer is never stale.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from lib.fields import DIAL_BUCKETS, LEAD_STATUSES
from lib.store import catalog
from lib.store.catalog import SALE
from lib.store.summary import SUMMARY_KEYS_SQL, categorised, summary_ready
from lib.view.filters import Filters, date_span, today_in, where_clause

CATEGORIES = catalog.CATEGORIES  # disposition categories (lib/store.py's DDL points here)

SMALL_SAMPLE = 30  # a rate whose denominator is below this is shown but marked as a small sample
NO_DISPOSITION = "(none)"
OTHER = "Other"


def _count(condition: str | None = None) -> str:
    """How many leads (the sum of the summary's `leads` column), optionally those matching."""
    if condition is None:
        return "coalesce(sum(leads), 0)::BIGINT"
    return f"coalesce(sum(leads) FILTER (WHERE {condition}), 0)::BIGINT"


# Count columns computed over the filtered leads (see `_base` for `attempted` and `category`).
COUNT_SQL: dict[str, str] = {
    "leads": _count(),
    "pending": _count("lead_status = 'Pending'"),
    "attempted": _count("attempted"),
    "answered": _count("dial_bucket = 'answered'"),
    "successes": _count("lead_status = 'Success'"),
    "conversions": _count(f"category = '{SALE}'"),
}


@dataclass(frozen=True)
class Kpi:
    name: str  # the tile's label: the product's vocabulary, the same on every page
    column: str  # the count column (rates: the numerator)
    denominator: str | None  # rates only
    help: str

    @property
    def is_rate(self) -> bool:
        return self.denominator is not None


KPIS: tuple[Kpi, ...] = (
    Kpi("Leads", "leads", None, "Leads matching the filters (one row per lead per campaign)."),
    Kpi(
        "Pending",
        "pending",
        None,
        "Leads whose status is Pending or empty (not yet dialled, or not final). "
        "Shown with its share of Leads.",
    ),
    Kpi(
        "Attempted",
        "attempted",
        None,
        "Leads dialled at least once: attempts > 0, or, when the attempt count is absent, "
        "a dial status other than not dialled. Shown with its share of Leads.",
    ),
    Kpi(
        "Answered",
        "answered",
        None,
        "Leads whose last dial status is in the answered bucket. Shown with its share of Leads.",
    ),
    Kpi(
        "Answer rate",
        "answered",
        "attempted",
        "Answered / Attempted.",
    ),
    Kpi(
        "Success rate",
        "successes",
        "attempted",
        "Leads with status Success / Attempted.",
    ),
    Kpi(
        "Conversions",
        "conversions",
        None,
        "Leads whose disposition is in the Sale category (Settings page: disposition "
        "categories). Shown with its share of Leads.",
    ),
    Kpi(
        "Conversion rate",
        "conversions",
        "answered",
        "Conversions / Answered.",
    ),
)
KPI_NAMES: tuple[str, ...] = tuple(k.name for k in KPIS)
SMALL_SAMPLE_HELP = (
    f"Rates whose denominator is under {SMALL_SAMPLE} are shown but marked as small samples."
)


@dataclass(frozen=True)
class KpiValue:
    kpi: Kpi
    value: float | int | None  # a count, or a rate as a fraction (None: nothing to divide by)
    numerator: int
    denominator: int | None  # rates: the denominator; counts: the Leads total (their share)

    @property
    def small_sample(self) -> bool:
        return self.kpi.is_rate and (self.denominator or 0) < SMALL_SAMPLE

    @property
    def share(self) -> float | None:
        """Counts: the share of Leads. Rates: the rate itself."""
        if not self.denominator:
            return None
        return self.numerator / self.denominator


def rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def kpi_values(counts: Mapping[str, int]) -> list[KpiValue]:
    """The tiles' values from the counts of `kpi_counts` (pure)."""
    values = []
    for kpi in KPIS:
        numerator = int(counts.get(kpi.column, 0) or 0)
        if kpi.is_rate:
            denominator = int(counts.get(kpi.denominator or "", 0) or 0)
            values.append(KpiValue(kpi, rate(numerator, denominator), numerator, denominator))
        else:
            total = int(counts.get("leads", 0) or 0)
            values.append(
                KpiValue(kpi, numerator, numerator, None if kpi.column == "leads" else total)
            )
    return values


# -- the filtered relation -------------------------------------------------------------------


def _today(tz: str, today: date | None) -> date:
    return today if today is not None else today_in(tz)


# -- the filtered relation -------------------------------------------------------------------


def _summary_where(filters: Filters, tz: str, today: date | None) -> tuple[str, dict[str, Any]]:
    """The filters over the summary: the date range as local calendar days of the basis date
    (the same rows as `where_clause`'s local-midnight bounds on the timestamps)."""
    day = _today(tz, today)
    where, params = where_clause(filters.replace(range="all", date_from=None, date_to=None), day)
    span = date_span(filters, day)
    if span is not None:
        column = "created_day" if filters.basis == "created" else "updated_day"
        if span[0] is not None:
            where += f" AND {column} >= $f_day_start"
            params["f_day_start"] = span[0]
        if span[1] is not None:
            where += f" AND {column} < $f_day_end"
            params["f_day_end"] = span[1]
    return where, params


def _base(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None,
    category: bool = True,
) -> tuple[str, dict[str, Any]]:
    """SQL of the filtered lead groups (the summary's columns, `leads` = how many), and its
    parameters. Count with `_count()`, never `count(*)`. Read from the summary when it is ready;
    otherwise one row per lead, with `category` resolved only when asked (it costs a join)."""
    where, params = _summary_where(filters, tz, today)
    if summary_ready(cursor):
        return f"SELECT * FROM lead_summary WHERE {where}", params
    # The same columns, one row per lead.
    source = f"(SELECT {SUMMARY_KEYS_SQL}, 1 AS leads FROM leads WHERE {where})"
    return (categorised(source) if category else f"SELECT * FROM {source}"), params


def _counts_select() -> str:
    return ", ".join(f"{sql} AS {name}" for name, sql in COUNT_SQL.items())


def _df(cursor: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
    return cursor.execute(sql, dict(params)).df()


def kpi_counts(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> dict[str, int]:
    """Every count behind the KPI tiles (`COUNT_SQL` keys) for the filtered leads."""
    base, params = _base(cursor, filters, tz, today)
    row = cursor.execute(f"SELECT {_counts_select()} FROM ({base})", params).fetchone()
    return {name: int(value or 0) for name, value in zip(COUNT_SQL, row, strict=True)}


def kpis(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> list[KpiValue]:
    return kpi_values(kpi_counts(cursor, filters, tz, today))


def _with_rates(frame: pd.DataFrame) -> pd.DataFrame:
    for kpi in KPIS:
        if kpi.is_rate:
            num, den = frame[kpi.column].astype(float), frame[kpi.denominator].astype(float)
            frame[kpi.name] = (num / den.where(den > 0)) * 100.0
            frame[kpi.name + " n"] = frame[kpi.denominator]
    return frame


def campaign_kpis(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """One row per campaign: every count, every rate (percent) and its denominator (`<rate> n`)."""
    base, params = _base(cursor, filters, tz, today)
    frame = _df(
        cursor,
        f"SELECT campaign_name AS campaign, {_counts_select()} FROM ({base}) "
        "GROUP BY campaign_name ORDER BY leads DESC, campaign_name",
        params,
    )
    return _with_rates(frame)


def comparison_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The Overview's comparison table: KPI names as columns, rates in percent, small samples."""
    columns = {"campaign": "Campaign"}
    for kpi in KPIS:
        columns[kpi.name if kpi.is_rate else kpi.column] = kpi.name
    table = frame[list(columns)].rename(columns=columns)
    for kpi in KPIS:
        if kpi.is_rate:  # one decimal, as shown: the CSV says what the table says
            table[kpi.name] = table[kpi.name].astype("float64").round(1)
    notes = []
    for _, row in frame.iterrows():
        small = [
            f"{k.name} (n={int(row[k.denominator])})"
            for k in KPIS
            if k.is_rate and int(row[k.denominator]) < SMALL_SAMPLE
        ]
        notes.append(", ".join(small))
    table["Small samples"] = notes
    return table


def best_and_worst(table: pd.DataFrame) -> dict[tuple[int, str], str]:
    """{(row position, rate column): "best" | "worst"} for the comparison table. Only campaigns
    whose denominator for that rate is not a small sample compete; ties are all marked; nothing
    is marked when fewer than two compete or all are equal."""
    marks: dict[tuple[int, str], str] = {}
    for kpi in KPIS:
        if not kpi.is_rate:
            continue
        notes = table["Small samples"]
        eligible = [
            (i, value)
            for i, (value, note) in enumerate(zip(table[kpi.name], notes, strict=True))
            if pd.notna(value) and f"{kpi.name} (n=" not in note
        ]
        if len(eligible) < 2:
            continue
        best = max(v for _, v in eligible)
        worst = min(v for _, v in eligible)
        if best == worst:
            continue
        for i, value in eligible:
            if value == best:
                marks[(i, kpi.name)] = "best"
            elif value == worst:
                marks[(i, kpi.name)] = "worst"
    return marks


def dial_buckets_by_campaign(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """Long frame: campaign, bucket (all five, in DIAL_BUCKETS order), leads, share (0-1)."""
    base, params = _base(cursor, filters, tz, today, category=False)
    frame = _df(
        cursor,
        f"""
        WITH counts AS (
            SELECT campaign_name, dial_bucket, sum(leads)::BIGINT AS leads
            FROM ({base}) GROUP BY ALL
        ), campaigns AS (SELECT DISTINCT campaign_name FROM counts),
        buckets AS (SELECT unnest($buckets) AS dial_bucket, generate_subscripts($buckets, 1) AS o)
        SELECT c.campaign_name AS campaign, b.dial_bucket AS bucket,
               coalesce(n.leads, 0) AS leads,
               coalesce(n.leads, 0) / sum(coalesce(n.leads, 0)) OVER (PARTITION BY c.campaign_name)
                   AS share
        FROM campaigns c CROSS JOIN buckets b
        LEFT JOIN counts n ON n.campaign_name = c.campaign_name AND n.dial_bucket = b.dial_bucket
        ORDER BY c.campaign_name, b.o
        """,
        {**params, "buckets": list(DIAL_BUCKETS)},
    )
    return frame


def bucket_counts(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """bucket, leads, share for the whole selection (all five buckets, in order)."""
    base, params = _base(cursor, filters, tz, today, category=False)
    return _df(
        cursor,
        f"""
        WITH counts AS (SELECT dial_bucket, sum(leads)::BIGINT AS leads FROM ({base}) GROUP BY ALL),
        buckets AS (SELECT unnest($buckets) AS dial_bucket, generate_subscripts($buckets, 1) AS o)
        SELECT b.dial_bucket AS bucket, coalesce(n.leads, 0) AS leads,
               coalesce(n.leads, 0) / nullif(sum(coalesce(n.leads, 0)) OVER (), 0) AS share
        FROM buckets b LEFT JOIN counts n USING (dial_bucket) ORDER BY b.o
        """,
        {**params, "buckets": list(DIAL_BUCKETS)},
    )


def dispositions_by_campaign(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    top: int = 8,
) -> pd.DataFrame:
    """Long frame over leads that have a disposition: campaign, disposition (the `top` most
    frequent overall, the rest as "Other"), is_other, leads, share within the campaign."""
    base, params = _base(cursor, filters, tz, today, category=False)
    return _df(
        cursor,
        f"""
        WITH d AS (
            SELECT campaign_name, disposition, leads FROM ({base})
            WHERE disposition IS NOT NULL AND trim(disposition) <> ''
        ), ranked AS (
            SELECT disposition, row_number() OVER (ORDER BY sum(leads) DESC, disposition) AS r
            FROM d GROUP BY disposition
        ), grouped AS (
            SELECT d.campaign_name,
                   CASE WHEN r.r <= $top THEN d.disposition ELSE NULL END AS disposition,
                   min(r.r) AS r, {_count()} AS leads
            FROM d JOIN ranked r USING (disposition) GROUP BY ALL
        )
        SELECT campaign_name AS campaign, coalesce(disposition, $other) AS disposition,
               disposition IS NULL AS is_other, leads,
               leads / sum(leads) OVER (PARTITION BY campaign_name) AS share
        FROM grouped ORDER BY campaign_name, is_other, r
        """,
        {**params, "top": int(top), "other": OTHER},
    )


def disposition_pareto(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    top: int = 10,
) -> pd.DataFrame:
    """disposition, category, is_other, leads, share, cumulative_share (0-1), sorted by leads
    (the `top` dispositions, then "Other"); leads without a disposition are left out."""
    base, params = _base(cursor, filters, tz, today)
    return _df(
        cursor,
        f"""
        WITH counts AS (
            SELECT disposition, any_value(category) AS category, {_count()} AS leads,
                   row_number() OVER (ORDER BY sum(leads) DESC, disposition) AS r
            FROM ({base}) WHERE disposition IS NOT NULL AND trim(disposition) <> ''
            GROUP BY disposition
        ), grouped AS (
            SELECT CASE WHEN r <= $top THEN disposition END AS disposition,
                   CASE WHEN r <= $top THEN category END AS category,
                   {_count()} AS leads, min(r) AS r
            FROM counts GROUP BY ALL
        )
        SELECT coalesce(disposition, $other) AS disposition, coalesce(category, '') AS category,
               disposition IS NULL AS is_other, leads,
               leads / sum(leads) OVER () AS share,
               sum(leads) OVER (ORDER BY disposition IS NULL, r) / sum(leads) OVER ()
                   AS cumulative_share
        FROM grouped ORDER BY disposition IS NULL, r
        """,
        {**params, "top": int(top), "other": OTHER},
    )


def status_bucket_matrix(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """Wide frame of counts: a row per lead status (Success, Fail, Pending), a column per bucket."""
    base, params = _base(cursor, filters, tz, today, category=False)
    long = _df(
        cursor,
        f"SELECT lead_status, dial_bucket, {_count()} AS leads FROM ({base}) GROUP BY ALL",
        params,
    )
    wide = long.pivot_table(
        index="lead_status", columns="dial_bucket", values="leads", aggfunc="sum", fill_value=0
    )
    wide = wide.reindex(index=list(LEAD_STATUSES), columns=list(DIAL_BUCKETS), fill_value=0)
    wide.index.name = "Lead status"
    wide.columns.name = None
    return wide.astype("int64")


def sunburst_paths(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """lead_status, dial_bucket, disposition ("(none)" when empty), leads."""
    base, params = _base(cursor, filters, tz, today, category=False)
    return _df(
        cursor,
        f"""
        SELECT lead_status, dial_bucket,
               CASE WHEN disposition IS NULL OR trim(disposition) = '' THEN $none
                    ELSE disposition END AS disposition,
               {_count()} AS leads
        FROM ({base}) GROUP BY ALL ORDER BY lead_status, dial_bucket, leads DESC, disposition
        """,
        {**params, "none": NO_DISPOSITION},
    )


def daily_trend(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """One row per local calendar day of the basis date: a count column per bucket (named as
    the bucket), n_attempted, n_answered and answer_rate (0-1, NaN when nothing was attempted)."""
    base, params = _base(cursor, filters, tz, today, category=False)
    column = "created_day" if filters.basis == "created" else "updated_day"
    pivots = ", ".join(
        f'{_count(f"dial_bucket = $b{i}")} AS "{bucket}"' for i, bucket in enumerate(DIAL_BUCKETS)
    )
    frame = _df(
        cursor,
        f"""
        SELECT {column} AS day, {pivots},
               {_count("attempted")} AS n_attempted,
               {_count("dial_bucket = 'answered'")} AS n_answered
        FROM ({base}) WHERE {column} IS NOT NULL GROUP BY ALL ORDER BY day
        """,
        {**params, **{f"b{i}": bucket for i, bucket in enumerate(DIAL_BUCKETS)}},
    )
    frame["answer_rate"] = frame["n_answered"] / frame["n_attempted"].where(
        frame["n_attempted"] > 0
    )
    return frame


WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hour_weekday(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """Attempted leads by the local weekday (1 = Monday) and hour of their LAST UPDATE:
    weekday, hour, attempted, answered, answer_rate. Only cells with attempts appear."""
    base, params = _base(cursor, filters, tz, today, category=False)
    frame = _df(
        cursor,
        f"""
        SELECT isodow(updated_day) AS weekday, updated_hour::BIGINT AS hour,
               {_count()} AS attempted, {_count("dial_bucket = 'answered'")} AS answered
        FROM ({base}) WHERE attempted AND updated_day IS NOT NULL
        GROUP BY ALL ORDER BY weekday, hour
        """,
        params,
    )
    frame["answer_rate"] = frame["answered"] / frame["attempted"]
    return frame


# -- lead rows ---------------------------------------------------------------------------------

LEAD_SORTS: dict[str, str] = {
    "Last updated (newest first)": "updated_at DESC NULLS LAST, campaign_name, lead_key",
    "Created (newest first)": "created_at DESC NULLS LAST, campaign_name, lead_key",
    "Most attempts first": "attempts DESC NULLS LAST, updated_at DESC NULLS LAST, lead_key",
    "Name (A to Z)": "name ASC NULLS LAST, campaign_name, lead_key",
}
DEFAULT_SORT = next(iter(LEAD_SORTS))

_DIGITS = "regexp_replace(coalesce(phone_number, ''), '[^0-9]', '', 'g')"
MASKED_PHONE_SQL = (
    f"CASE WHEN phone_number IS NULL THEN NULL WHEN length({_DIGITS}) <= 4 THEN {_DIGITS} "
    f"ELSE repeat('•', length({_DIGITS}) - 4) || right({_DIGITS}, 4) END"
)
_TS = "%Y-%m-%d %H:%M:%S"


def phone_sql(show_phones: bool) -> str:
    return "phone_number" if show_phones else MASKED_PHONE_SQL


def mask_phone(phone: str | None) -> str | None:
    """Python twin of MASKED_PHONE_SQL (for values outside the leads table)."""
    if phone is None:
        return None
    digits = "".join(ch for ch in str(phone) if ch.isdigit() and ch.isascii())
    return digits if len(digits) <= 4 else "•" * (len(digits) - 4) + digits[-4:]


def _search_condition(search: str | None) -> tuple[str, dict[str, Any]]:
    text = (search or "").strip()
    if not text:
        return "TRUE", {}
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    columns = ("phone_number", "name", "comments", "agent_id", "agent_name")
    sql = " OR ".join(f"{c} ILIKE $search ESCAPE '\\'" for c in columns)
    return f"({sql})", {"search": f"%{escaped}%"}


def _lead_rows_sql(
    filters: Filters, tz: str, today: date | None, search: str | None, show_phones: bool
) -> tuple[str, dict[str, Any]]:
    where, params = where_clause(filters, _today(tz, today), tz)
    condition, search_params = _search_condition(search)
    sql = f"""
        SELECT campaign_name AS "Campaign", {phone_sql(show_phones)} AS "Phone",
               name AS "Name", lead_status AS "Status", dial_status AS "Dial status",
               dial_bucket AS "Dial bucket", disposition AS "Disposition",
               attempts AS "Attempts", coalesce(agent_name, agent_id) AS "Agent",
               strftime(created_at, '{_TS}') AS "Created",
               strftime(updated_at, '{_TS}') AS "Updated",
               comments AS "Comments", lead_key
        FROM leads WHERE {where} AND {condition}
    """
    return sql, {**params, **search_params}


def lead_count(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    search: str | None = None,
) -> int:
    where, params = where_clause(filters, _today(tz, today), tz)
    condition, search_params = _search_condition(search)
    sql = f"SELECT count(*) FROM leads WHERE {where} AND {condition}"
    return int(cursor.execute(sql, {**params, **search_params}).fetchone()[0])


def lead_page(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
    sort: str = DEFAULT_SORT,
    show_phones: bool = False,
) -> pd.DataFrame:
    """One page of lead rows (LIMIT/OFFSET in SQL); timestamps as local-time text."""
    sql, params = _lead_rows_sql(filters, tz, today, search, show_phones)
    order = LEAD_SORTS.get(sort, LEAD_SORTS[DEFAULT_SORT])
    params.update(limit=max(1, int(limit)), offset=max(0, int(offset)))
    return _df(cursor, f"{sql} ORDER BY {order} LIMIT $limit OFFSET $offset", params)


def export_rows(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    search: str | None = None,
    show_phones: bool = False,
    limit: int | None = None,
) -> pd.DataFrame:
    """Every filtered lead row (the exports), in the default order, without the internal key."""
    sql, params = _lead_rows_sql(filters, tz, today, search, show_phones)
    sql = f"{sql} ORDER BY {LEAD_SORTS[DEFAULT_SORT]}"
    if limit is not None:
        sql += " LIMIT $limit"
        params["limit"] = int(limit)
    return _df(cursor, sql, params).drop(columns=["lead_key"])


EXCEL_MAX_ROWS = 1_048_575  # one header row + this many rows is Excel's sheet limit


def export_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8-sig")  # BOM: Excel opens UTF-8 CSV right


def export_xlsx(frame: pd.DataFrame, sheet: str = "Leads") -> bytes:
    """The rows as an .xlsx workbook (xlsxwriter, constant memory, text and numbers only)."""
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer, {"constant_memory": True, "strings_to_urls": False, "strings_to_formulas": False}
    )
    worksheet = workbook.add_worksheet(sheet)
    bold = workbook.add_format({"bold": True})
    worksheet.write_row(0, 0, list(frame.columns), bold)
    rows = frame.head(EXCEL_MAX_ROWS).astype(object).where(frame.notna(), None)
    for index, values in enumerate(rows.itertuples(index=False, name=None), start=1):
        worksheet.write_row(index, 0, values)
    worksheet.freeze_panes(1, 0)
    if len(frame) > EXCEL_MAX_ROWS:
        note = workbook.add_worksheet("Note")
        note.write(0, 0, f"Excel holds {EXCEL_MAX_ROWS:,} rows; the CSV has all {len(frame):,}.")
    workbook.close()
    return buffer.getvalue()


_SENSITIVE_EXTRA = ("phone", "mobile", "msisdn", "number", "contact")


def lead_record(
    cursor: duckdb.DuckDBPyConnection, campaign: str, lead_key: str, show_phones: bool = False
) -> dict[str, Any] | None:
    """One lead's full stored record (every column; `extra` decoded), phones masked unless shown."""
    cursor.execute(
        f"SELECT * REPLACE ({phone_sql(show_phones)} AS phone_number, "
        f"strftime(created_at, '{_TS}') AS created_at, "
        f"strftime(updated_at, '{_TS}') AS updated_at) "
        "FROM leads WHERE campaign_name = $c AND lead_key = $k",
        {"c": campaign, "k": lead_key},
    )
    row = cursor.fetchone()
    if row is None:
        return None
    names = [d[0] for d in cursor.description]
    record = dict(zip(names, row, strict=True))
    if not show_phones and record.get("lead_key") and record.get("lead_id") is None:
        # Without a lead id the key is "phone|created": mask its phone part.
        phone, _, rest = str(record["lead_key"]).partition("|")
        record["lead_key"] = f"{mask_phone(phone)}|{rest}" if rest else mask_phone(phone)
    extra = record.get("extra")
    if isinstance(extra, str):
        with contextlib.suppress(ValueError):
            extra = json.loads(extra)
    if isinstance(extra, dict) and not show_phones:
        extra = {
            k: (mask_phone(str(v)) if any(s in k.lower() for s in _SENSITIVE_EXTRA) and v else v)
            for k, v in extra.items()
        }
    record["extra"] = extra
    return record


# -- options, freshness, sync ---------------------------------------------------------------


def campaign_options(
    cursor: duckdb.DuckDBPyConnection, configured: Iterable[str] = ()
) -> list[str]:
    """Every campaign a filter may name: catalog, configuration and stored leads, sorted."""
    source = "lead_summary" if summary_ready(cursor) else "leads"
    rows = cursor.execute(
        f"SELECT name FROM campaigns UNION SELECT DISTINCT campaign_name FROM {source}"
    ).fetchall()
    names = {row[0] for row in rows} | {c for c in configured if c}
    return sorted(names, key=lambda n: (n.casefold(), n))


def catalog_state(cursor: duckdb.DuckDBPyConnection) -> tuple:
    """A cheap fingerprint of the campaigns table (changes when one is added or removed)."""
    row = cursor.execute(
        "SELECT count(*), count(*) FILTER (WHERE enabled), max(added_at), "
        "string_agg(name, chr(31) ORDER BY name) FROM campaigns"
    ).fetchone()
    return tuple(str(v) for v in row)


def disposition_options(cursor: duckdb.DuckDBPyConnection) -> list[str]:
    """Distinct non-empty dispositions exactly as stored, most frequent first."""
    source = "lead_summary" if summary_ready(cursor) else "(SELECT *, 1 AS leads FROM leads)"
    rows = cursor.execute(
        f"SELECT disposition FROM {source} WHERE disposition IS NOT NULL "
        "AND trim(disposition) <> '' GROUP BY disposition ORDER BY sum(leads) DESC, disposition"
    ).fetchall()
    return [row[0] for row in rows]


# Per campaign, when its last delivery was stored (a small table: one row per delivery).
_LAST_DELIVERY = """
    d AS (
        SELECT campaign_name, max(coalesce(ingested_at, received_at)) AS last_delivery_at
        FROM raw_deliveries WHERE state = 'ingested' GROUP BY ALL
    )
"""


def data_as_of(cursor: duckdb.DuckDBPyConnection, campaigns: Iterable[str]) -> pd.DataFrame:
    """Per named campaign: data_as_of (last successful sync, else last delivery).

    The line every page shows on every run, so it reads no lead: `freshness` adds lead counts."""
    return _df(
        cursor,
        f"""
        WITH {_LAST_DELIVERY}
        SELECT n.campaign, coalesce(s.last_success_at, d.last_delivery_at) AS data_as_of
        FROM (SELECT DISTINCT unnest($names::VARCHAR[]) AS campaign) n
        LEFT JOIN d ON d.campaign_name = n.campaign
        LEFT JOIN sync_state s ON s.campaign_name = n.campaign
        ORDER BY n.campaign
        """,
        {"names": list(campaigns)},
    )


def freshness(cursor: duckdb.DuckDBPyConnection, campaigns: Iterable[str] = ()) -> pd.DataFrame:
    """Per campaign (catalog + stored): enabled, leads, newest_update, last_success_at,
    last_delivery_at, data_as_of (last success, else last delivery), last_error, last_error_at."""
    names = list(campaigns)
    return _df(
        cursor,
        f"""
        WITH l AS (
            SELECT campaign_name, count(*) AS leads, max(updated_at) AS newest_update
            FROM leads WHERE len($names) = 0 OR list_contains($names, campaign_name) GROUP BY ALL
        ), names AS (
            SELECT name AS campaign FROM campaigns UNION SELECT campaign_name FROM l
        ), {_LAST_DELIVERY}
        SELECT n.campaign, c.enabled, c.source, coalesce(l.leads, 0) AS leads, l.newest_update,
               s.last_success_at, d.last_delivery_at,
               coalesce(s.last_success_at, d.last_delivery_at) AS data_as_of,
               s.full_load_done, s.last_error, s.last_error_at
        FROM names n
        LEFT JOIN campaigns c ON c.name = n.campaign
        LEFT JOIN l ON l.campaign_name = n.campaign
        LEFT JOIN d ON d.campaign_name = n.campaign
        LEFT JOIN sync_state s ON s.campaign_name = n.campaign
        WHERE len($names) = 0 OR list_contains($names, n.campaign)
        ORDER BY n.campaign
        """,
        {"names": names},
    )


def sync_requests(cursor: duckdb.DuckDBPyConnection, limit: int = 200) -> pd.DataFrame:
    """The newest requests sent to CloudAgent (parameters are stored with secrets redacted)."""
    return _df(
        cursor,
        """
        SELECT id, campaign_name AS campaign, kind, state, CAST(params AS VARCHAR) AS params,
               unique_id, queued_at, sent_at, accepted_at, delivered_at, rows, error
        FROM sync_requests ORDER BY id DESC LIMIT $limit
        """,
        {"limit": int(limit)},
    )


def active_requests(cursor: duckdb.DuckDBPyConnection) -> int:
    """Requests queued or waiting for CloudAgent's delivery (for the "sync in progress" state)."""
    return int(
        cursor.execute(
            "SELECT count(*) FROM sync_requests WHERE state IN ('queued', 'sent', 'accepted')"
        ).fetchone()[0]
    )


def failed_deliveries(cursor: duckdb.DuckDBPyConnection, limit: int = 100) -> pd.DataFrame:
    """Callback bodies that could not be parsed or ingested (kept on disk for inspection)."""
    return _df(
        cursor,
        """
        SELECT id, received_at, campaign_name AS campaign, unique_id, request_id, content_type,
               size_bytes, state, error, regexp_extract(path, '[^/\\\\]+$') AS file
        FROM raw_deliveries WHERE state = 'failed' ORDER BY id DESC LIMIT $limit
        """,
        {"limit": int(limit)},
    )


def total_leads(cursor: duckdb.DuckDBPyConnection) -> int:
    return int(cursor.execute("SELECT count(*) FROM leads").fetchone()[0])
