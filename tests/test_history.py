"""What the lead history shows (lib/view/metrics/history.py): "what changed" since a chosen time
on the Overview and one lead's timeline on the Leads page, over events written by real ingests
into a real DuckDB file (each delivery's receive time set before it is ingested, so when it was
observed is known). Expected values are written out by hand from the deliveries below."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lib.store import Store
from lib.store.events import key_tag_sql
from lib.store.ingest import ingest_delivery
from lib.store.policy import save_attempts_allowed
from lib.store.schema import SCHEMA_VERSION
from lib.view.filters import Filters
from lib.view.metrics import history
from tests.support.apptest import open_app, texts
from tests.support.deliveries import lead_record, register_json

TZ = "Asia/Kolkata"
ZONE = ZoneInfo(TZ)
SINCE = datetime(2026, 12, 2, 18, 0)  # Wed 2 Dec 2026, 18:00 in the account's zone
IN_2026 = "" if datetime.now().year == 2026 else " 2026"  # a time shows its year if not now's
COLUMNS = ["Campaign", "New leads", "Dials", "Newly answered", "New conversions", "Out of tries"]


def lead(campaign: str, key: str, updated: str, attempts: int, **fields) -> dict:
    phone = f"+91 98765{int(key[1:]):05d}"
    return lead_record(campaign, key, updated, attempts, phone=phone, **{"Name": key, **fields})


def deliver(store: Store, campaign: str, records: list[dict], name: str, received: str) -> None:
    """One callback body, registered, its receive time set to `received` (local), ingested."""
    raw = register_json(store, campaign, records, name)
    at = datetime.fromisoformat(received).replace(tzinfo=ZONE)
    with store.writing() as cursor:
        cursor.execute("UPDATE raw_deliveries SET received_at = ? WHERE id = ?", [at, raw.id])
    ingest_delivery(store, raw.id)


def north(key: str, updated: str, attempts: int, **fields) -> dict:
    return lead("North", key, updated, attempts, **fields)


def south(key: str, updated: str, attempts: int, **fields) -> dict:
    return lead("South", key, updated, attempts, **fields)


def history_scenario(store: Store) -> None:
    """Three campaigns; North allows 3 attempts (set), South's are inferred (its highest: 2).

    Before the chosen time (Wed 2 Dec 18:00): every first load (Tue 1 Dec), and a delivery
    received at 18:05 whose changes were called before 18:00 (N1 answered and sold at 11:00,
    N2 dialled at 17:59:59). After it, North: N1 dialled at 18:00:00 exactly (its 3rd attempt:
    out of tries), N2 dialled at 19:00 (3rd attempt: out of tries), N3's disposition edited
    into a sale with no new call, N4 dialled twice and answered (not a sale), N5 first seen with
    an old state, N6 first seen, N7 first seen answered and sold at 08:55 (new leads only: their
    calls were made before the history saw them); South: S1 dialled once, answered and sold
    (Success: not out of tries), S3 sold again on a second call; West: W1, already at its
    highest attempts, given a disposition with no call (counted nowhere)."""
    save_attempts_allowed(store, {"North": 3}, by="test")
    first = [
        north("N1", "2026-12-01 09:00:00", 1),
        north("N2", "2026-12-01 09:10:00", 1),
        north("N3", "2026-12-01 09:20:00", 1, DialStatus="answered", Disposition="Call Back",
              AgentName="Asha"),
        north("N4", "2026-12-01 09:30:00", 0),
    ]  # fmt: skip
    deliver(store, "North", first, "north-1", "2026-12-01 10:00:00")
    deliver(
        store,
        "South",
        [
            south("S1", "2026-12-01 09:00:00", 1),
            south("S2", "2026-12-01 09:05:00", 0),
            south("S3", "2026-12-01 09:10:00", 1, DialStatus="answered", Disposition="Sale Closed"),
        ],
        "south-1",
        "2026-12-01 10:00:00",
    )
    deliver(
        store, "West", [lead("West", "W1", "2026-12-01 09:00:00", 2)], "west-1",
        "2026-12-01 10:00:00",
    )  # fmt: skip
    late_before = [
        north("N1", "2026-12-02 11:00:00", 2, DialStatus="answered", Disposition="Sale Closed",
              AgentName="Ravi", CallDuration="00:01:30"),
        north("N2", "2026-12-02 17:59:59", 2),
    ]  # fmt: skip
    deliver(store, "North", late_before, "north-2", "2026-12-02 18:05:00")
    after = [
        north("N1", "2026-12-02 18:00:00", 3, DialStatus="Busy"),
        north("N2", "2026-12-02 19:00:00", 3),
        north("N3", "2026-12-03 08:30:00", 1, DialStatus="answered", Disposition="Sale Closed",
              AgentName="Asha"),
        north("N4", "2026-12-03 08:45:00", 2, DialStatus="answered",
              Disposition="Not Interested", AgentName="Ravi", CallDuration="00:00:40"),
        north("N5", "2026-11-20 10:00:00", 4, DialStatus="answered", Disposition="Sale Closed",
              Status="Success"),
        north("N6", "2026-12-03 08:50:00", 0),
        north("N7", "2026-12-03 08:55:00", 3, DialStatus="answered", Disposition="Sale Closed"),
    ]  # fmt: skip
    deliver(store, "North", after, "north-3", "2026-12-03 09:00:00")
    deliver(
        store,
        "South",
        [
            south("S1", "2026-12-03 09:15:00", 2, DialStatus="answered", Disposition="Sale Closed",
                  Status="Success", AgentName="Meera"),
            south("S2", "2026-12-01 09:05:00", 0),  # unchanged
            south("S3", "2026-12-03 09:20:00", 2, DialStatus="answered", Disposition="Sale Closed",
                  Status="Success", AgentName="Meera"),
        ],
        "south-2",
        "2026-12-03 09:30:00",
    )  # fmt: skip
    edit = [lead("West", "W1", "2026-12-03 10:00:00", 2, Disposition="Call Back")]
    deliver(store, "West", edit, "west-2", "2026-12-03 10:30:00")


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "history.duckdb", timezone=TZ)
    yield store
    store.close()


def dec(day: int, hour: int, minute: int = 0) -> pd.Timestamp:
    """A time of December 2026 in the account's zone, as a timeline's typed Time column holds it."""
    return pd.Timestamp(datetime(2026, 12, day, hour, minute, tzinfo=ZONE))


def rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in frame.itertuples(index=False)]


def changed(store: Store, since: datetime = SINCE, campaigns: tuple[str, ...] = ()) -> list:
    with store.cursor() as cursor:
        frame = history.what_changed(cursor, Filters(campaigns=campaigns), TZ, since=since)
    assert list(frame.columns) == COLUMNS
    assert not frame.isna().any().any()
    return rows(frame)


# Campaign, new leads, dials, newly answered, new conversions, out of tries.
NORTH = ("North", 3, 4, 1, 1, 2)  # N5-N7 · N1 1 + N2 1 + N4 2 · N4 · N3's edit · N1, N2
SOUTH = ("South", 0, 2, 2, 2, 0)  # S1 and S3: a dial each, answered, a sale; Success
WEST = ("West", 0, 0, 0, 0, 0)  # W1's edit: no dial, no sale, already at its highest attempts
EXPECTED = [NORTH, SOUTH, WEST, ("Total", 3, 6, 3, 3, 2)]


def test_what_changed_counts_each_column_since_the_chosen_time(store):
    history_scenario(store)
    assert changed(store) == EXPECTED


def test_what_changed_reads_the_chosen_time_in_the_accounts_zone(store):
    history_scenario(store)
    # The same instant given in UTC (12:30 UTC = 18:00 in Kolkata) counts the same.
    assert changed(store, datetime(2026, 12, 2, 12, 30, tzinfo=ZoneInfo("UTC"))) == EXPECTED
    # One second later N1's 18:00:00 call (a dial, out of tries) is before the chosen time.
    later = changed(store, SINCE + timedelta(seconds=1))
    assert later[0] == ("North", 3, 3, 1, 1, 1)


def test_an_earlier_time_takes_in_the_changes_before_six(store):
    history_scenario(store)
    # Since Wed 2 Dec 00:00: N1's 11:00 call (answered, a sale) and N2's 17:59:59 call count.
    north_row = changed(store, datetime(2026, 12, 2, 0, 0))[0]
    assert north_row == ("North", 3, 6, 2, 2, 2)
    # Since Tue 1 Dec 00:00: the first loads are new leads too (4 + 3 in North).
    assert changed(store, datetime(2026, 12, 1, 0, 0))[0] == ("North", 7, 6, 2, 2, 2)


def test_what_changed_follows_the_campaign_filter(store):
    history_scenario(store)
    assert changed(store, campaigns=("South",)) == [SOUTH, ("Total", *SOUTH[1:])]
    assert changed(store, campaigns=("West", "North")) == [
        NORTH,
        WEST,
        ("Total", 3, 4, 1, 1, 2),
    ]


def test_nothing_since_a_later_time_gives_zeros_and_no_history_gives_no_rows(store):
    with store.cursor() as cursor:
        assert history.history_start(cursor, Filters(), TZ) is None
        assert history.what_changed(cursor, Filters(), TZ, since=SINCE).empty
        assert history.lead_timeline(cursor, "North", "N1").empty
    history_scenario(store)
    assert changed(store, datetime(2026, 12, 5, 0, 0)) == [
        ("North", 0, 0, 0, 0, 0),
        ("South", 0, 0, 0, 0, 0),
        ("West", 0, 0, 0, 0, 0),
        ("Total", 0, 0, 0, 0, 0),
    ]
    with store.cursor() as cursor:
        start = history.history_start(cursor, Filters(), TZ)
    assert start == datetime(2026, 12, 1, 10, 0, tzinfo=ZONE)  # the first delivery's receipt


def test_a_lead_timeline_lists_every_observed_state_newest_first(store):
    history_scenario(store)
    with store.cursor() as cursor:
        frame = history.lead_timeline(cursor, "North", "N1")
    assert list(frame.columns) == list(history.TIMELINE_COLUMNS)
    assert rows(frame) == [
        (dec(2, 18), "1 dial", 3, "Failed", "Busy", "Pending", "", "", ""),
        (dec(2, 11), "1 dial", 2, "Answered", "answered", "Pending", "Sale Closed", "Ravi",
         "00:01:30"),
        (dec(1, 9), "First seen", 1, "No answer", "not_answered", "Pending", "", "", ""),
    ]  # fmt: skip
    with store.cursor() as cursor:
        n4 = history.lead_timeline(cursor, "North", "N4")
        n3 = history.lead_timeline(cursor, "North", "N3")
    assert rows(n4)[0][:5] == (dec(3, 8, 45), "2 dials", 2, "Answered", "answered")
    assert rows(n4)[1][:5] == (dec(1, 9, 30), "First seen", 0, "Not dialled", "NotDialed")
    assert rows(n3)[0][1:7] == ("No new dial", 1, "Answered", "answered", "Pending", "Sale Closed")
    # Never a phone number, whatever the column.
    for shown in (frame, n3, n4):
        assert not shown.astype(str).apply(lambda c: c.str.contains("98765")).any().any()


# A file written before schema v10 (events without key tags), and one whose tags and probe came
# from a DuckDB release that hashed differently (each off by one).
OLDER_FILES = {
    "before v10": [
        "ALTER TABLE lead_events DROP COLUMN key_tag",
        "DELETE FROM meta WHERE key = 'key_tag_probe'",
        "UPDATE meta SET value = 9 WHERE key = 'schema_version'",
    ],
    "another hash": [
        "UPDATE lead_events SET key_tag = key_tag + 1",
        "UPDATE meta SET value = value + 1 WHERE key = 'key_tag_probe'",
    ],
}


@pytest.mark.parametrize("older", OLDER_FILES)
def test_a_file_with_missing_or_foreign_key_tags_gets_them_again_at_open(tmp_path, older):
    """The timeline finds a lead by its key tag: opening the file computes every tag again
    when the stored probe is missing or differs, so each lead's timeline stays whole."""
    path = tmp_path / "history.duckdb"
    store = Store(path, timezone=TZ)
    history_scenario(store)
    store.close()
    with duckdb.connect(str(path)) as con:
        for statement in OLDER_FILES[older]:
            con.execute(statement)
    store = Store(path, timezone=TZ)
    try:
        with store.cursor() as cursor:
            assert [len(history.lead_timeline(cursor, "North", k)) for k in ("N1", "N4")] == [3, 2]
            untagged = cursor.execute(
                f"SELECT count(*), count(*) FILTER (WHERE key_tag IS DISTINCT FROM "
                f"{key_tag_sql('campaign_name', 'lead_key')}) FROM lead_events"
            ).fetchone()
            version = cursor.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            assert version.fetchone() == (SCHEMA_VERSION,)
    finally:
        store.close()
    assert untagged[0] > 0 and untagged[1] == 0


def test_the_picker_reads_what_the_link_carries():
    assert history.parse_since("2026-12-03T18:00") == datetime(2026, 12, 3, 18, 0)
    assert history.parse_since("2026/12/03, 07:00") == datetime(2026, 12, 3, 7, 0)
    for bad in ("2026-02-30T18:00", "yesterday", "2026-12-03", "2026-12-03T18:00:00",
                "1985-01-01T00:00", "'; DROP TABLE lead_events; --"):  # fmt: skip
        assert history.parse_since(bad) is None, bad
        assert f"Ignored since {bad!r}" in history.since_notice([bad])
    assert history.since_notice([]) is None
    assert history.since_notice([""]) is None  # empty = the default, as the picker reads it
    assert history.since_notice(["nonsense", "2026-12-03T18:00"]) is None  # the last counts
    assert history.default_since(datetime(2026, 12, 3).date()) == datetime(2026, 12, 2, 18, 0)
    assert history.describe_since(SINCE, TZ) == f"02 Dec{IN_2026}, 18:00"


# -- the pages ---------------------------------------------------------------------------------


@pytest.fixture
def scenario_services(fresh_services):
    history_scenario(fresh_services.store)
    return fresh_services


def what_changed_table(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "Newly answered" in d.value.columns)


def test_overview_shows_what_changed_since_the_links_time(scenario_services):
    at = open_app(params={"since": "2026-12-02T18:00"})
    assert "What changed" in texts(at.subheader)
    assert at.datetime_input(key="since").value == SINCE
    assert rows(what_changed_table(at)) == EXPECTED
    caption = texts(at.caption)
    assert f"Changes observed since 02 Dec{IN_2026}, 18:00 (Asia/Kolkata)" in caption
    assert (  # the wording: several calls between two syncs, at the last one's time
        "when a lead was called several times between two syncs, all those calls count at the "
        "time of the last one." in caption
    )
    assert "The history starts with the first sync after this version was installed" in caption
    assert not at.warning

    at.multiselect(key="campaign").set_value(["South"]).run()  # the sidebar's campaign filter
    assert rows(what_changed_table(at)) == [SOUTH, ("Total", 0, 2, 2, 2, 0)]

    at.datetime_input(key="since").set_value(datetime(2026, 12, 3, 9, 0)).run()
    assert rows(what_changed_table(at)) == [SOUTH, ("Total", 0, 2, 2, 2, 0)]  # 09:15, 09:20
    at.datetime_input(key="since").set_value(datetime(2026, 12, 3, 10, 0)).run()
    assert rows(what_changed_table(at)) == [("South", 0, 0, 0, 0, 0), ("Total", 0, 0, 0, 0, 0)]


def test_a_bad_since_in_the_link_is_named_and_the_default_shown(scenario_services):
    at = open_app(params={"since": "2026-02-30T18:00"})
    assert not at.exception
    warning = texts(at.warning)
    assert "Ignored since '2026-02-30T18:00'" in warning
    assert "showing changes since yesterday 18:00" in warning
    yesterday = datetime.now(ZONE).date() - timedelta(days=1)
    assert at.datetime_input(key="since").value == datetime.combine(yesterday, time(18, 0))
    table = what_changed_table(at)
    assert list(table["Campaign"]) == ["North", "South", "West", "Total"]
    assert not table.isna().any().any()


def test_overview_without_history_says_so(seeded):
    at = open_app()  # the seeded leads were inserted, not ingested: no event at all
    assert "No history observed yet." in texts(at.info)
    assert not any("Newly answered" in d.value.columns for d in at.dataframe)


def select_lead(at: AppTest, key: str) -> None:
    rows_shown = at.dataframe[0].value
    index = next(i for i, name in enumerate(rows_shown["Name"]) if name == key)
    at.session_state["leads_table"] = {"selection": {"rows": [index], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception


def test_the_lead_record_shows_its_timeline(scenario_services):
    at = open_app("leads", params={"campaign": "North"})
    at.text_input(key="leads_search").set_value("N4").run()  # its name (lead() names by key)
    assert len(at.dataframe[0].value) == 1
    select_lead(at, "N4")
    assert "Timeline" in texts(at.subheader)
    timeline = next(d.value for d in at.dataframe if "Change" in d.value.columns)
    assert rows(timeline) == [
        (dec(3, 8, 45), "2 dials", 2, "Answered", "answered", "Pending", "Not Interested",
         "Ravi", "00:00:40"),
        (dec(1, 9, 30), "First seen", 0, "Not dialled", "NotDialed", "Pending", "", "", ""),
    ]  # fmt: skip
    assert "newest first" in texts(at.caption)
    assert "98765" not in timeline.to_string()


def test_a_lead_without_history_says_so(seeded):
    at = open_app("leads")
    at.session_state["leads_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert "Lead record" in texts(at.subheader)
    assert "**No history observed yet** for this lead." in texts(at.info)
    assert not any("Change" in d.value.columns for d in at.dataframe)
