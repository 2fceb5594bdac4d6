"""The Progress page's numbers on hand-made leads: every progress state, attempts allowed set and
inferred, missing attempt counts, several agents (one with only an id), stale and out-of-window
leads, a do-not-call lead still pending. Each number is checked against plain Python over the
inserted rows (tests/conftest.py's independent helpers), and each link by opening it: the
filters it carries select exactly the leads it counts."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lib.store import summary
from lib.store.policy import DialPolicy, save_attempts_allowed, save_dial_policy
from lib.view import export, metrics, progress_charts
from lib.view.filters import NO_AGENT, PROGRESS_STATES, Filters, parse_query_params
from tests.conftest import (
    TZ,
    agent_of,
    allowed_by_campaign,
    insert_rows,
    kept_rows,
    progress_of,
    writer_lock_held,
)
from tests.support.apptest import open_app
from tests.support.workbook import sheet_names, sheet_rows

ZONE = ZoneInfo(TZ)
TODAY = datetime.now(ZONE).date()
SET = {"Alpha": 3}  # Beta and Gamma are inferred
CATEGORY = {
    "Sale Closed": "Sale",
    "DNC": "Do not call",
    "Do not call": "Do not call",
    "Not Interested": "Contact",
    "Wrap up time exceeded :30": "Other",
    "wrap UP time exceeded :45": "Other",
    " Wrap up time exceeded :60": "Other",
}
BUCKET = {
    "answered": "answered",
    "not_answered": "NoAnswer",
    "Busy": "Fail",
    "NotDialed": "Not dialled",
    "": "Not dialled",
}
WINDOW = (9, 21)
STALE_DAYS = 3


def lead(campaign, key, status, dial, attempts, disposition=None, agent=None, *, ago=0, at=(12,)):
    """One stored lead; `agent` is a name, or ("", id) for an agent known only by id."""
    name, agent_id = (agent, f"id-{agent}") if isinstance(agent, str) else (agent or (None, None))
    updated = datetime.combine(TODAY - timedelta(days=ago), time(*at), tzinfo=ZONE)
    return {
        "campaign_name": campaign,
        "lead_key": key,
        "lead_id": key,
        "phone_number": f"+91 98765{len(key):02d}{key[-3:]:>03}",
        "name": f"Customer {key}",
        "status": status,
        "lead_status": status,
        "dial_status": dial,
        "dial_bucket": BUCKET[dial],
        "disposition": disposition,
        "comments": None,
        "agent_id": agent_id,
        "agent_name": name,
        "attempts": attempts,
        "priority": 0,
        "ucid": None,
        "call_duration_s": 40 if dial == "answered" else 0,
        "created_at": updated - timedelta(days=20),
        "updated_at": updated,
        "extra": None,
        "delivery_id": 1,
    }


ROWS = [
    # Alpha: 3 attempts allowed, set by an operator.
    lead("Alpha", "a01", "Pending", "NotDialed", 0),
    lead("Alpha", "a02", "Pending", "", None),  # never dialled, no attempt count
    lead("Alpha", "a03", "Pending", "not_answered", 1, agent="Asha"),
    lead("Alpha", "a04", "Pending", "answered", 2, agent="Asha"),  # answered, no disposition
    lead("Alpha", "a05", "Pending", "Busy", 3, agent="Ravi"),  # out of tries
    lead("Alpha", "a06", "Pending", "answered", 5, "DNC", "Ravi"),  # do not call, still pending
    lead("Alpha", "a07", "Success", "answered", 1, "Sale Closed", ("", "ag-7")),  # id only
    lead("Alpha", "a08", "Fail", "answered", 2, "Wrap up time exceeded :30", "Asha"),
    lead("Alpha", "a09", "Pending", "not_answered", None),  # dialled, no count: 1 attempt
    lead("Alpha", "a10", "Pending", "not_answered", 1, agent="Ravi", ago=10),  # stale
    lead("Alpha", "a11", "Success", "answered", 2, "Sale Closed", "Asha", at=(21, 0, 0)),
    lead("Alpha", "a12", "Fail", "Busy", 1, agent="Ravi", at=(8, 59, 59)),  # before the window
    lead("Alpha", "a13", "Fail", "Busy", 1, agent="Ravi", at=(9, 0, 0)),  # inside
    lead("Alpha", "a14", "Fail", "answered", 3, "wrap UP time exceeded :45", "Asha"),
    lead("Alpha", "a15", "Pending", "not_answered", 2, agent="Asha", ago=3),  # not yet stale
    lead("Alpha", "a16", "Pending", "not_answered", 1, agent="Asha", ago=4, at=(22, 30)),
    lead("Alpha", "a17", "Success", "answered", 4, "Sale Closed", "Ravi"),  # beyond allowed
    # Beta: inferred (the highest attempts seen, 4).
    lead("Beta", "b01", "Pending", "not_answered", 4, agent="Meera"),
    lead("Beta", "b02", "Pending", "not_answered", 3, agent="Meera"),
    lead("Beta", "b03", "Pending", "NotDialed", 0),
    lead("Beta", "b04", "Success", "answered", 2, "DNC", "Meera"),  # DNC but not pending
    lead("Beta", "b05", "Pending", "answered", 1, "Do not call", "Asha"),
    lead("Beta", "b06", "Fail", "answered", 1, "Not Interested", "Meera", ago=1, at=(6,)),
    lead("Beta", "b07", "Pending", "answered", None, agent="Meera"),
    lead("Beta", "b08", "Fail", "answered", 2, " Wrap up time exceeded :60", "Meera"),
    # Gamma: nothing dialled yet.
    lead("Gamma", "g01", "Pending", "NotDialed", 0),
    lead("Gamma", "g02", "Pending", "", None),
]


# -- the definitions, in plain Python over ROWS ---------------------------------------------


def attempted(r) -> bool:
    return r["attempts"] > 0 if r["attempts"] is not None else r["dial_bucket"] != "Not dialled"


def state(r, set_by_operator=SET) -> str:
    return progress_of(r, allowed_by_campaign(ROWS, set_by_operator)[r["campaign_name"]])


def is_wrap_up(r) -> bool:
    return (r["disposition"] or "").strip().lower().startswith("wrap up time exceeded")


def has_disposition(r) -> bool:
    return bool((r["disposition"] or "").strip())


def expected(rows, set_by_operator=SET, window=WINDOW, stale_days=STALE_DAYS) -> dict:
    allowed = allowed_by_campaign(ROWS, set_by_operator)
    states = [state(r, set_by_operator) for r in rows]
    open_rows = [r for r, s in zip(rows, states, strict=True) if s in ("not_dialled", "retrying")]
    stale_before = TODAY - timedelta(days=stale_days)
    n = len(rows)
    counts = {s: states.count(s) for s in PROGRESS_STATES}
    with_disposition = sum(has_disposition(r) for r in rows)
    wrap_up = sum(is_wrap_up(r) for r in rows)
    return {
        "leads": n,
        **counts,
        "attempted": sum(attempted(r) for r in rows),
        "penetration": sum(attempted(r) for r in rows) / n if n else None,
        "completion": (counts["success"] + counts["failed"] + counts["out_of_tries"]) / n
        if n
        else None,
        "retries_left": sum(
            allowed[r["campaign_name"]]
            - (r["attempts"] if r["attempts"] is not None else int(attempted(r)))
            for r in open_rows
        ),
        "stale_pending": sum(
            r["lead_status"] == "Pending"
            and attempted(r)
            and r["updated_at"].astimezone(ZONE).date() < stale_before
            for r in rows
        ),
        "outside_window": sum(
            attempted(r) and not window[0] <= r["updated_at"].astimezone(ZONE).hour < window[1]
            for r in rows
        ),
        "dnc_pending": sum(
            CATEGORY.get(r["disposition"]) == "Do not call" and r["lead_status"] == "Pending"
            for r in rows
        ),
        "answered": sum(r["dial_bucket"] == "answered" for r in rows),
        "answered_no_disposition": sum(
            r["dial_bucket"] == "answered" and not has_disposition(r) for r in rows
        ),
        "with_disposition": with_disposition,
        "wrap_up": wrap_up,
        "wrap_up_share": wrap_up / with_disposition if with_disposition else None,
    }


NUMBER_COLUMNS = tuple(expected(ROWS))


def actual(row) -> dict:
    return {c: (None if row[c] is None or row[c] != row[c] else row[c]) for c in NUMBER_COLUMNS}


def approx(values: dict) -> dict:
    return {
        k: v if v is None or isinstance(v, int) else pytest.approx(v) for k, v in values.items()
    }


@pytest.fixture
def store(fresh_services):
    insert_rows(fresh_services.store, ROWS)
    with fresh_services.store.writing() as cursor:
        for name in ("Alpha", "Beta", "Gamma"):
            cursor.execute("INSERT INTO campaigns (name, source) VALUES (?, 'config')", [name])
    save_attempts_allowed(fresh_services.store, SET, by="test")
    return fresh_services.store


@pytest.fixture
def cursor(store):
    with store.cursor() as cur:
        yield cur


def table(cursor, filters=None, **rules):
    frame = metrics.progress_table(cursor, filters or Filters(), TZ, TODAY, **rules)
    return {row["campaign"]: row for row in frame.to_dict("records")}


def test_the_leads_cover_every_case():
    states = {state(r) for r in ROWS}
    assert states == set(PROGRESS_STATES)
    assert any(r["attempts"] is None and attempted(r) for r in ROWS)
    assert any(r["attempts"] is None and not attempted(r) for r in ROWS)
    assert {agent_of(r) for r in ROWS} == {"Asha", "Ravi", "Meera", "ag-7", NO_AGENT}
    assert expected(ROWS)["stale_pending"] and expected(ROWS)["outside_window"]
    assert expected(ROWS)["dnc_pending"] and expected(ROWS)["answered_no_disposition"]


def test_each_campaign_and_the_selection_match_the_definitions(cursor):
    rows = table(cursor)
    assert list(rows) == [metrics.ALL_SELECTED, "Alpha", "Beta", "Gamma"]  # by leads
    assert approx(actual(rows[metrics.ALL_SELECTED])) == expected(ROWS)
    for campaign in ("Alpha", "Beta", "Gamma"):
        mine = [r for r in ROWS if r["campaign_name"] == campaign]
        assert approx(actual(rows[campaign])) == expected(mine), campaign
    assert (rows["Alpha"]["allowed"], rows["Alpha"]["allowed_text"]) == (3, "3")
    assert (rows["Beta"]["allowed"], rows["Beta"]["allowed_text"]) == (4, "4 (inferred)")
    assert rows["Gamma"]["allowed_text"] == "0 (inferred)"
    assert rows["Gamma"]["penetration"] == 0 and pd.isna(rows["Gamma"]["wrap_up_share"])
    assert rows["Alpha"]["dnc_dispositions"].tolist() == ["DNC"]
    assert rows["Beta"]["dnc_dispositions"].tolist() == ["Do not call"]
    assert sorted(rows["Alpha"]["wrap_up_dispositions"]) == [
        "Wrap up time exceeded :30",
        "wrap UP time exceeded :45",
    ]


def test_the_progress_follows_the_attempts_allowed(store, cursor):
    save_attempts_allowed(store, {"Alpha": None, "Beta": 1}, by="test")  # Alpha inferred: 5
    now = {"Beta": 1}
    rows = table(cursor)
    assert approx(actual(rows[metrics.ALL_SELECTED])) == expected(ROWS, now)
    assert rows["Alpha"]["allowed_text"] == "5 (inferred)" and rows["Beta"]["allowed_text"] == "1"
    assert expected(ROWS, now)["out_of_tries"] != expected(ROWS)["out_of_tries"]


def test_a_garbage_attempt_count_does_not_make_a_million_tries(store, cursor):
    """One lead with 999,999 attempts (a broken record) in a campaign whose attempts allowed are
    inferred: at most 100 apply, as an operator could set, and the chart has 100 attempts."""
    huge = lead("Beta", "b99", "Pending", "not_answered", 999_999, agent="Meera")
    insert_rows(store, [huge])
    rows = table(cursor, Filters(campaigns=("Beta",)))
    assert (rows["Beta"]["allowed"], rows["Beta"]["allowed_text"]) == (100, "100 (inferred)")
    beta = [r for r in ROWS if r["campaign_name"] == "Beta"] + [huge]
    assert allowed_by_campaign(beta)["Beta"] == 100
    assert approx(actual(rows["Beta"])) == expected(beta, {"Beta": 100})
    assert rows["Beta"]["out_of_tries"] == 1  # b99, past the 100
    frame = metrics.attempt_outcomes(cursor, Filters(campaigns=("Beta",)), TZ, TODAY)
    assert len(frame) == 100 and frame.iloc[-1]["label"] == "100 or more"
    assert frame.iloc[-1]["leads"] == 1


def test_the_dialing_policy_moves_the_checks(cursor):
    rules = {"window_start": 8, "window_end": 22, "stale_days": 5}
    got = actual(table(cursor, **rules)[metrics.ALL_SELECTED])
    want = expected(ROWS, window=(8, 22), stale_days=5)
    assert approx(got) == want
    assert want["outside_window"] != expected(ROWS)["outside_window"]
    assert want["stale_pending"] != expected(ROWS)["stale_pending"]


FILTERS = [
    Filters(progress=("retrying",)),
    Filters(progress=("out_of_tries", "success")),
    Filters(agents=("Asha",)),
    Filters(agents=("ag-7", NO_AGENT)),
    Filters(agents=("Meera",), progress=("retrying", "out_of_tries")),
    Filters(campaigns=("Alpha",), statuses=("Pending",)),
    Filters(range="last_7d", dispositions=("DNC", "Sale Closed")),
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: repr(f)[8:60])
def test_the_filters_change_the_numbers_as_they_should(cursor, filters):
    kept = kept_rows(ROWS, filters, TODAY, SET)
    assert kept and len(kept) < len(ROWS)
    assert approx(actual(table(cursor, filters)[metrics.ALL_SELECTED])) == expected(kept)


def opened(link: str) -> list[dict]:
    """The leads the Leads page shows for a link: its parameters, read as a fresh session reads
    them, applied by the tests' own filter."""
    parts = urlsplit(link)
    assert parts.path == "leads"
    filters, notices = parse_query_params(parse_qs(parts.query), None, None, TODAY)
    assert notices == []
    return kept_rows(ROWS, filters, TODAY, SET)


# What each count's link must open: exactly the leads counted, or (for the rates, the retries and
# the answered leads without a disposition) the leads the number is computed over.
LINKED = {
    "leads": lambda r: True,
    **{s: (lambda r, s=s: state(r) == s) for s in PROGRESS_STATES},
    "attempted": attempted,
    "penetration": attempted,
    "completion": lambda r: state(r) in ("success", "failed", "out_of_tries"),
    "retries_left": lambda r: state(r) in ("not_dialled", "retrying"),
    "stale_pending": lambda r: (
        r["lead_status"] == "Pending"
        and attempted(r)
        and r["updated_at"].astimezone(ZONE).date() < TODAY - timedelta(days=STALE_DAYS)
    ),
    "dnc_pending": lambda r: (
        CATEGORY.get(r["disposition"]) == "Do not call" and r["lead_status"] == "Pending"
    ),
    "answered": lambda r: r["dial_bucket"] == "answered",
    "answered_no_disposition": lambda r: r["dial_bucket"] == "answered",
    "wrap_up": is_wrap_up,
}
LINKED["wrap_up_share"] = LINKED["wrap_up"]


@pytest.mark.parametrize("filters", [Filters(), Filters(range="last_30d"), FILTERS[2]], ids=str)
def test_every_count_links_to_exactly_its_leads(cursor, filters):
    frame = metrics.progress_table(cursor, filters, TZ, TODAY)
    for row in frame.to_dict("records"):
        links = metrics.count_links(row, filters, TODAY, STALE_DAYS)
        assert "outside_window" not in links  # the Leads page has no filter by hour
        scope = kept_rows(ROWS, filters, TODAY, SET)
        if not row["is_total"]:
            scope = [r for r in scope if r["campaign_name"] == row["campaign"]]
        for column, counted in LINKED.items():
            want = [r["lead_key"] for r in scope if counted(r)]
            if links[column] is None:
                assert want == [], (row["campaign"], column)
                continue
            assert [r["lead_key"] for r in opened(links[column])] == want, (row["campaign"], column)


def test_a_count_the_filters_rule_out_has_no_link(cursor):
    filters = Filters(statuses=("Fail",))
    total = metrics.progress_table(cursor, filters, TZ, TODAY).iloc[0]
    links = metrics.count_links(total, filters, TODAY, STALE_DAYS)
    assert total["dnc_pending"] == 0 and links["dnc_pending"] is None
    assert total["stale_pending"] == 0 and links["stale_pending"] is None
    assert links["failed"] is not None


def outcome(rows, last) -> list[tuple]:
    tried = [r for r in rows if attempted(r)]
    out = []
    for k in range(1, last + 1):
        here = [r for r in tried if min(r["attempts"] or 1, last) == k]
        answered = sum(r["dial_bucket"] == "answered" for r in here)
        sales = sum(CATEGORY.get(r["disposition"]) == "Sale" for r in here)
        label = f"{k} or more" if k == last else str(k)
        out.append((k, label, len(here), answered, answered / len(here) if here else None, sales))
    return out


@pytest.mark.parametrize(
    ("filters", "last"),
    [(Filters(campaigns=("Alpha",)), 3), (Filters(campaigns=("Beta",)), 4), (Filters(), 4)],
    ids=("alpha-set-3", "beta-inferred-4", "selection-largest-4"),
)
def test_outcome_by_attempt_number(cursor, filters, last):
    frame = metrics.attempt_outcomes(cursor, filters, TZ, TODAY)
    got = [
        (
            r.attempt,
            r.label,
            r.leads,
            r.answered,
            None if r.answer_rate != r.answer_rate else r.answer_rate,
            r.conversions,
        )
        for r in frame.itertuples()
    ]
    assert got == [
        tuple(pytest.approx(v) if isinstance(v, float) else v for v in t)
        for t in outcome(kept_rows(ROWS, filters, TODAY, SET), last)
    ]


def test_nothing_dialled_gives_empty_frames_not_errors(cursor):
    gamma = Filters(campaigns=("Gamma",))
    assert metrics.attempt_outcomes(cursor, gamma, TZ, TODAY).empty
    assert metrics.window_leads(cursor, gamma, TZ, TODAY).empty
    nothing = metrics.progress_table(cursor, Filters(agents=("Nobody",)), TZ, TODAY)
    assert list(nothing["campaign"]) == [metrics.ALL_SELECTED]
    assert nothing.iloc[0]["leads"] == 0 and pd.isna(nothing.iloc[0]["penetration"])


def test_the_calling_window_list_is_the_counted_leads_with_phones_masked(cursor):
    frame = metrics.window_leads(cursor, Filters(), TZ, TODAY)
    outside = [
        r for r in ROWS if attempted(r) and not 9 <= r["updated_at"].astimezone(ZONE).hour < 21
    ]
    by_name = {r["name"]: r for r in outside}
    assert (
        sorted(frame["Name"]) == sorted(by_name) and len(frame) == expected(ROWS)["outside_window"]
    )
    assert "Customer a11" in by_name and "Customer a13" not in by_name  # 21:00:00 is outside
    for row in frame.itertuples():
        phone = re.sub(r"\D", "", by_name[row.Name]["phone_number"])
        assert row.Phone == "•" * (len(phone) - 4) + phone[-4:]
    shown = metrics.window_leads(cursor, Filters(), TZ, TODAY, show_phones=True, limit=2)
    assert len(shown) == 2 and set(shown["Phone"]) <= {r["phone_number"] for r in outside}
    assert list(shown["Last call"]) == sorted(frame["Last call"], reverse=True)[:2]


def test_the_calling_window_list_is_the_newest_leads_at_every_limit(cursor):
    """The list reads the leads from the day the summary names on: every limit, from one lead
    to more than there are, still gives the newest ones."""
    outside = [
        r for r in ROWS if attempted(r) and not 9 <= r["updated_at"].astimezone(ZONE).hour < 21
    ]
    newest = sorted((r["updated_at"].astimezone(ZONE) for r in outside), reverse=True)
    assert len({t.date() for t in newest}) > 1  # several days: the day bound matters
    for limit in range(1, len(newest) + 2):
        frame = metrics.window_leads(cursor, Filters(), TZ, TODAY, limit=limit)
        assert list(frame["Last call"]) == newest[:limit]


def test_the_stale_summary_and_the_leads_give_the_same_numbers(store, cursor):
    rules = {"window_start": 10, "window_end": 20, "stale_days": 2}
    filters = Filters(agents=("Asha", "Ravi"))
    fresh = metrics.progress_table(cursor, filters, TZ, TODAY, **rules)
    outcomes = metrics.attempt_outcomes(cursor, filters, TZ, TODAY)
    with store.writing() as writer:
        store.bump_data_version(writer)  # stale: the next reader rebuilds it, unless a writer
    with writer_lock_held(store):
        assert not summary.summary_ready(cursor)
        from_leads = metrics.progress_table(cursor, filters, TZ, TODAY, **rules)
        outcomes_from_leads = metrics.attempt_outcomes(cursor, filters, TZ, TODAY)
    columns = [*NUMBER_COLUMNS, "campaign", "allowed_text"]
    assert from_leads[columns].equals(fresh[columns])
    assert outcomes_from_leads.equals(outcomes)


def test_the_funnel_frame_and_its_chart(cursor):
    frame = metrics.progress_table(cursor, Filters(), TZ, TODAY)
    funnel = metrics.progress_funnel(frame)
    assert list(funnel["campaign"].unique()) == [metrics.ALL_SELECTED, "Alpha", "Beta", "Gamma"]
    for (campaign, s), n in funnel.set_index(["campaign", "state"])["leads"].items():
        scope = (
            ROWS
            if campaign == metrics.ALL_SELECTED
            else [r for r in ROWS if r["campaign_name"] == campaign]
        )
        assert n == sum(state(r) == s for r in scope)
    figure = progress_charts.funnel_bars(funnel)
    assert [t.name for t in figure.data] == [
        "Not dialled", "Retrying", "Out of tries", "Success", "Failed"
    ]  # fmt: skip
    retrying = next(t for t in figure.data if t.name == "Retrying")
    assert {c[0] for c in retrying.customdata} == {"retrying"}  # a click filters by the state
    assert retrying.customdata[0][2] == "Retrying"  # the hover's label


def test_the_excel_file_holds_the_numbers_as_on_screen(cursor):
    frame = metrics.progress_table(cursor, Filters(), TZ, TODAY)
    numbers = metrics.progress_numbers(frame)
    assert list(numbers.columns)[:4] == ["Campaign", "Attempts allowed", "Leads", "Not dialled"]
    book = export.frames_xlsx({"Progress by campaign": numbers, "=evil": numbers.head(1)})
    assert sheet_names(book) == ["Progress by campaign", "=evil"]
    sheet = sheet_rows(book, 1)
    assert list(sheet[0].values()) == list(numbers.columns)
    total = {sheet[0][col]: value for col, value in sheet[1].items()}
    want = expected(ROWS)
    assert total["Campaign"] == metrics.ALL_SELECTED and total["Leads"] == str(want["leads"])
    assert float(total["Penetration %"]) == round(100 * want["penetration"], 1)
    assert total["Stale pending"] == str(want["stale_pending"])


# -- the page --------------------------------------------------------------------------------


def page(params: dict | None = None) -> AppTest:
    return open_app("progress", params)


def tiles(at) -> dict:
    return {m.label: m for m in at.metric}


def test_the_page_shows_the_tiles_funnel_and_links(store):
    at = page()
    shown = tiles(at)
    want = expected(ROWS)
    assert shown["Leads"].value == f"{want['leads']:,}"
    assert shown["Penetration"].value == f"{100 * want['penetration']:.1f}%"
    assert shown["Completion"].value == f"{100 * want['completion']:.1f}%"
    assert shown["Retries left"].value == f"{want['retries_left']:,}"
    assert shown["Stale pending"].value == str(want["stale_pending"])
    assert shown["Outside calling window"].value == str(want["outside_window"])
    assert shown["Do-not-call still pending"].value == str(want["dnc_pending"])
    assert shown["Answered, no disposition"].value == str(want["answered_no_disposition"])
    assert shown["Wrap-up share"].value == f"{100 * want['wrap_up_share']:.1f}%"
    assert "Penetration = attempted leads / leads." in shown["Penetration"].proto.help
    assert "09:00–21:00" in shown["Outside calling window"].proto.help
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the funnel and the outcome by attempt number
    by_campaign = next(d.value for d in at.dataframe if "Retrying" in d.value.columns)
    assert list(by_campaign["Campaign"]) == [metrics.ALL_SELECTED, "Alpha", "Beta", "Gamma"]
    link = by_campaign.loc[by_campaign["Campaign"] == "Alpha", "Out of tries"].iloc[0]
    url, count = link.split("#")
    assert int(count) == sum(
        state(r) == "out_of_tries" for r in ROWS if r["campaign_name"] == "Alpha"
    )
    assert {r["lead_key"] for r in opened(url)} == {
        r["lead_key"] for r in ROWS if r["campaign_name"] == "Alpha" and state(r) == "out_of_tries"
    }
    listed = next(d.value for d in at.dataframe if "Last call" in d.value.columns)
    assert len(listed) == want["outside_window"] and listed["Phone"].str.contains("•").all()
    markdown = " ".join(m.value for m in at.markdown)
    assert "[Show these leads](leads?" in markdown


def test_the_page_follows_the_filters_and_the_dialing_policy(store):
    save_dial_policy(store, DialPolicy(window_start=7, window_end=22, stale_days=5), by="test")
    at = page({"agent": ["Asha"]})
    # The sidebar's progress filter, set as a funnel click sets it (the bound widget reads a
    # link's progress values by their labels: see the report).
    at.session_state["progress"] = ["retrying", "out_of_tries"]
    at.run()
    assert not at.exception, at.exception
    kept = kept_rows(
        ROWS, Filters(agents=("Asha",), progress=("retrying", "out_of_tries")), TODAY, SET
    )
    want = expected(kept, window=(7, 22), stale_days=5)
    shown = tiles(at)
    assert shown["Leads"].value == str(want["leads"])
    assert shown["Stale pending"].value == str(want["stale_pending"])
    assert shown["Outside calling window"].value == str(want["outside_window"])
    assert "07:00–22:00" in shown["Outside calling window"].proto.help
    assert "more than 5 days" in shown["Stale pending"].proto.help


def test_a_link_with_unknown_agent_or_progress_says_so(store):
    at = page({"agent": ["Nobody"], "progress": ["halfway"]})
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "Nobody" in warnings and "halfway" in warnings
    assert tiles(at)["Leads"].value == str(len(ROWS))


def test_a_campaign_with_nothing_dialled_shows_empty_states(store):
    at = page({"campaign": ["Gamma"]})
    assert tiles(at)["Penetration"].value == "0.0%"
    assert tiles(at)["Wrap-up share"].value == "–"
    assert "No lead in the selection has been dialled yet." in " ".join(i.value for i in at.info)
    assert "nan" not in " ".join(str(m.value) for m in at.metric).lower()
