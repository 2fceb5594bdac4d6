"""lib/store/catalog.py: campaigns to sync, and the disposition category map with its guesses."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.store import catalog
from lib.view import metrics
from lib.view.filters import Filters
from tests.conftest import CAMPAIGNS, EMPTY_CAMPAIGN, TZ


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("Sale Closed", "Sale"),
        ("Sold", "Sale"),
        ("Converted", "Sale"),
        ("Payment Done", "Sale"),
        ("Interested", "Contact"),
        ("Not Interested", "Contact"),
        ("NOT_INTERESTED", "Contact"),
        ("No Sale", "Contact"),
        ("Won't buy", "Contact"),
        ("Order cancelled", "Contact"),
        ("Call Back", "Callback"),
        ("Callback", "Callback"),
        ("call-back later", "Callback"),
        ("Follow up", "Callback"),
        ("DNC", "Do not call"),
        ("Do not call", "Do not call"),
        ("Do Not Disturb", "Do not call"),
        ("Wrong Number", "Unworkable"),
        ("Invalid", "Unworkable"),
        ("Invalid Number", "Unworkable"),
        ("Wrap up time exceeded :30", "Other"),
        ("Wrap up time exceeded :120", "Other"),
        ("Busy", "Other"),
        ("Payment Promised", "Contact"),
        ("Language Barrier", "Unworkable"),
        ("Escalated", "Contact"),
        ("Already Customer", "Contact"),
        ("Busy - Call Later", "Callback"),
        ("", "Other"),
        (None, "Other"),
        ("حملة", "Other"),
    ],
)
def test_guess_category(name, category):
    assert catalog.guess_category(name) == category


def test_guess_rules_only_name_known_categories():
    assert {c for c, _ in catalog.CATEGORY_RULES} <= set(catalog.CATEGORIES)
    assert all("'" not in pattern for _, pattern in catalog.CATEGORY_RULES)


_GUESS_DB = duckdb.connect()  # one in-memory database for every generated example
NAMES = [
    "Sale Closed", "Not Interested", "Call Back", "DNC", "Wrong Number",
    "Wrap up time exceeded :30", "Interested", "closed-won", "Opted out", "x", "",
    "Won't buy", "Follow-ups", "Do_not_call", "Invalid  number", "ÜBER sale",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from([*"abcdeilnorstuwy _-:'0123", "Ü", "é"]),
                max_size=25) | st.sampled_from(NAMES),
        min_size=1, max_size=20,
    )
)  # fmt: skip
def test_sql_guess_agrees_with_python(names):
    rows = _GUESS_DB.execute(
        f"SELECT d, {catalog.guess_category_sql('d')} FROM (SELECT unnest(?) AS d)", [list(names)]
    ).fetchall()
    for name, category in rows:
        assert category == catalog.guess_category(name), name


def test_campaign_catalog(fresh_services):
    store = fresh_services.store
    assert catalog.list_campaigns(store) == []
    assert catalog.ensure_config_campaigns(store, ["A", " B ", "", "A"]) == 2
    assert catalog.ensure_config_campaigns(store, ["A", "B"]) == 0
    assert catalog.add_campaign(store, 'O\'Brien & "Sons" 🎉') is True
    assert catalog.add_campaign(store, "A") is False
    assert catalog.list_campaigns(store) == ["A", "B", 'O\'Brien & "Sons" 🎉']

    assert catalog.remove_campaign(store, "A") == "disabled"  # from the configuration
    assert catalog.remove_campaign(store, 'O\'Brien & "Sons" 🎉') == "deleted"
    assert catalog.remove_campaign(store, "nope") == "missing"
    assert catalog.list_campaigns(store) == ["B"]
    assert catalog.list_campaigns(store, enabled_only=False) == ["A", "B"]
    assert catalog.ensure_config_campaigns(store, ["A"]) == 0  # stays disabled after a restart
    assert catalog.list_campaigns(store) == ["B"]
    assert catalog.add_campaign(store, "A") is True  # re-enabled by hand
    assert catalog.list_campaigns(store) == ["A", "B"]


@pytest.mark.parametrize("bad", ["", "   ", "tab\there", "x" * 201, "new\nline"])
def test_unusable_campaign_names(fresh_services, bad):
    with pytest.raises(ValueError):
        catalog.add_campaign(fresh_services.store, bad)


def test_campaign_table(store):
    table = catalog.campaign_table(store)
    assert list(table["campaign"]) == [*CAMPAIGNS, EMPTY_CAMPAIGN]
    counts = dict(zip(table["campaign"], table["leads"], strict=True))
    assert counts[CAMPAIGNS[0]] == 120 and counts[EMPTY_CAMPAIGN] == 0


def test_disposition_map_saved_and_guessed(store):
    frame = catalog.disposition_map(store)
    rows = {r.disposition: r for r in frame.itertuples()}
    assert rows["Interested"].category == "Sale" and rows["Interested"].source == "saved"
    assert rows["Not Interested"].category == "Contact" and rows["Not Interested"].source == "guess"
    assert list(frame["leads"]) == sorted(frame["leads"], reverse=True)


def test_saving_categories_changes_conversions_and_bumps_the_version(seeded, store):
    before_version = store.data_version()
    with store.cursor() as cursor:
        before = metrics.kpi_counts(cursor, Filters(), TZ, seeded.today)["conversions"]
    moved = sum(1 for r in seeded.rows if r["disposition"] == "Not Interested")
    assert catalog.save_disposition_categories(store, {"Not Interested": "Sale"}) == 1
    assert catalog.save_disposition_categories(store, {"Not Interested": "Sale"}) == 0
    assert store.data_version() == before_version + 1
    with store.cursor() as cursor:
        after = metrics.kpi_counts(cursor, Filters(), TZ, seeded.today)["conversions"]
    assert after == before + moved
    assert catalog.stored_categories(store)["Not Interested"] == "Sale"
    assert catalog.forget_disposition_categories(store, ["Not Interested", "nope"]) == 1
    assert store.data_version() == before_version + 2
    with pytest.raises(ValueError, match="Unknown categories"):
        catalog.save_disposition_categories(store, {"DNC": "Maybe"})
