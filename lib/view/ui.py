"""Shared Streamlit helpers so page files stay thin: the current view, cached queries, KPI tiles,
charts with their numbers, empty states, freshness and the auto-refresh fragment.

`dashboard.py` builds a `View` once per script run (filters validated from the sidebar widgets,
today's date in the account zone, the data version) and stores it in session state; pages read
it with `view()`. Cached queries are keyed by (database, data version, query, filters, zone,
today, options), so fresh data is never hidden behind a stale cache entry.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from lib.services import Services, get_services
from lib.view import charts, export, labels, metrics, tables
from lib.view import numbers as fmt
from lib.view.filters import (
    P_CAMPAIGN,
    P_DIALSTATUS,
    P_DISPOSITION,
    Filters,
)
from lib.view.pages import page

P_SECTION = "section"  # the Campaign page's open section, a URL parameter
CAMPAIGN_SECTIONS = ("Breakdown", "Composition", "Trends")
VIEW_KEY = "_dialstatus_view"
SEEN_VERSION_KEY = "_dialstatus_seen_version"
PAGE_RUNNING_KEY = "_dialstatus_page_running"  # True while dashboard.py runs the page
REFRESH_EVERY = "15s"
Result = TypeVar("Result")


@dataclass(frozen=True)
class View:
    """Everything a page needs to query the current selection."""

    filters: Filters
    tz: str
    today: date
    version: int
    db: str
    campaigns: tuple[str, ...]  # every known campaign (catalog, config, stored leads)
    dispositions: tuple[str, ...]
    total_leads: int
    show_phones: bool
    demo: bool
    share_query: str = ""  # the current filters as a URL query string


def services() -> Services:
    return get_services()


def view() -> View:
    """The current run's view (set by dashboard.py before the page runs)."""
    current = st.session_state.get(VIEW_KEY)
    if not isinstance(current, View):
        st.error("Open the dashboard from its main address; this page needs the sidebar filters.")
        st.stop()
    return current


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


# GFM turns URLs and e-mail addresses in text into links after escapes are resolved, so no escape
# stops it: an invisible word joiner inside `://`, after `www` and before `@` does.
_AUTOLINK_STARTS = re.compile(r"(?<=\\:)(?=//)|(?<=www)(?=\\\.)|(?=@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def md_escape(text: Any) -> str:
    """Text shown through markdown (st.warning, st.caption...) exactly as typed, never as a link."""
    escaped = _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")
    return _AUTOLINK_STARTS.sub(WORD_JOINER, escaped)


# -- cached queries ----------------------------------------------------------------------------


def qualified_name(function: Callable[..., Any]) -> str:
    """`module.qualname`: what a cache entry is keyed on instead of the function object."""
    return f"{function.__module__}.{function.__qualname__}"


@st.cache_data(max_entries=512, show_spinner=False)
def _cached_query(
    db: str,
    version: int,
    name: str,
    _function: Callable[..., Any],  # not hashed: `name` stands for it in the key
    filters: Filters,
    tz: str,
    today: date,
    options: tuple[tuple[str, Any], ...],
) -> Any:
    del db, version, name  # cache key only: a new database or new data is a new entry
    with services().store.cursor() as cursor:
        return _function(cursor, filters, tz, today, **dict(options))


def query(
    function: Callable[..., Result], filters: Filters | None = None, **options: Any
) -> Result:
    """Runs a `lib.view.metrics` query, `function(cursor, filters, tz, today, **options)`,
    through the cache (keyed on its qualified name, the data version and the arguments)."""
    current = view()
    return _cached_query(
        current.db,
        current.version,
        qualified_name(function),
        function,
        current.filters if filters is None else filters,
        current.tz,
        current.today,
        tuple(sorted(options.items())),
    )


def read(function: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
    """Runs `function(cursor, *args, **kwargs)` on its own cursor, uncached: for what must be
    live (the Sync page's tables, the freshness line) or is asked for once (an export, one
    lead's record)."""
    with services().store.cursor() as cursor:
        return function(cursor, *args, **kwargs)


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_options(
    db: str, version: int, catalog_state: tuple, configured: tuple[str, ...]
) -> dict[str, Any]:
    del db, version, catalog_state
    with services().store.cursor() as cursor:
        return {
            "campaigns": tuple(metrics.campaign_options(cursor, configured)),
            "dispositions": tuple(metrics.disposition_options(cursor)),
            "agents": tuple(metrics.agent_options(cursor)),
            "total_leads": metrics.total_leads(cursor),
        }


def options(db: str, version: int, configured: tuple[str, ...]) -> dict[str, Any]:
    """Known campaigns, dispositions and agents (the filters' choices) and the stored lead count.

    Keyed by the data version and by the campaign catalog's state: adding a campaign on the
    Settings page changes no lead, but must show up in the filter at once."""
    return _cached_options(db, version, read(metrics.catalog_state), configured)


@st.cache_resource(max_entries=256, show_spinner=False)
def _cached_figure(
    name: str,
    _build: Callable[..., go.Figure],
    frame: pd.DataFrame,
    args: tuple[Any, ...],
    number_format: str,
) -> go.Figure:
    del name  # cache key only: it stands for `_build`, which is not hashed
    if _takes_number_format(_build):
        return _build(frame, *args, number_format=number_format)
    return _build(frame, *args)


@functools.cache
def _takes_number_format(build: Callable[..., Any]) -> bool:
    return "number_format" in inspect.signature(build).parameters


def figure(build: Callable[..., go.Figure], frame: pd.DataFrame, *args: Any) -> go.Figure:
    """`build(frame, *args)` (a `lib.view.charts` builder), once per distinct frame (hashed by
    content) and builder (keyed on its qualified name).

    Building a plotly figure validates every property (20-30 ms a chart, the largest part of
    a cached page run); st.plotly_chart only reads the figure (it sends a copy), so one shared
    object serves every view of the same numbers. The number format is part of the key and is
    passed as `number_format=` to a builder that takes it (its labels and hover text)."""
    return _cached_figure(qualified_name(build), build, frame, args, number_format())


# -- filters changed by clicks ------------------------------------------------------------------


def _on_chart_select(chart_key: str, filter_key: str) -> None:
    value = charts.selection_value(st.session_state.get(chart_key))
    if value:
        # A callback runs before the script, so the sidebar widget is not built yet.
        st.session_state[filter_key] = [value]


def _on_focus_campaign(select_key: str) -> None:
    value = st.session_state.get(select_key)
    if value:
        st.session_state[P_CAMPAIGN] = [value]


# -- display ------------------------------------------------------------------------------------


def number_format() -> str:
    """The settings' `number_format` (indian or international): pass it to figure builders and
    `lib.view.numbers`, so a cached figure or table keys on it."""
    return services().settings.number_format


def shown(frame: pd.DataFrame, **columns: Any) -> Any:
    """The frame as st.dataframe shows it: a Styler writing its numbers in the current format
    (`lib.view.numbers.styled`'s column options); the values stay numbers, so sorting is
    numeric, and exports are given the frame itself, never this."""
    return fmt.styled(frame, number_format(), **columns)


def fmt_count(value: int | None) -> str:
    return fmt.count(value, number_format(), missing="–")


def fmt_pct(value: float | None) -> str:
    return fmt.percent(value, number_format(), missing="–")


def _tile_args(value: metrics.KpiValue, previous: metrics.KpiValue | None, period: str) -> dict:
    kpi = value.kpi
    help_text = kpi.help
    if kpi.is_rate:
        shown = fmt_pct(value.value)  # type: ignore[arg-type]
        detail = f"{fmt_count(value.numerator)} of {fmt_count(value.denominator or 0)}"
        if value.small_sample:
            detail += " · small sample"
            help_text += f" Small sample: the denominator is under {metrics.SMALL_SAMPLE}."
        help_text += " " + metrics.SMALL_SAMPLE_HELP
    else:
        shown = fmt_count(value.numerator)
        detail = "" if value.denominator is None else f"{fmt_pct(value.share)} of leads"
    args: dict[str, Any] = {"label": kpi.name, "value": shown, "help": help_text, "border": True}
    if previous is None:
        if detail:
            args.update(delta=detail, delta_color="off", delta_arrow="off")
        return args
    if kpi.is_rate:
        if value.value is not None and previous.value is not None:
            args["delta"] = f"{(value.value - previous.value) * 100:+.1f} pp"
        prev_text = fmt_pct(previous.value)  # type: ignore[arg-type]
    else:
        args["delta"] = fmt.signed_count(value.numerator - previous.numerator, number_format())
        prev_text = fmt_count(previous.numerator)
    if kpi.column in ("leads", "pending"):
        args["delta_color"] = "off"
    description = f"was {prev_text}"
    args["help"] = help_text + f" The change compares with the {period} ({prev_text})."
    args["delta_description"] = f"{detail} · {description}" if detail else description
    if "delta" not in args:
        args.update(delta=args.pop("delta_description"), delta_color="off", delta_arrow="off")
    return args


def kpi_tiles(
    values: list[metrics.KpiValue],
    previous: list[metrics.KpiValue] | None = None,
    period: str = "previous period",
) -> None:
    """The eight KPI tiles, in order, in two rows of four."""
    for row in range(0, len(values), 4):
        columns = st.columns(4)
        for column, index in zip(columns, range(row, min(row + 4, len(values))), strict=False):
            prev = previous[index] if previous is not None else None
            column.metric(**_tile_args(values[index], prev, period))
    if previous is not None:
        st.caption(f"Changes compare with the {period}; “was” is that period's value.")


def downloads(
    frame: pd.DataFrame,
    *,
    key: str,
    file_stem: str,
    sheet: str,
    help: str | None = None,
    labels: tuple[str, str] = ("Download CSV", "Download Excel"),
) -> None:
    """A table's two downloads side by side: its CSV (`{key}_csv`, `{file_stem}.csv`) and the
    same rows as an Excel workbook of one sheet (`{key}_xlsx`, `{file_stem}.xlsx`). Each file is
    built on click, from the frame as shown."""
    csv_label, xlsx_label = labels
    with st.container(horizontal=True, gap="small"):
        st.download_button(
            csv_label,
            data=lambda: export.frame_csv(frame),  # on click; formula-like text neutralised
            file_name=f"{file_stem}.csv",
            mime="text/csv",
            key=f"{key}_csv",
            on_click="ignore",
            icon=":material/download:",
            help=help,
        )
        st.download_button(
            xlsx_label,
            data=lambda: export.frames_xlsx({sheet: frame}),  # on click; text never a formula
            file_name=f"{file_stem}.xlsx",
            mime=export.XLSX_MIME,
            key=f"{key}_xlsx",
            on_click="ignore",
            icon=":material/download:",
            help=help,
        )


def numbers(frame: pd.DataFrame, *, key: str, file_name: str, label: str = "Numbers") -> None:
    """A chart's numbers one click away: a table and its CSV and Excel downloads (`file_name`
    names the CSV; the workbook is the same name ending .xlsx).

    Built only while the expander is open: a closed one costs the browser nothing, so a page of
    charts draws as fast as its charts alone."""
    expander = st.expander(label, icon=":material/table:", key=f"{key}_numbers", on_change="rerun")
    if not expander.open:
        return
    people = tables.for_people(frame)
    with expander:
        st.dataframe(shown(people), hide_index=True)  # the downloads get the plain frame
        stem = file_name.removesuffix(".csv")
        downloads(people, key=key, file_stem=stem, sheet=stem.replace("_", " ").capitalize())


def chart(
    figure: Any,
    frame: pd.DataFrame,
    *,
    key: str,
    file_name: str,
    filter_key: str | None = None,
) -> None:
    """A plotly chart (clickable when `filter_key` names a sidebar filter) and its numbers."""
    if filter_key:
        st.plotly_chart(
            figure,
            key=key,
            on_select=functools.partial(_on_chart_select, key, filter_key),
            selection_mode="points",
            config={"displaylogo": False},
        )
    else:
        st.plotly_chart(figure, key=key, config={"displaylogo": False})
    numbers(frame, key=key, file_name=file_name)


CLICK_HINT = {
    P_DIALSTATUS: "Click a segment to filter by that dial status.",
    P_DISPOSITION: "Click a segment to filter by that disposition.",
}


def choice_notice(param: str, asked: list[str], choices: Sequence[str], noun: str) -> None:
    """Says so when a link's `param` names none of `choices` (a bound widget drops it
    silently, showing its first choice)."""
    unknown = [value for value in asked if value not in choices]
    if unknown:
        st.warning(
            f"The link's {param}={md_escape(unknown[0])} is not {noun} "
            f"(one of {md_escape(', '.join(choices))}); showing {md_escape(choices[0])}.",
            icon=":material/link_off:",
        )


def section_notice(asked: list[str]) -> None:
    """A link naming a Campaign section that does not exist."""
    choice_notice(P_SECTION, asked, CAMPAIGN_SECTIONS, "a section of this page")


def show_leads_link() -> None:
    """Opens the Leads page with the current filters (bound parameters travel with page links)."""
    st.page_link(
        page("leads").file, label="Show leads", icon=page("leads").material_icon, width="content"
    )


def campaign_focus(candidates: list[str]) -> str | None:
    """The Campaign page's single campaign: the filter's one campaign, else a pick that pins it."""
    current = view()
    if len(current.filters.campaigns) == 1:
        return current.filters.campaigns[0]
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    key = "campaign_focus"
    st.selectbox(
        "Campaign to look at",
        candidates,
        index=0,
        key=key,
        on_change=_on_focus_campaign,
        args=(key,),
        help="Choosing one also sets the sidebar's campaign filter, so the link names it.",
    )
    choice = st.session_state.get(key)
    return choice if choice in candidates else candidates[0]


# -- freshness, empty states, refresh ------------------------------------------------------------


def freshness_text(frame: pd.DataFrame, tz: str, limit: int = 4) -> str:
    """ "Data as of (zone): Renewals: 26 Nov 14:05 (3 min ago) · ..." for the given campaigns."""
    now = datetime.now(ZoneInfo(tz))
    parts = []
    for row in frame.itertuples(index=False):
        moment = row.data_as_of
        if moment is None or pd.isna(moment):
            when = "not synced yet"
        else:
            stamp = pd.Timestamp(moment).tz_convert(tz)
            when = f"{labels.time_text(stamp, now.tzinfo)} ({tables.ago(stamp, now)})"
        parts.append(f"{md_escape(charts.label(row.campaign, 30))}: {when}")
    if not parts:
        return "No campaign has data yet."
    shown = parts[:limit]
    if len(parts) > limit:
        shown.append(f"and {len(parts) - limit} more (Sync page)")
    return f"Data as of ({tz}): " + " · ".join(shown)


@st.fragment(run_every=REFRESH_EVERY)
def live_status() -> None:
    """Re-runs the page when new deliveries land (data version changed), and shows freshness.

    Only its own 15 s ticks rerun the app. Inside a full run the page already shows the version
    dashboard.py read at the top: data landing since then waits for the next tick, because a
    rerun here would restart the run that carries a button press (Sync now) and drop it."""
    current = view()
    if not st.session_state.get(PAGE_RUNNING_KEY):
        try:
            version = services().store.data_version()
        except Exception:
            return
        if version != st.session_state.get(SEEN_VERSION_KEY, version):
            st.session_state[SEEN_VERSION_KEY] = version
            st.rerun(scope="app")
    names = current.filters.campaigns or current.campaigns
    frame = read(metrics.data_as_of, names)
    st.caption(
        freshness_text(frame, current.tz) + f" · checks for new data every {REFRESH_EVERY}",
    )


def sync_activity() -> int:
    """Requests queued or in flight (the engine's queue, else the request log)."""
    engine = services().sync
    if engine is not None:
        try:
            status = engine.status()
        except Exception:  # the engine's view is optional: fall back to the request log
            status = None
        if isinstance(status, dict):
            return len(status.get("queue") or []) + len(status.get("in_flight") or [])
    return read(metrics.active_requests)


def empty_state(*, lead_count: int | None = None) -> bool:
    """Shows an explanation and returns True when there is nothing to chart."""
    current = view()
    if not current.campaigns:
        st.info(
            "**No campaign configured yet.** Add the CloudAgent campaigns to follow on the "
            "Settings page (or set `DIALSTATUS_CAMPAIGNS`); the dashboard fills in after the "
            "first sync.",
            icon=":material/campaign:",
        )
        st.page_link(
            page("settings").file, label="Open Settings", icon=page("settings").material_icon
        )
        return True
    if current.total_leads == 0:
        if sync_activity():
            st.info(
                "**Sync in progress.** CloudAgent has been asked for the campaigns' leads; they "
                "appear here as soon as its delivery lands (this page refreshes itself).",
                icon=":material/sync:",
            )
        else:
            st.info(
                "**No lead data yet.** The campaigns are configured but nothing has been "
                "delivered. Start a sync from the Sync page.",
                icon=":material/hourglass_empty:",
            )
        st.page_link(page("sync").file, label="Open Sync", icon=page("sync").material_icon)
        return True
    if lead_count == 0:
        st.info(
            "**Nothing matches the filters.** Widen the date range or remove a filter in the "
            "sidebar.",
            icon=":material/filter_alt_off:",
        )
        return True
    return False


def page_header(title: str, caption: str | None = None) -> None:
    st.header(title, anchor=False)
    if caption:
        st.caption(caption)
    live_status()


def with_percent(frame: pd.DataFrame, column: str = "share") -> pd.DataFrame:
    """A copy for the numbers table: the 0-1 share column as a percentage with one decimal."""
    if column not in frame:
        return frame
    result = frame.copy()
    result[column] = (result[column] * 100).round(1)
    return result.rename(columns={column: "share %"})


_BEST = "background-color: rgba(0, 158, 115, 0.28); font-weight: 600"
_WORST = "background-color: rgba(213, 94, 0, 0.28); font-weight: 600"


def comparison(table: pd.DataFrame, *, key: str) -> None:
    """The campaign comparison table: sortable, each rate's best and worst campaign highlighted
    (among campaigns whose denominator is not a small sample)."""
    marks = metrics.best_and_worst(table)
    css = {"best": _BEST, "worst": _WORST}

    def highlight(column: pd.Series) -> list[str]:
        return [css.get(marks.get((i, str(column.name)), ""), "") for i in range(len(column))]

    styled = shown(table).apply(highlight, axis=0)
    rates = {
        k.name: st.column_config.NumberColumn(k.name, format="%.1f%%", help=k.help)
        for k in metrics.KPIS
        if k.is_rate
    }
    st.dataframe(styled, hide_index=True, key=key, column_config=rates)
    st.caption(
        "Click a column header to sort. Green = best, red = worst for each rate, among "
        f"campaigns with at least {metrics.SMALL_SAMPLE} in the rate's denominator."
    )
