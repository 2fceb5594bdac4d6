"""lib/view/filters.py: URL parameters -> Filters (never raises), date windows, bound-parameter SQL,
share links that round-trip any name."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from lib.fields import DIAL_BUCKETS, LEAD_STATUSES
from lib.store.policy import save_attempts_allowed
from lib.view.filters import (
    PARAM_NAMES,
    RANGE_PRESETS,
    Filters,
    date_span,
    date_window,
    describe,
    params_from_widgets,
    parse_query_params,
    previous_filters,
    previous_span,
    to_query_string,
    where_clause,
    widget_values,
)
from lib.view.metrics.leads import lead_count
from lib.view.metrics.relation import count_sql, filtered_groups, lead_relation
from tests.conftest import CAMPAIGNS, TZ, kept_rows
from tests.test_metrics import insert_many_names

TODAY = date(2025, 3, 15)
KNOWN = [*CAMPAIGNS, "Plain"]
DISPOSITIONS = ["Sale Closed", 'Quote "X" & Co', "Wrap up time exceeded :30"]
HOSTILE = (
    "'; DROP TABLE leads; --",
    "x' OR '1'='1",
    "<script>alert(1)</script>",
    "$f_campaigns",
    "?",
    "%' OR 1=1 --",
)


def parse(params, campaigns=KNOWN, dispositions=DISPOSITIONS, today=TODAY):
    return parse_query_params(params, campaigns, dispositions, today)


def test_no_parameters_is_the_default_view():
    assert parse({}) == (Filters(), [])


def test_every_parameter_read():
    filters, notices = parse(
        {
            "campaign": [CAMPAIGNS[1], CAMPAIGNS[2]],
            "range": ["custom"],
            "from": ["2025-01-01"],
            "to": ["2025-01-31"],
            "basis": ["created"],
            "status": ["Success", "Pending"],
            "dialstatus": ["NoAnswer", "Not dialled"],
            "disposition": ['Quote "X" & Co'],
        }
    )
    assert notices == []
    assert filters == Filters(
        campaigns=(CAMPAIGNS[1], CAMPAIGNS[2]),
        range="custom",
        date_from=date(2025, 1, 1),
        date_to=date(2025, 1, 31),
        basis="created",
        statuses=("Success", "Pending"),
        dial_buckets=("NoAnswer", "Not dialled"),
        dispositions=('Quote "X" & Co',),
    )


def test_single_string_values_and_duplicates_accepted():
    filters, notices = parse({"campaign": "Plain", "status": ["Fail", "Fail"]})
    assert notices == []
    assert filters.campaigns == ("Plain",) and filters.statuses == ("Fail",)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"campaign": ["Nope"]}, "unknown campaign"),
        ({"range": ["last_week"]}, "Ignored range"),
        ({"range": ["custom"], "from": ["2025-02-30"]}, "Ignored from"),
        ({"range": ["custom"], "to": ["15/03/2025"]}, "Ignored to"),
        ({"range": ["custom"], "from": ["0001-01-01"]}, "from 1990-01-01 to 2200-12-31"),
        ({"range": ["custom"], "from": ["2025-03-10"], "to": ["2025-03-01"]}, "is after"),
        ({"range": ["last_7d"], "from": ["2025-03-01"]}, "only with range=custom"),
        ({"basis": ["deleted"]}, "Ignored basis"),
        ({"status": ["Won"]}, "unknown lead status"),
        ({"dialstatus": ["busy"]}, "unknown dial status"),
        ({"disposition": ["Never seen"]}, "unknown disposition"),
        ({"campaign": ["x" * 600]}, "unreadable"),
        ({"campaign": ["a\x00b"]}, "unreadable"),
    ],
)
def test_invalid_values_are_ignored_with_a_notice(params, fragment):
    filters, notices = parse(params)
    assert any(fragment in n for n in notices), notices
    defaults = Filters()
    for name in ("campaigns", "statuses", "dial_buckets", "dispositions", "date_from", "date_to"):
        assert getattr(filters, name) == getattr(defaults, name)


def test_from_after_to_keeps_custom_without_dates():
    filters, _ = parse({"range": ["custom"], "from": ["2025-03-10"], "to": ["2025-03-01"]})
    assert (filters.range, filters.date_from, filters.date_to) == ("custom", None, None)
    assert date_span(filters, TODAY) is None


@pytest.mark.parametrize("value", HOSTILE)
def test_injection_attempts_are_just_unknown_values(value):
    params = {name: [value] for name in PARAM_NAMES}
    filters, notices = parse(params)
    assert filters.campaigns == ((value,) if value in KNOWN else ())  # a real (odd) name is fine
    assert filters.dispositions == ()
    assert filters.range == "all" and filters.basis == "updated"
    assert notices


def test_values_are_exact_like_the_bound_widgets():
    filters, notices = parse({"status": ["success", "Pending"], "dialstatus": ["noanswer"]})
    assert filters.statuses == ("Pending",) and filters.dial_buckets == ()
    assert len(notices) == 2


def test_dates_read_like_the_date_widget():
    filters, notices = parse({"range": ["custom"], "from": ["20250301"], "to": [" 2025-03-09 "]})
    assert notices == []
    assert (filters.date_from, filters.date_to) == (date(2025, 3, 1), date(2025, 3, 9))


def test_campaign_names_are_exact():
    filters, notices = parse({"campaign": ["renewals_q4", " Renewals_Q4"]})
    assert filters.campaigns == ()
    assert len(notices) == 1


def test_too_many_values_are_capped():
    filters, notices = parse({"status": ["Fail"] * 5000})
    assert filters.statuses == ("Fail",)
    assert any("only the first" in n for n in notices)


def test_repeated_single_value_takes_the_last():
    filters, _ = parse({"range": ["today", "last_7d"]})
    assert filters.range == "last_7d"


def test_unknown_parameter_names_are_left_alone():
    assert parse({"embed": ["true"], "utm_source": ["mail"]}) == (Filters(), [])


def test_no_known_lists_accepts_any_value():
    filters, notices = parse_query_params({"campaign": ["Anything"]}, None, None, TODAY)
    assert filters.campaigns == ("Anything",) and notices == []


any_values = st.lists(st.text(max_size=30), max_size=6) | st.text(max_size=30) | st.none()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from([*PARAM_NAMES, "other", ""]) | st.text(max_size=8), any_values, max_size=10
    )
)
def test_any_input_gives_valid_filters_and_never_raises(params):
    filters, notices = parse(params)
    assert isinstance(notices, list) and all(isinstance(n, str) for n in notices)
    assert set(filters.campaigns) <= set(KNOWN)
    assert set(filters.dispositions) <= set(DISPOSITIONS)
    assert set(filters.statuses) <= set(LEAD_STATUSES)
    assert set(filters.dial_buckets) <= set(DIAL_BUCKETS)
    assert filters.range in RANGE_PRESETS and filters.basis in ("updated", "created")
    if filters.date_from and filters.date_to:
        assert filters.date_from <= filters.date_to
    if filters.range != "custom":
        assert filters.date_from is None and filters.date_to is None
    where_clause(filters, TODAY, TZ)  # and it always makes SQL


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                     min_size=1, max_size=40), min_size=1, max_size=4, unique=True),
    st.sampled_from(RANGE_PRESETS),
    st.dates(date(2000, 1, 1), date(2100, 1, 1)),
    st.integers(0, 400),
)  # fmt: skip
def test_share_link_round_trips_any_name(names, preset, start, length):
    names = [n for n in names if n.strip() or n]  # empty strings are "cleared" in URLs
    filters = Filters(
        campaigns=tuple(names),
        range=preset,
        date_from=start if preset == "custom" else None,
        date_to=start + timedelta(days=length) if preset == "custom" else None,
        basis="created",
        statuses=("Pending",),
        dial_buckets=("Not dialled", "user_disconnected"),
        dispositions=tuple(names[:1]),
    )
    query = to_query_string(filters)
    assert "#" not in query and "&amp;" not in query and " " not in query
    params = parse_qs(query, keep_blank_values=True)
    again, notices = parse_query_params(params, names, names, TODAY)
    assert notices == [] and again == filters


@pytest.mark.parametrize(
    "name",
    ['O\'Brien & Sons "VIP" 100% #1', "<script>alert(1)</script>", "حملة التجديد 🎉", "a+b=c?d/e"],
)
def test_share_link_encodes_special_characters(name):
    query = to_query_string(Filters(campaigns=(name,)))
    assert query.startswith("campaign=") and name not in query
    assert parse_qs(query)["campaign"] == [name]


def test_widget_values_round_trip():
    filters = Filters(
        campaigns=("Plain",),
        range="custom",
        date_from=date(2025, 1, 2),
        date_to=date(2025, 1, 9),
        statuses=("Fail",),
    )
    again, notices = parse(params_from_widgets(widget_values(filters)))
    assert again == filters and notices == []


@pytest.mark.parametrize(
    ("preset", "today", "start", "end"),
    [
        ("today", date(2025, 3, 15), date(2025, 3, 15), date(2025, 3, 16)),
        ("yesterday", date(2025, 3, 1), date(2025, 2, 28), date(2025, 3, 1)),
        ("last_7d", date(2025, 3, 15), date(2025, 3, 9), date(2025, 3, 16)),
        ("last_30d", date(2025, 3, 15), date(2025, 2, 14), date(2025, 3, 16)),
        ("this_month", date(2024, 2, 29), date(2024, 2, 1), date(2024, 3, 1)),
        ("last_month", date(2025, 1, 10), date(2024, 12, 1), date(2025, 1, 1)),
        ("last_month", date(2024, 3, 31), date(2024, 2, 1), date(2024, 3, 1)),
    ],
)
def test_preset_spans(preset, today, start, end):
    assert date_span(Filters(range=preset), today) == (start, end)


def test_all_and_open_custom_ranges():
    assert date_span(Filters(), TODAY) is None
    assert date_window(Filters(range="custom"), TODAY, TZ) is None
    only_from = Filters(range="custom", date_from=date(2025, 1, 1))
    assert date_span(only_from, TODAY) == (date(2025, 1, 1), None)
    only_to = Filters(range="custom", date_to=date(2025, 1, 1))
    assert date_span(only_to, TODAY) == (None, date(2025, 1, 2))
    assert previous_span(only_to, TODAY) is None


def test_window_is_local_midnight_in_the_account_zone():
    start, end = date_window(Filters(range="today"), TODAY, "America/New_York")
    assert start == datetime(2025, 3, 15, tzinfo=ZoneInfo("America/New_York"))
    assert end - start == timedelta(days=1)
    assert start.utcoffset() == timedelta(hours=-4)  # DST began on 9 March 2025


@pytest.mark.parametrize("preset", [p for p in RANGE_PRESETS if p not in ("all", "custom")])
def test_previous_period_has_equal_length_and_ends_where_the_range_starts(preset):
    span = date_span(Filters(range=preset), TODAY)
    prev = previous_span(Filters(range=preset), TODAY)
    assert prev[1] == span[0] and prev[1] - prev[0] == span[1] - span[0]
    previous = previous_filters(Filters(range=preset, campaigns=("Plain",)), TODAY)
    assert previous.range == "custom" and previous.campaigns == ("Plain",)
    assert date_span(previous, TODAY) == prev


def test_where_clause_uses_only_bound_parameters():
    hostile = Filters(
        campaigns=HOSTILE, statuses=("Fail",), dial_buckets=("Fail",), dispositions=HOSTILE
    )
    sql, params = where_clause(hostile.replace(range="last_7d"), TODAY, TZ)
    innocent = hostile.replace(range="last_7d", campaigns=("a",), dispositions=("b",))
    assert sql == where_clause(innocent, TODAY, TZ)[0]  # the values never reach the SQL text
    assert "'" not in sql
    assert params["f_campaigns"] == list(HOSTILE)
    assert params["f_start"].tzinfo is not None
    assert where_clause(Filters(), TODAY, TZ) == ("TRUE", {})


def test_describe_names_the_days():
    assert describe(Filters(range="last_7d"), TODAY) == (
        "Last 7 days (incl. today): 9 Mar 2025 to 15 Mar 2025 (by last update)"
    )
    assert "All dates" in describe(Filters(), TODAY)


# -- the WHERE clause against the seeded database ----------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        Filters(),
        Filters(campaigns=(CAMPAIGNS[1], CAMPAIGNS[3])),
        Filters(range="last_7d"),
        Filters(range="last_30d", basis="created"),
        Filters(range="yesterday"),
        Filters(range="this_month", statuses=("Pending",)),
        Filters(range="last_month", basis="created"),
        Filters(dial_buckets=("NoAnswer", "Fail"), statuses=("Fail",)),
        Filters(dispositions=('Quote "X" & Co', "DNC")),
        Filters(campaigns=("'; DROP TABLE leads; --",)),
        Filters(agents=("Agent 1", "(no agent)")),
        Filters(agents=("Agent 2",), dial_buckets=("answered",), range="last_30d"),
        Filters(progress=("retrying",)),
        Filters(progress=("out_of_tries", "not_dialled"), campaigns=(CAMPAIGNS[0],)),
        Filters(progress=("success", "failed"), agents=("Agent 3",)),
    ],
    ids=lambda f: to_query_string(f)[:60],
)
def test_where_clause_selects_the_same_rows_as_python(seeded, cursor, filters):
    sql, params = where_clause(filters, seeded.today, TZ)
    relation = lead_relation(cursor, filters)
    got = cursor.execute(f"SELECT lead_key FROM {relation} WHERE {sql}", params).fetchall()
    expected = kept_rows(seeded.rows, filters, seeded.today)
    assert sorted(k for (k,) in got) == sorted(r["lead_key"] for r in expected)
    # The pages' counts (the summary) and the Leads page's count agree with the rows.
    groups, group_params = filtered_groups(cursor, filters, TZ, seeded.today)
    (counted,) = cursor.execute(f"SELECT {count_sql()} FROM ({groups})", group_params).fetchone()
    assert counted == len(expected) == lead_count(cursor, filters, TZ, seeded.today)


def test_progress_follows_the_attempts_allowed_an_operator_sets(seeded, cursor, store):
    """Inferred = the highest attempts seen; set = the operator's number, applied at once."""
    filters = Filters(progress=("out_of_tries",))
    inferred = kept_rows(seeded.rows, filters, seeded.today)
    save_attempts_allowed(store, {CAMPAIGNS[0]: 2, CAMPAIGNS[1]: 100}, by="test")
    chosen = {CAMPAIGNS[0]: 2, CAMPAIGNS[1]: 100}
    expected = kept_rows(seeded.rows, filters, seeded.today, chosen)
    assert expected and {r["lead_key"] for r in expected} != {r["lead_key"] for r in inferred}
    assert lead_count(cursor, filters, TZ, seeded.today) == len(expected)
    groups, params = filtered_groups(cursor, filters, TZ, seeded.today)
    (counted,) = cursor.execute(f"SELECT {count_sql()} FROM ({groups})", params).fetchone()
    assert counted == len(expected)
    assert not any(r["campaign_name"] == CAMPAIGNS[1] for r in expected)


def test_custom_range_is_inclusive_calendar_days(seeded, cursor):
    day = seeded.today - timedelta(days=3)
    filters = Filters(range="custom", date_from=day, date_to=day)
    sql, params = where_clause(filters, seeded.today, TZ)
    got = cursor.execute(f"SELECT count(*) FROM leads WHERE {sql}", params).fetchone()[0]
    expected = [r for r in seeded.rows if r["updated_at"].astimezone(ZoneInfo(TZ)).date() == day]
    assert got == len(expected) > 0


# -- a value beyond the option lists' top ------------------------------------------------------

RARE = "Rare 4321"  # one lead; far below the top of 5,000 dispositions


@pytest.fixture
def many_names(fresh_services):
    return insert_many_names(fresh_services.store)


def _leads_tile(at) -> str:
    return next(m.value for m in at.metric if m.label == "Leads")


def test_a_link_naming_a_value_beyond_the_top_still_filters(many_names, fresh_services):
    from lib.view import metrics

    _, rows = many_names
    with fresh_services.store.cursor() as cursor:
        assert RARE not in metrics.disposition_options(cursor)
    campaign = next(r["campaign_name"] for r in rows if r["disposition"] == RARE)
    at = AppTest.from_file("../dashboard.py", default_timeout=30)
    at.query_params["disposition"] = [RARE, "Not stored anywhere"]
    at.query_params["campaign"] = campaign
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["disposition"] == [RARE]
    assert at.session_state["campaign"] == [campaign]
    assert _leads_tile(at) == "1"
    notices = " ".join(str(w.value) for w in at.warning).replace("\\", "")
    assert "Not stored anywhere" in notices and RARE not in notices


def test_a_chart_click_on_a_value_beyond_the_top_still_filters(many_names):
    at = AppTest.from_file("../dashboard.py", default_timeout=30)
    at.run()
    at.session_state["disposition"] = ["Rare 4999"]  # what a chart click's callback does
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["disposition"] == ["Rare 4999"]
    assert _leads_tile(at) == "1"


def test_agent_and_progress_are_read_from_a_link_and_written_back():
    agents = ["Agent 1", "(no agent)", "Zoë & Co"]
    filters, notices = parse_query_params(
        {"agent": ["Zoë & Co", "Nobody"], "progress": ["out_of_tries", "retrying", "sideways"]},
        KNOWN, DISPOSITIONS, TODAY, agents,
    )  # fmt: skip
    assert filters.agents == ("Zoë & Co",)
    assert filters.progress == ("out_of_tries", "retrying")
    assert any("'Nobody'" in n and "agent" in n for n in notices)
    assert any("'sideways'" in n and "progress" in n for n in notices)
    query = parse_qs(to_query_string(filters))
    assert query["agent"] == ["Zoë & Co"] and query["progress"] == ["out_of_tries", "retrying"]
    again, _ = parse_query_params(query, KNOWN, DISPOSITIONS, TODAY, agents)
    assert again == filters
