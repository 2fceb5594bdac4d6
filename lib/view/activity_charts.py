"""The Activity section of the Progress page and of the Campaign page's Trends, from the lead
history (lib/view/metrics/activity.py): its plotly figures (dials, answered or conversions per
local hour, today against yesterday; the three per local day of the range) and `section`, which
draws the whole section (today so far against last week, both charts with their numbers, the
pace and finish estimate per campaign), so both pages show the same thing.

Counts are plain lists in the figures (not numpy arrays, which plotly sends as binary), so a
browser test reads the drawn numbers from the figure's data as they are.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from lib.view import axes, charts, numbers, ui
from lib.view.filters import Filters
from lib.view.metrics import activity, history

DAY_COLORS = {"Yesterday": "#8C8C8C", "Today": "#0072B2"}
MEASURE_COLORS = {"dials": "#56B4E9", "answered": "#009E73", "conversions": "#0072B2"}


def _day_text(day) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def hourly(frame: pd.DataFrame, measure: str, number_format: str = charts.FORMAT) -> go.Figure:
    """One measure per local hour (frame of activity.activity_hours): a bar per hour for
    yesterday and for today, side by side. customdata = [day (ISO), hour]; hovertext = the
    value's text in `number_format`."""
    name = activity.MEASURES[measure]
    fig = go.Figure()
    for label, rows in frame.groupby("day_label", sort=False):
        day = rows["day"].iloc[0]
        fig.add_trace(
            go.Bar(
                name=f"{label} ({_day_text(day)})",
                x=[int(h) for h in rows["hour"]],
                y=[int(v) for v in rows[measure]],
                marker_color=DAY_COLORS[label],
                customdata=[[f"{day:%Y-%m-%d}", int(h)] for h in rows["hour"]],
                hovertext=[numbers.count(v, number_format) for v in rows[measure]],
                hovertemplate=f"{label} %{{x:02d}}:00–%{{x:02d}}:59<br>{name.lower()}: "
                "%{hovertext}<extra></extra>",
            )
        )
    return charts.layout(
        axes.count_axis(fig, number_format),
        height=320,
        barmode="group",
        xaxis={"title": "local hour", "tickmode": "linear", "dtick": 1, "range": [-0.5, 23.5]},
        yaxis={"title": name.lower(), "rangemode": "tozero"},
    )


def _day_ticks(days: pd.Series) -> str:
    """Days as "08 Dec", with the year when one of them is not in the current year (a lead
    dated ahead by a wrong clock, a range reaching into last year)."""
    this_year = date.today().year
    return "%d %b" if all(day.year == this_year for day in days) else "%d %b %Y"


def daily(frame: pd.DataFrame, number_format: str = charts.FORMAT) -> go.Figure:
    """Dials, answered and conversions per local day (frame of activity.activity_days)."""
    days = [f"{day:%Y-%m-%d}" for day in frame["day"]]
    fig = go.Figure()
    for measure, name in activity.MEASURES.items():
        fig.add_trace(
            go.Bar(
                name=name,
                x=days,
                y=[int(v) for v in frame[measure]],
                marker_color=MEASURE_COLORS[measure],
                hovertext=[numbers.count(v, number_format) for v in frame[measure]],
                hovertemplate=f"%{{x|%a %d %b %Y}}<br>{name.lower()}: "
                "%{hovertext}<extra></extra>",
            )
        )
    return charts.layout(
        axes.count_axis(fig, number_format),
        height=340,
        barmode="group",
        xaxis={"type": "date", "title": "local day", "tickformat": _day_ticks(frame["day"])},
        yaxis={"rangemode": "tozero"},
    )


def section(filters: Filters, key: str) -> None:
    """The Activity section for the campaigns of `filters` (its campaign filter and date range
    only), its widgets and charts keyed under `key`."""
    current = ui.view()
    tz = current.tz
    scope = Filters(campaigns=filters.campaigns)
    dated = scope.replace(range=filters.range, date_from=filters.date_from, date_to=filters.date_to)
    # Now to the minute: one cache entry a minute, the same for every chart of a run.
    now = datetime.now(ZoneInfo(tz)).replace(second=0, microsecond=0)

    st.subheader("Activity", anchor=False, help=activity.MEASURE_HELP["dials"])
    st.caption(ui.md_escape(f"{activity.SCOPE_CAPTION} {history.DIALS_CAPTION}"))
    start = ui.query(history.history_start, scope)
    if start is None:
        st.info(
            f"**{history.NO_HISTORY}.** {history.HISTORY_START_CAPTION}",
            icon=":material/history:",
        )
        return

    so_far = ui.query(activity.today_so_far, scope, now=now)
    week_day = so_far["last_week_day"]
    columns = st.columns(len(activity.MEASURES))
    for column, (measure, name) in zip(columns, activity.MEASURES.items(), strict=True):
        today, before = so_far["today"][measure], so_far["last_week"][measure]
        column.metric(
            f"{name} today so far",
            ui.fmt_count(today),
            delta=activity.change_text(today, before, ui.number_format()),
            delta_color="normal" if today != before else "off",
            help=f"{activity.MEASURE_HELP[measure]} Last {week_day:%A} up to {now:%H:%M}: "
            f"{ui.fmt_count(before)}.",
            border=True,
        )
    st.caption(
        f"Today up to {now:%H:%M} against last {_day_text(week_day)} up to the same time "
        f"({ui.md_escape(tz)})."
    )

    measure = st.segmented_control(
        "Per hour",
        list(activity.MEASURES),
        format_func=activity.MEASURES.get,
        default="dials",
        required=True,
        key=f"{key}_activity_measure",
    )
    hours = ui.query(activity.activity_hours, scope)
    ui.chart(
        ui.figure(hourly, hours, measure),
        hours,
        key=f"{key}_activity_hours_chart",
        file_name="activity_by_hour.csv",
    )
    st.caption(
        f"Per local hour ({ui.md_escape(tz)}) of the new state's time; the current hour is not "
        "over yet."
    )

    days = ui.query(activity.activity_days, dated)
    if days.empty:
        st.info("No day of the date range was observed.", icon=":material/info:")
    else:
        ui.chart(
            ui.figure(daily, days),
            days,
            key=f"{key}_activity_days_chart",
            file_name="activity_by_day.csv",
        )
        st.caption(
            f"Per local day ({ui.md_escape(tz)}) of the sidebar's date range, from the day the "
            f"history began ({ui.md_escape(history.describe_since(start, tz))}, the first "
            "delivery observed)."
        )

    st.subheader("Pace and finish estimate", anchor=False, help=activity.FORECAST_HELP)
    table = ui.query(activity.forecast_table, scope, now=now)
    st.dataframe(  # the numbers' format from the Styler: a column_config format would win
        ui.shown(
            table[list(activity.FORECAST_COLUMNS)],
            counts=["Retries left"],
            decimals={"Pace (dials per working hour)": 1},
        ),
        hide_index=True,
        key=f"{key}_forecast",
    )
    st.caption(ui.md_escape(f"{activity.FORECAST_HELP} Times in {tz}, from {now:%H:%M}."))
