"""Plotly figures of the Agents page, from the small frames of lib/view/metrics/agents.py.

Like lib/view/charts.py: labels through `charts.label` (plotly renders some HTML), and clickable
traces carry the raw filter value in `customdata[0]`, empty for "Other" (not a filter value), so
`charts.selection_value` reads a click back as the agent to filter by.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lib.view import axes, charts, numbers
from lib.view.metrics import TALK_BAND_LABELS

CONVERSION_COLOR = charts.CATEGORY_COLORS["Sale"]
# Talk-time bands: the short calls (possible hang-ups) in vermillion, then blues, light to dark.
BAND_COLORS: dict[str, str] = dict(
    zip(
        TALK_BAND_LABELS,
        ("#D55E00", "#C6DBEF", "#9ECAE1", "#6BAED6", "#3182BD", "#08519C"),
        strict=True,
    )
)


def conversion_bars(frame: pd.DataFrame, number_format: str = charts.FORMAT) -> go.Figure:
    """Conversions per agent (bars) and the conversion rate (markers, right axis), from
    metrics.agent_conversions; the "Other" bar is grey and not clickable. customdata: [filter
    value, conversions, answered]; the counts' text (`number_format`) is the bar's text and
    hovertext."""
    labels = charts.unique_labels(list(frame["agent"]))
    x = [labels[a] for a in frame["agent"]]
    values = [
        "" if other else agent
        for agent, other in zip(frame["agent"], frame["is_other"], strict=True)
    ]
    rates = [None if pd.isna(r) else round(float(r) * 100, 1) for r in frame["conversion_rate"]]
    custom = [
        [value, int(c), int(a)]
        for value, c, a in zip(values, frame["conversions"], frame["answered"], strict=True)
    ]
    converted = [numbers.count(c, number_format) for c in frame["conversions"]]
    answered = [numbers.count(a, number_format) for a in frame["answered"]]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            name="Conversions",
            x=x,
            y=frame["conversions"],
            marker_color=[
                charts.OTHER_COLOR if other else CONVERSION_COLOR for other in frame["is_other"]
            ],
            customdata=custom,
            text=converted,
            hovertext=answered,
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}<br>%{text} conversions of %{hovertext} answered<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            name="Conversion rate",
            x=x,
            y=rates,
            yaxis="y2",
            mode="markers",
            marker={"color": charts.LINE_COLOR, "size": 9, "symbol": "diamond"},
            customdata=custom,
            hovertext=[f"{c} of {a}" for c, a in zip(converted, answered, strict=True)],
            hovertemplate="%{x}<br>conversion rate %{y:.1f}% "
            "(%{hovertext} answered)<extra></extra>",
        )
    )
    return charts.layout(
        axes.count_axis(fig, number_format),
        height=400,
        yaxis={"title": "conversions", "rangemode": "tozero"},
        yaxis2=charts.percent_axis("conversion rate"),
        xaxis={"type": "category", "automargin": True},
    )


def talk_time_bars(frame: pd.DataFrame, number_format: str = charts.FORMAT) -> go.Figure:
    """Each campaign's answered leads over the talk-time bands, as 100% stacked bars (from
    metrics.talk_time_bands); bands are no filter, so nothing is clickable."""
    return charts.stacked_bars(
        frame,
        category="campaign",
        series="band",
        series_order=TALK_BAND_LABELS,
        colors=BAND_COLORS,
        percent=True,
        clickable=(),
        number_format=number_format,
    )
