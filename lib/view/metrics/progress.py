"""The Progress page's numbers: how much of each list is left (lead progress, penetration,
completion, retries left), whether redials still pay (outcome by attempt number), and the checks
(stale pending leads, last calls outside the calling window, do-not-call leads still pending,
answered leads with no disposition, wrap-up timeouts).

Every count comes from the lead summary through `filtered_groups(..., progress=True)`, one SQL
statement per frame; only `window_leads` reads `leads`, for at most `WINDOW_LIST_LIMIT` rows.
`count_links` turns each count into a link to the Leads page with the matching filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import duckdb
import pandas as pd

from lib.store.lead_sql import AGENT_SQL, ATTEMPTED_SQL
from lib.store.policy import DialPolicy
from lib.store.summary import summary_ready
from lib.view.filters import (
    PROGRESS_STATES,
    Filters,
    date_span,
    to_query_string,
    where_clause,
)
from lib.view.labels import PROGRESS_LABELS
from lib.view.metrics.agents import WRAP_UP_SQL
from lib.view.metrics.breakdowns import CHART_TOP, OTHER_CAMPAIGNS, ranked
from lib.view.metrics.leads import STATUS_COLUMNS_SQL, phone_sql
from lib.view.metrics.relation import (
    allowed_sql,
    count_sql,
    fetch_frame,
    filtered_groups,
    lead_relation,
    local_today,
)
from lib.view.pages import page

ALL_SELECTED = "All selected"  # the row (and funnel bar) of the whole selection
WINDOW_LIST_LIMIT = 300
# A wrap-up timeout (CloudAgent's disposition when the agent chose none in time), as the Agents
# page counts it.
_NO_DISPOSITION_SQL = "coalesce(trim(disposition), '') = ''"
ATTEMPTED_STATES = ("retrying", "out_of_tries", "success", "failed")
COMPLETED_STATES = ("success", "failed", "out_of_tries")
OPEN_STATES = ("not_dialled", "retrying")  # the leads retries are left for

# The definitions (the wording), shown as help texts; `{window}`, `{tz}` and
# `{stale_days}` are the dialing policy's, filled in by `progress_definitions`.
PROGRESS_DEFINITIONS: dict[str, str] = {
    "allowed": "Dial attempts allowed per campaign (CloudAgent's “number of tries”): set on "
    "Settings by an operator. When unset, it is the highest Attempts seen in the campaign, "
    "at most 100, shown as “(inferred)”.",
    "leads": "Every filtered lead, each in exactly one progress state.",
    "not_dialled": "Not dialled: attempts = 0 (or no attempt count and never dialled).",
    "retrying": "Retrying: lead status Pending, attempts ≥ 1 and < allowed.",
    "out_of_tries": "Out of tries: lead status Pending, attempts ≥ allowed.",
    "success": "Success: lead status Success.",
    "failed": "Failed: lead status Fail.",
    "attempted": "Attempted: dialled at least once (attempts ≥ 1, or no attempt count and a "
    "dial status other than Not dialled).",
    "penetration": "Penetration = attempted leads / leads.",
    "completion": "Completion = (Success + Failed + Out of tries) / leads.",
    "retries_left": "Retries left = the sum, over Not dialled and Retrying leads, of "
    "(allowed − attempts). A missing attempt count counts as 0 for a lead never dialled and "
    "1 for a dialled one.",
    "stale_pending": "Stale pending leads: Pending, attempted, and last updated more than "
    "{stale_days} days ago (set on Settings).",
    "outside_window": "Last calls outside the allowed calling window ({window} in {tz}, set on "
    "Settings): attempted leads whose last update falls outside it.",
    "dnc_pending": "Do-not-call leads still pending: leads whose disposition is in the Do not "
    "call category and whose status is Pending.",
    "answered": "Answered: the dial bucket of the last call is answered.",
    "answered_no_disposition": "Answered leads with no disposition.",
    "with_disposition": "Leads that have a disposition.",
    "wrap_up": "Wrap-up timeouts: leads whose disposition starts with “Wrap up time exceeded”.",
    "wrap_up_share": "The share of wrap-up timeouts: leads whose disposition starts with “Wrap up "
    "time exceeded”, of the leads that have a disposition.",
    "attempt_outcomes": "Outcome by attempt number. For k = 1, 2, … allowed (the last bucket is "
    "“k or more”): leads whose attempts = k, those answered (dial bucket of the last call = "
    "answered), the answer rate, and the conversions (Sale category). For several campaigns, "
    "up to the largest allowed; a dialled lead without an attempt count counts as 1.",
}
# The table's columns as on screen (the page, the CSV and the Excel file use these names).
PROGRESS_COLUMNS: dict[str, str] = {
    "campaign": "Campaign",
    "allowed_text": "Attempts allowed",
    "leads": "Leads",
    **{state: PROGRESS_LABELS[state] for state in PROGRESS_STATES},
    "attempted": "Attempted",
    "penetration": "Penetration",
    "completion": "Completion",
    "retries_left": "Retries left",
    "stale_pending": "Stale pending",
    "outside_window": "Outside calling window",
    "dnc_pending": "Do-not-call still pending",
    "answered": "Answered",
    "answered_no_disposition": "Answered, no disposition",
    "with_disposition": "With a disposition",
    "wrap_up": "Wrap-up timeouts",
    "wrap_up_share": "Wrap-up share",
}
RATE_COLUMNS = ("penetration", "completion", "wrap_up_share")


def window_text(window_start: int, window_end: int) -> str:
    return f"{window_start:02d}:00–{window_end:02d}:00"


def progress_definitions(
    tz: str,
    window_start: int = DialPolicy.window_start,
    window_end: int = DialPolicy.window_end,
    stale_days: int = DialPolicy.stale_days,
) -> dict[str, str]:
    """Every definition's help text with the dialing policy in force."""
    values = {"window": window_text(window_start, window_end), "tz": tz, "stale_days": stale_days}
    return {key: text.format(**values) for key, text in PROGRESS_DEFINITIONS.items()}


def _listed(states: tuple[str, ...]) -> str:
    return ", ".join(repr(state) for state in states)


def progress_table(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    window_start: int = DialPolicy.window_start,
    window_end: int = DialPolicy.window_end,
    stale_days: int = DialPolicy.stale_days,
    top: int = CHART_TOP,
) -> pd.DataFrame:
    """One row for the whole selection (`is_total`, first), then one per campaign (the `top`
    largest by leads, then "Other campaigns", `is_other`): allowed, inferred, allowed_text,
    leads, a count per progress state, attempted, retries_left (and retries_unknown: open leads
    of campaigns with no attempts allowed at all), the checks' counts, penetration, completion
    and wrap_up_share (0-1, NA without a denominator), and the dispositions the do-not-call and
    wrap-up counts cover (for their links)."""
    base, params = filtered_groups(cursor, filters, tz, today, progress=True)
    source = "lead_summary" if summary_ready(cursor) else "leads"
    states = ", ".join(f"{count_sql(f'progress = {s!r}')} AS {s}" for s in PROGRESS_STATES)
    open_states = _listed(OPEN_STATES)
    frame = fetch_frame(
        cursor,
        f"""
        WITH g AS (
            SELECT *, CASE WHEN rank <= $top THEN campaign_name END AS shown
            FROM ({ranked(base, "campaign_name")})
        ), flags AS (
            -- The summary's rows folded to what the counts read (no agent, attempts, talk
            -- band, day or hour): a fraction of the rows for the aggregate below.
            SELECT shown, rank, progress, attempted, lead_status, dial_bucket, category,
                   disposition, allowed IS NULL AS unknown,
                   lead_status = 'Pending' AND attempted AND updated_day < $stale AS stale,
                   attempted AND (updated_hour < $ws OR updated_hour >= $we) AS outside,
                   sum(leads)::BIGINT AS leads,
                   sum(leads * (allowed - coalesce(attempts, attempted::INTEGER))) AS tries_left
            FROM g GROUP BY ALL
        ), d AS (
            SELECT disposition, {_NO_DISPOSITION_SQL} AS blank, {WRAP_UP_SQL} AS wrap_up
            FROM (SELECT DISTINCT disposition FROM flags WHERE disposition IS NOT NULL)
        ), counts AS (
            SELECT shown, grouping(shown) = 1 AS is_total, min(rank) AS rank,
                   {count_sql()} AS leads, {states},
                   {count_sql("attempted")} AS attempted,
                   coalesce(sum(tries_left) FILTER (WHERE progress IN ({open_states})), 0
                   )::BIGINT AS retries_left,
                   {count_sql(f"progress IN ({open_states}) AND unknown")} AS retries_unknown,
                   {count_sql("stale")} AS stale_pending,
                   {count_sql("outside")} AS outside_window,
                   {count_sql("category = 'Do not call' AND lead_status = 'Pending'")}
                       AS dnc_pending,
                   {count_sql("dial_bucket = 'answered'")} AS answered,
                   {count_sql("dial_bucket = 'answered' AND coalesce(d.blank, TRUE)")}
                       AS answered_no_disposition,
                   {count_sql("NOT coalesce(d.blank, TRUE)")} AS with_disposition,
                   {count_sql("d.wrap_up")} AS wrap_up,
                   coalesce(list(DISTINCT disposition ORDER BY disposition) FILTER (
                       WHERE category = 'Do not call' AND lead_status = 'Pending'), [])
                       AS dnc_dispositions,
                   coalesce(list(DISTINCT disposition ORDER BY disposition)
                       FILTER (WHERE d.wrap_up), []) AS wrap_up_dispositions
            FROM flags LEFT JOIN d USING (disposition) GROUP BY GROUPING SETS ((shown), ())
        )
        SELECT CASE WHEN c.is_total THEN $total WHEN c.shown IS NULL THEN $other ELSE c.shown END
                   AS campaign,
               c.shown AS campaign_name, c.is_total, c.shown IS NULL AND NOT c.is_total AS is_other,
               a.allowed, a.inferred, c.* EXCLUDE (shown, is_total, rank),
               c.attempted / nullif(c.leads, 0) AS penetration,
               (c.success + c.failed + c.out_of_tries) / nullif(c.leads, 0) AS completion,
               c.wrap_up / nullif(c.with_disposition, 0) AS wrap_up_share
        FROM counts c LEFT JOIN ({allowed_sql(source)}) a ON a.campaign_name = c.shown
        ORDER BY c.is_total DESC, c.shown IS NULL, c.rank
        """,
        {
            **params,
            "top": int(top),
            "stale": local_today(tz, today) - timedelta(days=int(stale_days)),
            "ws": int(window_start),
            "we": int(window_end),
            "total": ALL_SELECTED,
            "other": OTHER_CAMPAIGNS,
        },
    )
    frame["allowed"] = frame["allowed"].astype("Int64")
    frame["allowed_text"] = [
        _allowed_text(a, i) for a, i in zip(frame["allowed"], frame["inferred"], strict=True)
    ]
    return frame


def _allowed_text(allowed: Any, inferred: Any) -> str:
    if pd.isna(inferred):
        return ""  # the selection's row, or the lumped campaigns
    shown = "–" if pd.isna(allowed) else str(int(allowed))
    return f"{shown} (inferred)" if inferred else shown


def progress_funnel(table: pd.DataFrame) -> pd.DataFrame:
    """The funnel's long frame from `progress_table`: campaign (the selection's bar first),
    state, progress (its label), leads, share (0-1 within the bar)."""
    rows = []
    for row in table.itertuples(index=False):
        for state in PROGRESS_STATES:
            leads = int(getattr(row, state))
            share = leads / row.leads if row.leads else float("nan")
            rows.append((row.campaign, state, PROGRESS_LABELS[state], leads, share))
    return pd.DataFrame(rows, columns=["campaign", "state", "progress", "leads", "share"])


def attempt_outcomes(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """Attempted leads by attempt number: attempt (k = 1 .. the largest allowed in the
    selection), label ("k or more" for the last), leads, answered, answer_rate (0-1, NA for
    none), conversions (Sale category). Empty when nothing in the selection was attempted."""
    base, params = filtered_groups(cursor, filters, tz, today, progress=True)
    return fetch_frame(
        cursor,
        f"""
        WITH g AS ({base}),
        k AS (SELECT greatest(coalesce(max(allowed), 1), 1)::INTEGER AS last FROM g),
        counts AS (
            SELECT least(coalesce(attempts, 1), (SELECT last FROM k)) AS attempt,
                   {count_sql()} AS leads, {count_sql("dial_bucket = 'answered'")} AS answered,
                   {count_sql("category = 'Sale'")} AS conversions
            FROM g WHERE attempted GROUP BY ALL
        ), numbers AS (SELECT unnest(range(1, last + 1)) AS attempt, last FROM k)
        SELECT n.attempt,
               CASE WHEN n.attempt = n.last THEN n.attempt || ' or more'
                    ELSE n.attempt::VARCHAR END AS label,
               coalesce(c.leads, 0) AS leads, coalesce(c.answered, 0) AS answered,
               c.answered / nullif(c.leads, 0) AS answer_rate,
               coalesce(c.conversions, 0) AS conversions
        FROM numbers n LEFT JOIN counts c USING (attempt)
        WHERE EXISTS (SELECT 1 FROM counts)
        ORDER BY n.attempt
        """,
        params,
    )


def window_leads(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    window_start: int = DialPolicy.window_start,
    window_end: int = DialPolicy.window_end,
    show_phones: bool = False,
    limit: int = WINDOW_LIST_LIMIT,
) -> pd.DataFrame:
    """The attempted leads whose last call (local hour of the last update) is outside
    [window_start, window_end), newest first, at most `limit`; phones masked unless shown.

    The summary says from which local day on the newest `limit` of them lie, so the leads are
    read from that day's start only (a cheap comparison before any time-zone conversion)."""
    window = {"ws": int(window_start), "we": int(window_end), "limit": max(1, int(limit))}
    where, params = where_clause(filters, local_today(tz, today), tz)
    since = _window_list_since(cursor, filters, tz, today, window)
    if since is not None:
        where += " AND updated_at >= CAST($since AS TIMESTAMPTZ)"
        params = {**params, "since": since}
    return fetch_frame(
        cursor,
        f"""
        SELECT campaign_name AS "Campaign", {phone_sql(show_phones)} AS "Phone",
               name AS "Name", {STATUS_COLUMNS_SQL},
               disposition AS "Disposition", {AGENT_SQL} AS "Agent", attempts AS "Attempts",
               updated_at AS "Last call",
               hour(updated_at) AS "Hour"
        FROM {lead_relation(cursor, filters)}
        WHERE {where} AND {ATTEMPTED_SQL}
          AND (hour(updated_at) < $ws OR hour(updated_at) >= $we)
        ORDER BY updated_at DESC, campaign_name, lead_key LIMIT $limit
        """,
        {**params, **window},
    )


def _window_list_since(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None,
    window: Mapping[str, int],
) -> date | None:
    """The latest local day on or after which at least `limit` outside-window leads were last
    updated (the summary's counts per day); None without a ready summary or with fewer leads."""
    if not summary_ready(cursor):
        return None
    base, params = filtered_groups(cursor, filters, tz, today, category=False)
    row = cursor.execute(
        f"""
        SELECT max(updated_day) FILTER (WHERE newer >= $limit) FROM (
            SELECT updated_day, sum(sum(leads)) OVER (ORDER BY updated_day DESC) AS newer
            FROM ({base})
            WHERE attempted AND (updated_hour < $ws OR updated_hour >= $we)
            GROUP BY updated_day
        )
        """,
        {**params, **window},
    ).fetchone()
    return row[0] if row else None


# -- links to the Leads page -----------------------------------------------------------------


def leads_link(filters: Filters) -> str:
    """The Leads page with these filters (relative to a page's URL)."""
    query = to_query_string(filters)
    return f"{page('leads').path}?{query}" if query else page("leads").path


def _narrowed(current: tuple[str, ...], wanted: tuple[str, ...]) -> tuple[str, ...] | None:
    """`wanted` within what the filter already allows; None when nothing is left (the count is
    then 0, and an empty filter would mean "everything")."""
    kept = tuple(v for v in wanted if not current or v in current)
    return kept or None


def _stale_filters(filters: Filters, today: date, stale_days: int) -> Filters | None:
    """The date part of the stale link: last updated on or before today - stale_days - 1, within
    the range already chosen. None when the range is on the creation date (one link cannot
    hold both) or ends before nothing is left."""
    span = date_span(filters, today)
    if span is not None and filters.basis == "created":
        return None
    last = today - timedelta(days=int(stale_days) + 1)
    start = span[0] if span is not None else None
    if span is not None and span[1] is not None:
        last = min(last, span[1] - timedelta(days=1))
    if start is not None and start > last:
        return None
    return filters.replace(range="custom", basis="updated", date_from=start, date_to=last)


def count_links(
    row: Mapping[str, Any],
    filters: Filters,
    today: date,
    stale_days: int = DialPolicy.stale_days,
) -> dict[str, str | None]:
    """For one row of `progress_table`: the Leads-page link of each count (None where filters
    cannot name those leads: the lumped campaigns, a last call's hour)."""
    if row["is_other"]:
        return {}
    scope = filters if row["is_total"] else filters.replace(campaigns=(row["campaign_name"],))

    def narrowed(**changes: tuple[str, ...]) -> str | None:
        kept = {name: _narrowed(getattr(scope, name), wanted) for name, wanted in changes.items()}
        if None in kept.values():
            return None
        return leads_link(scope.replace(**kept))

    stale_link = None
    stale = _stale_filters(scope, today, stale_days)
    if stale is not None:
        # Pending and attempted = Retrying or Out of tries.
        kept = {
            "statuses": _narrowed(stale.statuses, ("Pending",)),
            "progress": _narrowed(stale.progress, ("retrying", "out_of_tries")),
        }
        if None not in kept.values():
            stale_link = leads_link(stale.replace(**kept))
    links: dict[str, str | None] = {s: narrowed(progress=(s,)) for s in PROGRESS_STATES}
    wrap_up = narrowed(dispositions=tuple(row["wrap_up_dispositions"]))
    links |= {
        "leads": leads_link(scope),
        "attempted": narrowed(progress=ATTEMPTED_STATES),
        "penetration": narrowed(progress=ATTEMPTED_STATES),
        "completion": narrowed(progress=COMPLETED_STATES),
        "retries_left": narrowed(progress=OPEN_STATES),
        "stale_pending": stale_link,
        "answered": narrowed(dial_buckets=("answered",)),
        "answered_no_disposition": narrowed(dial_buckets=("answered",)),
        "dnc_pending": narrowed(statuses=("Pending",), dispositions=tuple(row["dnc_dispositions"])),
        "wrap_up": wrap_up,
        "wrap_up_share": wrap_up,
    }
    return links


# -- the page's numbers as files ---------------------------------------------------------------


def progress_numbers(table: pd.DataFrame) -> pd.DataFrame:
    """`progress_table` as on screen: the columns named as the page names them, rates in %."""
    shown = table[list(PROGRESS_COLUMNS)].copy()
    for column in RATE_COLUMNS:
        shown[column] = (shown[column] * 100).round(1)
    names = PROGRESS_COLUMNS | {c: f"{PROGRESS_COLUMNS[c]} %" for c in RATE_COLUMNS}
    return shown.rename(columns=names)
