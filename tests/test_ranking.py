"""The Overview's ranked comparison (`rank` in the link): campaigns in order of a chosen KPI,
rates on a small sample ranked last and marked, the same order in the table and the bars."""

from __future__ import annotations

import json

import pandas as pd

from lib.view import metrics
from lib.view.metrics.kpis import _with_rates
from tests.test_metrics import attempted
from tests.test_pages import app

HAND_MADE = _with_rates(
    pd.DataFrame(
        {
            "campaign": ["A", "B", "C", "D", "E", metrics.OTHER_CAMPAIGNS],
            "is_other": [False, False, False, False, False, True],
            "leads": [100, 200, 50, 80, 60, 500],
            "pending": [10, 20, 30, 40, 20, 50],
            "attempted": [100, 20, 50, 0, 40, 400],
            "answered": [50, 15, 20, 0, 20, 100],
            "successes": [1, 1, 1, 0, 1, 1],
            "conversions": [5, 5, 1, 0, 2, 9],
        }
    )
)


def ranking(frame: pd.DataFrame) -> list[tuple]:
    columns = zip(frame["Rank"], frame["campaign"], frame[metrics.RANKED_LAST], strict=True)
    return [(None if pd.isna(r) else int(r), c, bool(last)) for r, c, last in columns]


def test_a_rate_ranks_enough_calls_first_ties_share_a_rank_and_thin_samples_last():
    ranked = metrics.rank_campaigns(HAND_MADE, "Answer rate")
    # A 50% (n=100) and E 50% (n=40) tie; C 40% (n=50); B 75% but n=20 < 30; D no attempt.
    assert ranking(ranked) == [
        (1, "A", False),
        (1, "E", False),
        (3, "C", False),
        (4, "B", True),
        (5, "D", True),
        (None, metrics.OTHER_CAMPAIGNS, False),
    ]


def test_a_count_ranks_every_campaign_highest_first_and_the_lump_unranked():
    ranked = metrics.rank_campaigns(HAND_MADE, "Pending")
    assert ranking(ranked) == [
        (1, "D", False),
        (2, "C", False),
        (3, "B", False),
        (3, "E", False),
        (5, "A", False),
        (None, metrics.OTHER_CAMPAIGNS, False),
    ]
    chart = metrics.ranked_chart_frame(ranked, "Pending")
    assert list(chart.columns) == ["Rank", "Campaign", "Pending", metrics.RANKED_LAST]
    assert list(chart["Campaign"]) == ["D", "C", "B", "E", "A"]  # the lump is not a campaign


def test_the_overview_ranks_by_the_links_kpi_in_table_and_bars(seeded):
    per_campaign: dict[str, list] = {}
    for row in seeded.rows:
        counts = per_campaign.setdefault(row["campaign_name"], [0, 0])
        counts[0] += attempted(row)
        counts[1] += row["dial_bucket"] == "answered"
    rates = {c: (100 * a / n if n else None, n) for c, (n, a) in per_campaign.items()}
    enough = sorted((c for c, (_, n) in rates.items() if n >= 30), key=lambda c: -rates[c][0])
    thin = sorted((c for c, (_, n) in rates.items() if n < 30), key=lambda c: -(rates[c][0] or -1))
    assert enough and thin, rates  # the seed has both kinds

    at = app(params={"rank": "Answer rate"})
    assert at.selectbox(key="rank").value == "Answer rate"
    table = next(d.value for d in at.dataframe if "Rank" in d.value.columns)
    assert list(table.columns[:2]) == ["Rank", "Campaign"]
    assert list(table["Campaign"]) == enough + thin
    assert list(table["Rank"]) == list(range(1, len(enough) + len(thin) + 1))
    for campaign in thin:
        note = table.loc[table["Campaign"] == campaign, "Small samples"].item()
        assert f"Answer rate (n={rates[campaign][1]})" in note

    bars = json.loads(at.get_by_key("overview_rank_chart").proto.spec)["data"][0]
    assert len(bars["y"]) == len(enough) + len(thin)
    assert [y.split(". ", 1)[0] for y in bars["y"]] == [str(i) for i in table["Rank"]]
    assert [t.endswith("(small sample, ranked last)") for t in bars["text"]] == [False] * len(
        enough
    ) + [True] * len(thin)
    assert bars["text"][0] == f"{rates[enough[0]][0]:.1f}%"
    assert not at.warning


def test_an_unknown_rank_in_the_link_is_named_and_leads_rank_instead(seeded):
    at = app(params={"rank": "<b>Bogus</b>"})
    assert [w.value for w in at.warning] == [
        "The link's rank=\\<b\\>Bogus\\</b\\> is not a KPI (one of Leads, Pending, Attempted, "
        "Answered, Answer rate, Success rate, Conversions, Conversion rate); showing Leads."
    ]
    assert at.selectbox(key="rank").value == "Leads"
    table = next(d.value for d in at.dataframe if "Rank" in d.value.columns)
    leads: dict[str, int] = {}
    for row in seeded.rows:
        leads[row["campaign_name"]] = leads.get(row["campaign_name"], 0) + 1
    assert list(table["Campaign"]) == sorted(leads, key=lambda c: (-leads[c], c))
