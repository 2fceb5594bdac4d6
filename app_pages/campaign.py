"""Campaign (`/campaign`): one campaign in depth.

Its charts sit in three sections (tabs bound to the URL's `section`, so a link opens the same
one); only the open section is computed and sent, so the page draws two charts, not six."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from lib.view import activity_charts, best_time_chart, charts, metrics, ui
from lib.view.filters import (
    P_DIALSTATUS,
    P_DISPOSITION,
    Filters,
    previous_filters,
    previous_span,
)


def _breakdown(focus: Filters) -> None:
    """The two breakdowns a manager reads first: dial status and dispositions."""
    left, right = st.columns(2)
    with left:
        st.subheader("Dial status", anchor=False)
        buckets = ui.query(metrics.bucket_counts, focus)
        ui.chart(
            ui.figure(charts.bucket_bar, buckets),
            ui.with_percent(buckets),
            key="campaign_dial_chart",
            file_name="dial_status.csv",
            filter_key=P_DIALSTATUS,
        )
        st.caption(ui.CLICK_HINT[P_DIALSTATUS])
    with right:
        st.subheader("Disposition Pareto", anchor=False)
        top = st.number_input(
            "Dispositions shown (the rest are grouped as Other)",
            min_value=3,
            max_value=40,
            value=10,
            step=1,
            key="campaign_pareto_top",
        )
        pareto = ui.query(metrics.disposition_pareto, focus, top=int(top))
        if pareto.empty:
            st.info(
                "No lead of this campaign has a disposition in the selection.",
                icon=":material/info:",
            )
            return
        ui.chart(
            ui.figure(charts.pareto, pareto),
            ui.with_percent(
                ui.with_percent(pareto.drop(columns=["is_other"]), "cumulative_share").rename(
                    columns={"share %": "cumulative %"}
                )
            ),
            key="campaign_pareto_chart",
            file_name="disposition_pareto.csv",
            filter_key=P_DISPOSITION,
        )
        st.caption("Bars are coloured by disposition category. " + ui.CLICK_HINT[P_DISPOSITION])


def _composition(focus: Filters) -> None:
    """How lead status, dial status and disposition combine."""
    left, right = st.columns(2)
    with left:
        st.subheader("Lead status × dial status", anchor=False)
        matrix = ui.query(metrics.status_bucket_matrix, focus)
        st.plotly_chart(ui.figure(charts.status_matrix, matrix), key="campaign_matrix_chart")
        ui.numbers(
            matrix.reset_index(), key="campaign_matrix", file_name="status_x_dial_status.csv"
        )
    with right:
        st.subheader("Status → dial status → disposition", anchor=False)
        paths = ui.query(metrics.sunburst_paths, focus)
        st.plotly_chart(ui.figure(charts.sunburst, paths), key="campaign_sunburst_chart")
        ui.numbers(paths, key="campaign_sunburst", file_name="status_dial_disposition.csv")


def _trends(focus: Filters, tz: str) -> None:
    """When leads move: per day, the activity the history observed (per hour and day, the pace
    and finish estimate), and the answer rate by hour and weekday."""
    st.subheader("Daily trend", anchor=False)
    trend = ui.query(metrics.daily_trend, focus)
    if trend.empty:
        st.info("No dated leads in the selection.", icon=":material/info:")
    else:
        ui.chart(
            ui.figure(charts.daily_trend, trend),
            ui.with_percent(trend, "answer_rate").rename(columns={"share %": "answer rate %"}),
            key="campaign_trend_chart",
            file_name="daily_trend.csv",
            filter_key=P_DIALSTATUS,
        )
        basis = "last update" if focus.basis == "updated" else "creation"
        undated = ui.query(metrics.kpi_counts, focus)["leads"] - metrics.trend_leads(trend)
        st.caption(
            f"Leads per day of their {basis} ({tz}), by dial status; the line is the day's "
            "answer rate."
            + (
                f" {ui.fmt_count(undated)} lead{'s' if undated != 1 else ''} with no {basis} date "
                f"{'are' if undated != 1 else 'is'} counted in the tiles but not drawn."
                if undated
                else ""
            )
        )

    activity_charts.section(focus, "campaign")

    heat = ui.query(metrics.hour_weekday, focus)
    _best_time(focus, heat, tz)

    st.subheader("Answer rate by hour and weekday", anchor=False)
    if heat.empty:
        st.info("No attempted leads in the selection.", icon=":material/info:")
        return
    st.plotly_chart(
        ui.figure(best_time_chart.hour_weekday_greyed, heat), key="campaign_heatmap_chart"
    )
    ui.numbers(
        ui.with_percent(heat, "answer_rate").rename(columns={"share %": "answer rate %"}),
        key="campaign_heatmap",
        file_name="answer_rate_hour_weekday.csv",
    )
    st.caption(
        "Based on each lead's last update (CloudAgent reports a lead's latest state, not every "
        f"call), in {tz}. Colour = answer rate; the number in each cell = attempted leads. "
        f"Grey cells have fewer than {metrics.BEST_TIME_MIN} attempted leads (their number in "
        "brackets): too few for a rate, and left out of the advice."
    )


def _best_time(focus: Filters, heat: pd.DataFrame, tz: str) -> None:
    """The best windows of the heatmap's grid against the selection's overall answer rate."""
    st.subheader("Best time to call", anchor=False, help=metrics.BEST_TIME_HELP)
    counts = ui.query(metrics.kpi_counts, focus)  # the tiles' counts: cached already
    advice = metrics.best_windows(heat, counts["answered"], counts["attempted"])
    if advice.windows:
        lines = advice.lines(ui.number_format())
        st.markdown("\n".join(f"- {ui.md_escape(line)}" for line in lines))
    else:
        st.info(metrics.NOT_ENOUGH_CALLS, icon=":material/info:")
    st.caption(
        f"The rates come from each lead's last call (its last update, in {tz}): CloudAgent "
        "reports a lead's latest state, not every call. " + metrics.BEST_TIME_HELP
    )


current = ui.view()
asked_section = st.query_params.get_all(ui.P_SECTION)  # before the tabs drop a bad one
ui.page_header("Campaign", "One campaign in depth.")

if ui.empty_state():
    st.stop()

per_campaign = ui.query(metrics.campaign_kpis, top=metrics.OPTION_TOP)
candidates = list(current.filters.campaigns) or list(
    per_campaign.loc[~per_campaign["is_other"], "campaign"]
)
campaign = ui.campaign_focus(candidates)
if campaign is None:
    ui.empty_state(lead_count=0)
    st.stop()

st.subheader(ui.md_escape(campaign), anchor=False)
focus = current.filters.replace(campaigns=(campaign,))
counts = ui.query(metrics.kpi_counts, focus)
if ui.empty_state(lead_count=counts["leads"]):
    st.stop()

previous = previous_filters(focus, current.today)
if previous is None:
    ui.kpi_tiles(metrics.kpi_values(counts))
    st.caption("Pick a date range in the sidebar to compare with the previous period.")
else:
    span = previous_span(focus, current.today)
    days = (span[1] - span[0]).days
    period = (
        f"previous {days} day{'s' if days != 1 else ''} "
        f"({span[0]:%d %b} to {span[1] - timedelta(days=1):%d %b %Y})"
    )
    ui.kpi_tiles(
        metrics.kpi_values(counts),
        metrics.kpi_values(ui.query(metrics.kpi_counts, previous)),
        period=period,
    )

breakdown, composition, trends = st.tabs(
    ui.CAMPAIGN_SECTIONS, key=ui.P_SECTION, bind="query-params", width="stretch"
)
ui.section_notice(asked_section)

if breakdown.open:
    with breakdown:
        _breakdown(focus)
if composition.open:
    with composition:
        _composition(focus)
if trends.open:
    with trends:
        _trends(focus, current.tz)
ui.show_leads_link()
