"""Charts in the browser: clicking a bar segment filters (sidebar, URL and numbers), and a chart's
CSV download holds exactly the table shown under it and the chart's own numbers."""

from __future__ import annotations

import pytest

from tests.browser import helpers

pytestmark = pytest.mark.browser

DIAL_CHART = "overview_dial_chart"
BUCKET = "NoAnswer"  # a wide segment in every demo campaign: easy to hit


def click_segment(page, chart_key: str, trace_name: str, point: int) -> None:
    """Clicks the middle of one bar segment of the trace whose legend group (the raw value a
    labelled trace keeps) or else name is `trace_name`. Plotly's drag layer lies over the bars,
    so the click goes to the segment's coordinates (hover first: plotly picks it on hover)."""
    plot = page.locator(f".st-key-{chart_key} .js-plotly-plot")
    names = [t["group"] or t["name"] for t in helpers.figure(page, chart_key)]
    segment = plot.locator(".trace.bars").nth(names.index(trace_name)).locator(".point").nth(point)
    box = segment.bounding_box()
    assert box is not None and box["width"] > 10, box
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y - 4)
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def test_clicking_a_bar_segment_filters_by_its_dial_status(page, watch, demo_server):
    helpers.open_page(page, demo_server.base_url + "/", heading="Overview", charts=3, metrics=8)
    traces = {t["group"]: t for t in helpers.figure(page, DIAL_CHART)}  # by raw bucket
    bucket_leads = sum(point[3] for point in traces[BUCKET]["customdata"])
    assert [point[0] for point in traces[BUCKET]["customdata"]] == [BUCKET] * 4

    helpers.after_rerun(page, lambda: click_segment(page, DIAL_CHART, BUCKET, 0))
    page.wait_for_url(lambda url: helpers.query(url).get("dialstatus") == [BUCKET])
    helpers.eventually(
        page,
        lambda: helpers.kpis(page).get("Leads") == f"{bucket_leads:,}",
        f"the Leads tile shows the {BUCKET} segments' {bucket_leads:,} leads",
    )
    # Only answered calls carry a disposition (demo data), so that chart gives way to a note
    # (the dial status and ranking charts stay).
    helpers.wait_for_charts(page, 2)
    assert page.get_by_text("No lead in the selection has a disposition yet.").is_visible()

    assert helpers.query(page.url) == {"dialstatus": [BUCKET]}
    assert helpers.tags(page, "Dial status") == ["No answer"]  # the label of NoAnswer
    tiles = helpers.kpis(page)
    assert tiles["Leads"] == f"{bucket_leads:,}"
    assert tiles["Answered"] == "0"
    assert [(t["group"], t["name"]) for t in helpers.figure(page, DIAL_CHART)] == [
        (BUCKET, "No answer")
    ]
    assert watch.problems() == []


def test_csv_download_matches_the_table_and_the_chart(page, watch, demo_server, tmp_path):
    helpers.open_page(page, demo_server.base_url + "/", heading="Overview", charts=3, metrics=8)
    expander = page.locator(f".st-key-{DIAL_CHART}_numbers")
    expander.locator("summary").click()
    shown = helpers.grid_rows(expander.get_by_test_id("stDataFrame"))

    with page.expect_download() as info:
        expander.locator(f".st-key-{DIAL_CHART}_csv button").click()
    download = info.value
    assert download.suggested_filename == "dial_status_by_campaign.csv"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    header, *rows = helpers.parse_csv(path.read_bytes())

    # The same columns and rows as the table shown (numbers compared as numbers: the grid
    # writes 37.0 as "37").
    assert header == shown[0] == ["Campaign", "Dial status", "Leads", "Share %"]
    assert len(rows) == len(shown) - 1 == 20  # 4 campaigns x 5 buckets
    for csv_row, table_row in zip(rows, shown[1:], strict=True):
        assert csv_row[:2] == table_row[:2]
        assert [float(v) for v in csv_row[2:]] == [helpers.number(v) for v in table_row[2:]]

    # And the chart's segments: every (campaign, dial status label) count and share.
    segments = {
        (point[1], point[2]): (point[3], point[4])
        for trace in helpers.figure(page, DIAL_CHART)
        for point in trace["customdata"]
    }
    from_csv = {(c, b): (float(n), f"{float(s):.1f}%") for c, b, n, s in rows if float(n)}
    assert from_csv == segments
    assert watch.problems() == []

    # Lead counts are whole numbers: the table shows 1135, the file must say 1135 too.
    assert [row[2] for row in rows if not row[2].isdigit()] == []
