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

from lib.store.summary import SUMMARY_KEYS_SQL, categorised, summary_ready
from lib.view.filters import Filters, date_span, today_in, where_clause


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
) -> tuple[str, dict[str, Any]]:
    """SQL of the filtered lead groups (the summary's columns, `leads` = how many), and its
    parameters. Count with `count_sql()`, never `count(*)`. Read from the summary when it is ready;
    otherwise one row per lead, with `category` resolved only when asked (it costs a join)."""
    where, params = _summary_where(filters, tz, today)
    if summary_ready(cursor):
        return f"SELECT * FROM lead_summary WHERE {where}", params
    # The same columns, one row per lead.
    source = f"(SELECT {SUMMARY_KEYS_SQL}, 1 AS leads FROM leads WHERE {where})"
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
