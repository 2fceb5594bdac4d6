"""The Progress page's plotly figures, from the small frames of lib/view/metrics/progress.py: the
lead-progress funnel (a stacked bar per campaign and one for the whole selection) and the outcome
by attempt number (bars and the answer-rate line). Colours and layout follow lib/view/charts.py.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lib.view import axes, charts, numbers
from lib.view.filters import PROGRESS_STATES
from lib.view.labels import PROGRESS_LABELS

PROGRESS_COLORS: dict[str, str] = {
    "not_dialled": "#8C8C8C",  # mid grey, like the never-dialled bucket
    "retrying": "#56B4E9",  # sky blue
    "out_of_tries": "#CC79A7",  # reddish purple: far from Failed's vermillion
    "success": "#009E73",  # bluish green
    "failed": "#D55E00",  # vermillion
}
OUTCOME_COLORS = {"Leads": "#8C8C8C", "Answered": "#009E73", "Conversions": "#0072B2"}


def funnel_bars(
    frame: pd.DataFrame, percent: bool = False, number_format: str = charts.FORMAT
) -> go.Figure:
    """Lead progress per campaign (frame of metrics.progress_funnel). A segment's customdata[0]
    is its raw state, so a click sets the sidebar's progress filter."""
    fig = charts.stacked_bars(
        frame,
        category="campaign",
        series="state",
        series_order=PROGRESS_STATES,
        colors=PROGRESS_COLORS,
        percent=percent,
        number_format=number_format,
    )
    for trace in fig.data:
        name = PROGRESS_LABELS[trace.legendgroup]
        trace.name = name
        trace.customdata = [[value, raw, name, *rest] for value, raw, _, *rest in trace.customdata]
    return fig


def attempt_outcomes(frame: pd.DataFrame, number_format: str = charts.FORMAT) -> go.Figure:
    """Leads, answered and conversions by attempt number (frame of metrics.attempt_outcomes),
    with the answer rate on the right axis."""
    x = [f"attempt {label}" for label in frame["label"]]
    fig = go.Figure()
    for name, column in (
        ("Leads", "leads"),
        ("Answered", "answered"),
        ("Conversions", "conversions"),
    ):
        fig.add_trace(
            go.Bar(
                name=name,
                x=x,
                y=frame[column],
                marker_color=OUTCOME_COLORS[name],
                customdata=[[numbers.count(n, number_format)] for n in frame[column]],
                hovertemplate="%{x}<br>" + name.lower() + ": %{customdata[0]}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            name="Answer rate",
            x=x,
            y=(frame["answer_rate"] * 100).round(2),
            yaxis="y2",
            mode="lines+markers",
            line={"color": charts.LINE_COLOR, "width": 2, "dash": "dot"},
            marker={"color": charts.LINE_COLOR, "size": 7},
            customdata=[
                [a, n, numbers.count(a, number_format), numbers.count(n, number_format)]
                for a, n in zip(frame["answered"], frame["leads"], strict=True)
            ],
            hovertemplate="%{x}<br>answer rate %{y:.1f}% "
            "(%{customdata[2]} of %{customdata[3]})<extra></extra>",
        )
    )
    fig.update_layout(
        barmode="group",
        xaxis={"type": "category", "title": "attempts (the lead's attempt count)"},
        yaxis={"title": "leads"},
        yaxis2=charts.percent_axis("answer rate", top=100),
    )
    return charts.layout(axes.count_axis(fig, number_format), height=380)
