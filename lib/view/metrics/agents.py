"""The Agents page's numbers: one row per agent (leads handled, answered, conversions, talk time,
wrap-up timeouts, top dispositions), the conversions chart's top agents, and talk time per
campaign (the bands, the exact median and 90th percentile, short answered calls).

Counts come from the filtered summary groups (`relation.filtered_groups`); the median and the
90th percentile are exact, so they are computed over `leads` (the summary only holds bands),
with the same filters (`where_clause` over `lead_relation`). The agent of a lead is the one who
took its last call (`AGENT_SQL`: the name, else the id; `NO_AGENT` when neither)."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from lib.store.lead_sql import AGENT_SQL
from lib.store.summary import TALK_BANDS
from lib.view import numbers
from lib.view.filters import NO_AGENT, Filters, where_clause
from lib.view.metrics.breakdowns import CHART_TOP, OTHER, OTHER_CAMPAIGNS
from lib.view.metrics.relation import (
    count_sql,
    fetch_frame,
    filtered_groups,
    lead_relation,
    local_today,
)

WRAP_UP_PREFIX = "wrap up time exceeded"  # compared with the lowercased disposition
SHORT_CALL_SECONDS = TALK_BANDS[0][1]  # the first band: under 10 s
TALK_BAND_LABELS: tuple[str, ...] = tuple(name for name, _ in TALK_BANDS)
TOP_DISPOSITIONS = 3
ALL_CAMPAIGNS = "All selected campaigns"

# The per-agent table's columns, as on screen and in its exports, with their definitions.
AGENT_HELP: dict[str, str] = {
    "Agent": f"The agent who took the lead's last call: AgentName, or AgentID when the name is "
    f"empty. {NO_AGENT} = neither.",
    "Leads handled": "Leads whose last call this agent took.",
    "Answered": "Of those, leads whose last call was answered (dial status bucket answered).",
    "Conversions": "Of those, leads whose disposition is in the Sale category.",
    "Conversion rate": "Conversions / Answered, in %. Empty when nothing was answered.",
    "Median talk time": "Median CallDuration of the agent's answered leads, in seconds.",
    "P90 talk time": "90th percentile of CallDuration of the agent's answered leads, in seconds "
    "(linear interpolation): 9 in 10 answered calls were no longer.",
    "Wrap-up timeouts": "Share of the agent's leads with a disposition whose disposition starts "
    'with "Wrap up time exceeded" (any case), in %. Leads without a disposition are left out.',
    "Top dispositions": f"The agent's {TOP_DISPOSITIONS} most frequent dispositions, with their "
    "lead counts.",
}
AGENT_COLUMNS: tuple[str, ...] = tuple(AGENT_HELP)
# Talk time per campaign, as on screen.
TALK_HELP: dict[str, str] = {
    "Campaign": f"The campaigns with the most answered leads; the rest as {OTHER_CAMPAIGNS}. "
    f"{ALL_CAMPAIGNS} = the whole selection.",
    "Answered": "Leads whose last call was answered.",
    "Median talk time": "Median CallDuration of the answered leads, in seconds.",
    "P90 talk time": "90th percentile of CallDuration of the answered leads, in seconds (linear "
    "interpolation).",
    "Short answered calls": f"Answered leads that talked under {SHORT_CALL_SECONDS} s: possible "
    "hang-ups or abandons.",
    "Short calls share": "Short answered calls / answered leads, in %.",
}
TALK_COLUMNS: tuple[str, ...] = tuple(TALK_HELP)

_HAS_DISPOSITION = "disposition IS NOT NULL AND trim(disposition) <> ''"
WRAP_UP_SQL = f"starts_with(lower(trim(disposition)), '{WRAP_UP_PREFIX}')"
_ANSWERED = "dial_bucket = 'answered'"


def _talk_where(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None
) -> tuple[str, dict]:
    """FROM and WHERE over `leads` for the answered leads with a talk time in the selection."""
    where, params = where_clause(filters, local_today(tz, today), tz, prefix="l_")
    relation = lead_relation(cursor, filters)
    return (
        f"{relation} WHERE {where} AND {_ANSWERED} AND call_duration_s IS NOT NULL",
        params,
    )


def agent_table(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    number_format: str = numbers.DEFAULT_FORMAT,
) -> pd.DataFrame:
    """One row per agent with leads in the selection, the `AGENT_COLUMNS`, by leads handled
    (most first), then name. Rates in % with one decimal, talk times in seconds (one decimal);
    empty (NaN) when there is nothing to divide or no talk time. The top dispositions are text,
    their counts in `number_format` (the other columns stay numbers)."""
    base, params = filtered_groups(cursor, filters, tz, today)
    talk, talk_params = _talk_where(cursor, filters, tz, today)
    frame = fetch_frame(
        cursor,
        f"""
        WITH base AS (SELECT * REPLACE (coalesce(agent, $no_agent) AS agent) FROM ({base})),
        per AS (
            SELECT agent, {count_sql()} AS handled, {count_sql(_ANSWERED)} AS answered,
                   {count_sql("category = 'Sale'")} AS conversions,
                   {count_sql(_HAS_DISPOSITION)} AS with_disposition,
                   {count_sql(f"{_HAS_DISPOSITION} AND {WRAP_UP_SQL}")} AS wrap_ups
            FROM base GROUP BY agent
        ), disp AS (
            SELECT agent, disposition, {count_sql()} AS n,
                   row_number() OVER (PARTITION BY agent ORDER BY sum(leads) DESC, disposition)
                       AS r
            FROM base WHERE {_HAS_DISPOSITION} GROUP BY agent, disposition
        ), top AS (
            SELECT agent, list(disposition ORDER BY r) AS top, list(n ORDER BY r) AS top_n
            FROM disp WHERE r <= $top_n GROUP BY agent
        ), talk AS (
            SELECT coalesce({AGENT_SQL}, $no_agent) AS agent,
                   quantile_cont(call_duration_s, [0.5, 0.9]) AS q
            FROM {talk} GROUP BY 1
        )
        SELECT per.agent AS "Agent", handled AS "Leads handled", answered AS "Answered",
               conversions AS "Conversions",
               round(100 * conversions / nullif(answered, 0), 1) AS "Conversion rate",
               round(talk.q[1], 1) AS "Median talk time", round(talk.q[2], 1) AS "P90 talk time",
               round(100 * wrap_ups / nullif(with_disposition, 0), 1) AS "Wrap-up timeouts",
               top.top AS "Top dispositions", top.top_n AS _top_n
        FROM per LEFT JOIN top USING (agent) LEFT JOIN talk USING (agent)
        ORDER BY handled DESC, per.agent
        """,
        {**params, **talk_params, "no_agent": NO_AGENT, "top_n": TOP_DISPOSITIONS},
    )
    # One line per agent (a few hundred at most), formatted here: SQL groups by thousands only.
    frame["Top dispositions"] = [
        ", ".join(f"{d} ({numbers.count(n, number_format)})" for d, n in zip(ds, ns, strict=True))
        if pd.api.types.is_list_like(ds)
        else ""
        for ds, ns in zip(frame["Top dispositions"], frame.pop("_top_n"), strict=True)
    ]
    return frame


def agent_conversions(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    top: int = CHART_TOP,
) -> pd.DataFrame:
    """The conversions chart: agent (the `top` with the most conversions, ties by answered
    leads, then name; the rest summed as "Other"), is_other, answered, conversions,
    conversion_rate (0-1, NaN when nothing was answered)."""
    base, params = filtered_groups(cursor, filters, tz, today)
    return fetch_frame(
        cursor,
        f"""
        WITH per AS (
            SELECT coalesce(agent, $no_agent) AS agent, {count_sql(_ANSWERED)} AS answered,
                   {count_sql("category = 'Sale'")} AS conversions
            FROM ({base}) GROUP BY 1
        ), ranked AS (
            SELECT *, row_number() OVER (ORDER BY conversions DESC, answered DESC, agent) AS r
            FROM per
        ), grouped AS (
            SELECT CASE WHEN r <= $top THEN agent END AS agent, min(r) AS r,
                   sum(answered)::BIGINT AS answered, sum(conversions)::BIGINT AS conversions
            FROM ranked GROUP BY 1
        )
        SELECT coalesce(agent, $other) AS agent, agent IS NULL AS is_other, answered,
               conversions, conversions / nullif(answered, 0) AS conversion_rate
        FROM grouped ORDER BY agent IS NULL, r
        """,
        {**params, "no_agent": NO_AGENT, "top": int(top), "other": OTHER},
    )


def _answered_campaigns(base: str) -> str:
    """CTEs `answered` (the answered groups of `base`) and `ranked` (each campaign's rank by
    answered leads, ties by name), shared by the bands and the talk-time table."""
    return f"""
        answered AS (SELECT * FROM ({base}) WHERE {_ANSWERED}),
        ranked AS (
            SELECT campaign_name, row_number() OVER (ORDER BY sum(leads) DESC, campaign_name) AS r
            FROM answered GROUP BY campaign_name
        )
    """


def talk_time_bands(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    campaigns: int = CHART_TOP,
) -> pd.DataFrame:
    """Long frame of answered leads with a talk time: campaign (the `campaigns` with the most
    answered leads, then "Other campaigns"), is_other, band (every `TALK_BANDS` label, in
    order), leads, share (0-1) within the campaign."""
    base, params = filtered_groups(cursor, filters, tz, today, category=False)
    return fetch_frame(
        cursor,
        f"""
        WITH {_answered_campaigns(base)},
        counts AS (
            SELECT CASE WHEN r <= $campaigns THEN campaign_name END AS campaign_name, min(r) AS r,
                   talk_band, {count_sql()} AS leads
            FROM answered JOIN ranked USING (campaign_name)
            WHERE talk_band IS NOT NULL GROUP BY 1, talk_band
        ), groups AS (SELECT campaign_name, min(r) AS r FROM counts GROUP BY 1),
        bands AS (SELECT unnest($bands) AS band, generate_subscripts($bands, 1) - 1 AS talk_band)
        SELECT coalesce(g.campaign_name, $other) AS campaign, g.campaign_name IS NULL AS is_other,
               b.band, coalesce(n.leads, 0) AS leads,
               coalesce(n.leads, 0) / sum(coalesce(n.leads, 0)) OVER (PARTITION BY g.campaign_name)
                   AS share
        FROM groups g CROSS JOIN bands b
        LEFT JOIN counts n ON n.campaign_name IS NOT DISTINCT FROM g.campaign_name
                          AND n.talk_band = b.talk_band
        ORDER BY g.campaign_name IS NULL, g.r, b.talk_band
        """,
        {
            **params,
            "campaigns": int(campaigns),
            "bands": list(TALK_BAND_LABELS),
            "other": OTHER_CAMPAIGNS,
        },
    )


def talk_time_by_campaign(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    campaigns: int = CHART_TOP,
) -> pd.DataFrame:
    """The `TALK_COLUMNS` per campaign (the same campaigns as `talk_time_bands`), after a first
    row for the whole selection (`ALL_CAMPAIGNS`); is_total and is_other flag those rows. No
    rows when nothing was answered."""
    base, params = filtered_groups(cursor, filters, tz, today, category=False)
    talk, talk_params = _talk_where(cursor, filters, tz, today)
    group = "CASE WHEN r <= $campaigns THEN campaign_name END"
    return fetch_frame(
        cursor,
        f"""
        WITH {_answered_campaigns(base)},
        counts AS (
            SELECT grp, grouping(grp) = 1 AS is_total, min(r) AS r,
                   {count_sql()} AS answered, {count_sql("talk_band = 0")} AS short
            FROM (SELECT {group} AS grp, r, talk_band, leads
                  FROM answered JOIN ranked USING (campaign_name))
            GROUP BY GROUPING SETS ((grp), ())
        ), talk AS (
            SELECT grp, grouping(grp) = 1 AS is_total,
                   quantile_cont(call_duration_s, [0.5, 0.9]) AS q
            FROM (SELECT {group} AS grp, call_duration_s
                  FROM (SELECT campaign_name, call_duration_s FROM {talk})
                  JOIN ranked USING (campaign_name))
            GROUP BY GROUPING SETS ((grp), ())
        )
        SELECT CASE WHEN c.is_total THEN $all ELSE coalesce(c.grp, $other) END AS "Campaign",
               c.answered AS "Answered", round(t.q[1], 1) AS "Median talk time",
               round(t.q[2], 1) AS "P90 talk time", c.short AS "Short answered calls",
               round(100 * c.short / nullif(c.answered, 0), 1) AS "Short calls share",
               c.is_total, NOT c.is_total AND c.grp IS NULL AS is_other
        FROM counts c LEFT JOIN talk t
          ON t.is_total = c.is_total AND t.grp IS NOT DISTINCT FROM c.grp
        WHERE c.answered > 0  -- the grand total of nothing is a row too: not shown
        ORDER BY NOT c.is_total, c.grp IS NULL, c.r
        """,
        {
            **params,
            **talk_params,
            "campaigns": int(campaigns),
            "all": ALL_CAMPAIGNS,
            "other": OTHER_CAMPAIGNS,
        },
    )
