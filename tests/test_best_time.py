"""Best time to call, on hand-made leads whose hours and weekdays are written out below.

The expected windows are worked out here by hand from `CELLS` (the comments give the sums), and
the cells themselves are recounted in plain Python from the inserted rows, never by the code
under test."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from lib.view import metrics
from lib.view.best_time_chart import THIN_GREY, hour_weekday_greyed
from lib.view.filters import Filters
from tests.conftest import TZ, insert_rows
from tests.test_pages import app

ZONE = ZoneInfo(TZ)
MONDAY = date(2024, 1, 1)
TODAY = date(2024, 3, 1)
BEST = "Best hours"
ELSEWHERE = "Elsewhere"
QUIET = "Quiet"

# (weekday 1 = Mon, local hour): (attempted, answered) of campaign BEST.
CELLS = {
    (1, 23): (40, 20),  # Mon 23 + Tue 00 would be 50%: a window never crosses midnight
    (2, 0): (40, 20),
    (2, 10): (40, 20),  # Tue 10-12: 36/80 = 45%, the best
    (2, 11): (40, 16),  # Tue 11-13: 34/80 = 42.5%, better than Wed, but overlaps Tue 10-12
    (2, 12): (40, 18),
    (2, 13): (10, 10),  # thin: Tue 12-14 would be 28/50 = 56%
    (3, 9): (30, 12),  # Wed 09-11: 24/60 = 40%, exactly 30 a cell qualifies
    (3, 10): (30, 12),
    (4, 14): (29, 29),  # thin by one: Thu 14-16 would be 49/69 = 71%
    (4, 15): (40, 20),
    (5, 15): (50, 15),  # Fri 15-17: 35/100 = 35%
    (5, 16): (50, 20),  # Fri 16-18: 30/100 = 30%, overlaps Fri 15-17
    (5, 17): (50, 10),
}
NOT_DIALLED_AT_TUE_10 = 25  # leads in that cell that were never dialled: not in the denominator
UNDATED_ATTEMPTS = 26  # attempted, not answered, no last-update time: only in the overall rate
# Overall = the Answer rate tile: 222 answered of 489 + 26 = 515 attempted = 43.1%.
EXPECTED_LINES = [
    "Tue 10:00–12:00: 45% answered (80 calls) vs 43% overall",
    "Wed 09:00–11:00: 40% answered (60 calls) vs 43% overall",
    "Fri 15:00–17:00: 35% answered (100 calls) vs 43% overall",
]

SERIAL = count(1)


def lead(campaign: str, when: datetime | None, bucket: str) -> dict:
    serial = next(SERIAL)
    raw = {"answered": "answered", "NoAnswer": "not_answered", "Not dialled": "NotDialed"}
    return {
        "campaign_name": campaign,
        "lead_key": f"B{serial}",
        "lead_id": f"B{serial}",
        "phone_number": f"+91 97{serial:08d}",
        "name": f"Lead {serial}",
        "status": "Pending",
        "lead_status": "Pending",
        "dial_status": raw[bucket],
        "dial_bucket": bucket,
        "disposition": None,
        "comments": None,
        "agent_id": None,
        "agent_name": None,
        "attempts": 0 if bucket == "Not dialled" else 1,
        "priority": 0,
        "ucid": None,
        "call_duration_s": 20 if bucket == "answered" else 0,
        "created_at": datetime(2024, 1, 1, tzinfo=ZONE) if when is None else when,
        "updated_at": when,
        "extra": json.dumps({}),
        "delivery_id": 1,
    }


def at(weekday: int, hour: int, week: int) -> datetime:
    """A local moment on that weekday and hour, in one of several weeks (minutes vary)."""
    day = MONDAY + timedelta(days=weekday - 1 + 7 * (week % 5))
    return datetime(day.year, day.month, day.day, hour, (week * 7) % 60, tzinfo=ZONE)


def cell_rows(campaign: str, cells: dict) -> list[dict]:
    rows = []
    for (weekday, hour), (attempted, answered) in cells.items():
        for i in range(attempted):
            rows.append(
                lead(campaign, at(weekday, hour, i), "answered" if i < answered else "NoAnswer")
            )
    return rows


def best_rows() -> list[dict]:
    rows = cell_rows(BEST, CELLS)
    rows += [lead(BEST, at(2, 10, i), "Not dialled") for i in range(NOT_DIALLED_AT_TUE_10)]
    rows += [lead(BEST, None, "NoAnswer") for _ in range(UNDATED_ATTEMPTS)]
    # Another campaign, all answered at Tue 10-12: leaks if the campaign filter does not hold.
    rows += cell_rows(ELSEWHERE, {(2, 10): (60, 60), (2, 11): (60, 60)})
    # Thin everywhere: 29 a cell, and two full cells that are never consecutive.
    rows += cell_rows(
        QUIET, {(1, 9): (29, 20), (1, 10): (29, 20), (3, 9): (60, 30), (3, 11): (60, 30)}
    )
    return rows


@pytest.fixture
def best_store(fresh_services):
    rows = best_rows()
    insert_rows(fresh_services.store, rows)
    return fresh_services.store, rows


def advice_for(cursor, campaign: str, **kw) -> tuple[metrics.BestTime, object]:
    focus = Filters(campaigns=(campaign,))
    cells = metrics.hour_weekday(cursor, focus, TZ, TODAY)
    counts = metrics.kpi_counts(cursor, focus, TZ, TODAY)
    return metrics.best_windows(cells, counts["answered"], counts["attempted"], **kw), cells


def recount(rows: list[dict], campaign: str) -> dict:
    """(weekday, hour) -> (attempted, answered) from the inserted rows, in plain Python."""
    attempted, answered = Counter(), Counter()
    for r in rows:
        if r["campaign_name"] != campaign or r["attempts"] == 0 or r["updated_at"] is None:
            continue
        local = r["updated_at"].astimezone(ZONE)
        key = (local.isoweekday(), local.hour)
        attempted[key] += 1
        answered[key] += r["dial_bucket"] == "answered"
    return {key: (attempted[key], answered[key]) for key in attempted}


def test_the_best_three_windows_with_their_rates_sizes_and_the_overall_rate(best_store):
    store, rows = best_store
    with store.cursor() as cursor:
        advice, cells = advice_for(cursor, BEST)
    grid = {(r.weekday, r.hour): (r.attempted, r.answered) for r in cells.itertuples()}
    assert grid == recount(rows, BEST) == CELLS  # never-dialled leads are not in the denominator
    picked = [(w.weekday, w.hour, w.answered, w.attempted) for w in advice.windows]
    assert picked == [(2, 10, 36, 80), (3, 9, 24, 60), (5, 15, 35, 100)]
    mine = [r for r in rows if r["campaign_name"] == BEST and r["attempts"]]
    assert (
        (advice.answered, advice.attempted)
        == (
            sum(r["dial_bucket"] == "answered" for r in mine),
            len(mine),
        )
        == (222, 515)
    )
    assert advice.lines() == EXPECTED_LINES


def test_windows_never_overlap_and_thin_cells_never_qualify(best_store):
    store, _ = best_store
    with store.cursor() as cursor:
        advice, _ = advice_for(cursor, BEST, top=10)
    # Every qualifying window, best first, none sharing an hour with an earlier pick:
    # Tue 11-13 and Fri 16-18 overlap a better window; Tue 12-14 and Thu 14-16 have a thin cell;
    # Mon 23 - Tue 00 crosses midnight; Tue 12-13 alone, Thu 15 alone have no partner.
    assert [w.label for w in advice.windows] == [
        "Tue 10:00–12:00",
        "Wed 09:00–11:00",
        "Fri 15:00–17:00",
    ]
    for i, w in enumerate(advice.windows):
        assert not any(w.overlaps(v) for v in advice.windows[i + 1 :])


def test_not_enough_calls_when_no_two_consecutive_hours_are_full(best_store):
    store, rows = best_store
    with store.cursor() as cursor:
        advice, cells = advice_for(cursor, QUIET)
    assert len(cells) == 4
    assert advice.windows == () and advice.lines() == []
    assert advice.attempted == sum(r["campaign_name"] == QUIET for r in rows)
    assert metrics.NOT_ENOUGH_CALLS == (
        "Not enough calls yet: each hour needs at least 30 dialled leads"
    )


def test_ties_break_by_calls_then_the_earlier_window():
    frame = pd.DataFrame(
        [
            (4, 8, 30, 15),
            (4, 9, 30, 15),
            (1, 8, 40, 20),
            (1, 9, 40, 20),
            (2, 8, 30, 15),
            (2, 9, 30, 15),
        ],
        columns=["weekday", "hour", "attempted", "answered"],
    )
    advice = metrics.best_windows(frame, 100, 200)
    assert [w.label for w in advice.windows] == [
        "Mon 08:00–10:00",
        "Tue 08:00–10:00",
        "Thu 08:00–10:00",
    ]
    assert advice.lines()[0] == "Mon 08:00–10:00: 50% answered (80 calls) vs 50% overall"


def test_the_heatmap_greys_the_cells_under_30(best_store):
    store, _ = best_store
    with store.cursor() as cursor:
        _, cells = advice_for(cursor, BEST)
    fig = hour_weekday_greyed(cells)
    colour, grey = fig.data
    assert grey.colorscale[0][1] == THIN_GREY and not grey.showscale
    shown = {
        (d + 1, h) for d, row in enumerate(colour.z) for h, z in enumerate(row) if z is not None
    }
    greyed = {
        (d + 1, h) for d, row in enumerate(grey.z) for h, z in enumerate(row) if z is not None
    }
    assert greyed == {(2, 13), (4, 14)}
    assert shown == set(CELLS) - greyed
    assert colour.z[2][9] == 40.0 and colour.text[2][9] == "30"  # exactly 30: coloured
    assert grey.text[3][14] == "(29)" and colour.text[3][14] == ""


def test_trends_section_shows_the_advice_above_the_heatmap(best_store):
    page = app("campaign", params={"campaign": BEST, "section": "Trends"})
    assert not page.exception and not page.error
    headers = [h.value for h in page.subheader]
    assert headers.index("Best time to call") < headers.index("Answer rate by hour and weekday")
    assert next(h for h in page.subheader if h.value == "Best time to call").help == (
        metrics.BEST_TIME_HELP
    )
    advice = next(m.value for m in page.markdown if "overall" in m.value).replace("\\", "")
    assert advice == "\n".join(f"- {line}" for line in EXPECTED_LINES)
    captions = " ".join(c.value for c in page.caption)
    assert "each lead's last call" in captions and "fewer than 30 attempted" in captions
    heatmap = json.loads(page.get_by_key("campaign_heatmap_chart").proto.spec)
    assert len(heatmap["data"]) == 2  # the colour scale and the greyed cells


def test_trends_section_says_plainly_when_there_are_not_enough_calls(best_store):
    page = app("campaign", params={"campaign": QUIET, "section": "Trends"})
    assert not page.exception and not page.error
    assert metrics.NOT_ENOUGH_CALLS in [i.value for i in page.info]
    assert not [m.value for m in page.markdown if "overall" in m.value]
