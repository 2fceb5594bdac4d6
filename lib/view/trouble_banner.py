"""The sync-trouble banner above every page (dashboard.py calls `show` once, before the page).

It names the campaigns `metrics.trouble.troubled_campaigns` finds (an error when a last sync
failed, else a warning for old data), at most `NAMED` of them, with a link to the Sync page, on
every page but the Sync page itself. It is a fragment refreshed with the header's freshness line
(`ui.REFRESH_EVERY`): a failure or data growing old changes no data version, so it must not wait
for the next full run.

It reports on the sync this process runs: with no engine here (`DIALSTATUS_SYNC_ENABLED=false`,
which serves the stored data only, or the UI started without the launcher, as in AppTest)
nothing is synced, the Sync page says so, and no banner is shown.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from lib.view import ui
from lib.view.metrics.trouble import Trouble, troubled_campaigns
from lib.view.pages import page

NAMED = 3  # campaigns named in the banner; the rest are counted
BANNER_KEY = "trouble_banner"
SYNC_PATH = "sync"
LINK_LABEL = "Open Sync for the details"


def message(troubles: list[Trouble], limit: int = NAMED) -> str:
    """The banner's markdown: a headline, one line per named campaign, then "and N more"."""
    count = len(troubles)
    failed = sum(t.failed for t in troubles)
    if failed == count:
        head = "The last sync failed" + (f" for {count} campaigns" if count > 1 else "")
    elif failed:
        head = f"Sync trouble in {count} campaigns"
    else:
        head = "Old data" if count == 1 else f"Old data in {count} campaigns"
    lines = [
        f"- **{ui.md_escape(t.campaign)}**: {ui.md_escape(t.reason)}" for t in troubles[:limit]
    ]
    if count > limit:
        lines.append(f"- and {count - limit} more")
    return f"**{head}.**\n\n" + "\n".join(lines)


def show(current_path: str = "") -> None:
    """The banner above the page at `current_path` (its `url_path`), when a campaign is in
    trouble; nothing otherwise. Not on the Sync page itself: its campaign table shows every
    campaign's last error and data as of, and its own messages (Sync now, the hand-made request)
    stay the first there."""
    if current_path == SYNC_PATH or ui.services().sync is None:
        return
    _banner()


@st.fragment(run_every=ui.REFRESH_EVERY)
def _banner() -> None:
    services = ui.services()
    if services.sync is None:  # stopped since the full run
        return
    settings = services.settings
    try:
        troubles = ui.read(
            troubled_campaigns, datetime.now(UTC), settings.sync_interval_s, settings.secret_values
        )
    except Exception:  # the banner is a notice: a failed read must not break the page below
        return
    if not troubles:
        return
    alert = st.error if any(t.failed for t in troubles) else st.warning
    sync = page(SYNC_PATH)
    with st.container(key=BANNER_KEY):
        alert(message(troubles), icon=":material/sync_problem:")
        st.page_link(sync.file, label=LINK_LABEL, icon=sync.material_icon)
