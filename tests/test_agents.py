"""The Agents page's numbers on hand-made leads: every column of the per-agent table, the top 20
agents by conversions with the rest as Other, talk time per campaign and its bands, each checked
against a computation written here in plain Python (statistics.median, a linear-interpolation
90th percentile); the filters narrowing them; the exports' headers; the page in AppTest."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pandas as pd
import pytest

from lib.view import agent_charts, charts, export, metrics
from lib.view.filters import NO_AGENT, Filters
from tests.conftest import ZONE, agent_of, insert_rows, kept_rows
from tests.support.workbook import sheet_names, sheet_rows
from tests.test_pages import app

TZ = "Asia/Kolkata"
# The categories of the dispositions used here, written out (the catalog's guesses and one
# stored override, "Booked").
CATEGORY = {
    "Sale Closed": "Sale",
    "Booked": "Sale",
    "Not Interested": "Contact",
    "Call Back": "Callback",
    "Wrap up time exceeded :30": "Other",
    "WRAP UP TIME EXCEEDED": "Other",
    "wrap up time exceeded :45": "Other",
    "Exceeded wrap up time": "Other",
}
WRAP_UPS = {"Wrap up time exceeded :30", "WRAP UP TIME EXCEEDED", "wrap up time exceeded :45"}
BAND_LIMITS = (10, 30, 60, 180, 600)  # upper bounds, exclusive; the last band has none
MANY = 22  # agents beyond the top 20, so Other holds 2 + the named ones below


def band_of(seconds: int) -> int:
    return next((i for i, limit in enumerate(BAND_LIMITS) if seconds < limit), len(BAND_LIMITS))


def p90(values: list[float]) -> float:
    """quantile_cont(x, 0.9): linear interpolation between the order statistics."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * 0.9
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def make_leads(today) -> list[dict]:
    rows: list[dict] = []

    def lead(campaign, name, agent_id, bucket, disposition=None, seconds=None, *, status=None,
             days_ago=1, attempts=1):  # fmt: skip
        n = len(rows) + 1
        updated = datetime.combine(
            today - timedelta(days=days_ago), datetime.min.time(), tzinfo=ZONE
        ) + timedelta(hours=11)
        answered = bucket == "answered"
        rows.append(
            {
                "campaign_name": campaign,
                "lead_key": f"K{n}",
                "lead_id": f"K{n}",
                "phone_number": f"+91 97{n:08d}",
                "name": f"Lead {n}",
                "status": status or ("Success" if answered else "Pending"),
                "lead_status": status or ("Success" if answered else "Pending"),
                "dial_status": {
                    "answered": "answered",
                    "NoAnswer": "not_answered",
                    "Not dialled": "NotDialed",
                }[bucket],
                "dial_bucket": bucket,
                "disposition": disposition,
                "comments": None,
                "agent_id": agent_id,
                "agent_name": name,
                "attempts": 0 if bucket == "Not dialled" else attempts,
                "priority": 0,
                "ucid": None,
                "call_duration_s": seconds,
                "created_at": updated - timedelta(days=1),
                "updated_at": updated,
                "extra": None,
                "delivery_id": 1,
            }
        )

    # Asha (by name): a talk time in every band, wrap-up variants, blank dispositions.
    for seconds, disposition in [
        (3, "Sale Closed"), (9, "Wrap up time exceeded :30"), (10, "Sale Closed"),
        (25, "Not Interested"), (45, "WRAP UP TIME EXCEEDED"), (61, "Booked"),
        (179, "Not Interested"), (200, "Sale Closed"), (600, "Call Back"), (905, ""),
    ]:  # fmt: skip
        lead("Alpha", "Asha", "a-1", "answered", disposition, seconds)
    lead("Alpha", "Asha", "a-1", "answered", None, None)  # answered, no talk time
    lead("Beta", "  Asha ", "a-1", "answered", "Exceeded wrap up time", 40, days_ago=20)
    lead("Beta", "Asha", "a-1", "NoAnswer", "wrap up time exceeded :45", 0, status="Fail")
    lead("Beta", "Asha", "a-1", "NoAnswer", None, 0)
    # An agent with only an id (the name empty or blank).
    lead("Alpha", "", "ag-7", "answered", "Sale Closed", 130)
    lead("Beta", "   ", "ag-7", "answered", "Not Interested", 7, days_ago=15)
    lead("Beta", None, "ag-7", "answered", "Wrap up time exceeded :30", 2)
    lead("Gamma", None, "ag-7", "NoAnswer", None, 0)
    # No agent at all: never dialled, and one answered call with neither name nor id.
    for _ in range(3):
        lead("Gamma", None, None, "Not dialled")
    lead("Gamma", " ", "", "answered", "Call Back", 15)
    # Many agents, agent k with k conversions: the top 20 by conversions, then Other.
    for k in range(1, MANY + 1):
        for i in range(k):
            lead("Gamma", f"Agent {k:02d}", f"id{k}", "answered", "Booked", 20 + 7 * i + k)
        lead("Gamma", f"Agent {k:02d}", f"id{k}", "answered", "Not Interested", 300 + k)
    return rows


@pytest.fixture
def leads(fresh_services):
    """The hand-made leads in a fresh DuckDB store; returns (rows, today)."""
    today = datetime.now(ZONE).date()
    rows = make_leads(today)
    insert_rows(fresh_services.store, rows)
    with fresh_services.store.writing() as cursor:
        cursor.execute("INSERT INTO disposition_categories VALUES ('Booked', 'Sale')")
        fresh_services.store.bump_data_version(cursor)
    return rows, today


@pytest.fixture
def cur(leads, fresh_services):
    with fresh_services.store.cursor() as cursor:
        yield cursor


def has_disposition(r) -> bool:
    return bool(r["disposition"] and r["disposition"].strip())


def rounded(value: float) -> float:
    return round(value, 1)


def expected_table(rows) -> list[dict]:
    """The per-agent table from plain Python, in the page's order (leads handled, then name)."""
    by_agent: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_agent[agent_of(r)].append(r)
    table = []
    for agent, mine in by_agent.items():
        answered = [r for r in mine if r["dial_bucket"] == "answered"]
        sales = sum(CATEGORY.get(r["disposition"]) == "Sale" for r in mine)
        talk = [r["call_duration_s"] for r in answered if r["call_duration_s"] is not None]
        with_disposition = [r for r in mine if has_disposition(r)]
        wrap = sum(r["disposition"] in WRAP_UPS for r in with_disposition)
        top = Counter(r["disposition"] for r in with_disposition)
        top3 = sorted(top.items(), key=lambda item: (-item[1], item[0]))[:3]
        table.append(
            {
                "Agent": agent,
                "Leads handled": len(mine),
                "Answered": len(answered),
                "Conversions": sales,
                "Conversion rate": 100 * sales / len(answered) if answered else None,
                "Median talk time": statistics.median(talk) if talk else None,
                "P90 talk time": p90(talk) if talk else None,
                "Wrap-up timeouts": 100 * wrap / len(with_disposition)
                if with_disposition
                else None,
                "Top dispositions": ", ".join(f"{d} ({n})" for d, n in top3),
            }
        )
    return sorted(table, key=lambda row: (-row["Leads handled"], row["Agent"]))


def assert_same(frame: pd.DataFrame, expected: list[dict]) -> None:
    assert list(frame.columns) == list(metrics.AGENT_COLUMNS)
    assert list(frame["Agent"]) == [row["Agent"] for row in expected]
    for got, want in zip(frame.to_dict("records"), expected, strict=True):
        for column, value in want.items():
            if value is None:
                assert pd.isna(got[column]), (want["Agent"], column, got[column])
            elif isinstance(value, float):
                # Shown with one decimal: the frame holds the rounded figure.
                assert got[column] == pytest.approx(value, abs=0.05 + 1e-9), (want, column)
            else:
                assert got[column] == value, (want["Agent"], column)


def test_the_leads_cover_every_case(leads):
    rows, _ = leads
    agents = {agent_of(r) for r in rows}
    assert {"Asha", "ag-7", NO_AGENT} <= agents
    bands = {band_of(r["call_duration_s"]) for r in rows if r["dial_bucket"] == "answered"
             and r["call_duration_s"] is not None}  # fmt: skip
    assert bands == set(range(len(BAND_LIMITS) + 1))
    assert len({a for a in agents if a.startswith("Agent ")}) > 20


def named(filters: Filters) -> str:
    """A test id: the filters that differ from the defaults."""
    changed = {k: v for k, v in vars(filters).items() if v != getattr(Filters(), k)}
    return ",".join(f"{k}={v}" for k, v in changed.items()) or "no filter"


FILTERS = [
    Filters(),
    Filters(agents=("Asha",)),
    Filters(agents=("ag-7", NO_AGENT)),
    Filters(campaigns=("Beta",)),
    Filters(dial_buckets=("answered",)),
    Filters(range="last_7d"),
    Filters(progress=("out_of_tries",)),
    Filters(dispositions=("Sale Closed", "Wrap up time exceeded :30")),
]


@pytest.mark.parametrize("filters", FILTERS, ids=named)
def test_agent_table_equals_an_independent_computation(leads, cur, filters):
    rows, today = leads
    kept = kept_rows(rows, filters, today)
    assert kept  # every case selects something
    assert_same(metrics.agent_table(cur, filters, TZ, today), expected_table(kept))


def test_filters_narrow_the_numbers(leads, cur):
    _, today = leads
    everything = metrics.agent_table(cur, Filters(), TZ, today).set_index("Agent")
    asha = metrics.agent_table(cur, Filters(agents=("Asha",)), TZ, today)
    assert list(asha["Agent"]) == ["Asha"]
    beta = metrics.agent_table(cur, Filters(campaigns=("Beta",)), TZ, today).set_index("Agent")
    assert list(beta.index) == ["Asha", "ag-7"]
    assert beta.loc["Asha", "Leads handled"] < everything.loc["Asha", "Leads handled"]
    assert beta.loc["Asha", "Leads handled"] == 3
    assert beta.loc["ag-7", "Median talk time"] == statistics.median([7, 2])
    # The agent is the same across name spellings: "  Asha " is Asha.
    assert everything.loc["Asha", "Leads handled"] == 14


def test_wrap_up_share_counts_only_leads_with_a_disposition(leads, cur):
    _, today = leads
    row = metrics.agent_table(cur, Filters(agents=("Asha",)), TZ, today).iloc[0]
    # Asha: 11 leads with a disposition ("" and None are none), 3 start with the phrase
    # (any case); "Exceeded wrap up time" does not.
    assert row["Wrap-up timeouts"] == pytest.approx(round(100 * 3 / 11, 1))
    assert row["Top dispositions"] == "Sale Closed (3), Not Interested (2), Booked (1)"


def expected_conversions(rows, top=20) -> list[tuple[str, bool, int, int]]:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        per[agent_of(r)][0] += r["dial_bucket"] == "answered"
        per[agent_of(r)][1] += CATEGORY.get(r["disposition"]) == "Sale"
    ranked = sorted(per.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    shown = [(agent, False, answered, sales) for agent, (answered, sales) in ranked[:top]]
    rest = ranked[top:]
    if rest:
        shown.append(("Other", True, sum(a for _, (a, _s) in rest), sum(s for _, (_a, s) in rest)))
    return shown


@pytest.mark.parametrize("filters", FILTERS[:4], ids=named)
def test_top_20_agents_by_conversions_then_other(leads, cur, filters):
    rows, today = leads
    frame = metrics.agent_conversions(cur, filters, TZ, today)
    expected = expected_conversions(kept_rows(rows, filters, today))
    got = list(frame[["agent", "is_other", "answered", "conversions"]].itertuples(index=False))
    assert [tuple(x) for x in got] == expected
    for row in frame.itertuples(index=False):
        rate = row.conversions / row.answered if row.answered else None
        assert (pd.isna(row.conversion_rate) and rate is None) or row.conversion_rate == (
            pytest.approx(rate)
        )
    if filters == Filters():
        assert len(frame) == 21 and frame["is_other"].iloc[-1]


def test_clicking_a_bar_names_its_agent_and_other_is_not_a_filter_value(leads, cur):
    _, today = leads
    frame = metrics.agent_conversions(cur, Filters(), TZ, today)
    figure = agent_charts.conversion_bars(frame)
    for trace in figure.data:
        for point, agent, other in zip(
            trace.customdata, frame["agent"], frame["is_other"], strict=True
        ):
            clicked = {"selection": {"points": [{"customdata": list(point)}]}}
            assert charts.selection_value(clicked) == (None if other else agent)
    assert figure.data[1].yaxis == "y2"  # the rate on the secondary axis


def campaign_groups(answered, top) -> dict[str, str]:
    """Campaign -> the row it counts in: the `top` with the most answered leads (ties by name)
    as themselves, the rest as Other campaigns."""
    volume = Counter(r["campaign_name"] for r in answered)
    ranked = sorted(volume, key=lambda c: (-volume[c], c))
    return {c: c if i < top else metrics.OTHER_CAMPAIGNS for i, c in enumerate(ranked)}


def expected_talk(rows, top) -> list[tuple]:
    answered = [r for r in rows if r["dial_bucket"] == "answered"]
    groups = campaign_groups(answered, top)

    def line(name, mine):
        talk = [r["call_duration_s"] for r in mine if r["call_duration_s"] is not None]
        short = sum(t < 10 for t in talk)
        return (
            name,
            len(mine),
            rounded(statistics.median(talk)) if talk else None,
            rounded(p90(talk)) if talk else None,
            short,
            rounded(100 * short / len(mine)),
        )

    lines = [line(metrics.ALL_CAMPAIGNS, answered)]
    for name in dict.fromkeys(groups.values()):  # in rank order, Other campaigns last
        lines.append(line(name, [r for r in answered if groups[r["campaign_name"]] == name]))
    return lines


@pytest.mark.parametrize("top", [20, 1])
@pytest.mark.parametrize("filters", FILTERS[:4], ids=named)
def test_talk_time_per_campaign(leads, cur, filters, top):
    rows, today = leads
    kept = kept_rows(rows, filters, today)
    frame = metrics.talk_time_by_campaign(cur, filters, TZ, today, campaigns=top)
    assert list(frame.columns[:6]) == list(metrics.TALK_COLUMNS)
    got = [
        tuple(None if pd.isna(v) else v for v in row)
        for row in frame[list(metrics.TALK_COLUMNS)].itertuples(index=False)
    ]
    want = expected_talk(kept, top)
    assert [(g[0], g[1], g[4]) for g in got] == [(w[0], w[1], w[4]) for w in want]
    for g, w in zip(got, want, strict=True):
        for index in (2, 3, 5):
            if w[index] is None:
                assert g[index] is None, (g, w)
            else:
                assert g[index] == pytest.approx(w[index], abs=0.05 + 1e-9), (g, w)
    assert list(frame["is_total"]) == [True] + [False] * (len(frame) - 1)
    assert list(frame["is_other"]) == [g[0] == metrics.OTHER_CAMPAIGNS for g in got]


@pytest.mark.parametrize("top", [20, 1])
@pytest.mark.parametrize("filters", FILTERS[:4], ids=named)
def test_talk_time_bands_per_campaign(leads, cur, filters, top):
    rows, today = leads
    answered = [r for r in kept_rows(rows, filters, today) if r["dial_bucket"] == "answered"]
    groups = campaign_groups(answered, top)
    timed = [r for r in answered if r["call_duration_s"] is not None]
    counts = Counter((groups[r["campaign_name"]], band_of(r["call_duration_s"])) for r in timed)
    frame = metrics.talk_time_bands(cur, filters, TZ, today, campaigns=top)
    bands = range(len(metrics.TALK_BAND_LABELS))
    expected = [
        (name, metrics.TALK_BAND_LABELS[b], counts[name, b])
        for name in dict.fromkeys(groups[r["campaign_name"]] for r in timed)
        for b in bands
    ]
    expected.sort(key=lambda e: list(dict.fromkeys(groups.values())).index(e[0]))
    got = list(frame[["campaign", "band", "leads"]].itertuples(index=False, name=None))
    assert got == expected
    for name, part in frame.groupby("campaign"):
        total = sum(counts[name, b] for b in bands)
        assert list(part["share"]) == pytest.approx([counts[name, b] / total for b in bands])


def test_exports_are_named_as_on_screen(leads, cur):
    _, today = leads
    table = metrics.agent_table(cur, Filters(), TZ, today)
    lines = list(csv.reader(io.StringIO(export.frame_csv(table).decode("utf-8-sig"))))
    assert lines[0] == list(metrics.AGENT_COLUMNS)
    assert [line[0] for line in lines[1:]] == list(table["Agent"])
    book = export.frames_xlsx({"Agents": table})
    assert sheet_names(book) == ["Agents"]
    rows = sheet_rows(book, 1)
    assert list(rows[0].values()) == list(metrics.AGENT_COLUMNS)
    assert [row["A"] for row in rows[1:]] == list(table["Agent"])


def test_the_page_renders_with_the_agent_filter_from_the_url(leads):
    rows, today = leads
    at = app("agents", params={"agent": "ag-7"})
    assert not at.exception and not at.error
    shown = next(d.value for d in at.dataframe if "Leads handled" in d.value.columns)
    assert list(shown.columns) == list(metrics.AGENT_COLUMNS)
    assert_same(shown, expected_table(kept_rows(rows, Filters(agents=("ag-7",)), today)))
    talk = next(d.value for d in at.dataframe if "Short answered calls" in d.value.columns)
    assert list(talk["Campaign"]) == [metrics.ALL_CAMPAIGNS, "Beta", "Alpha"]
    captions = " ".join(c.value for c in at.caption)
    assert "possible hang-ups or abandons" in captions
    assert len(at.get("plotly_chart")) == 2
    tile = next(m for m in at.metric if m.label.startswith("Short answered calls"))
    assert tile.value == "2" and "possible hang-ups or abandons" in tile.proto.help


def test_the_page_shows_empty_states_without_answered_leads(leads):
    at = app("agents", params={"agent": NO_AGENT, "dialstatus": "Not dialled"})
    assert not at.exception and not at.error
    assert "no talk time" in " ".join(i.value for i in at.info)
