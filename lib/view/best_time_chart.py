"""The Trends section's hour x weekday heatmap with thin cells greyed: `charts.hour_weekday_heatmap`
with the cells under `BEST_TIME_MIN` attempted leads taken out of the colour scale and drawn in
one light grey on top (their volume in brackets), so a rate from a handful of calls never looks
like a finding. The grey is lighter than Cividis's mid-tone, which is itself greyish."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lib.view import numbers
from lib.view.charts import FORMAT, hour_weekday_heatmap
from lib.view.metrics import BEST_TIME_MIN, WEEKDAYS

THIN_GREY = "#D9D9D9"


def hour_weekday_greyed(
    frame: pd.DataFrame, minimum: int = BEST_TIME_MIN, number_format: str = FORMAT
) -> go.Figure:
    """The heatmap of `hour_weekday`'s frame; cells with fewer than `minimum` attempted leads
    are a second, grey trace (hover says why) instead of a colour."""
    fig = hour_weekday_heatmap(frame, number_format=number_format)
    thin = frame[frame["attempted"] < minimum]
    if thin.empty:
        return fig
    colour = fig.data[0]
    rates = [list(row) for row in colour.z]
    text = [list(row) for row in colour.text]
    grey: list[list[int | None]] = [[None] * 24 for _ in WEEKDAYS]
    grey_text = [[""] * 24 for _ in WEEKDAYS]
    for row in thin.itertuples(index=False):
        d, h = int(row.weekday) - 1, int(row.hour)
        rates[d][h], text[d][h] = None, ""
        grey[d][h], grey_text[d][h] = 1, f"({numbers.count(row.attempted, number_format)})"
    colour.update(z=rates, text=text)
    fig.add_trace(
        go.Heatmap(
            z=grey,
            x=list(range(24)),
            y=list(WEEKDAYS),
            text=grey_text,
            texttemplate="%{text}",
            customdata=colour.customdata,
            colorscale=[[0, THIN_GREY], [1, THIN_GREY]],
            showscale=False,
            hoverongaps=False,
            hovertemplate="%{y} %{x}:00: %{customdata[2]} of %{customdata[3]} attempted "
            f"answered, under {minimum} attempted: greyed, not advised<extra></extra>",
        )
    )
    return fig
