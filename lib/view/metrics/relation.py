"""The filtered relation every aggregate starts from: the lead summary restricted by the
filters (or, while it is stale and a writer holds the lock, the leads themselves in the same
shape), the count expression over it, and how a query becomes a small frame.

The Overview and Campaign aggregates read `lead_summary` (lib/store/summary.py), which holds
thousands of rows where `leads` holds millions; when it is stale, the first query rebuilds it
(`summary_ready`), or, when a writer is busy, reads `leads` directly with the same SQL (one row
per lead, `leads` = 1), so an answer is never stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from lib.store.catalog import categorised
from lib.store.lead_sql import AGENT_SQL, ATTEMPTED_SQL
from lib.store.policy import MAX_ATTEMPTS_ALLOWED
from lib.store.summary import SUMMARY_KEYS_SQL, summary_ready
from lib.view.filters import Filters, date_span, today_in, where_clause

# Lead progress over a relation with `attempted`, `attempts`, `lead_status` and `allowed`
# (`allowed_sql`): never dialled first, then the final statuses, then Pending by tries left.
PROGRESS_SQL = """CASE WHEN NOT attempted THEN 'not_dialled'
    WHEN lead_status = 'Success' THEN 'success'
    WHEN lead_status = 'Fail' THEN 'failed'
    WHEN coalesce(attempts, 1) >= allowed THEN 'out_of_tries'
    ELSE 'retrying' END"""


def allowed_sql(source: str) -> str:
    """Per campaign of `source` (the summary or the leads) or of campaign_policy: the dial
    attempts `allowed`, as an operator set them (`set`) or else the highest attempts `seen`
    up to the most an operator may set (one lead with 999,999 attempts, a garbage value, must
    not mean a million retries left or a chart of a million attempt numbers), and whether
    that is `inferred`."""
    return f"""
        SELECT coalesce(m.campaign_name, p.campaign_name) AS campaign_name,
               p.attempts_allowed AS set, m.seen,
               coalesce(p.attempts_allowed, least(m.seen, {MAX_ATTEMPTS_ALLOWED})) AS allowed,
               p.attempts_allowed IS NULL AS inferred
        FROM (SELECT campaign_name, max(attempts) AS seen FROM {source} GROUP BY ALL) m
        FULL JOIN campaign_policy p USING (campaign_name)
    """


def with_progress(relation: str, allowed_from: str) -> str:
    """`relation` (with the summary's key columns) plus `allowed` and `progress`."""
    return f"""
        (SELECT r.*, a.allowed, {PROGRESS_SQL} AS progress
         FROM {relation} r LEFT JOIN ({allowed_sql(allowed_from)}) a USING (campaign_name))
    """


def lead_relation(cursor: duckdb.DuckDBPyConnection, filters: Filters) -> str:
    """`leads`, or, when the filters name agents or progress states, `leads` with the columns
    `where_clause` then needs (`agent`, `attempted`, `allowed`, `progress`)."""
    if not (filters.agents or filters.progress):
        return "leads"
    source = "lead_summary" if summary_ready(cursor) else "leads"
    derived = f"(SELECT *, {AGENT_SQL} AS agent, {ATTEMPTED_SQL} AS attempted FROM leads)"
    return with_progress(derived, source)


def local_today(tz: str, today: date | None) -> date:
    return today if today is not None else today_in(tz)


def _summary_where(filters: Filters, tz: str, today: date | None) -> tuple[str, dict[str, Any]]:
    """The filters over the summary: the date range as local calendar days of the basis date
    (the same rows as `where_clause`'s local-midnight bounds on the timestamps)."""
    day = local_today(tz, today)
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


def filtered_groups(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None,
    category: bool = True,
    progress: bool = False,
    coarse: bool = False,
) -> tuple[str, dict[str, Any]]:
    """SQL of the filtered lead groups (the summary's columns, `leads` = how many), and its
    parameters. Count with `count_sql()`, never `count(*)`. Read from the summary when it is ready;
    otherwise one row per lead, with `category` resolved only when asked (it costs a join).
    With `progress` (or a progress filter) the groups also have `allowed` and `progress`.
    `coarse`: the caller reads no attempts, agent or talk band, so the smaller `lead_counts`
    serves, unless the filters themselves name agents or progress states."""
    where, params = _summary_where(filters, tz, today)
    progress = progress or bool(filters.progress)
    if summary_ready(cursor):
        if coarse and not (progress or filters.agents):
            return f"SELECT * FROM lead_counts WHERE {where}", params
        source = with_progress("lead_summary", "lead_summary") if progress else "lead_summary"
        return f"SELECT * FROM {source} WHERE {where}", params
    # The same columns, one row per lead.
    rows = f"(SELECT {SUMMARY_KEYS_SQL}, 1 AS leads FROM leads)"
    source = f"(SELECT * FROM {with_progress(rows, 'leads') if progress else rows} WHERE {where})"
    return (categorised(source) if category else f"SELECT * FROM {source}"), params


def count_sql(condition: str | None = None) -> str:
    """How many leads (the sum of the summary's `leads` column), optionally those matching."""
    if condition is None:
        return "coalesce(sum(leads), 0)::BIGINT"
    return f"coalesce(sum(leads) FILTER (WHERE {condition}), 0)::BIGINT"


def fetch_frame(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]
) -> pd.DataFrame:
    return cursor.execute(sql, dict(params)).df()
