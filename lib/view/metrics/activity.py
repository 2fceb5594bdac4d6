"""Activity and pace from the lead history (lib/store/events.py): dials, answered and
conversions observed per local hour (today and yesterday) and per local day (the sidebar's
range), today so far against the same weekday last week up to the same time, and per campaign
the pace and a finish-time forecast.

Only the sidebar's campaign filter applies (`SCOPE_CAPTION`): the other filters describe each
lead's current state, not its past calls. The hourly and daily counts come from `event_hours`
(per campaign, local day and hour) when it is current (`summary_ready`, as the lead summary);
while it is stale and a writer holds the lock, from `lead_events` through the same SELECT
(`hours_select`), so an answer is never stale. "Today so far" reads `lead_events` between two
times (an hour's counts cannot stop at 14:20). Days and hours are the account's local ones (the
connection's TimeZone); "the same time last week" is the same wall-clock time 7 calendar days
earlier, so a daylight-saving change in between moves nothing.

The forecast's arithmetic is `forecast` (pure, no database): pace = dials observed per working
hour over the last `PACE_DAYS` days that had dials, before the current hour (not over yet); a
working hour is a local hour of one of those days with at least one dial. Finish = now +
remaining / pace, laid out over the hours of the day in which dials happened on those days
(wall-clock hours); the range uses the fastest and the slowest of those days' own pace.
Remaining = retries left as `progress_table` counts it, over the campaign's whole list.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from lib.store.events import hours_select
from lib.store.summary import summary_ready
from lib.view import numbers
from lib.view.filters import Filters, date_span
from lib.view.labels import time_text
from lib.view.metrics.history import DIALS_CAPTION
from lib.view.metrics.progress import progress_table
from lib.view.metrics.relation import fetch_frame, local_today

MEASURES: dict[str, str] = {"dials": "Dials", "answered": "Answered", "conversions": "Conversions"}
PACE_DAYS = 3  # the days with dials the pace is measured over
MAX_FORECAST_DAYS = 3660  # beyond about ten years the estimate says so instead of a date

MEASURE_HELP: dict[str, str] = {
    "dials": DIALS_CAPTION,
    "answered": "Answered = changes with at least one dial whose last call was answered (a lead "
    "called several times between two syncs counts once, by its last call).",
    "conversions": "Conversions = changes into a disposition of the Sale category (Settings > "
    "Disposition categories): after a dial, or edited from another category.",
}
SCOPE_CAPTION = (
    "The history follows the sidebar's campaign filter only (and, per day, its date range): the "
    "other filters (status, dial status, disposition, agent, progress) describe each lead's "
    "current state, not its past calls."
)
FORECAST_HELP = (
    f"Pace = dials observed per working hour over each campaign's last {PACE_DAYS} days that had "
    "dials (an hour with no dial at all is not a working hour; the current hour, not over yet, "
    "is left out). Retries left = as in the table above (the sum of allowed − attempts over Not "
    "dialled and Retrying leads), over the campaign's whole list: the dials still to make if "
    "every open lead used all its tries. Finish estimate = now + retries left / pace, laid out "
    "over the hours of the day in which dials happened on those days; the range uses the "
    "fastest and the slowest of those days' own pace."
)
FORECAST_COLUMNS: tuple[str, ...] = (
    "Campaign",
    "Retries left",
    "Pace (dials per working hour)",
    "Slowest–fastest day",
    "Working hours a day",
    "Days observed",
    "Finish estimate",
    "Range",
)
_SUMS = ", ".join(f"coalesce(sum(h.{m}), 0)::BIGINT AS {m}" for m in MEASURES)


def _campaigns(filters: Filters) -> tuple[str, dict[str, Any]]:
    """The campaign filter over a relation with `campaign_name` (the only one that applies)."""
    if not filters.campaigns:
        return "TRUE", {}
    return "list_contains($a_campaigns, campaign_name)", {"a_campaigns": list(filters.campaigns)}


def _hours(cursor: duckdb.DuckDBPyConnection, filters: Filters) -> tuple[str, dict[str, Any]]:
    """SQL of the hourly counts (event_hours' columns) of the filtered campaigns, and its
    parameters: event_hours when current, else the same SELECT over lead_events."""
    where, params = _campaigns(filters)
    if summary_ready(cursor):
        return f"SELECT * FROM event_hours WHERE {where}", params
    return hours_select(where), params


def activity_hours(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """48 rows: day (yesterday, then today), day_label ("Yesterday", "Today"), hour (0-23),
    dials, answered, conversions (0 where nothing was observed)."""
    source, params = _hours(cursor, filters)
    day = local_today(tz, today)
    return fetch_frame(
        cursor,
        f"""
        WITH h AS ({source}),
        grid AS (
            SELECT d.day, d.day_label, d.o, unnest(range(24)) AS hour
            FROM (VALUES ($yesterday, 'Yesterday', 0), ($today, 'Today', 1)) d(day, day_label, o)
        )
        SELECT g.day, g.day_label, g.hour, {_SUMS}
        FROM grid g LEFT JOIN h ON h.updated_day = g.day AND h.updated_hour = g.hour
        GROUP BY g.day, g.day_label, g.o, g.hour ORDER BY g.o, g.hour
        """,
        {**params, "today": day, "yesterday": day - timedelta(days=1)},
    )


def activity_days(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> pd.DataFrame:
    """One row per local day of the sidebar's range that the history covers: day, dials,
    answered, conversions (0 on a day with nothing observed). The history covers the local day
    its first delivery was received (any campaign's) to today, or to the campaigns' last event
    when later (a clock ahead); "All dates" is that span. Days after today are only those with
    events: one lead dated 9999 must not make a row for every day until then. Empty when
    nothing was observed."""
    day = local_today(tz, today)
    where, params = _campaigns(filters)
    first, last = cursor.execute(
        "SELECT (SELECT CAST(min(observed_at) AS DATE) FROM lead_events), "
        f"(SELECT CAST(max(updated_at) AS DATE) FROM lead_events WHERE {where})",
        params,
    ).fetchone()
    columns = ["day", *MEASURES]
    if first is None:
        return pd.DataFrame(columns=columns)
    last = max(last or day, day)
    span = date_span(filters, day)
    if span is not None:
        first = max(first, span[0]) if span[0] is not None else first
        last = min(last, span[1] - timedelta(days=1)) if span[1] is not None else last
    if first > last:
        return pd.DataFrame(columns=columns)
    source, params = _hours(cursor, filters)
    return fetch_frame(
        cursor,
        f"""
        WITH h AS ({source}),
        days AS (
            SELECT CAST(unnest(generate_series($first, $filled, INTERVAL 1 DAY)) AS DATE) AS day
            UNION
            SELECT DISTINCT updated_day FROM h
            WHERE updated_day > $filled AND updated_day BETWEEN $first AND $last
        )
        SELECT d.day, {_SUMS}
        FROM days d LEFT JOIN h ON h.updated_day = d.day GROUP BY d.day ORDER BY d.day
        """,
        {**params, "first": first, "filled": min(last, day), "last": last},
    )


def local_wall(now: datetime, tz: str) -> datetime:
    """`now` as the account's naive wall-clock time (an aware time is converted to the zone; a
    naive one is taken as that wall clock already)."""
    return now.astimezone(ZoneInfo(tz)).replace(tzinfo=None) if now.tzinfo else now


def today_so_far(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Today from local midnight up to `now` (included), and the same weekday 7 days earlier
    from its midnight up to the same wall-clock time: {"today": {measure: n}, "last_week":
    {measure: n}, "now": the local wall-clock time, "last_week_day": that day}. The day is
    `now`'s (`today` is ignored)."""
    del today
    zone = ZoneInfo(tz)
    wall = local_wall(now, tz)
    week = timedelta(days=7)
    midnight = datetime.combine(wall.date(), time(0))
    where, params = _campaigns(filters)
    window = (
        "((updated_at >= $t0 AND updated_at <= $t1) OR (updated_at >= $w0 AND updated_at <= $w1))"
    )
    rows = cursor.execute(
        f"""
        SELECT h.updated_day = $today AS is_today, {_SUMS}
        FROM ({hours_select(f"{window} AND {where}")}) h
        GROUP BY ALL
        """,
        {
            **params,
            "today": wall.date(),
            "t0": midnight.replace(tzinfo=zone),
            "t1": wall.replace(tzinfo=zone),
            "w0": (midnight - week).replace(tzinfo=zone),
            "w1": (wall - week).replace(tzinfo=zone),
        },
    ).fetchall()
    counts = {True: dict.fromkeys(MEASURES, 0), False: dict.fromkeys(MEASURES, 0)}
    for is_today, *values in rows:
        counts[bool(is_today)] = dict(zip(MEASURES, (int(v) for v in values), strict=True))
    return {
        "today": counts[True],
        "last_week": counts[False],
        "now": wall,
        "last_week_day": wall.date() - week,
    }


def change_text(today: int, before: int, number_format: str = numbers.DEFAULT_FORMAT) -> str:
    """A tile's delta: the change as a percentage of last week's count, or the difference when
    that was 0 (grouped in `number_format`)."""
    if before == 0:
        return numbers.signed_count(today, number_format) if today else "±0"
    return f"{(today - before) / before:+.0%}"


# -- pace and forecast (pure) --------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    """One campaign's forecast. status: "estimate"; "done" (no retries left); "no_estimate"
    (fewer than PACE_DAYS days with dials); "unknown" (no attempts allowed, so no retries
    count); "beyond" (more than MAX_FORECAST_DAYS away at this pace)."""

    status: str
    remaining: int | None
    days: tuple[date, ...] = ()  # the days the pace is measured over
    working_hours: tuple[int, ...] = ()  # hours of the day with a dial on one of those days
    pace: Fraction | None = None  # dials per working hour over those days
    slowest: Fraction | None = None  # the slowest of those days' own pace
    fastest: Fraction | None = None
    finish: datetime | None = None  # in `now`'s zone, to the minute
    earliest: datetime | None = None  # at the fastest day's pace
    latest: datetime | None = None  # at the slowest day's pace


_MICROSECOND = timedelta(microseconds=1)


def finish_time(
    now: datetime, remaining: int, pace: Fraction, hours: Iterable[int]
) -> datetime | None:
    """The wall-clock time (naive, like `now`) at which `remaining` dials are made at `pace`
    dials per hour, dialling only in the given hours of the day, from `now` on (the rest of the
    current hour counts when it is one of them). None beyond MAX_FORECAST_DAYS."""
    working = frozenset(hours)
    if remaining <= 0:
        return now
    if pace <= 0 or not working:
        return None
    hour = timedelta(hours=1)
    per_day = pace * len(working)
    left = Fraction(remaining)
    start = now  # when dialling can start in the current slot
    slot = now.replace(minute=0, second=0, microsecond=0)
    skipped = False
    while True:
        if slot.hour in working:
            capacity = pace * Fraction((slot + hour - start) // _MICROSECOND, 3_600_000_000)
            if left <= capacity:
                return start + timedelta(seconds=float(left / pace * 3600))
            left -= capacity
        slot += hour
        start = slot
        if slot.hour == 0 and not skipped:  # the first midnight: skip the whole days at once
            skipped = True
            whole = math.ceil(left / per_day) - 1
            if whole > MAX_FORECAST_DAYS:
                return None
            slot += timedelta(days=whole)
            start = slot
            left -= per_day * whole


def _round_minute(moment: datetime) -> datetime:
    return (moment + timedelta(seconds=30)).replace(second=0, microsecond=0)


def forecast(
    hours: Iterable[tuple[date, int, int]],
    remaining: int | None,
    now: datetime,
    days: int = PACE_DAYS,
) -> Forecast:
    """The forecast from hourly dial counts (local day, hour of the day, dials observed; any
    number of days), the retries left (None: unknown) and `now` (the account's wall clock:
    aware in its zone, or naive). Hours from the current one on are not over and left out; of
    the rest, the last `days` days with a dial give the pace."""
    wall = now.replace(tzinfo=None)
    current = wall.replace(minute=0, second=0, microsecond=0)
    by_day: dict[date, dict[int, int]] = {}
    for day, hour, dials in hours:
        if dials > 0 and datetime.combine(day, time(int(hour))) < current:
            slot = by_day.setdefault(day, {})
            slot[int(hour)] = slot.get(int(hour), 0) + int(dials)
    used = tuple(sorted(by_day)[-days:])
    if remaining is None:
        return Forecast("unknown", None, used)
    if remaining <= 0:
        return Forecast("done", 0, used)
    if len(used) < days:
        return Forecast("no_estimate", remaining, used)
    working = tuple(sorted({h for day in used for h in by_day[day]}))
    paces = [Fraction(sum(by_day[d].values()), len(by_day[d])) for d in used]
    pace = Fraction(sum(sum(by_day[d].values()) for d in used), sum(len(by_day[d]) for d in used))
    slowest, fastest = min(paces), max(paces)
    measured = (used, working, pace, slowest, fastest)
    finish, earliest, latest = (
        finish_time(wall, remaining, p, working) for p in (pace, fastest, slowest)
    )
    if finish is None:
        return Forecast("beyond", remaining, *measured)
    finish, earliest, latest = (
        None if m is None else _round_minute(m).replace(tzinfo=now.tzinfo)
        for m in (finish, earliest, latest)
    )
    return Forecast("estimate", remaining, *measured, finish, earliest, latest)


def when_text(moment: datetime | None) -> str:
    """ "10 Dec, 14:30"; "later" when there is none (beyond the horizon)."""
    return "later" if moment is None else time_text(moment)


def forecast_text(result: Forecast) -> str:
    """The Finish estimate cell: a date and time, or why there is none."""
    if result.status == "estimate":
        return when_text(result.finish)
    if result.status == "done":
        return "done: no retries left"
    if result.status == "unknown":
        return "no estimate: no attempt count (set the attempts allowed on Settings)"
    if result.status == "beyond":
        return f"more than {MAX_FORECAST_DAYS // 366} years at this pace"
    return f"no estimate yet ({len(result.days)} of {PACE_DAYS} days with dials observed)"


def hours_text(hours: Iterable[int]) -> str:
    """ "9: 09–12, 14–19": how many, then the runs of consecutive hours (an end is exclusive)."""
    runs: list[list[int]] = []
    for h in sorted(hours):
        if runs and runs[-1][1] == h:
            runs[-1][1] = h + 1
        else:
            runs.append([h, h + 1])
    if not runs:
        return ""
    return f"{sum(b - a for a, b in runs)}: " + ", ".join(f"{a:02d}–{b:02d}" for a, b in runs)


# -- pace and forecast (queries) -----------------------------------------------------------------


def pace_hours(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    now: datetime,
    days: int = PACE_DAYS,
) -> pd.DataFrame:
    """Per campaign, its last `days` local days with dials before the current hour: campaign,
    day, hour, dials (the hours with dials only)."""
    del today  # the current hour is `now`'s
    source, params = _hours(cursor, filters)
    wall = local_wall(now, tz)
    return fetch_frame(
        cursor,
        f"""
        WITH done AS (
            SELECT campaign_name, updated_day, updated_hour, dials FROM ({source})
            WHERE dials > 0
              AND (updated_day < $day OR (updated_day = $day AND updated_hour < $hour))
        ), ranked AS (
            SELECT *, dense_rank() OVER (PARTITION BY campaign_name ORDER BY updated_day DESC) AS r
            FROM done
        )
        SELECT campaign_name AS campaign, updated_day AS day, updated_hour::INTEGER AS hour,
               sum(dials)::BIGINT AS dials
        FROM ranked WHERE r <= $days GROUP BY ALL ORDER BY campaign, day, hour
        """,
        {**params, "day": wall.date(), "hour": wall.hour, "days": int(days)},
    )


def _number(value: Fraction | None) -> float:
    return float("nan") if value is None else float(value)


def forecast_table(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    now: datetime,
) -> pd.DataFrame:
    """One row per campaign with leads (the campaign filter only: each campaign's whole list),
    the largest first: the FORECAST_COLUMNS as shown, then status, pace, slowest, fastest (dials
    per working hour, NaN without pace) and finish, earliest, latest (aware, in the account's
    zone; None without an estimate)."""
    scope = Filters(campaigns=filters.campaigns)
    table = progress_table(cursor, scope, tz, today, top=2**31 - 1)  # never "Other campaigns"
    hours = pace_hours(cursor, scope, tz, now=now)
    moment = local_wall(now, tz).replace(tzinfo=ZoneInfo(tz))
    rows = []
    for row in table[~table["is_total"]].itertuples(index=False):
        own = hours[hours["campaign"] == row.campaign_name]
        remaining = None if pd.isna(row.allowed) else int(row.retries_left)
        result = forecast(own[["day", "hour", "dials"]].itertuples(index=False), remaining, moment)
        measured = result.pace is not None
        rows.append(
            {
                "Campaign": row.campaign,
                "Retries left": remaining,
                "Pace (dials per working hour)": round(_number(result.pace), 1),
                "Slowest–fastest day": (
                    f"{float(result.slowest):,.1f}–{float(result.fastest):,.1f}" if measured else ""
                ),
                "Working hours a day": hours_text(result.working_hours),
                "Days observed": ", ".join(f"{d:%a} {d.day} {d:%b}" for d in result.days),
                "Finish estimate": forecast_text(result),
                "Range": (
                    f"{when_text(result.earliest)} – {when_text(result.latest)}"
                    if result.status == "estimate"
                    else ""
                ),
                "status": result.status,
                "pace": _number(result.pace),
                "slowest": _number(result.slowest),
                "fastest": _number(result.fastest),
                "finish": result.finish,
                "earliest": result.earliest,
                "latest": result.latest,
            }
        )
    extra = ["status", "pace", "slowest", "fastest", "finish", "earliest", "latest"]
    frame = pd.DataFrame(rows, columns=[*FORECAST_COLUMNS, *extra])
    return frame.astype({"Retries left": "Int64"})
