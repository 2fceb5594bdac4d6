"""The UI entry script: global sidebar filters bound to the URL, then the page.

Run through the launcher (`streamlit run streamlit_app.py`); tests run this file with AppTest.
The filters' keys are the public URL parameter names (lib/view/filters.py). On a session's first run
the link's parameters are validated before any widget exists, so every ignored value gets a
visible notice (the bound widgets drop the same values silently). The filters that show labels
(date range, basis, statuses, progress) are synced with the URL by lib/view/linked.py; the others
are bound. Values the widgets keep but the filters ignore (a `from` after `to`) are shown with a
warning in the sidebar.
"""

from __future__ import annotations

import streamlit as st

from lib.config import ConfigError
from lib.fields import DIAL_BUCKETS, LEAD_STATUSES
from lib.services import get_services
from lib.store import StoreError
from lib.view import access, linked, metrics, saved_views, ui
from lib.view.filters import (
    BASES,
    DATE_BOUNDS,
    NO_AGENT,
    P_AGENT,
    P_BASIS,
    P_CAMPAIGN,
    P_DIALSTATUS,
    P_DISPOSITION,
    P_FROM,
    P_PROGRESS,
    P_RANGE,
    P_STATUS,
    P_TO,
    PARAM_NAMES,
    PROGRESS_HELP,
    PROGRESS_STATES,
    RANGE_PRESETS,
    Filters,
    describe,
    params_from_widgets,
    parse_query_params,
    to_query_string,
    today_in,
    widget_values,
)
from lib.view.labels import (
    BASIS_LABELS,
    DIAL_STATUS_LABELS,
    LEAD_STATUS_LABELS,
    PROGRESS_LABELS,
    RANGE_LABELS,
)
from lib.view.pages import DEFAULT_PAGE, PAGES
from lib.view.trouble_banner import show as show_trouble_banner

STARTED = "_dialstatus_started"
NOTICES = "_dialstatus_notices"

st.set_page_config(
    page_title="Campaign dial status",
    page_icon="📞",  # an emoji favicon is inlined; a :material/ icon is fetched from Google
    layout="wide",
)

try:
    services = get_services()
except (ConfigError, StoreError) as exc:
    st.error(f"The dashboard cannot start: {ui.md_escape(exc)}", icon=":material/error:")
    st.stop()
except OSError as exc:  # e.g. the data folder is read-only and the callback secret is missing
    where = exc.filename.rsplit("/", 1)[-1] if isinstance(exc.filename, str) else "its data"
    st.error(
        f"The dashboard cannot start: it cannot write {ui.md_escape(where)} "
        f"({ui.md_escape(exc.strerror or exc)}). Make the folder of DIALSTATUS_DB writable by "
        "the user running the server.",
        icon=":material/error:",
    )
    st.stop()

settings = services.settings
# Declared before sign-in, so a shared deep link (/sync?campaign=X) opens its own page once the
# viewer has signed in, and before the sidebar, so the Share link can name the page's URL state.
page = st.navigation(
    [
        st.Page(
            entry.file,
            title=entry.title,
            icon=entry.material_icon,
            help=entry.help,
            **({"default": True} if entry == DEFAULT_PAGE else {"url_path": entry.path}),
        )
        for entry in PAGES
    ],
    position="top" if access.signed_in(settings.auth) else "hidden",
)
access.require_viewer(settings.auth)
tz = settings.timezone
today = today_in(tz)
version = services.store.data_version()
db = str(services.store.path)
known = ui.options(db, version, tuple(settings.campaigns))


def _named(name: str) -> list[str]:
    """The values the link or a chart click names for a filter (offered even beyond the top)."""
    return [*st.query_params.get_all(name), *(st.session_state.get(name) or [])]


campaign_options: list[str] = ui.read(
    metrics.with_named, known["campaigns"], _named(P_CAMPAIGN), "campaign_name"
)
disposition_options: list[str] = ui.read(
    metrics.with_named, known["dispositions"], _named(P_DISPOSITION), "disposition"
)
agent_options: list[str] = ui.read(metrics.with_named, known["agents"], _named(P_AGENT), "agent")

# Chart clicks set a filter's key in their on_select callback, which runs before this script,
# so the sidebar widgets below pick the value up (and write it to the URL).
if STARTED not in st.session_state:
    # The session's first run: say what the link carried that is ignored. The bound widgets
    # below validate the same way (exact option values, ISO dates), drop what they reject from
    # the URL, and hold the rest; the labelled ones start from this very parse. The filters are
    # always computed from what the widgets hold.
    raw = {name: st.query_params.get_all(name) for name in PARAM_NAMES}
    linked_filters, st.session_state[NOTICES] = parse_query_params(
        raw, campaign_options, disposition_options, today, agent_options
    )
    linked.seed(widget_values(linked_filters))
    st.session_state[STARTED] = True


def _clear_filters() -> None:
    for name, value in widget_values(Filters()).items():
        st.session_state[name] = value


with st.sidebar:
    st.subheader("Filters", anchor=False)
    st.multiselect(  # no "Select all": none chosen already means all
        "Campaign",
        campaign_options,
        key=P_CAMPAIGN,
        select_all=False,
        bind="query-params",
        placeholder="All campaigns",
        help="Empty = every campaign.",
    )
    chosen_range = st.selectbox(
        "Date range",
        RANGE_PRESETS,
        format_func=RANGE_LABELS.get,
        key=P_RANGE,
        help="Presets are relative to the day the page is opened: a shared link to the last 7 "
        f"days always shows the last 7 days. Days are calendar days in {tz}.",
    )
    if chosen_range == "custom":
        left, right = st.columns(2)
        for column, label, key in ((left, "From", P_FROM), (right, "To", P_TO)):
            column.date_input(
                label,
                value=None,
                min_value=DATE_BOUNDS[0],
                max_value=DATE_BOUNDS[1],
                key=key,
                bind="query-params",
                format="YYYY-MM-DD",
                help=f"Inclusive calendar day in {tz}.",
            )
    st.radio(
        "Date basis",
        BASES,
        format_func=BASIS_LABELS.get,
        key=P_BASIS,
        horizontal=True,
        help="Which date of a lead the range applies to: its last update, or the day it was "
        "uploaded (created).",
    )
    st.multiselect(
        "Lead status",
        LEAD_STATUSES,
        format_func=LEAD_STATUS_LABELS.get,
        key=P_STATUS,
        select_all=False,
        placeholder="Any status",
        help="An empty status counts as Pending.",
    )
    st.multiselect(
        "Dial status",
        DIAL_BUCKETS,
        format_func=DIAL_STATUS_LABELS.get,
        key=P_DIALSTATUS,
        select_all=False,
        placeholder="Any dial status",
        help="The API's buckets: No answer groups not answered, ringing, no response...; Failed "
        "is any other outcome (busy, invalid number, congestion...); Not dialled = never dialled.",
    )
    st.multiselect(
        "Disposition",
        disposition_options,
        key=P_DISPOSITION,
        select_all=False,
        bind="query-params",
        placeholder="Any disposition",
    )
    st.multiselect(
        "Agent",
        agent_options,
        key=P_AGENT,
        select_all=False,
        bind="query-params",
        placeholder="Any agent",
        help="The agent who took the lead's last call: the agent's name, or the agent id when "
        f"the name is empty; {NO_AGENT} = neither.",
    )
    st.multiselect(
        "Lead progress",
        PROGRESS_STATES,
        format_func=PROGRESS_LABELS.get,
        key=P_PROGRESS,
        select_all=False,
        placeholder="Any progress",
        help="; ".join(f"{PROGRESS_LABELS[s]}: {PROGRESS_HELP[s]}" for s in PROGRESS_STATES) + ".",
    )

linked.write_back()
widget_state = {name: st.session_state.get(name) for name in PARAM_NAMES}
if chosen_range != "custom":
    widget_state[P_FROM] = widget_state[P_TO] = None  # kept by the widgets, unused by presets
filters, widget_notices = parse_query_params(
    params_from_widgets(widget_state), campaign_options, disposition_options, today, agent_options
)


SAVED_VIEW_NAME = "saved_view_name"
_SAVED_VIEW_MESSAGE = "_saved_view_message"


def _save_view(page_path: str, query: str) -> None:
    """The Save button's callback: the view as this run showed it, under the typed name."""
    try:
        name = saved_views.save(st.session_state.get(SAVED_VIEW_NAME), page_path, query)
    except saved_views.SavedViewError as exc:
        st.session_state[_SAVED_VIEW_MESSAGE] = ("error", str(exc))
        return
    st.session_state[SAVED_VIEW_NAME] = ""
    st.session_state[_SAVED_VIEW_MESSAGE] = ("success", f"Saved the view {name!r}.")


def _saved_views_sidebar(page_path: str, query: str) -> None:
    """Naming the current view, and every saved view as a link that opens it (in a new tab, a
    fresh session: the link's filters win, as with a shared link)."""
    st.subheader("Saved views", anchor=False)
    with st.popover("Save this view", icon=":material/bookmark_add:", key="save_view"):
        st.text_input(
            "Name",
            key=SAVED_VIEW_NAME,
            placeholder=f"1 to {saved_views.MAX_NAME} characters",
            help="Listed here for everyone; it opens this page with these filters. Names are "
            "unique, ignoring case. Operators rename and delete views on Settings.",
        )
        st.button("Save", key="save_view_submit", on_click=_save_view, args=(page_path, query))
    message = st.session_state.pop(_SAVED_VIEW_MESSAGE, None)
    if message:
        kind, text = message
        getattr(st, kind)(ui.md_escape(text))
    views = saved_views.shown(st.get_option("server.baseUrlPath"))
    if not views:
        st.caption("No saved view yet.")
    with st.container(key="saved_views"):
        for view in views:
            st.link_button(
                ui.md_escape(view.name),
                view.href,
                key=f"saved_view_{view.id}",
                icon=":material/bookmark:",
                width="stretch",
            )


share_query = to_query_string(filters)
with st.sidebar:
    st.caption(ui.md_escape(describe(filters, today)))
    for notice in widget_notices:
        if notice not in (st.session_state.get(NOTICES) or []):  # not said at the top already
            st.warning(ui.md_escape(notice), icon=":material/warning:")
    left, right = st.columns(2)
    left.button("Clear filters", key="clear_filters", on_click=_clear_filters, width="stretch")
    # The Share link's query; a saved view stores the same link without its host.
    link_query = saved_views.link_query(
        share_query, page.url_path, st.query_params.get(ui.P_SECTION)
    )
    with right.popover("Share", icon=":material/share:", key="share", width="stretch"):
        base = st.context.url or settings.public_url or ""
        st.caption("The full link of this view (same filters, same numbers):")
        st.code(f"{base}?{link_query}" if link_query else base, language=None, wrap_lines=True)
    _saved_views_sidebar(page.url_path, link_query)

st.session_state[ui.VIEW_KEY] = ui.View(
    filters=filters,
    tz=tz,
    today=today,
    version=version,
    db=db,
    campaigns=tuple(campaign_options),
    dispositions=tuple(disposition_options),
    total_leads=int(known["total_leads"]),
    show_phones=settings.show_phones,
    demo=settings.demo,
    share_query=share_query,
)
# This run shows `version`: the header's live check (`ui.live_status`) reruns the app on its own
# ticks when the data moves past it, never inside this run (that dropped Sync now presses).
st.session_state[ui.SEEN_VERSION_KEY] = version

if settings.demo:
    st.info(
        "**Demo data.** No CloudAgent API key is configured, so the dashboard syncs generated "
        "campaigns from its built-in sandbox. Set `CLOUDAGENT_API_KEY` and "
        "`CLOUDAGENT_USERNAME` to use real data.",
        icon=":material/science:",
    )


def _dismiss_notices() -> None:
    st.session_state[NOTICES] = []


notices = st.session_state.get(NOTICES) or []
if notices:
    with st.container(key="link_notices"):
        for notice in notices:
            st.warning(ui.md_escape(notice), icon=":material/link_off:")
        st.button("Dismiss", key="dismiss_notices", on_click=_dismiss_notices)

show_trouble_banner(page.url_path)  # every page: a failed or old sync, by campaign
st.session_state[ui.PAGE_RUNNING_KEY] = True
try:
    page.run()
finally:
    st.session_state[ui.PAGE_RUNNING_KEY] = False
