"""An operator meets a differently-shaped CloudAgent account in the real UI, without code.

The demo server's own sandbox delivers report-style field names ("Customer Number", "Call
Status", "Last Dialed On", ...) with `DD-MM-YYYY hh:mm AM` dates. Signed in with the operator
password, the operator reads on the Sync page which fields were kept as extra, maps them in the
Settings page's field mapping editor (a glide-data-grid canvas, driven by mouse and keyboard),
saves, re-ingests, and the Overview tiles then equal the truth counted here from what the
sandbox sent (its admin listing over HTTP and the delivered bodies, read with json only).
"""

from __future__ import annotations

import json

import httpx
import pytest
from playwright.sync_api import Locator, Page

from lib.auth import hash_password
from tests.browser import helpers
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CAMPAIGN = "Mapping Demo"  # not a demo campaign name: the sandbox makes 2,000 leads for it
OPERATOR_PASSWORD = "operator-pass-4c1e"
# What the operator chooses for the fields the account names its own way (lib/fields.py);
# "Lead Status" needs no choice: its name is recognised (the alias leadstatus).
MAPPING = {
    "Customer Number": "phone_number",
    "Call Status": "dial_status",
    "Last Dialed On": "updated_at",
    "Uploaded On": "created_at",
    "Talk Time": "call_duration",
}
# The sandbox writes its records as an account with report-style headers would.
REPORT_STYLE = {"field_style": "report", "date_style": "dmy_ampm"}
COUNTED = ["Leads", "Pending", "Attempted", "Answered"]  # KPI tiles checked against the truth
ROW_PX = 35  # glide-data-grid's header and row height in Streamlit
LOADED_TIMEOUT = 120

_SELECTED_ROW_JS = """
(table) => {
  const cell = table.querySelector('td[aria-selected="true"]');
  if (!cell) return null;
  const row = cell.closest('tr');
  return [Number(row.getAttribute('aria-rowindex')),
          [...row.querySelectorAll('td')].map((c) => c.innerText)];
}
"""


class SignedInServer(ServerProcess):
    """With sign-in on, /api/health gives its details only with a token."""

    def health(self) -> dict:
        return httpx.get(self.base_url + "/api/health", headers=self.admin_headers).json()


@pytest.fixture(scope="module")
def report_server(tmp_path_factory):
    """A demo server with the operator password, one campaign, and no sync after the first."""
    data_dir = tmp_path_factory.mktemp("mapping-ui")
    secrets = data_dir / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'password_hash = "{hash_password("viewer-pass-9b2d")}"\n'
        f'operator_password_hash = "{hash_password(OPERATOR_PASSWORD)}"\n'
    )
    env = {
        "DIALSTATUS_SECRETS_FILE": str(secrets),
        "DIALSTATUS_CAMPAIGNS": CAMPAIGN,
        "DIALSTATUS_SYNC_INTERVAL": "3600",
        "DIALSTATUS_SANDBOX_CONFIG": json.dumps(REPORT_STYLE),
    }
    with SignedInServer(data_dir, env=env) as server:
        server.wait_for(_first_sync_ingested, timeout=LOADED_TIMEOUT)
        yield server


def _first_sync_ingested(health: dict) -> bool:
    sync = health.get("sync") or {}
    return bool(
        [c["name"] for c in health.get("campaigns", []) if c["rows"]] == [CAMPAIGN]
        and not sync.get("queue")
        and not sync.get("sending")
        and not sync.get("in_flight")
    )


def _truth(server: ServerProcess) -> dict[str, int]:
    """The KPI counts of what the sandbox delivered: its admin listing says what it sent, the
    kept bodies hold the records (one version per lead in one delivery)."""
    listing = httpx.get(
        server.base_url + "/api/sandbox/_sandbox/deliveries", headers=server.admin_headers
    ).json()
    assert [(d["campaign"], d["state"]) for d in listing] == [(CAMPAIGN, "delivered")]
    bodies = sorted((server.data_dir / "dialstatus.deliveries").glob("*.body"))
    records = [r for body in bodies for r in json.loads(body.read_bytes())["data"]]
    assert len(records) == listing[0]["records"] == len({r["Lead Id"] for r in records})
    status = [r["Lead Status"].strip().lower() for r in records]
    dial = [r["Call Status"].lower() for r in records]
    counts = {
        "Leads": len(records),
        "Pending": sum(s not in ("success", "fail") for s in status),
        "Attempted": sum(r["Attempts"] > 0 for r in records),
        "Answered": dial.count("answered"),
    }
    assert list(counts) == COUNTED
    return counts


def _counts(page: Page) -> dict[str, int]:
    """The Overview's count tiles that `_truth` counts."""
    tiles = helpers.kpis(page)
    return {label: int(helpers.number(tiles[label])) for label in COUNTED}


def _open(page: Page, title: str, metrics: int = 0) -> None:
    """Switches page with the top menu, in this signed-in session (a new load signs out)."""
    helpers.after_rerun(page, page.get_by_test_id("stTopNavLink").filter(has_text=title).click)
    main = page.get_by_test_id("stMain")
    helpers.eventually(
        page,
        lambda: (
            main.get_by_test_id("stHeading").filter(has_text=title).count()
            and main.get_by_test_id("stMetric").count() >= metrics
        ),
        f"the {title} page with {metrics} metric tiles",
    )
    assert helpers.exceptions(page) == []


def _sign_in_as_operator(page: Page, server: ServerProcess) -> None:
    page.goto(server.base_url + "/")
    page.get_by_label("Team password").fill(OPERATOR_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    helpers.eventually(page, lambda: len(helpers.kpis(page)) == 8, "the Overview after sign-in")
    assert helpers.exceptions(page) == []


def _inspected_fields(page: Page) -> dict[str, tuple[str, str]]:
    """The Sync page's delivery inspector: delivered field -> (dashboard column, mapped by)."""
    # A keyed st.dataframe gets no st-key class (only widgets do): found by its header.
    grid = page.get_by_test_id("stDataFrame").filter(has_text="Delivered field")
    header, *rows = helpers.grid_rows(grid)
    assert header == ["Delivered field", "Dashboard column", "Mapped by"]
    return {field: (column, how) for field, column, how in rows}


def _selected_row(page: Page, table: Locator, after: int, what: str) -> tuple[int, list[str]]:
    """The selected cell's row (aria-rowindex, cell texts), waited for below row `after`."""

    def moved() -> list | None:
        row = table.evaluate(_SELECTED_ROW_JS)
        return row if row and row[0] > after else None

    return helpers.eventually(page, moved, what, timeout=5_000)


def _map_fields(page: Page, editor: Locator, mapping: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Walks the editor's "dashboard column" cells down with the keyboard (glide scrolls with
    the selection) and picks `mapping`'s column for each of its fields: Enter opens the cell's
    dropdown, typing filters the options, Enter chooses. Returns every row passed, as shown
    before any change: field -> (column, set in)."""
    table = editor.locator('table[role="grid"]')
    table.wait_for(state="attached")
    editor.locator(".dvn-scroller").click(position={"x": 10, "y": ROW_PX + ROW_PX // 2})
    page.keyboard.press("ArrowRight")  # the first row's "dashboard column" cell
    left, seen, at = dict(mapping), {}, 1
    while left:
        what = f"a row below row {at}; still to map {sorted(left)}, passed {list(seen)}"
        at, (field, column, source) = _selected_row(page, table, at, what)
        seen[field] = (column, source)
        if field in left:
            target = left.pop(field)

            def choose(target=target) -> None:
                page.keyboard.press("Enter")
                dropdown = page.locator("#portal")  # glide's overlay editor: a react-select
                dropdown.get_by_role("combobox").wait_for()
                page.keyboard.type(target)
                dropdown.get_by_role("option", name=target, exact=True).wait_for()
                page.keyboard.press("Enter")

            helpers.after_rerun(page, choose)  # every edit reruns the page with it
            edited = table.locator(f'tr[aria-rowindex="{at}"] td').nth(1)
            helpers.eventually(page, lambda e=edited, t=target: e.inner_text() == t, field)
        else:
            page.keyboard.press("ArrowDown")  # Enter after a choice moved down already
    return seen


def test_an_operator_maps_a_report_style_account_and_reingests_it(report_server, page):
    watch = helpers.Watch(report_server.base_url).attach(page.context)
    truth = _truth(report_server)
    assert truth["Answered"] > 100 and truth["Pending"] < truth["Leads"]

    # Before: the leads are there (their id is understood), their dial statuses are not.
    _sign_in_as_operator(page, report_server)
    assert _counts(page) == {**truth, "Answered": 0}

    _open(page, "Sync", metrics=4)
    fields = _inspected_fields(page)
    assert {name: fields[name] for name in MAPPING} == dict.fromkeys(
        MAPPING, ("(kept as extra)", "extra")
    )
    assert fields["Lead Status"] == ("status", "detected")

    _open(page, "Settings")
    editor = page.locator(".st-key-settings_fields")
    shown = _map_fields(page, editor, MAPPING)
    assert {name: shown[name] for name in MAPPING} == dict.fromkeys(MAPPING, ("extra", "detected"))
    assert shown["Lead Status"] == ("status", "detected")
    helpers.after_rerun(page, page.get_by_role("button", name="Save field mapping").click)
    saved = page.get_by_test_id("stAlert").filter(has_text="Saved the mapping of 5 fields")
    saved.wait_for()
    assert helpers.exceptions(page) == []

    # Saved but not re-ingested: a mapping applies to new deliveries, the stored leads wait.
    _open(page, "Overview", metrics=8)
    assert _counts(page)["Answered"] == 0

    _open(page, "Settings")
    helpers.after_rerun(page, page.get_by_role("button", name="Re-ingest").click)
    page.get_by_test_id("stAlert").filter(has_text="Re-ingest started: 1 deliveries").wait_for()
    assert helpers.exceptions(page) == []

    _open(page, "Sync", metrics=4)
    finished = page.get_by_text("finished; 1 read again, 0 skipped (body pruned), 0 still not")
    finished.wait_for(timeout=helpers.LOAD_TIMEOUT_MS)  # the progress fragment runs every 2 s
    health = report_server.health()["reingest"]
    assert health == {**health, "running": False, "done": 1, "failed": 0, "error": None}
    assert helpers.exceptions(page) == []

    _open(page, "Overview", metrics=8)
    assert _counts(page) == truth

    # The report was written again with the delivery (read on a full run of the Sync page).
    _open(page, "Sync", metrics=4)
    fields = _inspected_fields(page)
    assert {name: fields[name] for name in MAPPING} == {
        name: (column, "settings") for name, column in MAPPING.items()
    }
    assert watch.problems() == []


def test_a_deep_link_opens_its_own_page_after_sign_in(report_server, page):
    """A colleague's link to the Sync page with a filter, opened signed out: the sign-in form
    (no page menu yet), then that page with that filter, not the Overview."""
    page.goto(report_server.base_url + "/sync?campaign=" + CAMPAIGN.replace(" ", "+"))
    page.get_by_label("Team password").wait_for()
    assert page.get_by_test_id("stTopNavLink").count() == 0
    page.get_by_label("Team password").fill("viewer-pass-9b2d")
    page.get_by_role("button", name="Sign in").click()
    helpers.eventually(
        page,
        lambda: page.get_by_test_id("stHeading").filter(has_text="Sync").count() > 0,
        "the Sync page after sign-in",
    )
    assert page.url.split("?", 1)[0].endswith("/sync")
    assert helpers.query(page.url)["campaign"] == [CAMPAIGN]
    assert helpers.tags(page, "Campaign") == [CAMPAIGN]
    assert page.get_by_test_id("stTopNavLink").count() > 0
    assert helpers.exceptions(page) == []
