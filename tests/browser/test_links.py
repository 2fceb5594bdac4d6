"""Shareable links: filters chosen by hand write the URL, and that URL opened in a fresh browser
context (no session, no cookies) shows the same numbers; the numbers agree with counts the
server reports independently (/api/health)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest

from tests.browser import helpers

pytestmark = pytest.mark.browser

CAMPAIGN = "Loan Offers - Mumbai"  # spaces and a dash: the URL must encode it
# Trends: the trend, the Activity section's per hour and per day, and the heatmap.
TRENDS_CHARTS = 4


def test_filters_chosen_by_hand_write_the_url_and_the_link_reopens_the_same_numbers(
    page, watch, new_context, demo_server
):
    base = demo_server.base_url
    helpers.open_page(page, base + "/", heading="Overview", charts=3, metrics=8)
    assert helpers.query(page.url) == {}
    everything = helpers.kpis(page)

    helpers.choose(page, "Campaign", CAMPAIGN)
    assert helpers.query(page.url) == {"campaign": [CAMPAIGN]}
    helpers.choose(page, "Dial status", "Answered")  # its label; the link says answered
    assert helpers.query(page.url) == {"campaign": [CAMPAIGN], "dialstatus": ["answered"]}
    helpers.choose(page, "Date range", "Last 30 days (incl. today)")
    chosen = {"campaign": [CAMPAIGN], "range": ["last_30d"], "dialstatus": ["answered"]}
    assert helpers.query(page.url) == chosen
    # Read once the page shows the last run: its sidebar caption names the 30-day range.
    helpers.eventually(
        page,
        lambda: helpers.sidebar(page).get_by_text("Last 30 days (incl. today)").count() == 1,
        "the sidebar describes the 30-day range",
    )
    helpers.wait_for_charts(page, 3)
    chart_by_hand = helpers.figure(page, "overview_dial_chart")
    by_hand = helpers.kpis(page)
    link = page.url

    # The filters took effect: one campaign, answered leads only, fewer than everything.
    assert by_hand["Answered"] == by_hand["Leads"] == by_hand["Attempted"]
    assert by_hand["Answer rate"] == "100.0%"
    assert helpers.number(by_hand["Leads"]) < helpers.number(everything["Leads"])
    assert [(t["group"], t["name"]) for t in chart_by_hand] == [("answered", "Answered")]
    assert [row[1] for row in chart_by_hand[0]["customdata"]] == [CAMPAIGN]

    # The Share popover offers the same filters (it also names the defaults, basis=updated).
    shared = helpers.shared_link(page, base)
    assert helpers.query(shared) == {**chosen, "basis": ["updated"]}

    fresh = new_context()
    fresh_watch = helpers.Watch(base).attach(fresh)
    other = fresh.new_page()
    helpers.open_page(other, link, heading="Overview", charts=3, metrics=8)
    assert helpers.kpis(other) == by_hand
    assert helpers.figure(other, "overview_dial_chart") == chart_by_hand
    assert helpers.tags(other, "Campaign") == [CAMPAIGN]
    assert helpers.tags(other, "Dial status") == ["Answered"]
    assert helpers.selected(other, "Date range") == "Last 30 days (incl. today)"
    assert helpers.query(other.url) == chosen

    # The filters travel with the page menu: the Campaign page shows that campaign, same count.
    helpers.after_rerun(
        other, lambda: other.get_by_test_id("stTopNavLink").filter(has_text="Campaign").click()
    )
    assert urlsplit(other.url).path == "/campaign"
    assert helpers.query(other.url) == chosen
    helpers.eventually(
        other,
        lambda: other.get_by_test_id("stHeading").filter(has_text=CAMPAIGN).count() == 1,
        "the Campaign page names the campaign",
    )
    assert helpers.kpis(other)["Leads"] == by_hand["Leads"]
    assert fresh_watch.problems() == []
    fresh.close()

    # Clearing the filters clears the URL and brings the totals back.
    helpers.after_rerun(
        page, lambda: helpers.sidebar(page).get_by_role("button", name="Clear filters").click()
    )
    assert helpers.query(page.url) == {}
    helpers.eventually(page, lambda: helpers.kpis(page) == everything, f"KPIs back to {everything}")
    assert watch.problems() == []


def test_lead_counts_match_the_servers_own_count_per_campaign(page, watch, demo_server):
    base = demo_server.base_url
    rows = {c["name"]: c["rows"] for c in demo_server.health()["campaigns"]}
    assert len(rows) == 4

    helpers.open_page(page, base + "/", heading="Overview", charts=3, metrics=8)
    assert helpers.number(helpers.kpis(page)["Leads"]) == sum(rows.values())
    # The dial-status chart's segments of each campaign add up to its leads.
    per_campaign: dict[str, int] = {}
    for trace in helpers.figure(page, "overview_dial_chart"):
        for point in trace["customdata"]:
            per_campaign[point[1]] = per_campaign.get(point[1], 0) + point[3]
    assert per_campaign == rows
    # So does the comparison table's Leads column.
    table = page.get_by_test_id("stDataFrame").filter(
        has=page.locator("th", has_text="Small samples")
    )
    header, *body = helpers.grid_rows(table)
    campaign, leads = header.index("Campaign"), header.index("Leads")
    assert {r[campaign]: helpers.number(r[leads]) for r in body} == rows

    # One campaign through its own link, range=all: the Leads tile is the server's count.
    name = "Renewals_Q4"
    helpers.open_page(
        page, f"{base}/?campaign={quote(name)}&range=all", heading="Overview", metrics=8
    )
    assert helpers.tags(page, "Campaign") == [name]
    assert helpers.kpis(page)["Leads"] == f"{rows[name]:,}"
    assert watch.problems() == []


def test_a_campaign_section_travels_in_the_link(page, watch, new_context, demo_server):
    base = demo_server.base_url
    link = f"{base}/campaign?campaign={quote(CAMPAIGN)}&range=last_30d"
    helpers.open_page(page, link, heading="Campaign", charts=2, metrics=8)
    assert helpers.figure(page, "campaign_dial_chart")  # Breakdown is the default section
    assert "section" not in helpers.query(page.url)

    helpers.after_rerun(page, lambda: page.get_by_role("tab", name="Trends").click())
    helpers.wait_for_charts(page, TRENDS_CHARTS)
    assert helpers.query(page.url)["section"] == ["Trends"]
    trend_by_hand = helpers.figure(page, "campaign_trend_chart")
    assert trend_by_hand and page.locator(".st-key-campaign_dial_chart").count() == 0

    shared = helpers.shared_link(page, base)
    assert urlsplit(shared).path == "/campaign"
    assert helpers.query(shared) == {
        "campaign": [CAMPAIGN],
        "range": ["last_30d"],
        "basis": ["updated"],
        "section": ["Trends"],
    }

    fresh = new_context()
    other = fresh.new_page()
    helpers.open_page(other, shared, heading="Campaign", charts=TRENDS_CHARTS, metrics=8)
    assert other.get_by_role("tab", name="Trends").get_attribute("aria-selected") == "true"
    assert helpers.figure(other, "campaign_trend_chart") == trend_by_hand
    assert helpers.kpis(other) == helpers.kpis(page)

    # A section that does not exist: said so, and the first section is shown.
    helpers.open_page(other, link + "&section=Heatmaps", heading="Campaign", charts=2, metrics=8)
    assert other.get_by_text("section=Heatmaps is not a section of this page").is_visible()
    assert helpers.figure(other, "campaign_dial_chart")
    fresh.close()
    assert watch.problems() == []
