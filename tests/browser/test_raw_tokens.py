"""No page speaks the dashboard's internals (issue 16): every page, each Campaign section and
every numbers table opened, is read as a person sees it, and none of the raw tokens below may
show: a date-range value, a dial-status bucket, a column name ending in `_at` or `_s`, an ISO
time with its offset. Code blocks and URLs (the Share link, the API examples) keep raw values
by design, so they are not read. A table's cells are drawn on a canvas (the hidden mirror the
grid keeps for screen readers holds the raw values), so its headers are read and the cells'
formats are checked where they are configured (tests/test_tables.py, tests/test_pages.py).
"""

from __future__ import annotations

import re

import pytest

from tests.browser import helpers
from tests.support.expected import KPI_LABELS, PROGRESS_TILES

pytestmark = pytest.mark.browser

RAW = re.compile(
    r"last_30d|last_7d|NoAnswer|user_disconnected|\w_at\b|\w_s\b"
    r"|\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d)?\+05:30"
)
URL = re.compile(r"(?:https?://|/)\S*[?=&]\S*")  # a link's text: raw values belong there
CAMPAIGN = "/campaign?campaign=Renewals_Q4&range=last_30d"
PAGES = [
    ("/", "Overview", len(KPI_LABELS)),
    (CAMPAIGN, "Campaign", len(KPI_LABELS)),
    (CAMPAIGN + "&section=Composition", "Campaign", len(KPI_LABELS)),
    (CAMPAIGN + "&section=Trends", "Campaign", len(KPI_LABELS)),
    ("/progress", "Progress", len(PROGRESS_TILES)),
    ("/agents", "Agents", 1),
    ("/leads", "Leads", 0),
    ("/sync", "Sync", 1),
    ("/settings", "Settings", 0),
]

_SHOWN_TEXT_JS = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const walker = document.createTreeWalker(app, NodeFilter.SHOW_TEXT);
  const skipped = 'code, pre, [data-testid="stCode"], [data-testid="stDataFrame"] td';
  const texts = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!parent || parent.closest(skipped)) continue;
    const inTable = parent.closest('[data-testid="stDataFrame"]');
    const style = getComputedStyle(parent);
    // The grid's header mirror is hidden from the eye but names what the canvas draws.
    if (!inTable && (style.display === 'none' || style.visibility === 'hidden')) continue;
    const text = node.textContent.trim();
    if (text) texts.push(text);
  }
  return texts;
}
"""


def open_every_expander(page) -> None:
    """Opens each closed expander, one at a time (a chart's numbers are built only when opened,
    by the run the opening starts)."""
    closed = page.locator('[data-testid="stExpander"] details:not([open]) > summary')
    for _ in range(40):
        if closed.count() == 0:
            return
        closed.first.click()
        page.wait_for_timeout(200)  # the run the click starts, if any, begins
        page.wait_for_selector(helpers.IDLE, state="attached", timeout=helpers.LOAD_TIMEOUT_MS)
    raise AssertionError(f"{closed.count()} expanders still closed")


@pytest.mark.parametrize(("path", "heading", "tiles"), PAGES, ids=[p for p, _, _ in PAGES])
def test_no_page_shows_a_raw_token(page, watch, demo_server, path, heading, tiles):
    helpers.open_page(page, demo_server.base_url + path, heading=heading, metrics=tiles)
    open_every_expander(page)

    def raw_tokens() -> list[str]:
        texts = page.evaluate(_SHOWN_TEXT_JS)
        return sorted(
            {f"{m.group(0)!r} in {t[:90]!r}" for t in texts for m in RAW.finditer(URL.sub("", t))}
        )

    # The opened tables draw after their run: read until the page settles, then judge.
    page.wait_for_timeout(1_000)
    assert raw_tokens() == []
    assert watch.problems() == []
