"""At a phone's width (390 px), the Overview and Campaign pages fit the screen: no horizontal
scroll of the page, the KPI tiles one under another, every chart within the width."""

from __future__ import annotations

import pytest

from tests.browser import helpers
from tests.support.expected import KPI_LABELS

pytestmark = pytest.mark.browser

WIDTH = 390

_LAYOUT_JS = """
() => {
  const box = (e) => e.getBoundingClientRect();
  const main = document.querySelector('[data-testid="stMain"]');
  return {
    page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    main: [main.scrollWidth, main.clientWidth],
    tiles: [...main.querySelectorAll('[data-testid="stMetric"]')].map((e) => {
      const b = box(e); return [Math.round(b.left), Math.round(b.top), Math.round(b.right)];
    }),
    charts: [...main.querySelectorAll('.js-plotly-plot')].map((e) => Math.round(box(e).right)),
  };
}
"""


@pytest.mark.parametrize(
    ("path", "heading", "charts"),
    [("/", "Overview", 3), ("/campaign?campaign=Renewals_Q4&range=last_30d", "Campaign", 2)],
    ids=("overview", "campaign"),
)
def test_the_page_fits_a_phone_screen(page, watch, demo_server, path, heading, charts):
    page.set_viewport_size({"width": WIDTH, "height": 844})
    helpers.open_page(
        page, demo_server.base_url + path, heading=heading, charts=charts, metrics=len(KPI_LABELS)
    )
    layout = page.evaluate(_LAYOUT_JS)
    assert layout["page"][0] <= layout["page"][1] == WIDTH, layout["page"]  # no page scroll
    assert layout["main"][0] <= layout["main"][1], layout["main"]
    tiles = layout["tiles"]
    assert len(tiles) == len(KPI_LABELS)
    # Stacked: every tile starts at the same left edge, each below the one before, all within
    # the screen.
    assert len({left for left, _, _ in tiles}) == 1, tiles
    assert [top for _, top, _ in tiles] == sorted({top for _, top, _ in tiles}), tiles
    assert all(right <= WIDTH for _, _, right in tiles), tiles
    assert len(layout["charts"]) == charts and all(r <= WIDTH for r in layout["charts"]), layout
    assert watch.problems() == []
