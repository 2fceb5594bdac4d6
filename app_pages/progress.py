"""Progress (`/progress`): how much of each list is left, whether redials still pay, and the
checks (stale pending leads, the calling window, do-not-call leads still pending, hygiene).

Every count links to the Leads page with the matching filters; every definition is a help text."""

import pandas as pd
import streamlit as st

from lib.view import activity_charts, export, metrics, operations, progress_charts, tables, ui
from lib.view.filters import P_PROGRESS, PROGRESS_STATES

current = ui.view()
ui.page_header(
    "Progress",
    "How much of each list is left, whether redials still pay, and what needs attention.",
)
if ui.empty_state():
    st.stop()

policy = operations.dial_policy()
rules = {
    "window_start": policy.window_start,
    "window_end": policy.window_end,
    "stale_days": policy.stale_days,
}
table = ui.query(metrics.progress_table, **rules)
selection = table.iloc[0]
if ui.empty_state(lead_count=int(selection["leads"])):
    st.stop()

helps = metrics.progress_definitions(current.tz, **rules)
links = [
    metrics.count_links(row, current.filters, current.today, policy.stale_days)
    for row in table.to_dict("records")
]


def _tile(column, key: str, value: str, detail: str = "") -> None:
    """A tile with its definition, and below it the link to its leads."""
    column.metric(metrics.PROGRESS_COLUMNS[key], value, help=helps[key], border=True)
    link = links[0].get(key)
    text = f"{detail} · " if detail else ""
    if link:
        column.markdown(f"{text}[Show these leads]({link})")
    elif detail:
        column.caption(detail)


def _rate_detail(numerator: int, denominator: int) -> str:
    return f"{ui.fmt_count(numerator)} of {ui.fmt_count(denominator)}"


leads = int(selection["leads"])
completed = int(selection["success"] + selection["failed"] + selection["out_of_tries"])
row = st.columns(4)
_tile(row[0], "leads", ui.fmt_count(leads))
_tile(
    row[1],
    "penetration",
    ui.fmt_pct(selection["penetration"]),
    _rate_detail(int(selection["attempted"]), leads),
)
_tile(row[2], "completion", ui.fmt_pct(selection["completion"]), _rate_detail(completed, leads))
_tile(row[3], "retries_left", ui.fmt_count(selection["retries_left"]))
allowed = table[~table["is_total"] & ~table["is_other"]]
st.caption(
    "Attempts allowed: "
    + " · ".join(
        f"{ui.md_escape(c)}: {ui.md_escape(text)}"
        for c, text in zip(allowed["campaign"], allowed["allowed_text"], strict=True)
    )
    + ". "
    + ui.md_escape(helps["allowed"])
)
if int(selection["retries_unknown"]):
    st.caption(
        f"{ui.fmt_count(selection['retries_unknown'])} open leads belong to campaigns with no "
        "attempt count at all: their retries are not counted (set the attempts allowed on "
        "Settings)."
    )

st.subheader("Lead progress", anchor=False)
mode = st.segmented_control(
    "Bars show",
    ["Counts", "100%"],
    default="Counts",
    required=True,
    key="progress_bar_mode",
    help="Counts compare volumes; 100% compares each campaign's progress.",
)
funnel = metrics.progress_funnel(table)
funnel_numbers = ui.with_percent(funnel.drop(columns=["state"]))
ui.chart(
    ui.figure(progress_charts.funnel_bars, funnel, mode == "100%"),
    funnel_numbers,
    key="progress_funnel_chart",
    file_name="lead_progress.csv",
    filter_key=P_PROGRESS,
)
st.caption(
    f"The first bar is the whole selection ({metrics.ALL_SELECTED}); then each campaign. "
    + " ".join(ui.md_escape(helps[state]) for state in PROGRESS_STATES)
    + " Click a segment to filter by that progress state."
)


def _linked_table(columns: tuple[str, ...], key: str) -> None:
    """Per campaign, each count a link to its leads (showing the count); rates as percentages."""
    shown = pd.DataFrame({"Campaign": table["campaign"]})
    config = {"Campaign": st.column_config.TextColumn(help="The whole selection first.")}
    for column in columns:
        label = metrics.PROGRESS_COLUMNS[column]
        values = table[column]
        if column in metrics.RATE_COLUMNS:
            shown[label] = values * 100
            config[label] = st.column_config.NumberColumn(format="%.1f%%", help=helps[column])
        elif column == "allowed_text":
            shown[label] = values
            config[label] = st.column_config.TextColumn(help=helps["allowed"])
        elif not any(row_links.get(column) for row_links in links):
            shown[label] = values
            config[label] = st.column_config.NumberColumn(help=helps[column])  # Styler formats
        else:
            # The link carries its count after "#", which the cell shows (a count no filter
            # can name, 0 or the lumped campaigns', is "#n" alone: the count, no Leads link).
            shown[label] = [
                f"{row_links.get(column) or ''}#{ui.fmt_count(n)}"
                for n, row_links in zip(values, links, strict=True)
            ]
            config[label] = st.column_config.LinkColumn(display_text=r"#(.+)$", help=helps[column])
    st.dataframe(ui.shown(shown), hide_index=True, key=key, column_config=config)


_linked_table(
    (
        "allowed_text",
        "leads",
        *PROGRESS_STATES,
        "penetration",
        "completion",
        "retries_left",
    ),
    "progress_by_campaign",
)
if table["is_other"].any():
    st.caption(
        f"The {metrics.CHART_TOP} campaigns with the most leads; the rest as "
        f"{metrics.OTHER_CAMPAIGNS} (pick them in the sidebar to follow their links)."
    )
numbers = metrics.progress_numbers(table)
ui.numbers(numbers, key="progress_numbers", file_name="progress_by_campaign.csv")

st.subheader("Outcome by attempt number", anchor=False)
outcomes = ui.query(metrics.attempt_outcomes)
outcome_numbers = ui.with_percent(outcomes, "answer_rate").rename(
    columns={"share %": "answer rate %"}
)
if outcomes.empty:
    st.info("No lead in the selection has been dialled yet.", icon=":material/info:")
else:
    ui.chart(
        ui.figure(progress_charts.attempt_outcomes, outcomes),
        outcome_numbers,
        key="progress_attempts_chart",
        file_name="outcome_by_attempt.csv",
    )
    st.caption(ui.md_escape(helps["attempt_outcomes"]))

activity_charts.section(current.filters, "progress")

st.subheader("Checks", anchor=False)
row = st.columns(5)
_tile(row[0], "stale_pending", ui.fmt_count(selection["stale_pending"]))
_tile(row[1], "outside_window", ui.fmt_count(selection["outside_window"]))
_tile(row[2], "dnc_pending", ui.fmt_count(selection["dnc_pending"]))
_tile(row[3], "answered_no_disposition", ui.fmt_count(selection["answered_no_disposition"]))
_tile(
    row[4],
    "wrap_up_share",
    ui.fmt_pct(selection["wrap_up_share"]),
    _rate_detail(int(selection["wrap_up"]), int(selection["with_disposition"])),
)
_linked_table(
    (
        "stale_pending",
        "outside_window",
        "dnc_pending",
        "answered",
        "answered_no_disposition",
        "wrap_up",
        "wrap_up_share",
    ),
    "progress_checks",
)
st.caption(
    "Answered, no disposition links to the answered leads: those with an empty Disposition are "
    "the ones counted. The Leads page has no filter by hour, so the leads outside the calling "
    "window are listed below."
)

outside = int(selection["outside_window"])
st.markdown(f"**Last calls outside the calling window** ({ui.md_escape(helps['outside_window'])})")
window_rows = ui.query(
    metrics.window_leads,
    window_start=policy.window_start,
    window_end=policy.window_end,
    show_phones=current.show_phones,
)
if window_rows.empty:
    st.success("Every last call in the selection is inside the calling window.")
else:
    st.dataframe(
        ui.shown(window_rows),
        hide_index=True,
        key="progress_window_leads",
        column_config=tables.column_config(window_rows, current.tz),
    )
    more = outside - len(window_rows)
    st.caption(
        f"The {ui.fmt_count(len(window_rows))} most recent of {ui.fmt_count(outside)}, times in "
        f"{current.tz}"
        + (f" ({ui.fmt_count(more)} more not shown)" if more > 0 else "")
        + ("" if current.show_phones else "; phone numbers show their last 4 digits only")
        + "."
    )

st.download_button(
    "Download Excel (the page's numbers)",
    data=lambda: export.frames_xlsx(
        {
            "Progress by campaign": numbers,
            "Lead progress": funnel_numbers,
            "Outcome by attempt": outcome_numbers,
            "Outside calling window": window_rows,
        }
    ),
    file_name="progress.xlsx",
    mime=export.XLSX_MIME,
    key="progress_export_xlsx",
    on_click="ignore",
    icon=":material/download:",
    help="The tables of this page, a sheet each, columns named as on screen.",
)
ui.show_leads_link()
