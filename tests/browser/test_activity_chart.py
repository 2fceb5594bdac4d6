"""The Activity charts in the browser draw the lead history's own counts.

A database is built first with real ingests of hand-made deliveries (tests/test_activity.py's
scenario, around today), and the expected counts are computed here in plain Python from its
`lead_events` rows; then a server (sync off: nothing changes the data) serves it, and the
numbers are read from the rendered plotly figures' data in the page. The expected value of a
bar is looked up by the day and hour the figure itself names, so a day that turns over while the
test runs changes nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

import pytest

from lib.store import Store
from lib.view.metrics.activity import MEASURES
from tests.browser import helpers
from tests.support.server import ServerProcess
from tests.test_activity import TZ, ZONE, activity_scenario

pytestmark = pytest.mark.browser

SALE = {"Sale Closed"}  # the scenario's only disposition of the Sale category
CAMPAIGN = "North"
DAYS_CHART = "progress_activity_days_chart"
HOURS_CHART = "progress_activity_hours_chart"

_DATA_JS = """
(plot) => plot.data.map((t) => ({
  name: t.name,
  x: Array.from(t.x),
  y: Array.from(t.y),
  customdata: t.customdata ? Array.from(t.customdata, (c) => Array.from(c)) : null,
}))
"""


def expected_counts(path) -> dict[tuple[date, int], Counter]:
    """Per local (day, hour) of CAMPAIGN: dials, answered and conversions, from lead_events."""
    store = Store(path, timezone=TZ)
    try:
        with store.cursor() as cursor:
            rows = cursor.execute(
                "SELECT updated_at, first_seen, dials, dial_bucket_after, disposition_before, "
                "disposition_after FROM lead_events WHERE campaign_name = ?",
                [CAMPAIGN],
            ).fetchall()
    finally:
        store.close()
    counts: dict[tuple[date, int], Counter] = {}
    for updated_at, first_seen, dials, bucket, before, after in rows:
        local = updated_at.astimezone(ZONE)
        slot = counts.setdefault((local.date(), local.hour), Counter())
        slot["dials"] += dials
        slot["answered"] += int(dials > 0 and bucket == "answered")
        slot["conversions"] += int(
            not first_seen and after in SALE and (dials > 0 or before not in SALE)
        )
    return counts


def figure_data(page, key: str) -> list[dict]:
    return page.locator(f".st-key-{key} .js-plotly-plot").evaluate(_DATA_JS)


def test_the_activity_charts_show_the_counts_of_lead_events(new_context, tmp_path):
    db = tmp_path / "activity.duckdb"
    store = Store(db, timezone=TZ)
    try:
        activity_scenario(store, datetime.now(ZONE).date())
    finally:
        store.close()
    expected = expected_counts(db)
    by_day: dict[date, Counter] = {}
    for (day, _), slot in expected.items():
        by_day.setdefault(day, Counter()).update(slot)
    total = sum(by_day.values(), Counter())
    assert (total["dials"], total["answered"], total["conversions"]) == (16, 3, 3)  # by hand

    env = {
        "DIALSTATUS_DB": str(db),
        "DIALSTATUS_TIMEZONE": TZ,
        "DIALSTATUS_CAMPAIGNS": "North,South,East",
        "DIALSTATUS_SYNC_ENABLED": "false",
    }
    with ServerProcess(tmp_path / "server", env=env) as server:
        context = new_context()
        watch = helpers.Watch(server.base_url).attach(context)
        page = context.new_page()
        # The funnel, the outcome by attempt, and the two activity charts.
        helpers.open_page(
            page, f"{server.base_url}/progress?campaign={CAMPAIGN}", heading="Progress", charts=4
        )
        assert helpers.exceptions(page) == []

        daily = {t["name"]: t for t in figure_data(page, DAYS_CHART)}
        assert list(daily) == ["Dials", "Answered", "Conversions"]
        shown_days = [date.fromisoformat(x[:10]) for x in daily["Dials"]["x"]]
        for measure, name in MEASURES.items():
            want = [by_day.get(day, Counter())[measure] for day in shown_days]
            assert daily[name]["y"] == want, measure
            assert sum(daily[name]["y"]) == total[measure], measure  # no day left out

        for measure, name in MEASURES.items():
            if measure != "dials":  # the default; the others through the picker
                pick(page, name)
            traces = figure_data(page, HOURS_CHART)
            assert [t["name"].split(" (")[0] for t in traces] == ["Yesterday", "Today"]
            for trace in traces:
                assert trace["x"] == list(range(24))
                want = [
                    expected.get((date.fromisoformat(day), hour), Counter())[measure]
                    for day, hour in trace["customdata"]
                ]
                assert trace["y"] == want, (measure, trace["name"])
        assert watch.problems() == []
        assert "Traceback" not in server.log_text()


def pick(page, name: str) -> None:
    """Picks the hourly chart's measure and waits until the chart's y axis names it."""
    picker = page.locator(".st-key-progress_activity_measure")
    helpers.after_rerun(page, lambda: picker.get_by_text(name, exact=True).click())
    plot = page.locator(f".st-key-{HOURS_CHART} .js-plotly-plot")
    helpers.eventually(
        page,
        lambda: plot.evaluate("(plot) => plot.layout.yaxis.title.text") == name.lower(),
        f"the hourly chart shows {name}",
    )
