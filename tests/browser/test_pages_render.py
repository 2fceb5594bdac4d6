"""Every page opens from its own link, draws its charts, and stays quiet: no console error (but
the deep link's two known 404s), no page error, no request to another host. A full-page
screenshot of each goes to artifacts/screenshots; the Overview, Campaign, Progress and Agents
ones also give the README's images (written to docs/screenshots when
UPDATE_README_SCREENSHOTS=1)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from lib.view.pages import page_paths
from tests.browser import helpers
from tests.support.expected import KPI_LABELS, PROGRESS_TILES
from tests.support.server import PROJECT_ROOT

pytestmark = pytest.mark.browser

README_SHOTS = PROJECT_ROOT / "docs" / "screenshots"
README_SHOT_MAX_BYTES = 400_000
SYNC_METRICS = [
    *("Requests in window", "Next free slot", "Queued", "Awaiting delivery"),
    *("Received", "Size", "Rows stored", "With warnings"),  # the newest delivery, inspected
    *("Bodies kept", "Bodies pruned", "Deliveries folder", "Free disk"),
]


@dataclass(frozen=True)
class PageCase:
    name: str
    link: str
    heading: str
    charts: int  # plotly charts the page draws on the demo data
    metrics: list[str]
    readme_until: str | None = None  # README shot: from the top to the bottom of this element


PAGES = [
    PageCase("overview", "/", "Overview", 3, KPI_LABELS, ".st-key-overview_disposition_chart"),
    PageCase(
        "campaign",
        "/campaign?campaign=Renewals_Q4&range=last_30d",
        "Campaign",
        2,  # its first section, Breakdown: dial status and the disposition Pareto
        KPI_LABELS,
        ".st-key-campaign_pareto_chart",
    ),
    PageCase(
        "progress",
        "/progress",
        "Progress",
        4,  # the funnel, attempts, and the Activity section's per hour and per day
        PROGRESS_TILES,
        ".st-key-progress_funnel_chart",
    ),
    PageCase(
        "agents",
        "/agents",
        "Agents",
        2,
        ["Short answered calls (under 10 s)"],
        ".st-key-agents_conversion_chart",
    ),
    PageCase("leads", "/leads", "Leads", 0, []),
    PageCase("sync", "/sync", "Sync", 0, SYNC_METRICS),
    PageCase("settings", "/settings", "Settings", 0, []),
]


def test_every_registered_page_has_a_case():
    assert sorted(case.name for case in PAGES) == sorted(page_paths())


@pytest.mark.parametrize("case", PAGES, ids=[case.name for case in PAGES])
def test_page_renders_without_errors(case, page, watch, demo_server, screenshot_dir):
    url = demo_server.base_url + case.link
    helpers.open_page(
        page, url, heading=case.heading, charts=case.charts, metrics=len(case.metrics)
    )

    assert helpers.exceptions(page) == []
    assert list(helpers.kpis(page)) == case.metrics
    if case.name == "leads":
        page.get_by_test_id("stDataFrame").first.wait_for()  # a lazily loaded component
    if case.name == "campaign":
        assert helpers.tags(page, "Campaign") == ["Renewals_Q4"]
        assert page.get_by_test_id("stHeading").filter(has_text="Renewals_Q4").count() == 1

    helpers.full_screenshot(page, screenshot_dir / f"{case.name}.png")
    if case.readme_until:
        readme_screenshot(page, case.readme_until, screenshot_dir / f"readme-{case.name}.png")

    assert watch.problems() == []
    assert watch.requests, "the request listener saw nothing"


def readme_screenshot(page, until: str, path: Path) -> None:
    """The top of the page down to `until` (the key charts), 1400 px wide, as a palette PNG."""
    box = page.locator(until).bounding_box()
    assert box is not None, until
    width = page.viewport_size["width"]
    page.screenshot(
        path=str(path), clip={"x": 0, "y": 0, "width": width, "height": box["y"] + box["height"]}
    )
    image = Image.open(path).convert("RGB")
    image.quantize(colors=192, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )
    assert image.width == 1400
    assert path.stat().st_size < README_SHOT_MAX_BYTES, path.stat().st_size
    if os.environ.get("UPDATE_README_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        (README_SHOTS / path.name.removeprefix("readme-")).write_bytes(path.read_bytes())


def test_readme_shows_the_screenshots_and_lists_every_url_parameter():
    """The README's images exist, are the size they should be, and the parameter table names
    every public URL parameter and every range preset (lib/view/filters.py)."""
    from lib.fields import DIAL_BUCKETS, LEAD_STATUSES
    from lib.view.filters import PARAM_NAMES, PROGRESS_STATES, RANGE_PRESETS

    readme = (PROJECT_ROOT / "README.md").read_text()
    for name in (case.name for case in PAGES if case.readme_until):
        path = README_SHOTS / f"{name}.png"
        assert f"](docs/screenshots/{name}.png)" in readme
        assert Image.open(path).width == 1400
        assert path.stat().st_size < README_SHOT_MAX_BYTES
    section = readme.split("## URL parameters", 1)[1].split("\n## ", 1)[0]
    for value in (*PARAM_NAMES, *RANGE_PRESETS, *DIAL_BUCKETS, *LEAD_STATUSES, *PROGRESS_STATES):
        assert f"`{value}`" in section, value
