"""Activity, pace and the finish estimate from the lead history (lib/view/metrics/activity.py),
over events written by real ingests into a real DuckDB file, and the Progress page and the
Campaign page's Trends that show them. Every expected value is written out by hand from the
deliveries of `activity_scenario`."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lib.store import Store
from lib.store.ingest import ingest_delivery
from lib.store.policy import save_attempts_allowed
from lib.store.receive import register_raw
from lib.view import activity_charts
from lib.view.filters import Filters
from lib.view.metrics import activity
from tests.conftest import writer_lock_held
from tests.support.apptest import open_app, texts

TZ = "Asia/Kolkata"
ZONE = ZoneInfo(TZ)
TODAY = date(2026, 12, 4)  # a Friday; the same weekday last week is Fri 27 Nov
NOW = datetime(2026, 12, 4, 14, 20, tzinfo=ZONE)
IN_2026 = "" if datetime.now(ZONE).year == 2026 else " 2026"  # a time shows its year if not now's
ALL = Filters()


def record(campaign: str, key: str, updated: datetime, attempts: int | None, **fields) -> dict:
    answered = fields.pop("answered", False)
    return {
        "LeadID": key,
        "PhoneNumber": f"+91 98765{abs(hash(key)) % 10**5:05d}",
        "Name": key,
        "CampaignName": campaign,
        "Status": "Pending",
        "DialStatus": "answered" if answered else ("NotDialed" if not attempts else "not_answered"),
        "Disposition": "",
        "AgentName": "",
        "Attempts": attempts,
        "CallDuration": "",
        "CreatedDate": "2026-11-01 09:00:00",
        "UpdatedDate": f"{updated:%Y-%m-%d %H:%M:%S}",
    } | fields


def deliver(store: Store, campaign: str, records: list[dict], received: datetime) -> None:
    """One callback body, registered, its receive time set, ingested."""
    folder = store.path.parent / (store.path.stem + ".deliveries")
    folder.mkdir(exist_ok=True)
    name = f"{campaign}-{received:%Y%m%d%H%M%S}"
    part = folder / f"{name}.part"
    doc = {"status": "success", "uniqueId": name, "campaignName": campaign, "data": records}
    part.write_bytes(json.dumps(doc).encode())
    raw = register_raw(store, folder, part, "application/json")
    with store.writing() as cursor:
        cursor.execute(
            "UPDATE raw_deliveries SET received_at = ? WHERE id = ?",
            [received.replace(tzinfo=ZONE), raw.id],
        )
    ingest_delivery(store, raw.id)


def at(today: date, days: int, clock: str) -> datetime:
    """A local wall-clock time `days` days from `today`."""
    return datetime.combine(today + timedelta(days=days), time.fromisoformat(clock))


def activity_scenario(store: Store, today: date = TODAY) -> None:
    """Three campaigns, each change delivered 5 minutes after its call (dates relative to
    `today`; with TODAY, day -7 is Fri 27 Nov, day -1 Thu 3 Dec).

    North (attempts allowed inferred: 8), first loaded on day -8 at 20:00 (the history's
    first delivery) with N1-N5 never dialled:
      day -7 09:00 N1 0->2 · 14:10 N2 0->1 answered, Sale Closed · 14:30 N3 0->5
      day -1 23:30 N1 2->3
      day  0 00:30 N4 0->1 answered, Not Interested · 09:15 N5 0->2 answered, Sale Closed ·
             09:50 N4 edited to Sale Closed (no call) · 14:05 N3 5->8 · 16:00 N1 3->4
    South (allowed 37, set): S1 and S2 never dialled, S3 Success, first loaded on day -5;
      day -4 09:10 S1 0->20
      day -3 10:05 S2 ->6, 11:05 ->10 · day -2 10:05 ->13, 11:05 ->16, 12:05 ->19 ·
      day -1 10:05 ->23, 12:05 ->27 · day 0 08:00 S3's disposition edited (no call)
    East (allowed 2, set): E1 out of tries, E2 Success: no retries left."""
    save_attempts_allowed(store, {"South": 37, "East": 2}, by="test")

    def north(key, days, clock, attempts, **fields):
        return record("North", key, at(today, days, clock), attempts, **fields)

    first = [north(f"N{i}", -8, "10:00", 0) for i in range(1, 6)]
    deliver(store, "North", first, at(today, -8, "20:00"))
    sale = {"answered": True, "Disposition": "Sale Closed"}
    changes = [
        north("N1", -7, "09:00", 2),
        north("N2", -7, "14:10", 1, **sale),
        north("N3", -7, "14:30", 5),
        north("N1", -1, "23:30", 3),
        north("N4", 0, "00:30", 1, answered=True, Disposition="Not Interested"),
        north("N5", 0, "09:15", 2, **sale),
        north("N4", 0, "09:50", 1, **sale),
        north("N3", 0, "14:05", 8),
        north("N1", 0, "16:00", 4),
    ]
    for change in changes:
        moment = datetime.strptime(change["UpdatedDate"], "%Y-%m-%d %H:%M:%S")
        deliver(store, "North", [change], moment + timedelta(minutes=5))

    def south(key, days, clock, attempts, **fields):
        return record("South", key, at(today, days, clock), attempts, **fields)

    deliver(
        store,
        "South",
        [
            south("S1", -5, "09:00", 0),
            south("S2", -5, "09:00", 0),
            south("S3", -5, "09:00", 1, Status="Success", **sale),
        ],
        at(today, -5, "20:00"),
    )
    for key, days, clock, attempts in (
        ("S1", -4, "09:10", 20),
        ("S2", -3, "10:05", 6),
        ("S2", -3, "11:05", 10),
        ("S2", -2, "10:05", 13),
        ("S2", -2, "11:05", 16),
        ("S2", -2, "12:05", 19),
        ("S2", -1, "10:05", 23),
        ("S2", -1, "12:05", 27),
    ):
        called = at(today, days, clock)
        deliver(store, "South", [south(key, days, clock, attempts)], called + timedelta(minutes=5))
    # S3's disposition edited this morning, no call: a change on a day without a dial.
    edit = south("S3", 0, "08:00", 1, Status="Success", answered=True, Disposition="Call Back")
    deliver(store, "South", [edit], at(today, 0, "08:05"))
    east = [
        record("East", "E1", at(today, -5, "09:00"), 2),
        record("East", "E2", at(today, -5, "09:00"), 1, Status="Success", **sale),
    ]
    deliver(store, "East", east, at(today, -5, "21:00"))


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "activity.duckdb", timezone=TZ)
    activity_scenario(store)
    yield store
    store.close()


def query(store: Store, function, filters: Filters = ALL, **options):
    with store.cursor() as cursor:
        return function(cursor, filters, TZ, TODAY, **options)


def nonzero_hours(frame: pd.DataFrame) -> dict[tuple[str, int], tuple[int, int, int]]:
    return {
        (r.day_label, int(r.hour)): (int(r.dials), int(r.answered), int(r.conversions))
        for r in frame.itertuples()
        if r.dials or r.answered or r.conversions
    }


NORTH = Filters(campaigns=("North",))


def test_activity_per_hour_today_and_yesterday(store):
    frame = query(store, activity.activity_hours, NORTH)
    assert list(frame.columns) == ["day", "day_label", "hour", "dials", "answered", "conversions"]
    assert len(frame) == 48
    assert list(frame["day"].iloc[[0, 24]]) == [pd.Timestamp(2026, 12, 3), pd.Timestamp(TODAY)]
    assert list(frame["hour"].iloc[:24]) == list(range(24))
    # 00:30 local is 19:00 UTC the day before: it counts today, at hour 0. The 16:00 change
    # counts at 16 (the chart shows what was observed, whatever the time now).
    assert nonzero_hours(frame) == {
        ("Yesterday", 23): (1, 0, 0),
        ("Today", 0): (1, 1, 0),
        ("Today", 9): (2, 1, 2),  # N5's answered sale, N4's edit into a sale
        ("Today", 14): (3, 0, 0),
        ("Today", 16): (1, 0, 0),
    }
    # The campaign filter: South dialled nothing yesterday at hour 23, or today.
    south = query(store, activity.activity_hours, Filters(campaigns=("South",)))
    assert nonzero_hours(south) == {("Yesterday", 10): (4, 0, 0), ("Yesterday", 12): (4, 0, 0)}
    # The other filters do not apply (they describe leads' current state).
    assert query(store, activity.activity_hours, NORTH.replace(statuses=("Fail",))).equals(frame)


def days(frame: pd.DataFrame) -> list[tuple]:
    return [
        (r.day.date(), int(r.dials), int(r.answered), int(r.conversions))
        for r in frame.itertuples()
    ]


def test_activity_per_day_over_the_range_from_the_historys_first_day(store):
    zero = (0, 0, 0)
    # All dates: from the first delivery's day (Thu 26 Nov, North's first load) to today.
    assert days(query(store, activity.activity_days, NORTH)) == [
        (date(2026, 11, 26), *zero),  # first seen only: no dial
        (date(2026, 11, 27), 8, 1, 1),  # N1 2, N2 1 (answered, a sale), N3 5
        *((date(2026, 11, d), *zero) for d in (28, 29, 30)),
        (date(2026, 12, 1), *zero),
        (date(2026, 12, 2), *zero),
        (date(2026, 12, 3), 1, 0, 0),
        (date(2026, 12, 4), 7, 2, 2),
    ]
    last_7d = days(query(store, activity.activity_days, NORTH.replace(range="last_7d")))
    assert [d[0] for d in last_7d] == [date(2026, 11, 28) + timedelta(days=i) for i in range(7)]
    assert sum(d[1] for d in last_7d) == 8
    custom = NORTH.replace(range="custom", date_from=date(2026, 11, 1), date_to=date(2026, 11, 27))
    assert days(query(store, activity.activity_days, custom)) == [
        (date(2026, 11, 26), *zero),
        (date(2026, 11, 27), 8, 1, 1),
    ]
    before = NORTH.replace(range="custom", date_from=date(2026, 11, 1), date_to=date(2026, 11, 20))
    assert query(store, activity.activity_days, before).empty  # before the history began
    south = days(query(store, activity.activity_days, Filters(campaigns=("South",))))
    assert [d[1] for d in south] == [0, 0, 0, 0, 20, 10, 9, 8, 0]


def test_a_lead_dated_far_ahead_adds_its_day_not_every_day_until_then(tmp_path):
    """A wrong clock or a garbage date (9999-12-31) is one more day in the per-day activity,
    with its dials; the days between today and then are not drawn."""
    store = Store(tmp_path / "ahead.duckdb", timezone=TZ)
    try:
        deliver(store, "Ahead", [record("Ahead", "A1", at(TODAY, -1, "10:00"), 0)],
                at(TODAY, -1, "12:00"))  # fmt: skip
        deliver(store, "Ahead", [record("Ahead", "A1", at(TODAY, 0, "09:00"), 2)],
                at(TODAY, 0, "09:05"))  # fmt: skip
        far = record("Ahead", "A1", datetime(9999, 12, 31, 10, 0), 5)
        deliver(store, "Ahead", [far], at(TODAY, 0, "10:00"))
        assert days(query(store, activity.activity_days)) == [
            (date(2026, 12, 3), 0, 0, 0),
            (date(2026, 12, 4), 2, 0, 0),
            (date(9999, 12, 31), 3, 0, 0),
        ]
        this_year = Filters(range="custom", date_from=date(2026, 12, 1), date_to=date(2026, 12, 31))
        december = query(store, activity.activity_days, this_year)
        assert days(december) == [(date(2026, 12, 3), 0, 0, 0), (date(2026, 12, 4), 2, 0, 0)]
        # The chart's days name their year once one of them is not in the current year.
        ticks = activity_charts.daily(query(store, activity.activity_days)).layout.xaxis.tickformat
        assert ticks == "%d %b %Y"
        now = datetime.now(ZONE).year
        current = december.assign(day=[d.replace(year=now) for d in december["day"]])
        assert activity_charts.daily(current).layout.xaxis.tickformat == "%d %b"
    finally:
        store.close()


def test_today_so_far_against_the_same_weekday_last_week_up_to_the_same_time(store):
    result = query(store, activity.today_so_far, NORTH, now=NOW)
    # Today up to 14:20: N4 00:30 (1, answered), N5 09:15 (2, answered, sale), N4's edit
    # (a sale), N3 14:05 (3); not N1 at 16:00. Fri 27 Nov up to 14:20: N1 09:00 (2), N2 14:10
    # (1, answered, sale); not N3 at 14:30.
    assert result["today"] == {"dials": 6, "answered": 2, "conversions": 2}
    assert result["last_week"] == {"dials": 3, "answered": 1, "conversions": 1}
    assert result["last_week_day"] == date(2026, 11, 27)
    assert result["now"] == datetime(2026, 12, 4, 14, 20)
    # The same instant given in UTC reads the same local time.
    utc = query(store, activity.today_so_far, NORTH, now=NOW.astimezone(ZoneInfo("UTC")))
    assert utc["today"] == result["today"] and utc["last_week"] == result["last_week"]
    # At 14:05:00 exactly N3's call counts (up to and including now); at 14:04 it does not.
    assert query(store, activity.today_so_far, NORTH, now=NOW.replace(minute=5))["today"] == {
        "dials": 6,
        "answered": 2,
        "conversions": 2,
    }
    early = query(store, activity.today_so_far, NORTH, now=NOW.replace(minute=4))
    assert early["today"]["dials"] == 3
    assert early["last_week"]["dials"] == 2  # N2's 14:10 is after 14:04 too
    assert activity.change_text(6, 3) == "+100%"
    assert activity.change_text(2, 0) == "+2"
    assert activity.change_text(0, 0) == "±0"
    assert activity.change_text(1, 4) == "-75%"


def test_today_so_far_keeps_the_wall_clock_across_a_daylight_saving_change(tmp_path):
    """New York left daylight saving time on Sun 1 Nov 2026: Mon 2 Nov 10:00 EST is 15:00 UTC,
    and 7 x 24 h earlier is 11:00 EDT on Mon 26 Oct; the same time last week is 10:00 EDT."""
    zone = "America/New_York"
    store = Store(tmp_path / "ny.duckdb", timezone=zone)
    try:
        first = [record("NY", "X1", datetime(2026, 10, 20, 9, 0), 0)]
        deliver(store, "NY", first, datetime(2026, 10, 20, 23, 0))
        for updated, attempts in (
            (datetime(2026, 10, 26, 9, 30), 1),  # last week, before 10:00
            (datetime(2026, 10, 26, 10, 30), 3),  # last week, after 10:00: not counted
            (datetime(2026, 11, 1, 23, 30), 4),  # Sunday night: not today
            (datetime(2026, 11, 2, 9, 0), 8),  # today
        ):
            deliver(store, "NY", [record("NY", "X1", updated, attempts)], updated)
        now = datetime(2026, 11, 2, 10, 0, tzinfo=ZoneInfo(zone))
        with store.cursor() as cursor:
            result = activity.today_so_far(cursor, Filters(), zone, now=now)
            hours = activity.activity_hours(cursor, Filters(), zone, date(2026, 11, 2))
    finally:
        store.close()
    assert result["today"]["dials"] == 4
    assert result["last_week"]["dials"] == 1
    assert nonzero_hours(hours) == {("Yesterday", 23): (1, 0, 0), ("Today", 9): (4, 0, 0)}


def test_the_counts_are_the_same_while_event_hours_is_stale_and_a_writer_is_busy(store):
    current = query(store, activity.activity_hours, NORTH)
    current_days = query(store, activity.activity_days, NORTH)
    current_pace = query(store, activity.pace_hours, now=NOW)
    with store.writing() as cursor:
        store.bump_data_version(cursor)  # the summaries (and event_hours) are stale now
    with writer_lock_held(store):
        assert query(store, activity.activity_hours, NORTH).equals(current)
        assert query(store, activity.activity_days, NORTH).equals(current_days)
        assert query(store, activity.pace_hours, now=NOW).equals(current_pace)


# -- pace and forecast ---------------------------------------------------------------------------

# South's hours with dials, as delivered: (day, hour, dials).
SOUTH_HOURS = [
    (date(2026, 11, 30), 9, 20),  # the 4th-last day with dials: not in the pace
    (date(2026, 12, 1), 10, 6),
    (date(2026, 12, 1), 11, 4),  # Tue: 10 dials in 2 working hours = 5 an hour
    (date(2026, 12, 2), 10, 3),
    (date(2026, 12, 2), 11, 3),
    (date(2026, 12, 2), 12, 3),  # Wed: 9 in 3 = 3 an hour
    (date(2026, 12, 3), 10, 4),
    (date(2026, 12, 3), 12, 4),  # Thu: 8 in 2 = 4 an hour (hour 11 had no dial)
]
# Pace = 27 dials / 7 working hours; the working hours of a day are 10, 11 and 12, so a day
# holds 81/7 dials. From Fri 4 Dec 14:20 (today's working hours are over), 27 retries take
# Sat 5 and Sun 6 (162/7) and 27/7 more: one hour at 27/7 an hour, Mon 7 Dec 10:00-11:00.
# At the fastest day's 5 an hour: Sat 15, then 12 on Sunday: 2.4 h from 10:00 = 12:24.
# At the slowest day's 3 an hour: 9 a day, so exactly 3 days: Mon 7 Dec 13:00.
FINISH = datetime(2026, 12, 7, 11, 0, tzinfo=ZONE)
EARLIEST = datetime(2026, 12, 6, 12, 24, tzinfo=ZONE)
LATEST = datetime(2026, 12, 7, 13, 0, tzinfo=ZONE)


def test_the_forecast_of_a_known_pace_gives_the_expected_finish_and_range():
    # Today's hour 14 is not over at 14:20: its dials are no part of the pace.
    result = activity.forecast([*SOUTH_HOURS, (TODAY, 14, 50)], 27, NOW)
    assert result.status == "estimate"
    assert result.days == (date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3))
    assert result.working_hours == (10, 11, 12)
    assert result.pace == Fraction(27, 7)
    assert (result.slowest, result.fastest) == (3, 5)
    assert (result.finish, result.earliest, result.latest) == (FINISH, EARLIEST, LATEST)
    assert activity.forecast_text(result) == f"07 Dec{IN_2026}, 11:00"


def test_the_finish_counts_the_rest_of_the_current_working_hour():
    # 10:30 in a working hour at 4 an hour: 2 dials by 11:00, the 3rd at 11:15.
    assert activity.finish_time(
        datetime(2026, 12, 5, 10, 30), 3, Fraction(4), [10, 11]
    ) == datetime(2026, 12, 5, 11, 15)
    # With hour 11 off, the 3rd dial waits for 12:00: 12:15.
    assert activity.finish_time(
        datetime(2026, 12, 5, 10, 30), 3, Fraction(4), [10, 12]
    ) == datetime(2026, 12, 5, 12, 15)
    # Exactly a day's worth from before the first working hour ends with its last hour.
    assert activity.finish_time(datetime(2026, 12, 5, 8, 0), 8, Fraction(4), [10, 11]) == datetime(
        2026, 12, 5, 12, 0
    )
    # 17 from 12:00 at 4 an hour in 2 hours a day: 8 on the 6th, 8 on the 7th, 1 at 10:15.
    assert activity.finish_time(
        datetime(2026, 12, 5, 12, 0), 17, Fraction(4), [10, 11]
    ) == datetime(2026, 12, 8, 10, 15)
    assert activity.finish_time(datetime(2026, 12, 5, 12, 0), 10**9, Fraction(1), [10]) is None


def test_no_estimate_yet_with_fewer_than_three_days_with_dials():
    # At Tue 1 Dec 10:30, South's 10:05 dials are in the current hour: 1 day so far.
    one = activity.forecast(SOUTH_HOURS, 27, datetime(2026, 12, 1, 10, 30, tzinfo=ZONE))
    assert (one.status, one.days) == ("no_estimate", (date(2026, 11, 30),))
    assert activity.forecast_text(one) == "no estimate yet (1 of 3 days with dials observed)"
    two = activity.forecast(SOUTH_HOURS, 27, datetime(2026, 12, 2, 9, 0, tzinfo=ZONE))
    assert two.status == "no_estimate" and len(two.days) == 2
    assert two.finish is None and two.pace is None
    assert activity.forecast([], 27, NOW).status == "no_estimate"
    # Nothing remains: done, whatever the history.
    assert activity.forecast([], 0, NOW).status == "done"
    assert activity.forecast_text(activity.forecast(SOUTH_HOURS, 0, NOW)) == (
        "done: no retries left"
    )


def test_the_forecast_table_reads_the_history_and_the_retries_left(store):
    table = query(store, activity.forecast_table, now=NOW)
    assert list(table.columns[: len(activity.FORECAST_COLUMNS)]) == list(activity.FORECAST_COLUMNS)
    rows = {r["Campaign"]: r for r in table.to_dict("records")}
    assert set(rows) == {"North", "South", "East"}
    south = rows["South"]
    # Retries left = (37 - 20) for S1 + (37 - 27) for S2; S3 succeeded.
    assert south["Retries left"] == 27
    assert south["status"] == "estimate"
    assert south["Pace (dials per working hour)"] == 3.9  # 27 / 7
    assert south["Slowest–fastest day"] == "3.0–5.0"
    assert south["Working hours a day"] == "3: 10–13"
    # Today's 08:00 edit made no dial: today is no day with dials.
    assert south["Days observed"] == "Tue 1 Dec, Wed 2 Dec, Thu 3 Dec"
    assert (south["finish"], south["earliest"], south["latest"]) == (FINISH, EARLIEST, LATEST)
    assert south["Finish estimate"] == f"07 Dec{IN_2026}, 11:00"
    assert south["Range"] == f"06 Dec{IN_2026}, 12:24 – 07 Dec{IN_2026}, 13:00"
    east = rows["East"]
    assert (east["Retries left"], east["status"], east["Finish estimate"]) == (
        0,
        "done",
        "done: no retries left",
    )
    assert east["Range"] == ""
    # North: allowed 8 (inferred); retries (8-4) + (8-1) + (8-1) + (8-2); N3 is out of tries.
    # Its last 3 days with dials before 14:00 today: Fri 27 Nov (09: 2, 14: 1 + 5), Thu 3 Dec
    # (23: 1), today (00: 1, 09: 2): 12 dials in 5 working hours = 2.4 an hour, in hours 0, 9,
    # 14 and 23 (9.6 a day). From 14:20: 40 min of hour 14 (1.6) and hour 23 (2.4) leave 20;
    # Sat and Sun take 19.2; the last 0.8 take 20 min of Mon 7 Dec 00:00.
    north = rows["North"]
    assert north["Retries left"] == 24
    assert north["Days observed"] == "Fri 27 Nov, Thu 3 Dec, Fri 4 Dec"
    assert north["Working hours a day"] == "4: 00–01, 09–10, 14–15, 23–24"
    assert north["pace"] == 2.4
    assert north["Slowest–fastest day"] == "1.0–4.0"
    assert north["finish"] == datetime(2026, 12, 7, 0, 20, tzinfo=ZONE)


def test_without_history_there_is_no_estimate_yet(seeded):
    """The seeded leads were inserted, not ingested: no event at all."""
    from lib.services import get_services

    with get_services().store.cursor() as cursor:
        hours = activity.activity_hours(cursor, Filters(), TZ)
        assert activity.activity_days(cursor, Filters(), TZ).empty
        so_far = activity.today_so_far(cursor, Filters(), TZ, now=datetime.now(ZONE))
        table = activity.forecast_table(cursor, Filters(), TZ, now=datetime.now(ZONE))
    assert len(hours) == 48 and not hours[["dials", "answered", "conversions"]].any().any()
    assert so_far["today"] == so_far["last_week"] == dict.fromkeys(activity.MEASURES, 0)
    assert len(table) == 4  # the seeded campaigns
    assert set(table["status"]) <= {"no_estimate", "done"}
    assert "no estimate yet (0 of 3 days with dials observed)" in set(table["Finish estimate"])


# -- the pages -----------------------------------------------------------------------------------


@pytest.fixture
def page_today(fresh_services) -> date:
    """The scenario around the real today (the pages read the clock); that day."""
    today = datetime.now(ZONE).date()
    activity_scenario(fresh_services.store, today)
    return today


def app(page: str, params: dict) -> AppTest:
    return open_app(page, params, timeout=60)


def traces(at: AppTest, key: str) -> dict[str, dict]:
    return {t["name"]: t for t in json.loads(at.get_by_key(key).proto.spec)["data"]}


def forecast_rows(at: AppTest) -> dict[str, dict]:
    table = next(d.value for d in at.dataframe if "Finish estimate" in d.value.columns)
    assert list(table.columns) == list(activity.FORECAST_COLUMNS)
    return {r["Campaign"]: r for r in table.to_dict("records")}


def day_range(today: date) -> dict:
    """Days -8 to -1: the history's first day to yesterday (nothing of today, which moves)."""
    return {
        "range": "custom",
        "from": f"{today - timedelta(days=8):%Y-%m-%d}",
        "to": f"{today - timedelta(days=1):%Y-%m-%d}",
    }


def day_text(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def shown_moment(text: str, today: date) -> datetime:
    """A time as the page writes it: "07 Dec, 11:00" in the current year, or "07 Jan 2027,
    11:00" in another."""
    if re.fullmatch(r"\d\d \w{3} \d{4}, \d\d:\d\d", text):
        return datetime.strptime(text, "%d %b %Y, %H:%M")
    return datetime.strptime(f"{text} {today.year}", "%d %b, %H:%M %Y")


def shows_the_history_captions(at: AppTest) -> None:
    assert {"Activity", "Pace and finish estimate"} <= {s.value for s in at.subheader}
    caption = texts(at.caption)
    assert activity.SCOPE_CAPTION in caption
    assert (
        "when a lead was called several times between two syncs, all those calls count at the "
        "time of the last one." in caption
    )
    assert "Pace = dials observed per working hour over each campaign's last 3 days" in caption


def test_progress_shows_the_activity_and_the_forecast_of_the_links_campaigns(page_today):
    today = page_today
    # A status filter keeps one lead (S3, Success): the history does not follow it.
    # (Today included: S3 was last updated today; South dialled nothing today.)
    link = {"campaign": "South", "status": "Success", **day_range(today), "to": f"{today}"}
    at = app("progress", link)
    assert {m.label: m.value for m in at.metric}["Leads"] == "1"
    shows_the_history_captions(at)
    tiles = {m.label: m.value for m in at.metric}
    assert (tiles["Dials today so far"], tiles["Conversions today so far"]) == ("0", "0")

    daily = traces(at, "progress_activity_days_chart")
    assert list(daily) == ["Dials", "Answered", "Conversions"]
    assert daily["Dials"]["x"] == [f"{today + timedelta(days=d):%Y-%m-%d}" for d in range(-8, 1)]
    assert daily["Dials"]["y"] == [0, 0, 0, 0, 20, 10, 9, 8, 0]
    assert daily["Answered"]["y"] == daily["Conversions"]["y"] == [0] * 9

    hourly = traces(at, "progress_activity_hours_chart")
    yesterday = next(t for name, t in hourly.items() if name.startswith("Yesterday"))
    assert {h: n for h, n in zip(yesterday["x"], yesterday["y"], strict=True) if n} == {
        10: 4,
        12: 4,
    }

    rows = forecast_rows(at)
    assert list(rows) == ["South"]
    south = rows["South"]
    assert south["Retries left"] == 27
    assert south["Pace (dials per working hour)"] == 3.9
    assert south["Slowest–fastest day"] == "3.0–5.0"
    assert south["Working hours a day"] == "3: 10–13"
    assert south["Days observed"] == ", ".join(
        day_text(today + timedelta(days=d)) for d in (-3, -2, -1)
    )
    finish = shown_moment(south["Finish estimate"], today)
    earliest, latest = (shown_moment(text, today) for text in south["Range"].split(" – "))
    assert earliest <= finish <= latest
    assert 10 <= finish.hour <= 13  # inside the working hours (13:00 = the end of hour 12)


def test_campaign_trends_show_the_activity_and_the_forecast(page_today):
    today = page_today
    at = app("campaign", {"campaign": "North", "section": "Trends", **day_range(today)})
    shows_the_history_captions(at)
    daily = traces(at, "campaign_activity_days_chart")
    assert daily["Dials"]["y"] == [0, 8, 0, 0, 0, 0, 0, 1]  # day -7: N1 2 + N2 1 + N3 5
    assert daily["Answered"]["y"] == daily["Conversions"]["y"] == [0, 1, 0, 0, 0, 0, 0, 0]
    rows = forecast_rows(at)
    assert list(rows) == ["North"]
    assert rows["North"]["Retries left"] == 24

    # The hourly chart's measure picker: conversions per hour.
    at.segmented_control(key="campaign_activity_measure").set_value("conversions").run()
    assert not at.exception, at.exception
    hourly = traces(at, "campaign_activity_hours_chart")
    today_trace = next(t for name, t in hourly.items() if name.startswith("Today"))
    assert {h: n for h, n in zip(today_trace["x"], today_trace["y"], strict=True) if n} == {9: 2}
