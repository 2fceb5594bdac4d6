"""What the browser tests share: waiting on Streamlit script runs and plotly charts, reading KPI
tiles, figure data and data grids, choosing sidebar filters, and watching the browser for console
errors, page errors and requests to any host other than 127.0.0.1.

Selectors (stack-notes): script idle = `[data-testid="stApp"][data-test-script-state=notRunning]`;
a chart is drawn when its `.js-plotly-plot` has one drawn group per trace: `.trace` for bars,
scatter and sunburst, `g.hm` for heatmaps (plotly draws heatmaps without a `.trace` group).
"""

from __future__ import annotations

import csv
import io
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from google.protobuf.message import DecodeError
from playwright.sync_api import BrowserContext, Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
LOAD_TIMEOUT_MS = 60_000  # plotly.js is a 4.7 MB chunk: ~2 s to parse on 2 cores, more when busy
POLL_MS = 100  # wait_for_function polls on a timer: rAF polling starves in headless Chromium
_FULL_RUNS: weakref.WeakKeyDictionary[Page, list[int]] = weakref.WeakKeyDictionary()

_CHARTS_DRAWN_JS = """
(count) => {
  const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
  if (charts.length !== count) return false;
  return charts.every((chart) => {
    const plot = chart.querySelector('.js-plotly-plot');
    return plot && plot._fullLayout && Array.isArray(plot.data) && plot.data.length > 0
      && plot.querySelectorAll('.trace, g.hm').length >= plot.data.length;
  });
}
"""

_PAGE_READY_JS = """
([idle, heading, metrics]) => {
  if (!document.querySelector(idle)) return false;
  const main = document.querySelector('[data-testid="stMain"]');
  const headings = [...main.querySelectorAll('[data-testid="stHeading"]')];
  return headings.some((h) => h.innerText.trim() === heading)
    && main.querySelectorAll('[data-testid="stMetric"]').length >= metrics;
}
"""

_KPIS_JS = """
() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stMetric"]')].map((m) => [
  m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
  m.querySelector('[data-testid="stMetricValue"]').innerText.trim(),
])
"""

# glide-data-grid draws on a canvas and keeps an accessible <table> of the rows in view: scroll
# through the grid and collect every row by its aria-rowindex (row 1 = the header).
_GRID_JS = """
async (root) => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const table = () => root.querySelector('table[role="grid"]');
  const shownRows = () => [...table().querySelectorAll('tr')];
  const rows = new Map();
  const scroller = root.querySelector('.dvn-scroller');
  const total = Number(table().getAttribute('aria-rowcount'));
  let stalled = 0;  // scrolls that showed no new row: the table cannot be scrolled further
  for (let i = 0; i < 500 && stalled < 5; i += 1) {
    const known = rows.size;
    for (const tr of shownRows()) {
      const cells = [...tr.querySelectorAll('th, td')].map((c) => c.innerText);
      rows.set(Number(tr.getAttribute('aria-rowindex')), cells);
    }
    if (rows.size >= total || !scroller) break;
    stalled = rows.size === known ? stalled + 1 : 0;
    // A few rows at a time (the view holds about ten), then wait for the table to follow.
    const before = shownRows().map((tr) => tr.getAttribute('aria-rowindex')).join();
    scroller.scrollTop += 100;
    for (let t = 0; t < 40; t += 1) {
      await sleep(25);
      if (shownRows().map((tr) => tr.getAttribute('aria-rowindex')).join() !== before) break;
    }
    await sleep(50);
  }
  return {total, rows: [...rows.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1])};
}
"""

_CONTENT_HEIGHT_JS = """
() => Math.max(...['stMain', 'stAppViewContainer', 'stSidebarContent'].map((id) => {
  const e = document.querySelector(`[data-testid="${id}"]`);
  return e ? e.scrollHeight : 0;
}))
"""

_FIGURE_JS = """
(plot) => plot.data.map((t) => ({
  name: t.name, group: t.legendgroup || null, type: t.type,
  customdata: t.customdata ? Array.from(t.customdata) : null,
}))
"""


# -- waiting ------------------------------------------------------------------------------------


def track_runs(page: Page) -> None:
    """Counts the page's finished full script runs from the server's websocket messages.

    The DOM's script state cannot tell a full run from the 15 s auto-refresh fragment's run, and
    a test that waits for "a run" after a click could read the numbers before its own run.
    """
    count = _FULL_RUNS.setdefault(page, [0])

    def on_frame(payload: str | bytes) -> None:
        if isinstance(payload, str):
            return
        message = ForwardMsg()
        try:
            message.ParseFromString(payload)
        except DecodeError:
            return
        if (
            message.WhichOneof("type") == "script_finished"
            and message.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY
        ):
            count[0] += 1

    page.on("websocket", lambda socket: socket.on("framereceived", on_frame))


def runs(page: Page) -> int:
    """Full script runs finished so far in `page` (needs `track_runs`, done by `Watch.attach`)."""
    return _FULL_RUNS[page][0]


def wait_for_rerun(page: Page, after: int, timeout: float = LOAD_TIMEOUT_MS) -> None:
    """Waits until a full script run finished after the `after`-th one and the page is idle.

    The websocket frame can reach Playwright before the page's JavaScript has drawn it (a busy
    machine): read what the run changed with `eventually`, not with a one-shot read.
    """
    deadline = time.monotonic() + timeout / 1000
    while runs(page) <= after:
        if time.monotonic() > deadline:
            raise AssertionError(f"no script run finished within {timeout / 1000:.0f} s")
        page.wait_for_timeout(50)  # lets Playwright deliver the websocket frames
    page.wait_for_selector(IDLE, state="attached", timeout=timeout)


def eventually(page: Page, check: Callable[[], object], what: str, timeout: float = 15_000):
    """Polls `check()` until it returns something truthy; returns that. Fails naming `what`."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout / 1000:.0f} s: {what}")
        page.wait_for_timeout(100)


def wait_for_charts(page: Page, count: int, timeout: float = LOAD_TIMEOUT_MS) -> None:
    """Waits until exactly `count` plotly charts are on the page, each with every trace drawn."""
    page.wait_for_function(_CHARTS_DRAWN_JS, arg=count, polling=250, timeout=timeout)


def open_page(
    page: Page,
    url: str,
    *,
    heading: str,
    charts: int = 0,
    metrics: int = 0,
    timeout: float = LOAD_TIMEOUT_MS,
) -> None:
    """Opens `url` and waits for the page's run to finish (script idle, its header shown, at
    least `metrics` metric tiles: their component loads lazily) and for `charts` charts drawn."""
    page.goto(url)
    try:
        page.wait_for_function(
            _PAGE_READY_JS, arg=[IDLE, heading, metrics], polling=POLL_MS, timeout=timeout
        )
    except PlaywrightTimeoutError:
        shown = page.locator('[data-testid="stMain"]').inner_text(timeout=1000)[:1500]
        raise AssertionError(
            f"{url} did not show {heading!r} with {metrics} metric tiles within "
            f"{timeout / 1000:.0f} s; the page shows:\n{shown}"
        ) from None
    if charts:
        wait_for_charts(page, charts, timeout)


def after_rerun(page: Page, action: Callable[[], None]) -> None:
    """Runs `action` (a click, a choice) and waits for the script run it causes to finish."""
    before = runs(page)
    action()
    wait_for_rerun(page, before)


# -- reading --------------------------------------------------------------------------------------


def kpis(page: Page) -> dict[str, str]:
    """The main area's metric tiles as {label: value text}."""
    pairs = page.evaluate(_KPIS_JS)
    return dict(pairs)


def exceptions(page: Page) -> list[str]:
    return page.get_by_test_id("stException").all_inner_texts()


def figure(page: Page, chart_key: str) -> list[dict]:
    """The traces (name, type, customdata) of the plotly chart with Streamlit key `chart_key`."""
    return page.locator(f".st-key-{chart_key} .js-plotly-plot").evaluate(_FIGURE_JS)


def grid_rows(grid: Locator) -> list[list[str]]:
    """Every row of an st.dataframe as shown (cell texts), the header first."""
    grid.locator('table[role="grid"]').wait_for(state="attached")
    result = grid.evaluate(_GRID_JS)
    assert len(result["rows"]) == result["total"], f"read {len(result['rows'])} of {result}"
    return result["rows"]


def grid_row_count(grid: Locator) -> int:
    """The rows an st.dataframe holds, the header included (shown or not)."""
    return int(grid.locator('table[role="grid"]').get_attribute("aria-rowcount"))


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def number(text: str) -> float:
    return float(text.replace(",", "").rstrip("%"))


# -- sidebar --------------------------------------------------------------------------------------


def sidebar(page: Page) -> Locator:
    return page.get_by_test_id("stSidebar")


def shared_link(page: Page, base: str) -> str:
    """The link the sidebar's Share popover offers (opened, read, closed again)."""
    sidebar(page).get_by_role("button", name="Share", exact=True).click()
    link = page.get_by_test_id("stCode").filter(has_text=base).inner_text().strip()
    page.keyboard.press("Escape")
    return link


def choose(page: Page, label: str, option: str) -> None:
    """Picks `option` in the sidebar select or multiselect labelled `label` and waits for the
    run it causes."""

    box = sidebar(page).get_by_role("combobox", name=label, exact=True)
    item = page.get_by_role("option", name=option, exact=True)

    def chosen() -> bool:
        if _multiselect(page, label).count():
            return option in tags(page, label)
        return selected(page, label) == option

    def landed() -> bool:
        """Whether the option is chosen, allowing the widget a moment to draw its pick."""
        deadline = time.monotonic() + 2
        while not chosen():
            if time.monotonic() > deadline:
                return False
            page.wait_for_timeout(100)
        return True

    def pick() -> None:
        # A run finishing meanwhile (the sync, the refresh fragment) can redraw the widget and
        # close its list: open it again, a few times, before failing. A click reported as timed
        # out may still have landed as the list redrew: then the option is chosen already.
        last = ""
        for _ in range(5):
            box.click()
            try:
                item.click(timeout=5_000)
            except PlaywrightTimeoutError as error:
                last = str(error).splitlines()[0]
                page.keyboard.press("Escape")
                if landed():
                    return
                continue
            page.keyboard.press("Escape")  # a multiselect stays open after a pick
            return
        raise AssertionError(f"the {label!r} list never offered {option!r} (last: {last})")

    after_rerun(page, pick)


def _multiselect(page: Page, label: str) -> Locator:
    """The sidebar multiselect labelled `label`. The inner locator of `filter(has=)` is queried
    inside each candidate, so it must not start from the sidebar again (it then matches none)."""
    combobox = page.get_by_role("combobox", name=label, exact=True)
    return sidebar(page).get_by_test_id("stMultiSelect").filter(has=combobox)


def tags(page: Page, label: str) -> list[str]:
    """The values chosen in the sidebar multiselect labelled `label`."""
    text = _multiselect(page, label).get_by_test_id("stMultiSelectTagsContainer").inner_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def selected(page: Page, label: str) -> str:
    """The value shown by the sidebar selectbox labelled `label`."""
    return sidebar(page).get_by_role("combobox", name=label, exact=True).input_value()


# -- screenshots ----------------------------------------------------------------------------------


def full_screenshot(page: Page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its own container, so `full_page` alone stops at
    the viewport. Grow the viewport to the content's height for the shot, then restore it."""
    viewport = page.viewport_size or {"width": 1400, "height": 2400}
    height = page.evaluate(_CONTENT_HEIGHT_JS)
    grown = max(viewport["height"], min(int(height) + 40, 12_000))
    if grown != viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": grown})
        page.wait_for_timeout(300)  # let plotly settle after the resize event
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        if grown != viewport["height"]:
            page.set_viewport_size(viewport)


# -- watching the browser -------------------------------------------------------------------------


@dataclass
class Watch:
    """Console errors, page errors and every request (HTTP and WebSocket) of one browser context;
    also counts each page's script runs (`track_runs`).

    `problems()` lists what a clean page must not have: any console or page error (a deep link
    included: the page names the app's base URL, so the frontend no longer probes
    `<page>/_stcore/health` and logs its 404s, as stack-notes describes) or a request to
    another host.
    """

    base_url: str
    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (text, resource url)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> Watch:
        context.on("console", self._on_console)
        context.on("weberror", lambda error: self.page_errors.append(str(error.error)))
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("page", self._on_page)
        for page in context.pages:
            self._on_page(page)
        return self

    def _on_page(self, page: Page) -> None:
        page.on("websocket", lambda socket: self.requests.append(socket.url))
        track_runs(page)

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, (message.location or {}).get("url", "")))

    def outside_requests(self) -> list[str]:
        outside = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob"):
                continue  # in-page data, no network
            if parts.scheme not in ("http", "https", "ws", "wss") or parts.hostname != "127.0.0.1":
                outside.append(url)
        return outside

    def problems(self) -> list[str]:
        found = [f"page error: {text}" for text in self.page_errors]
        found += [f"console error: {text} ({url})" for text, url in self.console_errors]
        found += [f"request to another host: {url}" for url in self.outside_requests()]
        return found
