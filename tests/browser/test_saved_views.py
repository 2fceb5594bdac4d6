"""Saved views in the browser, on the real server and its DuckDB file: a view named from the
sidebar is listed, opens its link in a fresh browser context with the same filters, is renamed
and deleted on Settings; a duplicate name is refused; hostile names stay text.

The server runs in demo mode without syncing (the sidebar and Settings need no leads), so the
test owns its database and other browser tests never see its views.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import helpers
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

CAMPAIGN = "Loan Offers - Mumbai"  # a demo campaign: offered in the sidebar without any lead
START = "/progress?campaign=Loan%20Offers%20-%20Mumbai&range=last_7d"
# What the Share link names for that view (range and basis always), on the page's path.
SAVED_HREF = "/progress?campaign=Loan%20Offers%20-%20Mumbai&range=last_7d&basis=updated"
HOSTILE_HTML = "<img src=x onerror=alert(1)>"
HOSTILE_MD = "**bold** [x](javascript:alert(1))"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    env = {"DIALSTATUS_SYNC_ENABLED": "false"}
    with ServerProcess(tmp_path_factory.mktemp("saved-views"), env=env) as process:
        yield process


@pytest.fixture
def fresh(browser: Browser, server: ServerProcess):
    """Opens pages, each in a browser context of its own (nothing shared: a new session)."""
    contexts = []

    def open_context(path: str) -> tuple[Page, list[str]]:
        context = browser.new_context(viewport={"width": 1400, "height": 2400})
        contexts.append(context)
        page = context.new_page()
        helpers.track_runs(page)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(server.base_url + path)
        _sidebar_ready(page)
        return page, dialogs

    yield open_context
    for context in contexts:
        context.close()


def _sidebar_ready(page: Page) -> None:
    """The page's first full script run finished and its sidebar lists the saved views."""
    helpers.wait_for_rerun(page, 0)
    helpers.sidebar(page).get_by_role("heading", name="Saved views").wait_for(
        timeout=helpers.LOAD_TIMEOUT_MS
    )


def _view_links(page: Page) -> dict[str, str]:
    """The saved views the sidebar lists now: {text shown: href}."""
    links = page.locator('.st-key-saved_views [data-testid="stLinkButton"] a')
    return {
        a.get_by_test_id("stMarkdownContainer").inner_text().strip(): a.get_attribute("href")
        for a in links.all()
    }


def _listed(page: Page, expected: dict[str, str]) -> None:
    """Waits until the sidebar lists exactly `expected` ({} = its "No saved view yet." caption
    shown); fails naming what it lists."""
    none = helpers.sidebar(page).get_by_text("No saved view yet.", exact=True)

    def matches() -> bool:
        shown = _view_links(page)
        return shown == expected and (bool(expected) or none.count() == 1)

    try:
        helpers.eventually(page, matches, f"the sidebar lists {expected}")
    except AssertionError:
        assert _view_links(page) == expected
        raise


def _save(page: Page, name: str) -> None:
    """Types `name` in the sidebar's Save this view and presses Save."""
    side = helpers.sidebar(page)
    body = page.get_by_test_id("stPopoverBody")
    if not body.is_visible():
        side.get_by_role("button", name="Save this view").click()
    field = body.get_by_label("Name", exact=True)
    field.wait_for()
    helpers.after_rerun(page, lambda: (field.fill(name), field.press("Enter")))
    helpers.after_rerun(page, lambda: body.get_by_role("button", name="Save", exact=True).click())


def _message(page: Page, where: str, kind: str, expected: str) -> str:
    """Waits for an alert of `kind` (Success, Error) holding `expected` in the sidebar or the
    main area; returns its whole text."""
    area = helpers.sidebar(page) if where == "sidebar" else page.get_by_test_id("stMain")
    alert = area.get_by_test_id(f"stAlertContent{kind}").filter(has_text=expected)
    try:
        return helpers.eventually(
            page, lambda: alert.count() == 1 and alert.inner_text(), f"{kind}: {expected}"
        )
    except AssertionError:
        shown = area.get_by_test_id(f"stAlertContent{kind}").all_inner_texts()
        raise AssertionError(f"no {kind} alert says {expected!r}; shown: {shown}") from None


def _settings_pick(page: Page, name: str) -> None:
    main = page.get_by_test_id("stMain")
    box = main.get_by_role("combobox", name="Saved view", exact=True)
    box.scroll_into_view_if_needed()

    def pick() -> None:
        box.click()
        page.get_by_role("option", name=name, exact=True).click()

    helpers.after_rerun(page, pick)


def _settings_action(page: Page, button: str, new_name: str | None = None) -> None:
    main = page.get_by_test_id("stMain")
    if new_name is not None:
        field = main.get_by_label("New name", exact=True)
        helpers.after_rerun(page, lambda: (field.fill(new_name), field.press("Enter")))
    helpers.after_rerun(page, lambda: main.get_by_role("button", name=button).click())


def test_a_view_is_saved_opened_fresh_renamed_and_deleted(fresh, server):
    page, _ = fresh(START)
    _listed(page, {})
    _save(page, "  Mumbai, last week  ")
    assert _message(page, "sidebar", "Success", "Saved the view") == (
        "Saved the view 'Mumbai, last week'."
    )
    _listed(page, {"Mumbai, last week": SAVED_HREF})

    # Everyone sees it: a fresh context (a new session) lists it and opens its link.
    other, _ = fresh("/")
    _listed(other, {"Mumbai, last week": SAVED_HREF})
    with other.context.expect_page() as opened:
        helpers.sidebar(other).get_by_role("link", name="Mumbai, last week").click()
    view = opened.value
    helpers.track_runs(view)
    _sidebar_ready(view)
    # The page and the filters of the view (the address bar then drops `basis` at its default).
    assert view.url.startswith(server.base_url + "/progress?")
    assert helpers.query(view.url) == {"campaign": [CAMPAIGN], "range": ["last_7d"]}
    assert helpers.tags(view, "Campaign") == [CAMPAIGN]
    # The href pasted into a brand-new context opens the same view.
    pasted, _ = fresh(SAVED_HREF)
    assert pasted.url.startswith(server.base_url + "/progress?")
    assert helpers.query(pasted.url) == {"campaign": [CAMPAIGN], "range": ["last_7d"]}
    assert helpers.tags(pasted, "Campaign") == [CAMPAIGN]

    # A duplicate name, whatever its case, is refused and nothing is written.
    _save(page, "MUMBAI, LAST WEEK")
    _message(page, "sidebar", "Error", "A view named 'Mumbai, last week' exists already")
    _listed(page, {"Mumbai, last week": SAVED_HREF})

    # An operator renames it on Settings (no [auth]: everyone is an operator); the link stays.
    settings, _ = fresh("/settings")
    _settings_pick(settings, "Mumbai, last week")
    _settings_action(settings, "Rename", "Mumbai weekly")
    _message(settings, "main", "Success", "Renamed the view to 'Mumbai weekly'.")
    _listed(settings, {"Mumbai weekly": SAVED_HREF})
    again, _ = fresh("/")
    _listed(again, {"Mumbai weekly": SAVED_HREF})

    _settings_pick(settings, "Mumbai weekly")
    _settings_action(settings, "Delete")
    _message(settings, "main", "Success", "Deleted the view 'Mumbai weekly'.")
    _listed(settings, {})
    gone, _ = fresh("/")
    _listed(gone, {})


def test_a_bad_name_is_refused_with_a_clear_error(fresh):
    page, _ = fresh("/?range=all")
    _save(page, "x" * 61)
    _message(page, "sidebar", "Error", "at most 60 characters (this one has 61)")
    _listed(page, {})


def test_hostile_names_are_shown_literally_and_run_nothing(fresh, server):
    page, dialogs = fresh("/?range=last_30d")
    _save(page, HOSTILE_HTML)
    assert _message(page, "sidebar", "Success", HOSTILE_HTML) == f"Saved the view '{HOSTILE_HTML}'."
    _save(page, HOSTILE_MD)
    assert _message(page, "sidebar", "Success", HOSTILE_MD) == f"Saved the view '{HOSTILE_MD}'."
    expected = {
        HOSTILE_HTML: "/?range=last_30d&basis=updated",
        HOSTILE_MD: "/?range=last_30d&basis=updated",
    }
    _listed(page, expected)

    viewer, viewer_dialogs = fresh("/")
    _listed(viewer, expected)  # the text shown is the name as typed
    buttons = viewer.locator(".st-key-saved_views")
    assert buttons.locator("img, strong, b").count() == 0  # no markup made from the names
    assert viewer.locator('a[href^="javascript:"], img[src="x"]').count() == 0

    settings, settings_dialogs = fresh("/settings")
    # A keyed st.dataframe gets no st-key class (only widgets do): found by its header.
    grid = settings.get_by_test_id("stDataFrame").filter(has_text="saved by")
    header, *rows = helpers.grid_rows(grid)
    names = sorted(row[header.index("Name")] for row in rows)  # headers in words
    assert names == sorted([HOSTILE_HTML, HOSTILE_MD])
    _settings_pick(settings, HOSTILE_MD)  # the select box offers the names as typed
    assert settings.locator('img[src="x"], a[href^="javascript:"]').count() == 0
    assert dialogs == viewer_dialogs == settings_dialogs == []  # no alert() ever ran
