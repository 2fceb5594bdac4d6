"""Issue 16, the number format: `[dialstatus] number_format` (indian or international, by default
indian for Asia/Kolkata) and lib/view/numbers.py, the one place numbers become text; then the
Overview's tiles and dial chart in both formats over a store of 1,23,456 leads, where the two
formats differ. Expected texts are written out literally."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest
import streamlit as st

from lib.config import ConfigError, load_settings
from lib.view import numbers
from tests.conftest import CAMPAIGNS, ZONE, insert_rows, make_rows

BIG = 123_456  # leads in the big store: 1,23,456 (indian) or 123,456 (international)


# -- lib/view/numbers.py --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("indian", "12,34,567"), ("international", "1,234,567"), ("en_IN", "12,34,567")],
)
def test_count_groups_by_the_format(fmt, expected):
    assert numbers.count(1234567, fmt) == expected


def test_counts_in_both_formats():
    assert numbers.count(123456, "indian") == "1,23,456"
    assert numbers.count(123456, "international") == "123,456"
    assert numbers.count(12345678, "indian") == "1,23,45,678"
    assert numbers.count(999, "indian") == numbers.count(999, "international") == "999"
    assert numbers.count(1234, "indian") == numbers.count(1234, "international") == "1,234"
    assert numbers.count(-1234567, "indian") == "-12,34,567"
    assert numbers.signed_count(123456, "indian") == "+1,23,456"
    assert numbers.signed_count(-123456, "international") == "-123,456"
    assert numbers.signed_count(0, "indian") == "+0"


def test_compact():
    assert numbers.compact(1234567, "indian") == "12.3 L"
    assert numbers.compact(12345678, "indian") == "1.2 Cr"
    assert numbers.compact(123456, "indian") == "1.2 L"
    assert numbers.compact(1234567, "international") == "1.2M"
    assert numbers.compact(12345678, "international") == "12.3M"
    assert numbers.compact(3400, "international") == "3.4K"
    assert numbers.compact(999, "indian") == numbers.compact(999, "international") == "999"


def test_decimal_and_percent():
    assert numbers.decimal(123456.78, "indian") == "1,23,456.8"
    assert numbers.decimal(123456.78, "international") == "123,456.8"
    assert numbers.decimal(2.5, "indian", digits=2) == "2.50"
    assert numbers.percent(0.1234, "indian") == "12.3%"
    assert numbers.percent(0.1234, "international") == "12.3%"
    assert numbers.percent(1, "international", digits=0) == "100%"
    assert numbers.points(45.67, "indian") == "45.7%"


@pytest.mark.parametrize("missing", [None, math.nan, float("nan"), pd.NA])
@pytest.mark.parametrize("fmt", ["indian", "international"])
def test_missing_values_are_empty(missing, fmt):
    for render in (numbers.count, numbers.decimal, numbers.percent, numbers.compact):
        assert render(missing, fmt) == ""
    assert numbers.count(missing, fmt, missing="–") == "–"


def test_styled_table_keeps_numbers():
    frame = pd.DataFrame({"name": ["a", "b"], "leads": [1234567, 12], "talk": [1234.56, None]})
    styler = numbers.styled(frame, "indian", decimals={"talk": 1}, suffixes={"talk": " s"})
    shown = styler.to_html()
    assert "12,34,567" in shown and "1,234.6 s" in shown
    assert styler.data["leads"].tolist() == [1234567, 12]  # the data itself stays numeric
    assert "1,234,567" in numbers.styled(frame, "international").to_html()


# -- configuration ------------------------------------------------------------------------------


def _settings(tmp_path, **env):
    base = {"DIALSTATUS_DB": str(tmp_path / "x.duckdb"), **env}
    return load_settings(base, secrets_path=tmp_path / "none.toml")


def test_default_follows_the_time_zone(tmp_path):
    assert _settings(tmp_path, DIALSTATUS_TIMEZONE="Asia/Kolkata").number_format == "indian"
    assert _settings(tmp_path).number_format == "indian"  # the default zone is Asia/Kolkata
    london = _settings(tmp_path, DIALSTATUS_TIMEZONE="Europe/London")
    assert london.number_format == "international"


def test_explicit_setting_wins(tmp_path):
    settings = _settings(
        tmp_path, DIALSTATUS_TIMEZONE="Europe/London", DIALSTATUS_NUMBER_FORMAT="Indian"
    )
    assert settings.number_format == "indian"
    settings = _settings(tmp_path, DIALSTATUS_NUMBER_FORMAT="international")
    assert settings.number_format == "international"
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[dialstatus]\nnumber_format = "international"\n', encoding="utf-8")
    from_file = load_settings({"DIALSTATUS_DB": str(tmp_path / "x.duckdb")}, secrets_path=secrets)
    assert from_file.number_format == "international"


def test_a_bad_value_names_the_setting(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _settings(tmp_path, DIALSTATUS_NUMBER_FORMAT="lakhs")
    message = str(raised.value)
    assert "DIALSTATUS_NUMBER_FORMAT" in message and "number_format" in message
    assert "indian" in message and "international" in message and "lakhs" in message


# -- the pages, over a store where the formats differ ------------------------------------------


@pytest.fixture
def big_store(fresh_services):
    """1,23,456 leads of the first seeded campaign, all answered, updated an hour ago (inside
    the default date range)."""
    rows = [r for r in make_rows(datetime.now(ZONE).date()) if r["campaign_name"] == CAMPAIGNS[0]]
    template = next(r for r in rows if r["dial_bucket"] == "answered")
    insert_rows(fresh_services.store, [template])
    recent = datetime.now(ZONE) - timedelta(hours=1)
    with fresh_services.store.writing() as cursor:
        cursor.execute(
            "INSERT INTO leads BY NAME SELECT * EXCLUDE (i) REPLACE ("
            "'B' || r.i AS lead_key, 'B' || r.i AS lead_id, "
            "?::TIMESTAMPTZ AS updated_at, ?::TIMESTAMPTZ AS created_at) "
            "FROM (SELECT * FROM leads LIMIT 1) AS t, range(?) AS r(i)",
            [recent, recent - timedelta(days=1), BIG - 1],
        )
        cursor.execute(
            "UPDATE leads SET updated_at = ?, created_at = ? WHERE lead_key = ?",
            [recent, recent - timedelta(days=1), template["lead_key"]],
        )
        fresh_services.store.bump_data_version(cursor)
    return fresh_services


def _use_format(monkeypatch, fmt: str) -> None:
    from lib.services import get_services, reset_services

    monkeypatch.setenv("DIALSTATUS_NUMBER_FORMAT", fmt)
    reset_services()
    st.cache_data.clear()
    assert get_services().settings.number_format == fmt


@pytest.mark.parametrize(
    ("fmt", "leads", "lakh_tick"),
    [("indian", "1,23,456", "1 L"), ("international", "123,456", "100K")],
)
def test_overview_tiles_and_dial_chart(big_store, monkeypatch, fmt, leads, lakh_tick):
    from tests.test_pages import app, tiles

    _use_format(monkeypatch, fmt)
    at = app()
    shown = tiles(at)
    assert shown["Leads"] == leads
    assert shown["Answered"] == leads
    spec = json.loads(at.get_by_key("overview_dial_chart").proto.spec)
    (trace,) = [t for t in spec["data"] if t["legendgroup"] == "answered"]
    (custom,) = trace["customdata"]
    assert custom[3] == BIG  # the number itself, for the figure's data
    assert custom[5] == leads  # its text, which the hover shows
    assert "%{customdata[5]} leads" in trace["hovertemplate"]
    assert ":," not in trace["hovertemplate"]  # no d3 grouping left (it cannot group by lakh)
    assert trace["text"] == [f"{leads} (100.0%)"]
    axis = spec["layout"]["xaxis"]  # the count axis's ticks are written in the format too
    assert axis["ticktext"][axis["tickvals"].index(100_000)] == lakh_tick
    assert axis["tickvals"][-1] >= BIG


def test_switching_the_format_never_serves_a_cached_figure(big_store, monkeypatch):
    """The figure cache (ui.figure) keys on the format: the same numbers in the other format
    give the other text, in the same process."""
    from tests.test_pages import app

    texts = {}
    for fmt in ("indian", "international", "indian"):
        _use_format(monkeypatch, fmt)
        spec = json.loads(app().get_by_key("overview_dial_chart").proto.spec)
        texts.setdefault(fmt, set()).update(
            c[5] for t in spec["data"] if t["legendgroup"] == "answered" for c in t["customdata"]
        )
    assert texts == {"indian": {"1,23,456"}, "international": {"123,456"}}


@pytest.mark.parametrize(("fmt", "leads"), [("indian", "1,23,456"), ("international", "123,456")])
def test_agents_top_dispositions_count_in_the_format(big_store, monkeypatch, fmt, leads):
    """The Agents table's top dispositions are text: their counts are written in the format
    (SQL alone could only group by thousands), the count columns stay numbers."""
    from tests.test_pages import app, table

    with big_store.store.cursor() as cursor:  # the one agent and disposition of every lead
        (agent, disposition) = cursor.execute(
            "SELECT DISTINCT coalesce(nullif(trim(agent_name), ''), agent_id), disposition "
            "FROM leads"
        ).fetchone()
    _use_format(monkeypatch, fmt)
    agents = table(app("agents"), "Top dispositions")
    (row,) = agents[agents["Agent"] == agent].to_dict("records")
    assert row["Top dispositions"] == f"{disposition} ({leads})"
    assert row["Leads handled"] == BIG


def _shown_cells(element) -> pd.DataFrame:
    """What st.dataframe draws in each cell: the Styler's display values."""
    styler = element.proto.arrow_data.styler
    return pa.ipc.open_stream(styler.display_values).read_all().to_pandas()


@pytest.mark.parametrize(("fmt", "leads"), [("indian", "1,23,456"), ("international", "123,456")])
def test_the_operational_tables_count_in_the_format_and_leave_missing_values_blank(
    big_store, monkeypatch, fmt, leads
):
    """The Sync page's campaign table (lib.view.tables.table, as every Sync and Settings
    table): a count reads in the format, the value stays the number, and a missing value is a
    blank cell, not "None"."""
    from tests.test_pages import app

    _use_format(monkeypatch, fmt)
    element = next(d for d in app("sync").dataframe if "dated_after_now" in d.value.columns)
    cells = _shown_cells(element)
    mine = cells["campaign"] == CAMPAIGNS[0]
    assert cells.loc[mine, "leads"].tolist() == [leads]
    assert cells.loc[mine, "dated_after_now"].tolist() == ["0"]
    assert element.value.loc[mine, "leads"].tolist() == [BIG]
    assert element.value.loc[mine, "last_error"].isna().all()
    assert element.proto.placeholder == ""  # so that missing last error is drawn blank
