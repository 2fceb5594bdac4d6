"""The breakdowns the charts draw: dial buckets and dispositions per campaign, the disposition
Pareto, the status x bucket matrix, the sunburst's paths, the daily trend and the hour x weekday
grid. Each takes a cursor, the validated `Filters`, the account's zone and optionally today's
date there, and returns a small frame.

A chart names at most `CHART_TOP` campaigns or dispositions, the largest by leads, and lumps the
rest into one "Other" row, in SQL: a delivery with 50,000 campaign or disposition names still
gives small frames, and the rows still add up to the selection's total."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from lib.fields import DIAL_BUCKETS, LEAD_STATUSES
from lib.view.filters import Filters
from lib.view.metrics.relation import count_sql, fetch_frame, filtered_groups

NO_DISPOSITION = "(none)"


OTHER = "Other"


OTHER_CAMPAIGNS = "Other campaigns"


CHART_TOP = 20


def ranked(base: str, key: str) -> str:
    """SQL: the rows of `base` (which has `leads`) with `rank`, 1 for the `key` value with the
    most leads, ties by value. Rows whose `key` is NULL are left out."""
    return f"""
        WITH b AS ({base})
        SELECT b.*, k.rank FROM b JOIN (
            SELECT {key}, row_number() OVER (ORDER BY sum(leads) DESC, {key}) AS rank
            FROM b GROUP BY {key}
        ) k USING ({key})
    """


def dial_buckets_by_campaign(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    top: int = CHART_TOP,
) -> pd.DataFrame:
    """Long frame: campaign (the `top` largest by leads, by name, then "Other campaigns"),
    is_other, bucket (all five, in DIAL_BUCKETS order), leads, share (0-1) within the campaign."""
    base, params = filtered_groups(cursor, filters, tz, today, category=False, coarse=True)
    frame = fetch_frame(
        cursor,
        f"""
        WITH counts AS (
            SELECT CASE WHEN rank <= $top THEN campaign_name END AS campaign_name, dial_bucket,
                   {count_sql()} AS leads
            FROM ({ranked(base, "campaign_name")}) GROUP BY ALL
        ), campaigns AS (SELECT DISTINCT campaign_name FROM counts),
        buckets AS (SELECT unnest($buckets) AS dial_bucket, generate_subscripts($buckets, 1) AS o)
        SELECT coalesce(c.campaign_name, $other) AS campaign,
               c.campaign_name IS NULL AS is_other, b.dial_bucket AS bucket,
               coalesce(n.leads, 0) AS leads,
               coalesce(n.leads, 0) / sum(coalesce(n.leads, 0)) OVER (PARTITION BY c.campaign_name)
                   AS share
        FROM campaigns c CROSS JOIN buckets b
        LEFT JOIN counts n ON n.campaign_name IS NOT DISTINCT FROM c.campaign_name
                          AND n.dial_bucket = b.dial_bucket
        ORDER BY c.campaign_name IS NULL, c.campaign_name, b.o
        """,
        {**params, "buckets": list(DIAL_BUCKETS), "top": int(top), "other": OTHER_CAMPAIGNS},
    )
    return frame


def bucket_counts(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """bucket, leads, share for the whole selection (all five buckets, in order)."""
    base, params = filtered_groups(cursor, filters, tz, today, category=False, coarse=True)
    return fetch_frame(
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
    campaigns: int = CHART_TOP,
) -> pd.DataFrame:
    """Long frame over leads that have a disposition: campaign (the `campaigns` largest by
    leads, as in `dial_buckets_by_campaign`, then "Other campaigns"), disposition (the `top` most
    frequent overall, the rest as "Other"), is_other, leads, share within the campaign."""
    base, params = filtered_groups(cursor, filters, tz, today, category=False, coarse=True)
    return fetch_frame(
        cursor,
        f"""
        WITH d AS (
            SELECT campaign_name, rank AS campaign_rank, disposition, leads
            FROM ({ranked(base, "campaign_name")})
            WHERE disposition IS NOT NULL AND trim(disposition) <> ''
        ), ranked AS (
            SELECT disposition, row_number() OVER (ORDER BY sum(leads) DESC, disposition) AS r
            FROM d GROUP BY disposition
        ), grouped AS (
            SELECT CASE WHEN d.campaign_rank <= $campaigns THEN d.campaign_name END
                       AS campaign_name,
                   CASE WHEN r.r <= $top THEN d.disposition ELSE NULL END AS disposition,
                   min(r.r) AS r, {count_sql()} AS leads
            FROM d JOIN ranked r USING (disposition) GROUP BY ALL
        )
        SELECT coalesce(campaign_name, $other_campaigns) AS campaign,
               coalesce(disposition, $other) AS disposition,
               disposition IS NULL AS is_other, leads,
               leads / sum(leads) OVER (PARTITION BY campaign_name) AS share
        FROM grouped ORDER BY campaign_name IS NULL, campaign_name, is_other, r
        """,
        {
            **params,
            "top": int(top),
            "campaigns": int(campaigns),
            "other": OTHER,
            "other_campaigns": OTHER_CAMPAIGNS,
        },
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
    base, params = filtered_groups(cursor, filters, tz, today, coarse=True)
    return fetch_frame(
        cursor,
        f"""
        WITH counts AS (
            SELECT disposition, any_value(category) AS category, {count_sql()} AS leads,
                   row_number() OVER (ORDER BY sum(leads) DESC, disposition) AS r
            FROM ({base}) WHERE disposition IS NOT NULL AND trim(disposition) <> ''
            GROUP BY disposition
        ), grouped AS (
            SELECT CASE WHEN r <= $top THEN disposition END AS disposition,
                   CASE WHEN r <= $top THEN category END AS category,
                   {count_sql()} AS leads, min(r) AS r
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
    base, params = filtered_groups(cursor, filters, tz, today, category=False, coarse=True)
    long = fetch_frame(
        cursor,
        f"SELECT lead_status, dial_bucket, {count_sql()} AS leads FROM ({base}) GROUP BY ALL",
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
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    top: int = CHART_TOP,
) -> pd.DataFrame:
    """lead_status, dial_bucket, disposition ("(none)" when empty; the `top` most frequent in
    the selection, the rest as "Other"), leads."""
    base, params = filtered_groups(cursor, filters, tz, today, category=False, coarse=True)
    paths = f"""
        SELECT lead_status, dial_bucket, leads,
               CASE WHEN disposition IS NULL OR trim(disposition) = '' THEN $none
                    ELSE disposition END AS disposition
        FROM ({base})
    """
    return fetch_frame(
        cursor,
        f"""
        SELECT lead_status, dial_bucket,
               CASE WHEN rank <= $top OR disposition = $none THEN disposition ELSE $other END
                   AS disposition,
               {count_sql()} AS leads
        FROM ({ranked(paths, "disposition")})
        GROUP BY ALL ORDER BY lead_status, dial_bucket, leads DESC, disposition
        """,
        {**params, "none": NO_DISPOSITION, "top": int(top), "other": OTHER},
    )


def daily_trend(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """One row per local calendar day of the basis date: a count column per bucket (named as
    the bucket), n_attempted, n_answered and answer_rate (0-1, NaN when nothing was attempted)."""
    base, params = filtered_groups(cursor, filters, tz, today, category=False, coarse=True)
    column = "created_day" if filters.basis == "created" else "updated_day"
    pivots = ", ".join(
        f'{count_sql(f"dial_bucket = $b{i}")} AS "{bucket}"'
        for i, bucket in enumerate(DIAL_BUCKETS)
    )
    frame = fetch_frame(
        cursor,
        f"""
        SELECT {column} AS day, {pivots},
               {count_sql("attempted")} AS n_attempted,
               {count_sql("dial_bucket = 'answered'")} AS n_answered
        FROM ({base}) WHERE {column} IS NOT NULL GROUP BY ALL ORDER BY day
        """,
        {**params, **{f"b{i}": bucket for i, bucket in enumerate(DIAL_BUCKETS)}},
    )
    frame["answer_rate"] = frame["n_answered"] / frame["n_attempted"].where(
        frame["n_attempted"] > 0
    )
    return frame


def trend_leads(frame: pd.DataFrame) -> int:
    """The leads a `daily_trend` frame places on a day (a lead without the basis date has none:
    the tiles count it, the trend cannot)."""
    return int(frame[[b for b in DIAL_BUCKETS if b in frame]].to_numpy().sum())


WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hour_weekday(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """Attempted leads by the local weekday (1 = Monday) and hour of their LAST UPDATE:
    weekday, hour, attempted, answered, answer_rate. Only cells with attempts appear."""
    base, params = filtered_groups(cursor, filters, tz, today, category=False, coarse=True)
    frame = fetch_frame(
        cursor,
        f"""
        SELECT isodow(updated_day) AS weekday, updated_hour::BIGINT AS hour,
               {count_sql()} AS attempted, {count_sql("dial_bucket = 'answered'")} AS answered
        FROM ({base}) WHERE attempted AND updated_day IS NOT NULL
        GROUP BY ALL ORDER BY weekday, hour
        """,
        params,
    )
    frame["answer_rate"] = frame["answered"] / frame["attempted"]
    return frame
