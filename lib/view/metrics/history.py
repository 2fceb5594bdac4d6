"""What the lead history (`lead_events`, lib/store/events.py) shows on the pages: "what changed"
since a chosen time, per campaign (the Overview), and one lead's timeline (the Leads page).

What changed counts, per campaign of the sidebar's campaign filter, the events since `since`:
- new leads: first seen since then (`observed_at`: when their delivery was received);
- dials: dials observed (the increase of each lead's attempt count between syncs) in the
  changes whose new state's time (`updated_at`) is since then;
- newly answered: those changes with a dial whose last call was answered;
- new conversions: those changes into the Sale category, with a dial or from another category;
- out of tries: those changes that used up the campaign's attempts allowed while the lead is
  still Pending (attempts before < allowed <= attempts after).
A lead's first observed state counts as a new lead only (as in `event_hours`): its attempts were
made before the history could see them. Only the events since the chosen time are read: each
count filters `updated_at` or `observed_at` first, so DuckDB skips the older row groups.

`since` is an Overview URL parameter (`since=2026-12-03T18:00`, a local date and hour in the
account's zone), like the Campaign page's `section`: it belongs to one page, so it is not one
of the sidebar's `Filters`. `since_notice` names a value the picker would drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from lib.store.catalog import SALE, categorised
from lib.store.events import key_tag_sql
from lib.store.summary import summary_ready
from lib.view.filters import DATE_BOUNDS, Filters, shown, where_clause
from lib.view.labels import DIAL_STATUS_LABELS, LEAD_STATUS_LABELS, time_text
from lib.view.metrics.leads import labelled_sql
from lib.view.metrics.relation import allowed_sql, fetch_frame, local_today

P_SINCE = "since"  # the Overview's URL parameter
SINCE_FORMATS = ("%Y-%m-%dT%H:%M", "%Y/%m/%d, %H:%M")  # what st.datetime_input reads from a URL
SINCE_BOUNDS = (
    datetime.combine(DATE_BOUNDS[0], time(0)),
    datetime.combine(DATE_BOUNDS[1], time(23)),
)
DEFAULT_SINCE_HOUR = 18  # since yesterday 18:00: the numbers part of a morning summary
TOTAL = "Total"

CHANGE_COLUMNS: tuple[str, ...] = (
    "New leads",
    "Dials",
    "Newly answered",
    "New conversions",
    "Out of tries",
)
CHANGE_HELP: dict[str, str] = {
    "New leads": "Leads seen for the first time in a delivery received since then.",
    "Dials": "Dials observed since then: the increase of each lead's attempt count between "
    "syncs, placed at the time of its last call.",
    "Newly answered": "Changes since then with at least one dial whose last call was answered.",
    "New conversions": "Changes since then into a disposition of the Sale category (Settings > "
    "Disposition categories): after a dial, or edited from another category.",
    "Out of tries": "Leads still Pending whose attempts reached the campaign's attempts "
    "allowed since then (set on Settings, else the highest attempts seen).",
}
DIALS_CAPTION = (
    "Dials observed = how much each lead's attempt count went up between two syncs, counted at "
    "the time of its last call: when a lead was called several times between two syncs, all "
    "those calls count at the time of the last one."
)
HISTORY_START_CAPTION = (
    "The history starts with the first sync after this version was installed: earlier "
    "changes were never observed."
)
NO_HISTORY = "No history observed yet"


# -- the chosen time ---------------------------------------------------------------------------


def default_since(today: date) -> datetime:
    """Yesterday 18:00 (local, naive: what the picker holds)."""
    return datetime.combine(today - timedelta(days=1), time(DEFAULT_SINCE_HOUR))


def parse_since(text: str) -> datetime | None:
    """A URL value as the picker reads it (the same formats, within SINCE_BOUNDS), else None."""
    for fmt in SINCE_FORMATS:
        try:
            value = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return value if SINCE_BOUNDS[0] <= value <= SINCE_BOUNDS[1] else None
    return None


def since_notice(asked: Sequence[str]) -> str | None:
    """What to say when the link's `since` is one the picker drops (it does so silently); None
    when it is absent, empty (= the default) or readable. A repeated value: the last counts."""
    values = [value for value in asked if isinstance(value, str)]
    if not values or values[-1] == "" or parse_since(values[-1]) is not None:
        return None
    return (
        f"Ignored {P_SINCE} {shown(values[-1])}: expected a local date and hour "
        f"YYYY-MM-DDTHH:MM (e.g. {P_SINCE}=2026-12-03T18:00) between "
        f"{DATE_BOUNDS[0]} and {DATE_BOUNDS[1]}; showing changes since yesterday "
        f"{DEFAULT_SINCE_HOUR}:00."
    )


def in_zone(picked: datetime, tz: str) -> datetime:
    """The picker's naive local time as an aware time in the account's zone."""
    return picked.replace(tzinfo=ZoneInfo(tz)) if picked.tzinfo is None else picked


def describe_since(since: datetime, tz: str) -> str:
    """ "02 Dec, 18:00" in the account's zone."""
    return time_text(in_zone(since, tz), ZoneInfo(tz))


# -- what changed ------------------------------------------------------------------------------


def _campaign_where(filters: Filters, tz: str, today: date | None) -> tuple[str, dict]:
    """The sidebar's campaign filter only: the other filters describe leads' current state."""
    return where_clause(Filters(campaigns=filters.campaigns), local_today(tz, today), tz)


def what_changed(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    since: datetime,
) -> pd.DataFrame:
    """One row per campaign (with stored leads or events since then; by name) and a `TOTAL`
    row last: Campaign and `CHANGE_COLUMNS`, every count an integer (0 when nothing changed).
    Empty (no row at all) when no campaign is in the selection."""
    where, params = _campaign_where(filters, tz, today)
    params = {**params, "since": in_zone(since, tz)}
    source = "lead_summary" if summary_ready(cursor) else "leads"
    changes = f"""
        SELECT campaign_name, dials, attempts_before, attempts_after, dial_bucket_after,
               lead_status_after, disposition_before, disposition_after AS disposition
        FROM lead_events
        WHERE updated_at >= $since AND NOT first_seen AND {where}
    """
    # Categories resolved once per distinct disposition, after and before (the guess is a
    # chain of regular expressions).
    before = categorised("(SELECT DISTINCT disposition_before AS disposition FROM changed)")
    sql = f"""
        WITH changed AS MATERIALIZED ({changes}),
        categorised_changes AS (
            SELECT c.*, before.category AS category_before
            FROM ({categorised("changed")}) c
            LEFT JOIN ({before}) AS before ON before.disposition = c.disposition_before
        ),
        allowed AS (SELECT campaign_name, allowed FROM ({allowed_sql(source)})),
        counted AS (
            SELECT campaign_name,
                   sum(dials)::BIGINT AS dials,
                   count(*) FILTER (WHERE dials > 0 AND dial_bucket_after = 'answered')
                       AS answered,
                   count(*) FILTER (WHERE category = '{SALE}'
                       AND (dials > 0 OR category_before IS DISTINCT FROM '{SALE}'))
                       AS conversions,
                   count(*) FILTER (WHERE lead_status_after = 'Pending'
                       AND attempts_before < allowed AND attempts_after >= allowed)
                       AS out_of_tries
            FROM categorised_changes LEFT JOIN allowed USING (campaign_name)
            GROUP BY campaign_name
        ),
        new_leads AS (
            SELECT campaign_name, count(*) AS new_leads
            FROM lead_events
            WHERE observed_at >= $since AND first_seen AND {where}
            GROUP BY campaign_name
        ),
        campaigns AS (
            SELECT DISTINCT campaign_name FROM {source} WHERE {where}
            UNION SELECT campaign_name FROM counted
            UNION SELECT campaign_name FROM new_leads
        )
        SELECT campaign_name AS "Campaign",
               coalesce(new_leads, 0)::BIGINT AS "New leads",
               coalesce(dials, 0)::BIGINT AS "Dials",
               coalesce(answered, 0)::BIGINT AS "Newly answered",
               coalesce(conversions, 0)::BIGINT AS "New conversions",
               coalesce(out_of_tries, 0)::BIGINT AS "Out of tries"
        FROM campaigns LEFT JOIN counted USING (campaign_name)
        LEFT JOIN new_leads USING (campaign_name)
        ORDER BY lower(campaign_name), campaign_name
    """
    frame = fetch_frame(cursor, sql, params)
    if frame.empty:
        return frame
    total = {"Campaign": TOTAL, **{c: int(frame[c].sum()) for c in CHANGE_COLUMNS}}
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    return frame.astype({c: "int64" for c in CHANGE_COLUMNS})


def history_start(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> datetime | None:
    """When the first event was observed (its delivery received): the history starts there.
    None when nothing was observed yet."""
    del filters, tz, today  # one history for the account (the signature of ui.query)
    (start,) = cursor.execute("SELECT min(observed_at) FROM lead_events").fetchone()
    return start


# -- one lead's timeline -----------------------------------------------------------------------

TIMELINE_COLUMNS: tuple[str, ...] = (
    "Time",
    "Change",
    "Attempts",
    "Dial status",
    "CloudAgent dial status",
    "Lead status",
    "Disposition",
    "Agent",
    "Talk time",
)


def lead_timeline(cursor: duckdb.DuckDBPyConnection, campaign: str, lead_key: str) -> pd.DataFrame:
    """Every observed state of one lead, newest first: its time (UpdatedDate, typed), the
    change (first seen, the dials observed, or none), attempts, dial status (its label, then as
    CloudAgent sent it), lead status, disposition, agent and talk time. Never a phone number.
    Found by the lead's key tag first (lib/store/events.py), then its campaign and key."""
    frame = fetch_frame(
        cursor,
        f"""
        SELECT updated_at AS "Time",
               CASE WHEN first_seen THEN 'First seen'
                    WHEN dials = 1 THEN '1 dial'
                    WHEN dials > 1 THEN dials || ' dials'
                    ELSE 'No new dial' END AS "Change",
               attempts_after AS "Attempts",
               {labelled_sql("dial_bucket_after", DIAL_STATUS_LABELS)} AS "Dial status",
               nullif(trim(dial_status_after), '') AS "CloudAgent dial status",
               {labelled_sql("lead_status_after", LEAD_STATUS_LABELS)} AS "Lead status",
               disposition_after AS "Disposition",
               agent AS "Agent",
               CAST(to_seconds(call_duration_s) AS VARCHAR) AS "Talk time"
        FROM lead_events
        WHERE key_tag = {key_tag_sql("$campaign", "$lead_key")}
          AND campaign_name = $campaign AND lead_key = $lead_key
        ORDER BY updated_at DESC NULLS LAST, observed_at DESC NULLS LAST, delivery_id DESC
        """,
        {"campaign": campaign, "lead_key": lead_key},
    )
    text = [c for c in TIMELINE_COLUMNS if c not in ("Time", "Attempts")]
    frame[text] = frame[text].astype(object).where(frame[text].notna(), "")
    return frame.astype({"Attempts": "Int64"})
