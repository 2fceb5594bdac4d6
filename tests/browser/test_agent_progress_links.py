"""The agent and progress filters in the browser (issue 14): clicking an agent's bar on Agents
filters the dashboard by that agent (URL, sidebar and numbers), and with a progress state chosen
too, the link opened in a fresh browser context shows the same numbers on Progress, Overview and
Agents.

The expected numbers do not come from the filtered pages alone: the unfiltered per-agent table
(whose rows add up to the server's own lead count, /api/health) gives the agent's leads, answered
leads and conversions; the agent's bar in the unfiltered funnel gives its leads per progress
state; and the Overview reached through the lead-status filter (another path to the same leads:
every lead with an agent was dialled, so progress `success` = status `Success`) must agree.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest

from tests.browser import helpers
from tests.browser.test_charts import click_segment
from tests.support.expected import KPI_LABELS, PROGRESS_TILES

pytestmark = pytest.mark.browser

AGENTS_CHART = "agents_conversion_chart"
FUNNEL_CHART = "progress_funnel_chart"
AGENTS_TILES = ["Short answered calls (under 10 s)"]
PROGRESS_CHARTS = 4  # the funnel, attempts, and the Activity section's per hour and per day
ALL_SELECTED = "All selected"  # the funnel's bar of the whole selection
# The progress state chosen: its value in the link, its label in the sidebar; the lead status
# that holds the same leads.
STATE, STATE_LABEL, STATUS = "success", "Success", "Success"
NO_AGENT = "(no agent)"
# Overview tiles and the per-agent table's columns that count the same leads.
TILE_COLUMNS = {"Leads": "Leads handled", "Answered": "Answered", "Conversions": "Conversions"}


def agent_grid(page):
    """The per-agent table (st.dataframe draws no key class: it is the one with a "Leads
    handled" column)."""
    return page.get_by_test_id("stDataFrame").filter(
        has=page.locator("th", has_text="Leads handled")
    )


def agent_table(page) -> list[list[str]]:
    """The per-agent table as shown, the header first."""
    return helpers.grid_rows(agent_grid(page))


def go_to(page, title: str, tiles: list[str], charts: int) -> None:
    """Opens the page `title` from the top menu (the filters travel with it) and waits until it
    shows its `tiles` and draws its `charts`."""
    link = page.get_by_test_id("stTopNavLink").filter(has_text=title)
    helpers.after_rerun(page, link.click)
    helpers.eventually(page, lambda: list(helpers.kpis(page)) == tiles, f"{title} shows {tiles}")
    helpers.wait_for_charts(page, charts)


def funnel_counts(page) -> dict[str, int]:
    """The funnel's whole-selection bar: leads per progress state (raw state names)."""
    return {
        point[0]: point[3]
        for trace in helpers.figure(page, FUNNEL_CHART)
        for point in trace["customdata"]
        if point[1] == ALL_SELECTED
    }


def test_an_agent_bar_click_and_a_progress_state_travel_in_a_fresh_link(
    page, watch, new_context, demo_server
):
    base = demo_server.base_url
    server_leads = sum(c["rows"] for c in demo_server.health()["campaigns"])

    # Unfiltered: every lead counts for one agent (or none), so the table adds up to the server.
    helpers.open_page(page, base + "/agents", heading="Agents", charts=2, metrics=1)
    assert list(helpers.kpis(page)) == AGENTS_TILES
    header, *everyone = agent_table(page)
    col = {name: header.index(name) for name in ("Agent", *TILE_COLUMNS.values())}
    assert sum(helpers.number(r[col["Leads handled"]]) for r in everyone) == server_leads
    rows = {r[col["Agent"]]: r for r in everyone}
    assert len(rows) == len(everyone) > 1

    # The first bar: the agent with the most conversions (never "Other": it comes last).
    bars = helpers.figure(page, AGENTS_CHART)[0]
    agent, conversions, _ = bars["customdata"][0]
    assert agent and agent != NO_AGENT, bars["customdata"]
    expected = rows[agent]
    handled = int(helpers.number(expected[col["Leads handled"]]))
    assert conversions == helpers.number(expected[col["Conversions"]]) > 0
    assert 0 < handled < server_leads

    helpers.after_rerun(page, lambda: click_segment(page, AGENTS_CHART, "Conversions", 0))
    page.wait_for_url(lambda url: helpers.query(url).get("agent") == [agent])
    helpers.eventually(
        page,
        lambda: [p[0] for p in helpers.figure(page, AGENTS_CHART)[0]["customdata"]] == [agent],
        f"the conversions chart shows {agent!r} alone",
    )
    helpers.wait_for_charts(page, 2)
    assert helpers.query(page.url) == {"agent": [agent]}
    assert helpers.tags(page, "Agent") == [agent]
    # The agent's row alone, with the very numbers the unfiltered table gave it (the table
    # can be drawn after the chart).
    helpers.eventually(
        page, lambda: helpers.grid_row_count(agent_grid(page)) == 2, "the table has one agent"
    )
    assert agent_table(page) == [header, expected]

    # The filter holds on the other pages: the Overview counts that agent's leads only.
    go_to(page, "Overview", KPI_LABELS, charts=3)
    assert helpers.query(page.url) == {"agent": [agent]}
    tiles = helpers.kpis(page)
    for tile, column in TILE_COLUMNS.items():
        assert helpers.number(tiles[tile]) == helpers.number(expected[col[column]]), tile

    # Progress: the agent's leads, split by state; then one state chosen in the sidebar.
    go_to(page, "Progress", PROGRESS_TILES, charts=PROGRESS_CHARTS)
    assert helpers.kpis(page)["Leads"] == f"{handled:,}"
    states = funnel_counts(page)
    assert sum(states.values()) == handled
    in_state = states.get(STATE, 0)
    assert 0 < in_state < handled, states

    helpers.choose(page, "Lead progress", STATE_LABEL)
    chosen = {"agent": [agent], "progress": [STATE]}
    assert helpers.query(page.url) == chosen
    helpers.eventually(
        page,
        lambda: helpers.kpis(page).get("Leads") == f"{in_state:,}",
        f"the Leads tile shows the {in_state:,} {STATE} leads of {agent!r}",
    )
    helpers.wait_for_charts(page, PROGRESS_CHARTS)
    assert funnel_counts(page) == {STATE: in_state}
    progress_tiles = helpers.kpis(page)
    funnel = helpers.figure(page, FUNNEL_CHART)
    link = page.url
    assert urlsplit(link).path == "/progress"

    go_to(page, "Overview", KPI_LABELS, charts=3)
    overview_tiles = helpers.kpis(page)
    assert overview_tiles["Leads"] == f"{in_state:,}"
    go_to(page, "Agents", AGENTS_TILES, charts=2)
    both_table = agent_table(page)
    assert [r[col["Agent"]] for r in both_table[1:]] == [agent]
    assert helpers.number(both_table[1][col["Leads handled"]]) == in_state
    agents_tiles = helpers.kpis(page)
    assert helpers.query(page.url) == chosen

    # The link in a fresh context (no session, no cookies): the same filters, the same numbers.
    fresh = new_context()
    fresh_watch = helpers.Watch(base).attach(fresh)
    other = fresh.new_page()
    helpers.open_page(
        other, link, heading="Progress", charts=PROGRESS_CHARTS, metrics=len(PROGRESS_TILES)
    )
    assert helpers.query(other.url) == chosen
    assert helpers.tags(other, "Agent") == [agent]
    assert helpers.tags(other, "Lead progress") == [STATE_LABEL]
    assert helpers.kpis(other) == progress_tiles
    assert helpers.figure(other, FUNNEL_CHART) == funnel
    go_to(other, "Overview", KPI_LABELS, charts=3)
    assert helpers.kpis(other) == overview_tiles
    go_to(other, "Agents", AGENTS_TILES, charts=2)
    assert agent_table(other) == both_table
    assert helpers.kpis(other) == agents_tiles

    # Another path to the same leads: the lead-status filter instead of the progress state.
    by_status = f"{base}/?agent={quote(agent, safe='')}&status={STATUS}"
    helpers.open_page(other, by_status, heading="Overview", charts=3, metrics=len(KPI_LABELS))
    assert helpers.tags(other, "Lead status") == [STATUS]
    assert helpers.kpis(other) == overview_tiles
    assert fresh_watch.problems() == []
    fresh.close()
    assert watch.problems() == []
