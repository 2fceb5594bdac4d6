"""Saved views in the UI: the link of the current view (the one the sidebar's Share button shows),
naming it, the list every viewer sees, and the operators' rename and delete.

A saved view stores the Share link without its host: the page's path and the same query
(`/campaign?campaign=X&range=last_30d&basis=updated`). Shown again, a link is rebuilt from its
parts before it becomes an href (`href`): the path must be a registered page and every query
parameter is percent-encoded anew, so a stored row, however it was written, can neither leave
the dashboard (no scheme, no host, no `//` or backslash) nor run script (`javascript:`).
Names are shown through `ui.md_escape` (markdown labels) or as plain text (tables, select boxes).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pandas as pd

from lib.services import get_services
from lib.store import saved_views as store_views
from lib.view import access
from lib.view.pages import DEFAULT_PAGE, page_paths
from lib.view.ui import CAMPAIGN_SECTIONS, P_SECTION

MAX_NAME = store_views.MAX_NAME
SavedViewError = store_views.SavedViewError


@dataclass(frozen=True)
class Shown:
    """A saved view as the sidebar and Settings show it."""

    id: int
    name: str  # raw: escape it for markdown, show it as is in plain-text widgets
    href: str  # app-relative, rebuilt from checked parts


def link_query(share_query: str, page_path: str, section: str | None) -> str:
    """The query of the current view's link: the filters' query, plus the Campaign page's open
    section when it is not the default one (the default is absent from links)."""
    if page_path == "campaign" and section in CAMPAIGN_SECTIONS[1:]:
        return "&".join(filter(None, [share_query, f"{P_SECTION}={section}"]))
    return share_query


def app_link(page_path: str, query: str) -> str:
    """The link stored for a view: `/<page>?<query>` (`/?<query>` for the default page)."""
    path = "" if page_path in ("", DEFAULT_PAGE.path) else page_path
    return f"/{path}?{query}" if query else f"/{path}"


def href(link: str, base_path: str = "") -> str | None:
    """The href that opens a stored link under the app's base path (server.baseUrlPath), rebuilt
    from its parts; None when the link is not a page of this dashboard."""
    try:
        store_views.check_link(link)
        parts = urlsplit(link)
    except (SavedViewError, ValueError):
        return None
    if parts.scheme or parts.netloc or parts.fragment:
        return None
    path = parts.path.strip("/")
    if path == DEFAULT_PAGE.path:
        path = ""
    if path and path not in page_paths():
        return None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode(pairs, quote_via=quote, safe="")
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    return f"{base}/{path}" + (f"?{query}" if query else "")


def shown(base_path: str = "") -> list[Shown]:
    """Every saved view whose link opens a page of this dashboard, by name."""
    found = []
    for view in store_views.list_views(get_services().store):
        target = href(view.link, base_path)
        if target is not None:
            found.append(Shown(view.id, view.name, target))
    return found


def save(name: str | None, page_path: str, query: str) -> str:
    """Names the current view for everyone; returns the stored name. SavedViewError (nothing
    written) for an empty, too long or taken name."""
    link = app_link(page_path, query)
    if href(link) is None:
        raise SavedViewError("This page cannot be saved as a view.")
    view = store_views.create_view(get_services().store, name, link, access.signed_in_as())
    return view.name


def _operator(action: str) -> None:
    if not access.is_operator():
        raise SavedViewError(f"Only operators can {action} saved views.")


def rename(view_id: int, name: str | None) -> str:
    """An operator renames a view; returns the stored name (SavedViewError otherwise)."""
    _operator("rename")
    return store_views.rename_view(get_services().store, view_id, name, access.signed_in_as())


def delete(view_id: int) -> bool:
    """An operator deletes a view; False when it was gone already."""
    _operator("delete")
    return store_views.delete_view(get_services().store, view_id)


def table() -> pd.DataFrame:
    """The saved views for Settings: id, then what is shown (plain-text cells): name, link, who
    saved it and when."""
    rows = store_views.list_views(get_services().store)
    return pd.DataFrame(
        {
            "id": [v.id for v in rows],
            "name": [v.name for v in rows],
            "link": [v.link for v in rows],
            "saved by": [v.created_by for v in rows],
            "saved at": [v.created_at for v in rows],
        }
    )
