"""The page registry: every page of the dashboard, once. The page menu (`dashboard.py`), the
page-hints middleware (`streamlit_app.py`: which paths are pages, which draw charts) and the
tests read this table; adding a page is adding a row here and its file in `app_pages/`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    path: str  # the URL path (`/<path>`); the first page is also the default at `/`
    title: str
    icon: str  # a Material Symbols name
    file: str  # the page script, relative to the project root
    charts: bool  # draws plotly charts: its HTML preloads and imports plotly at first idle
    help: str

    @property
    def material_icon(self) -> str:
        return f":material/{self.icon}:"


PAGES: tuple[Page, ...] = (
    Page("overview", "Overview", "dashboard", "app_pages/overview.py", True,
         "KPIs, dial-status and disposition breakdowns per campaign, and a comparison table "
         "of every campaign."),
    Page("campaign", "Campaign", "campaign", "app_pages/campaign.py", True,
         "One campaign in depth: deltas vs the previous period, breakdowns, composition and "
         "trends."),
    Page("progress", "Progress", "donut_large", "app_pages/progress.py", True,
         "How much of each list is left (lead progress, penetration, completion, retries left), "
         "outcome by attempt number, and the checks: stale pending leads, the calling window, "
         "do-not-call leads still pending, hygiene."),
    Page("agents", "Agents", "support_agent", "app_pages/agents.py", True,
         "Per agent: leads handled, answered, conversions, talk time and wrap-up timeouts; "
         "conversions per agent (click to filter) and talk time per campaign."),
    Page("leads", "Leads", "table_rows", "app_pages/leads.py", False,
         "The filtered lead rows, searchable, with CSV and Excel exports."),
    Page("sync", "Sync", "sync", "app_pages/sync.py", False,
         "Freshness per campaign, the request log, the rate limit, Sync now and a hand-made "
         "API request."),
    Page("settings", "Settings", "settings", "app_pages/settings.py", False,
         "Campaigns to sync and the disposition category map."),
)  # fmt: skip
DEFAULT_PAGE = PAGES[0]
_BY_PATH = {page.path: page for page in PAGES}


def page(path: str) -> Page:
    """The registered page at `path` (KeyError for an unknown one: a typo fails loudly)."""
    return _BY_PATH[path]


def page_paths() -> tuple[str, ...]:
    """Every page's URL path (a deep link is `<base>/<path>`)."""
    return tuple(_BY_PATH)


def chart_paths() -> tuple[str, ...]:
    """URL paths of the pages that draw charts; "" is the default page at `<base>/`."""
    default = ("",) if DEFAULT_PAGE.charts else ()
    return default + tuple(p.path for p in PAGES if p.charts)
