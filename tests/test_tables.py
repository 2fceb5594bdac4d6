"""The operational tables read as people do: headers, times as "02 Dec, 21:32" in the account's
zone, and how long ago where freshness matters; the frames themselves stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from lib.view import labels, tables

TZ = "Asia/Kolkata"


def test_headers_name_the_columns_in_words():
    assert tables.header("last_success_at") == "Last successful sync"
    assert tables.header("full_load_done") == "Full load done"
    assert tables.header("unique_id") == "uniqueId"
    # Names the table does not list: words, a trailing _at dropped, _s read as seconds.
    assert tables.header("noted_at") == "Noted"
    assert tables.header("call_duration_s") == "Talk time (s)"  # named by the table
    assert tables.header("wait_s") == "Wait (s)"
    assert tables.header("NoAnswer") == "No answer"  # a dial status as a column
    assert tables.header("attempts allowed") == "Attempts allowed"


def test_a_charts_numbers_read_as_people_do_and_keep_their_numbers():
    frame = pd.DataFrame(
        {"campaign": ["A", "A"], "bucket": ["NoAnswer", "user_disconnected"], "leads": [3, 1]}
    )
    shown = tables.for_people(frame)
    assert list(shown.columns) == ["Campaign", "Dial status", "Leads"]
    assert list(shown["Dial status"]) == ["No answer", "Customer disconnected"]
    assert list(shown["Leads"]) == [3, 1] and list(frame["bucket"]) == [
        "NoAnswer",
        "user_disconnected",
    ]


YEAR = datetime.now(ZoneInfo(TZ)).year


def test_time_columns_show_day_month_and_time_in_the_zone_and_keep_their_values():
    frame = pd.DataFrame(
        {
            "campaign": ["A"],
            "last_success_at": pd.to_datetime([f"{YEAR}-06-02 16:02:39"]).tz_localize(UTC),
            "rows": [3],
        }
    )
    config = tables.column_config(frame, TZ, {"rows": "Rows stored"})
    assert config["campaign"] == "Campaign" and config["rows"] == "Rows stored"
    time_column = config["last_success_at"]
    assert time_column == st.column_config.DatetimeColumn(
        "Last successful sync", format="DD MMM, HH:mm", timezone=TZ
    )
    assert list(frame.columns) == ["campaign", "last_success_at", "rows"]  # not renamed


def test_a_time_column_with_a_time_of_another_year_shows_the_years():
    times = [f"{YEAR}-06-02 16:02:39", f"{YEAR - 1}-03-15 04:30:00", None]
    frame = pd.DataFrame({"created_at": pd.to_datetime(times).tz_localize(UTC)})
    assert tables.column_config(frame, TZ)["created_at"] == st.column_config.DatetimeColumn(
        "Created", format="DD MMM YYYY, HH:mm", timezone=TZ
    )
    naive = pd.DataFrame({"day": pd.to_datetime([f"{YEAR + 1}-01-01"])})  # a wall clock
    assert tables.column_config(naive, TZ)["day"] == st.column_config.DatetimeColumn(
        "Day", format="DD MMM YYYY, HH:mm", timezone=TZ
    )


def test_a_time_in_a_sentence_reads_the_same_way():
    moment = datetime(YEAR, 6, 2, 16, 2, 39, tzinfo=UTC)  # 21:32:39 in Kolkata
    assert labels.time_text(moment, ZoneInfo(TZ)) == "02 Jun, 21:32"
    assert labels.time_text(moment, ZoneInfo(TZ), seconds=True) == "02 Jun, 21:32:39"
    # Another year's time says which: a lead created last year, a clock a year ahead.
    earlier = datetime(YEAR - 1, 12, 31, 18, 30, tzinfo=UTC)  # 1 Jan 00:00 in Kolkata
    assert labels.time_text(earlier, ZoneInfo(TZ)) == "01 Jan, 00:00"
    last_year = datetime(YEAR - 1, 6, 1, 6, 30, tzinfo=UTC)
    assert labels.time_text(last_year, ZoneInfo(TZ)) == f"01 Jun {YEAR - 1}, 12:00"


def test_the_age_follows_the_time_it_measures():
    now = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "campaign": ["A", "B", "C"],
            "data_as_of": pd.to_datetime(
                ["2026-12-02 17:57:00", "2026-12-02 16:55:00", None]
            ).tz_localize(UTC),
            "leads": [1, 2, 3],
        }
    )
    aged = tables.with_age(frame, "data_as_of", now)
    assert list(aged.columns) == ["campaign", "data_as_of", "data_age", "leads"]
    assert list(aged["data_age"]) == ["3 min ago", "1 h 5 min ago", ""]
    assert "data_age" not in frame  # the page's frame is left as it was


def test_a_record_reads_its_times_and_statuses_as_people_do():
    moment = datetime(2026, 12, 2, 16, 2, 39, tzinfo=UTC)
    zone = ZoneInfo(TZ)
    assert tables.cell_text("updated_at", moment, zone) == "02 Dec, 21:32"
    assert tables.cell_text("dial_bucket", "NoAnswer", zone) == "No answer"
    assert tables.cell_text("lead_status", "Fail", zone) == "Failed"
    assert tables.cell_text("dial_status", "user_disconnected", zone) == "user_disconnected"
    assert tables.cell_text("attempts", 3, zone) == "3"
    assert tables.cell_text("comments", None, zone) == ""
    assert tables.header("dial_status") == "CloudAgent dial status"
