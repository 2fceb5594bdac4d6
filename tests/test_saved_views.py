"""Saved views: names checked (1-60 characters once trimmed, unique ignoring case, no control
characters), links kept inside the dashboard, rename and delete for operators only, and a v7
database file upgraded to v8 with its data intact. Real DuckDB files; expected values by hand."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.services import get_services, reset_services
from lib.store import Store
from lib.store import saved_views as store_views
from lib.store.schema import MIGRATIONS, SCHEMA_VERSION
from lib.view import saved_views
from lib.view.access import ROLE_KEY
from tests.test_pages import FakeEngine
from tests.test_roles import OPERATOR, SECRETS, VIEWER

LINK = "/campaign?campaign=Renewals_Q4&range=last_30d&basis=updated"
HOSTILE_HTML = "<img src=x onerror=alert(1)>"
HOSTILE_MD = "**bold** [x](javascript:alert(1))"


@pytest.fixture
def db(tmp_path) -> Store:
    store = Store(tmp_path / "views.duckdb")
    yield store
    store.close()


def _rows(store: Store) -> list[tuple]:
    with store.cursor() as cursor:
        return cursor.execute("SELECT name, name_key, link FROM saved_views ORDER BY id").fetchall()


# -- names ----------------------------------------------------------------------------------------


def test_a_view_is_stored_with_its_trimmed_name_and_link_and_listed_by_name(db):
    store_views.create_view(db, "  Renewals answered  ", LINK, "boss@example.com")
    store_views.create_view(db, "alpha", "/?range=all&basis=updated", None)
    assert _rows(db) == [
        ("Renewals answered", "renewals answered", LINK),
        ("alpha", "alpha", "/?range=all&basis=updated"),
    ]
    listed = store_views.list_views(db)
    assert [(v.name, v.link, v.created_by) for v in listed] == [
        ("alpha", "/?range=all&basis=updated", None),
        ("Renewals answered", LINK, "boss@example.com"),
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "needs a name"),
        ("    ", "needs a name"),
        (None, "needs a name"),
        ("x" * 61, "at most 60 characters (this one has 61)"),
        ("two\nlines", "control characters"),
        ("tab\there", "control characters"),
    ],
    ids=["empty", "spaces", "none", "61-chars", "newline", "tab"],
)
def test_a_bad_name_is_refused_and_nothing_is_written(db, name, message):
    with pytest.raises(store_views.SavedViewError, match=re.escape(message)):
        store_views.create_view(db, name, LINK, None)
    assert _rows(db) == []


def test_sixty_characters_after_trimming_are_accepted(db):
    name = "é" * 60
    store_views.create_view(db, f"   {name}   ", LINK, None)
    assert [r[0] for r in _rows(db)] == [name]


def test_a_duplicate_name_is_refused_ignoring_case_and_nothing_is_written(db):
    store_views.create_view(db, "Q4 Answered", LINK, None)
    for taken in ("Q4 Answered", "  q4 answered ", "Q4 ANSWERED", "Ｑ4 Answered"):  # full-width Q
        with pytest.raises(store_views.SavedViewError, match="'Q4 Answered' exists already"):
            store_views.create_view(db, taken, "/?range=all&basis=updated", None)
    assert _rows(db) == [("Q4 Answered", "q4 answered", LINK)]


def test_rename_keeps_the_link_refuses_a_taken_or_bad_name_and_delete_removes(db):
    first = store_views.create_view(db, "First", LINK, None)
    second = store_views.create_view(db, "Second", "/?range=all&basis=updated", None)
    assert store_views.rename_view(db, first.id, "  first (renamed) ", "ops") == "first (renamed)"
    with pytest.raises(store_views.SavedViewError, match="'Second' exists already"):
        store_views.rename_view(db, first.id, "SECOND", "ops")
    with pytest.raises(store_views.SavedViewError, match="needs a name"):
        store_views.rename_view(db, first.id, "  ", "ops")
    assert store_views.rename_view(db, second.id, "second", "ops") == "second"  # its own name
    assert _rows(db) == [
        ("first (renamed)", "first (renamed)", LINK),
        ("second", "second", "/?range=all&basis=updated"),
    ]
    assert store_views.delete_view(db, first.id) is True
    assert store_views.delete_view(db, first.id) is False
    with pytest.raises(store_views.SavedViewError, match="no longer exists"):
        store_views.rename_view(db, first.id, "Back", "ops")
    assert _rows(db) == [("second", "second", "/?range=all&basis=updated")]


def test_hostile_names_are_stored_as_typed(db):
    store_views.create_view(db, HOSTILE_HTML, LINK, None)
    store_views.create_view(db, HOSTILE_MD, "/?range=all&basis=updated", None)
    assert sorted(r[0] for r in _rows(db)) == sorted([HOSTILE_HTML, HOSTILE_MD])


# -- links ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/?range=all",
        "//evil.example/?range=all",
        "/\\evil.example/?range=all",
        "javascript:alert(1)",
        "/campaign?campaign=a b",
        "",
    ],
    ids=["absolute", "protocol-relative", "backslash", "javascript", "space", "empty"],
)
def test_a_link_that_could_leave_the_dashboard_is_refused(db, link):
    with pytest.raises(store_views.SavedViewError, match="link"):
        store_views.create_view(db, "Elsewhere", link, None)
    assert _rows(db) == []


def test_the_saved_link_is_the_share_links_query_on_the_pages_path():
    query = "campaign=Renewals_Q4&range=last_30d&basis=updated"
    assert saved_views.link_query(query, "campaign", "Trends") == query + "&section=Trends"
    assert saved_views.link_query(query, "campaign", "Breakdown") == query  # the default
    assert saved_views.link_query(query, "progress", "Trends") == query  # not its parameter
    assert saved_views.app_link("campaign", query) == "/campaign?" + query
    assert saved_views.app_link("", "range=all&basis=updated") == "/?range=all&basis=updated"
    assert saved_views.app_link("overview", "range=all") == "/?range=all"


@pytest.mark.parametrize(
    ("link", "base", "expected"),
    [
        (LINK, "", LINK),
        ("/?range=all&basis=updated", "", "/?range=all&basis=updated"),
        ("/overview?range=all", "", "/?range=all"),
        (LINK, "/dash/", "/dash" + LINK),
        ("/progress", "", "/progress"),
        (
            "/?campaign=%3Cscript%3Ealert(1)%3C/script%3E&range=all",
            "",
            "/?campaign=%3Cscript%3Ealert%281%29%3C%2Fscript%3E&range=all",
        ),
        ("/?campaign=a%22onmouseover%3D", "", "/?campaign=a%22onmouseover%3D"),
        ("/nowhere?range=all", "", None),
        ("//evil.example/", "", None),
        ("https://evil.example/", "", None),
        ("javascript:alert(1)", "", None),
        ("/campaign?range=all#frag", "", None),
    ],
)
def test_a_stored_link_is_rebuilt_from_checked_parts_before_it_is_an_href(link, base, expected):
    assert saved_views.href(link, base) == expected


def test_a_row_pointing_off_the_dashboard_is_never_shown(fresh_services):
    store = fresh_services.store
    store_views.create_view(store, "Good", LINK, None)
    with store.writing() as cursor:  # written by something else than this module
        cursor.execute(
            "INSERT INTO saved_views (name, name_key, link) VALUES "
            "('Evil', 'evil', '//evil.example/'), ('Script', 'script', 'javascript:alert(1)')"
        )
    assert [(v.name, v.href) for v in saved_views.shown()] == [("Good", LINK)]


# -- the migration --------------------------------------------------------------------------------


def _v7_database(path: Path) -> None:
    """A database as version 7 of this program left it: MIGRATIONS 1 to 7 (kept verbatim), with
    rows in the tables a v7 dashboard writes."""
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone = 'Asia/Kolkata'")
        for version in range(1, 8):
            con.execute(MIGRATIONS[version])
        con.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', 7), ('data_version', 41), "
            "('summary_version', 41)"
        )
        con.execute(
            "INSERT INTO leads (campaign_name, lead_key, lead_id, lead_status, dial_bucket, "
            "attempts, updated_at) VALUES "
            "('Old', 'L1', 'L1', 'Pending', 'NoAnswer', 2, TIMESTAMPTZ '2026-11-10 09:00+05:30'),"
            "('Old', 'L2', 'L2', 'Success', 'answered', 1, TIMESTAMPTZ '2026-11-10 10:00+05:30')"
        )
        con.execute("INSERT INTO campaigns (name, source) VALUES ('Old', 'config')")
        con.execute("INSERT INTO campaign_policy VALUES ('Old', 4, 'boss', now())")
        con.execute(
            "INSERT INTO lead_events (campaign_name, lead_key, updated_at, delivery_id, "
            "first_seen, dials, attempts_before, attempts_after) "
            "VALUES ('Old', 'L1', TIMESTAMPTZ '2026-11-10 09:00:00+05:30', 1, FALSE, 1, 1, 2)"
        )


def _v7_content(con) -> dict:
    return {
        "leads": con.execute("SELECT * FROM leads ORDER BY lead_key").fetchall(),
        "campaigns": con.execute("SELECT name, source, enabled FROM campaigns").fetchall(),
        "policy": con.execute(
            "SELECT campaign_name, attempts_allowed FROM campaign_policy"
        ).fetchall(),
        "events": con.execute(
            "SELECT campaign_name, lead_key, attempts_after, dials FROM lead_events"
        ).fetchall(),
        "versions": con.execute(
            "SELECT key, value FROM meta WHERE key IN ('data_version', 'summary_version') "
            "ORDER BY key"
        ).fetchall(),
    }


def test_a_v7_database_file_opens_current_with_its_data_and_takes_saved_views(tmp_path):
    path = tmp_path / "v7.duckdb"
    _v7_database(path)
    with duckdb.connect(str(path), read_only=True) as con:
        before = _v7_content(con)
        assert not con.execute(
            "SELECT 1 FROM duckdb_tables() WHERE table_name = 'saved_views'"
        ).fetchall()
    assert before["leads"] and before["events"]  # the test data is really there
    store = Store(path)
    try:
        with store.cursor() as cursor:
            assert _v7_content(cursor) == before
            assert cursor.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone() == (SCHEMA_VERSION,)
        assert store_views.list_views(store) == []
        store_views.create_view(store, "Old answered", "/?campaign=Old&range=all", "boss")
    finally:
        store.close()
    reopened = Store(path)  # a current file opens unchanged, the view kept
    try:
        assert [(v.name, v.link) for v in store_views.list_views(reopened)] == [
            ("Old answered", "/?campaign=Old&range=all")
        ]
        with reopened.cursor() as cursor:
            assert _v7_content(cursor) == before
    finally:
        reopened.close()


# -- roles, through the dashboard -----------------------------------------------------------------


@pytest.fixture
def oidc(seeded, tmp_path, monkeypatch):
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(SECRETS)
    monkeypatch.setenv("DIALSTATUS_SECRETS_FILE", str(secrets_file))
    reset_services()
    st.cache_data.clear()
    services = get_services()
    services.sync = FakeEngine()
    yield services


def _as(email: str, page: str | None = None) -> AppTest:
    at = AppTest.from_file("../dashboard.py", default_timeout=30)
    at.user = {"is_logged_in": True, "email": email}
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _save(at: AppTest, name: str) -> AppTest:
    at.text_input(key="saved_view_name").set_value(name)
    return at.button(key="save_view_submit").click().run()


def test_a_viewer_names_the_view_and_only_an_operator_renames_or_deletes_it(oidc):
    viewer = _save(_as(VIEWER, "progress"), "  Progress, all  ")
    assert "Saved the view 'Progress, all'" in " ".join(s.value for s in viewer.success)
    [view] = store_views.list_views(oidc.store)
    assert (view.name, view.created_by) == ("Progress, all", VIEWER)
    assert view.link == "/progress?range=all&basis=updated"
    viewer = _save(viewer, "PROGRESS, ALL")
    assert "exists already" in " ".join(e.value for e in viewer.error)
    assert len(store_views.list_views(oidc.store)) == 1

    settings = _as(VIEWER, "settings")
    keys = {b.key for b in settings.button}
    assert not {"settings_rename_view", "settings_delete_view"} & keys
    assert "rename or delete saved views" in " ".join(c.value for c in settings.caption)

    operator = _as(OPERATOR, "settings")
    operator.selectbox(key="settings_view").set_value(view.id)
    operator.text_input(key="settings_view_name").set_value("Progress overall")
    operator = operator.button(key="settings_rename_view").click().run()
    assert "Renamed the view to 'Progress overall'" in operator.success[0].value
    operator.selectbox(key="settings_view").set_value(view.id)
    operator = operator.button(key="settings_delete_view").click().run()
    assert "Deleted the view 'Progress overall'" in operator.success[0].value
    assert store_views.list_views(oidc.store) == []


def test_the_view_layer_lets_only_an_operator_rename_or_delete(oidc):
    view = store_views.create_view(oidc.store, "Kept", LINK, None)
    with _role("viewer"):
        with pytest.raises(saved_views.SavedViewError, match="Only operators can rename"):
            saved_views.rename(view.id, "Taken over")
        with pytest.raises(saved_views.SavedViewError, match="Only operators can delete"):
            saved_views.delete(view.id)
    assert [v.name for v in store_views.list_views(oidc.store)] == ["Kept"]
    with _role("operator"):
        assert saved_views.rename(view.id, "Renamed") == "Renamed"
        assert [v.name for v in store_views.list_views(oidc.store)] == ["Renamed"]
        assert saved_views.delete(view.id) is True
    assert store_views.list_views(oidc.store) == []


@contextmanager
def _role(role: str):
    """The session role `lib.view.access` reads (st.session_state outside a script run)."""
    st.session_state[ROLE_KEY] = role
    try:
        yield
    finally:
        del st.session_state[ROLE_KEY]
