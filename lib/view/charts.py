"""Plotly figures built from the small aggregated frames of lib/view/metrics/.

One colour per dial-status bucket everywhere (Okabe-Ito, colour-blind safe, mid-tone so it reads
on light and dark themes). Text labels go through `label()` because plotly renders a subset of
HTML in tick and hover text: a campaign named `<b>x</b>` must show as typed. Clickable bar traces
carry the raw filter value in `customdata[0]` (empty when the segment is not a filter value,
like "Other"); `selection_value()` reads it back from a Streamlit selection point.

Numbers in bar labels and hover text are written by `lib.view.numbers` in the builder's
`number_format` (d3's formats cannot group by lakh), passed as text; so are the ticks of a count
axis (`lib.view.axes.count_axis`): 2.5 L or 250K, where plotly's own would say 250k.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from lib.fields import DIAL_BUCKETS, LEAD_STATUSES
from lib.view import axes, numbers
from lib.view.labels import DIAL_STATUS_LABELS, LEAD_STATUS_LABELS
from lib.view.metrics import NO_DISPOSITION, OTHER, RANK, RANKED_LAST, WEEKDAYS

BUCKET_COLORS: dict[str, str] = {
    "answered": "#009E73",  # bluish green
    "NoAnswer": "#56B4E9",  # sky blue
    "user_disconnected": "#CC79A7",  # reddish purple
    "Fail": "#D55E00",  # vermillion
    "Not dialled": "#8C8C8C",  # mid grey
}
STATUS_COLORS: dict[str, str] = {"Success": "#009E73", "Fail": "#D55E00", "Pending": "#8C8C8C"}
CATEGORY_COLORS: dict[str, str] = {
    "Sale": "#009E73",
    "Contact": "#0072B2",
    "Callback": "#E69F00",
    "Do not call": "#D55E00",
    "Unworkable": "#CC79A7",
    "Other": "#8C8C8C",
}
# Qualitative colours for individual dispositions (Okabe-Ito + Tol muted), none of them a
# bucket colour, so a segment's colour never suggests a dial status; "Other" grey.
DISPOSITION_PALETTE: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#332288", "#DDCC77", "#117733", "#882255", "#44AA99",
    "#999933", "#AA4499", "#F0E442", "#6699CC", "#661100", "#88CCEE", "#CC6677",
)  # fmt: skip
OTHER_COLOR = "#B0B0B0"
# Lines drawn over the bars (answer rate, cumulative %): Streamlit's plotly theme replaces this
# placeholder with the theme's text colour (dark on light, light on dark); without the theme it
# stays near-black.
LINE_COLOR = "#000037"
SEQUENTIAL = "Cividis"  # perceptually uniform and colour-blind safe

MAX_LABEL = 40


def label(text: Any, limit: int = MAX_LABEL) -> str:
    """Display text for plotly: shortened and HTML-escaped (raw values stay in customdata)."""
    value = "" if text is None else str(text)
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return html.escape(value, quote=False)


def unique_labels(names: Sequence[str], limit: int = MAX_LABEL) -> dict[str, str]:
    """Raw name -> display label, unique even when shortening makes two names collide."""
    result: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        text = label(name, limit)
        candidate, n = text, 2
        while candidate in used:
            candidate, n = f"{text} ({n})", n + 1
        used.add(candidate)
        result[name] = candidate
    return result


def layout(fig: go.Figure, *, height: int = 360, **extra: Any) -> go.Figure:
    """Every chart's frame: height, tight margins, the legend in one line above the plot."""
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        uniformtext={"mode": "hide", "minsize": 10},
        **extra,
    )
    return fig


def percent_axis(title: str, top: int = 105) -> dict[str, Any]:
    """A right-hand y axis for a rate (0 to 100%) drawn over a count's bars."""
    return {
        "title": title,
        "overlaying": "y",
        "side": "right",
        "range": [0, top],
        "tickvals": [0, 25, 50, 75, 100],
        "ticksuffix": "%",
        "showgrid": False,
    }


FORMAT = numbers.DEFAULT_FORMAT  # a builder's default number format (ui.figure passes the set one)


def _percent(value: float | None, number_format: str = FORMAT) -> str:
    return numbers.percent(value, number_format)


def stacked_bars(
    frame: pd.DataFrame,
    *,
    category: str,
    series: str,
    series_order: Sequence[str],
    colors: Mapping[str, str],
    percent: bool,
    clickable: Iterable[str] | None = None,
    height: int | None = None,
    names: Mapping[str, str] | None = None,
    number_format: str = FORMAT,
) -> go.Figure:
    """Horizontal stacked bars: one bar per `category` value (e.g. campaign), one trace per
    `series` value (e.g. bucket). `frame` has columns category, series, leads, share (0-1).
    A trace is named by its label in `names` (else the value itself); its legend group and a
    click keep the raw value. customdata: [filter value, raw category, series label, leads,
    share text, leads text]."""
    categories = list(dict.fromkeys(frame[category]))
    labels = unique_labels(categories)
    clickable_set = set(series_order if clickable is None else clickable)
    fig = go.Figure()
    for name in series_order:
        part = frame[frame[series] == name]
        if part.empty or int(part["leads"].sum()) == 0:
            continue
        value = name if name in clickable_set else ""
        shown = label((names or {}).get(name, name))
        shares = [_percent(s, number_format) for s in part["share"]]
        counts = [numbers.count(n, number_format) for n in part["leads"]]
        fig.add_trace(
            go.Bar(
                name=shown,
                legendgroup=str(name),
                orientation="h",
                y=[labels[c] for c in part[category]],
                x=(part["share"] * 100).round(2) if percent else part["leads"],
                marker_color=colors.get(name, OTHER_COLOR),
                customdata=[
                    [value, raw, shown, int(n), s, c]
                    for raw, n, s, c in zip(
                        part[category], part["leads"], shares, counts, strict=True
                    )
                ],
                text=[f"{c} ({s})" for c, s in zip(counts, shares, strict=True)],
                textposition="inside",
                insidetextanchor="middle",
                hovertemplate="%{y}<br>%{customdata[2]}: %{customdata[5]} leads "
                "(%{customdata[4]})<extra></extra>",
            )
        )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(autorange="reversed", automargin=True, type="category")
    fig.update_xaxes(
        title="share of leads (%)" if percent else "leads", range=[0, 100] if percent else None
    )
    if not percent:
        axes.count_axis(fig, number_format, axis="x")
    return layout(fig, height=height or max(220, 60 + 42 * len(categories)))


def dial_bucket_bars(
    frame: pd.DataFrame, percent: bool = False, number_format: str = FORMAT
) -> go.Figure:
    """Dial-status breakdown per campaign (frame of metrics.dial_buckets_by_campaign)."""
    return stacked_bars(
        frame,
        category="campaign",
        series="bucket",
        series_order=DIAL_BUCKETS,
        colors=BUCKET_COLORS,
        percent=percent,
        names=DIAL_STATUS_LABELS,
        number_format=number_format,
    )


def disposition_colors(names: Iterable[str]) -> dict[str, str]:
    colors: dict[str, str] = {}
    palette = iter(DISPOSITION_PALETTE * 10)
    for name in names:
        colors[name] = OTHER_COLOR if name == OTHER else next(palette)
    return colors


def disposition_bars(
    frame: pd.DataFrame, percent: bool = False, number_format: str = FORMAT
) -> go.Figure:
    """Disposition breakdown per campaign (frame of metrics.dispositions_by_campaign)."""
    order_frame = frame.groupby(["disposition", "is_other"], as_index=False)["leads"].sum()
    order_frame = order_frame.sort_values(["is_other", "leads"], ascending=[True, False])
    order = list(order_frame["disposition"])
    clickable = list(order_frame.loc[~order_frame["is_other"], "disposition"])
    return stacked_bars(
        frame,
        category="campaign",
        series="disposition",
        series_order=order,
        colors=disposition_colors(order),
        percent=percent,
        clickable=clickable,
        number_format=number_format,
    )


def bucket_bar(
    frame: pd.DataFrame, percent: bool = False, number_format: str = FORMAT
) -> go.Figure:
    """One campaign's dial-status breakdown as one stacked bar (frame of metrics.bucket_counts)."""
    data = frame.assign(campaign="Selection")
    return stacked_bars(
        data,
        category="campaign",
        series="bucket",
        series_order=DIAL_BUCKETS,
        colors=BUCKET_COLORS,
        percent=percent,
        height=200,
        names=DIAL_STATUS_LABELS,
        number_format=number_format,
    )


def pareto(frame: pd.DataFrame, number_format: str = FORMAT) -> go.Figure:
    """Disposition Pareto: sorted bars (coloured by category) + cumulative % line."""
    labels = unique_labels(list(frame["disposition"]))
    x = [labels[d] for d in frame["disposition"]]
    swatches = _pareto_swatches(frame)
    shares = [_percent(s, number_format) for s in frame["share"]]
    counts = [numbers.count(n, number_format) for n in frame["leads"]]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            name="Leads",
            showlegend=False,  # one trace of many colours: the category swatches below name them
            x=x,
            y=frame["leads"],
            marker_color=[color for _, color in swatches],
            customdata=[
                ["" if other else d, label(cat or "-"), s, c]
                for d, cat, other, s, c in zip(
                    frame["disposition"],
                    frame["category"],
                    frame["is_other"],
                    shares,
                    counts,
                    strict=True,
                )
            ],
            text=[f"{c} ({s})" for c, s in zip(counts, shares, strict=True)],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}<br>%{customdata[3]} leads (%{customdata[2]})<br>category: "
            "%{customdata[1]}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            name="Cumulative %",
            x=x,
            y=(frame["cumulative_share"] * 100).round(2),
            yaxis="y2",
            mode="lines+markers",
            line={"color": LINE_COLOR, "width": 2},
            marker={"color": LINE_COLOR},
            hovertemplate="%{x}<br>cumulative %{y:.1f}%<extra></extra>",
        )
    )
    for name, color in dict.fromkeys(swatches):  # each colour once, in the bars' order
        fig.add_trace(_swatch(name, color))
    fig.update_layout(
        yaxis={"title": "leads"},
        yaxis2=percent_axis("cumulative %"),
        xaxis={"type": "category", "automargin": True},
    )
    return layout(axes.count_axis(fig, number_format), height=400)


GROUPED_SWATCH = "Smaller dispositions, grouped"  # the Pareto's last bar, beyond its top N
UNCATEGORISED_SWATCH = "No category"


def _pareto_swatches(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """Each Pareto bar's legend name and colour: its category's, else a grey of its own for the
    grouped rest and for a bar with no category."""
    return [
        (GROUPED_SWATCH, OTHER_COLOR)
        if other
        else (cat, CATEGORY_COLORS[cat])
        if cat in CATEGORY_COLORS
        else (UNCATEGORISED_SWATCH, OTHER_COLOR)
        for cat, other in zip(frame["category"], frame["is_other"], strict=True)
    ]


def _swatch(name: str, color: str) -> go.Scatter:
    """A legend entry only (no point is drawn): a square of `color` named `name`."""
    return go.Scatter(
        name=label(name),
        x=[None],
        y=[None],
        mode="markers",
        marker={"color": color, "symbol": "square", "size": 12},
        hoverinfo="skip",
    )


RANKED_COLOR = "#0072B2"  # blue: a rank, not a dial status


def ranked_bars(
    frame: pd.DataFrame, kpi_name: str, is_rate: bool, number_format: str = FORMAT
) -> go.Figure:
    """The ranked comparison as horizontal bars, rank 1 on top (`metrics.ranked_chart_frame`):
    a rate ranked last for a small sample is drawn grey and labelled so."""
    names = unique_labels(list(frame["Campaign"]))
    values = frame[kpi_name].astype("float64")
    thin = list(frame[RANKED_LAST])
    shown = [
        (
            "-"
            if pd.isna(v)
            else numbers.points(v, number_format)
            if is_rate
            else numbers.count(v, number_format)
        )
        + (" (small sample, ranked last)" if small else "")
        for v, small in zip(values, thin, strict=True)
    ]
    fig = go.Figure(
        go.Bar(
            name=label(kpi_name),
            orientation="h",
            x=values.fillna(0),
            y=[f"{r}. {names[c]}" for r, c in zip(frame[RANK], frame["Campaign"], strict=True)],
            marker_color=[OTHER_COLOR if small else RANKED_COLOR for small in thin],
            text=shown,
            textposition="auto",
            hovertemplate="%{y}<br>%{text}<extra></extra>",
            showlegend=False,
        )
    )
    axis = {"ticksuffix": "%", "range": [0, 100]} if is_rate else {}
    fig.update_layout(
        yaxis={"type": "category", "autorange": "reversed", "automargin": True},
        xaxis={"title": label(kpi_name), **axis},
    )
    if not is_rate:
        axes.count_axis(fig, number_format, axis="x")
    return layout(fig, height=max(160, 60 + 28 * len(frame)))


def status_matrix(matrix: pd.DataFrame, number_format: str = FORMAT) -> go.Figure:
    """Lead status x dial bucket heatmap: counts with each row's share."""
    totals = matrix.sum(axis=1).replace(0, pd.NA)
    shares = matrix.div(totals, axis=0)
    counts = [
        [numbers.count(matrix.iat[i, j], number_format) for j in range(matrix.shape[1])]
        for i in range(matrix.shape[0])
    ]
    text = [
        [
            f"{counts[i][j]}<br>({_percent(shares.iat[i, j], number_format) or '-'})"
            for j in range(matrix.shape[1])
        ]
        for i in range(matrix.shape[0])
    ]
    fig = go.Figure(
        go.Heatmap(
            z=matrix.values,
            x=[DIAL_STATUS_LABELS.get(c, c) for c in matrix.columns],
            y=[LEAD_STATUS_LABELS.get(r, r) for r in matrix.index],
            text=text,
            texttemplate="%{text}",
            customdata=counts,
            colorscale=SEQUENTIAL,
            showscale=False,
            hovertemplate="status %{y}, %{x}: %{customdata} leads<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", side="top")
    return layout(fig, height=260)


def sunburst(paths: pd.DataFrame, number_format: str = FORMAT) -> go.Figure:
    """Status -> dial status bucket -> disposition, sized by leads."""
    ids: list[str] = []
    labels: list[str] = []
    parents: list[str] = []
    values: list[int] = []
    colors: list[str] = []
    for status in LEAD_STATUSES:
        part = paths[paths["lead_status"] == status]
        if part.empty:
            continue
        sid = f"s:{status}"
        ids.append(sid)
        labels.append(LEAD_STATUS_LABELS[status])
        parents.append("")
        values.append(int(part["leads"].sum()))
        colors.append(STATUS_COLORS[status])
        for bucket in DIAL_BUCKETS:
            sub = part[part["dial_bucket"] == bucket]
            if sub.empty:
                continue
            bid = f"{sid}/b:{bucket}"
            ids.append(bid)
            labels.append(DIAL_STATUS_LABELS[bucket])
            parents.append(sid)
            values.append(int(sub["leads"].sum()))
            colors.append(BUCKET_COLORS[bucket])
            for disposition, leads in zip(sub["disposition"], sub["leads"], strict=True):
                ids.append(f"{bid}/d:{disposition}")
                labels.append(label(disposition, 30))
                parents.append(bid)
                values.append(int(leads))
                colors.append(OTHER_COLOR if disposition == NO_DISPOSITION else "#A6CEE3")
    fig = go.Figure(
        go.Sunburst(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            marker={"colors": colors},
            customdata=[numbers.count(v, number_format) for v in values],
            hovertemplate="%{label}: %{customdata} leads (%{percentParent:.1%} of %{parent})"
            "<extra></extra>",
            insidetextorientation="radial",
        )
    )
    return layout(fig, height=460)


def daily_trend(frame: pd.DataFrame, number_format: str = FORMAT) -> go.Figure:
    """Stacked bars of leads per day by bucket + the answer-rate line (right axis)."""
    fig = go.Figure()
    days = pd.to_datetime(frame["day"])
    for bucket in DIAL_BUCKETS:
        if bucket not in frame or int(frame[bucket].sum()) == 0:
            continue
        shown = DIAL_STATUS_LABELS[bucket]
        fig.add_trace(
            go.Bar(
                name=shown,
                legendgroup=bucket,
                x=days,
                y=frame[bucket],
                marker_color=BUCKET_COLORS[bucket],
                customdata=[[bucket, numbers.count(n, number_format)] for n in frame[bucket]],
                hovertemplate="%{x|%d %b %Y}<br>" + shown + ": %{customdata[1]}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            name="Answer rate",
            x=days,
            y=(frame["answer_rate"] * 100).round(2),
            yaxis="y2",
            mode="lines+markers",
            line={"color": LINE_COLOR, "width": 2, "dash": "dot"},
            marker={"color": LINE_COLOR, "size": 6},
            customdata=[
                [a, n, numbers.count(a, number_format), numbers.count(n, number_format)]
                for a, n in zip(frame["n_answered"], frame["n_attempted"], strict=True)
            ],
            hovertemplate="%{x|%d %b %Y}<br>answer rate %{y:.1f}% "
            "(%{customdata[2]} of %{customdata[3]})<extra></extra>",
        )
    )
    fig.update_layout(
        barmode="stack",
        yaxis={"title": "leads"},
        yaxis2={
            "title": "answer rate",
            "overlaying": "y",
            "side": "right",
            "range": [0, 100],
            "tickvals": [0, 25, 50, 75, 100],
            "ticksuffix": "%",
            "showgrid": False,
        },
    )
    return layout(axes.count_axis(fig, number_format), height=380)


def hour_weekday_heatmap(frame: pd.DataFrame, number_format: str = FORMAT) -> go.Figure:
    """Answer rate by weekday x hour of each lead's last update; cell text shows volumes."""
    hours = list(range(24))
    rates = [[None] * 24 for _ in WEEKDAYS]
    text = [[""] * 24 for _ in WEEKDAYS]
    custom = [[[0, 0, "0", "0"]] * 24 for _ in WEEKDAYS]
    for row in frame.itertuples(index=False):
        d, h = int(row.weekday) - 1, int(row.hour)
        rates[d][h] = round(float(row.answer_rate) * 100, 1)
        text[d][h] = f"{int(row.attempted)}"
        answered, attempted = int(row.answered), int(row.attempted)
        custom[d][h] = [
            answered,
            attempted,
            numbers.count(answered, number_format),
            numbers.count(attempted, number_format),
        ]
    fig = go.Figure(
        go.Heatmap(
            z=rates,
            x=hours,
            y=list(WEEKDAYS),
            text=text,
            texttemplate="%{text}",
            customdata=custom,
            colorscale=SEQUENTIAL,
            zmin=0,
            zmax=100,
            colorbar={"title": "answer %"},
            hoverongaps=False,
            hovertemplate="%{y} %{x}:00: answer rate %{z:.1f}% "
            "(%{customdata[2]} of %{customdata[3]} attempted)<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title="hour of last update (local time)", dtick=1)
    return layout(fig, height=330)


def selection_value(event: Any) -> str | None:
    """The filter value of the first clicked bar segment in a Streamlit plotly selection."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        try:
            points = event.selection.points
        except AttributeError:
            return None
    for point in points or []:
        custom = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(custom, list | tuple) and custom and isinstance(custom[0], str) and custom[0]:
            return custom[0]
    return None


__all__ = [
    "BUCKET_COLORS",
    "CATEGORY_COLORS",
    "bucket_bar",
    "daily_trend",
    "dial_bucket_bars",
    "disposition_bars",
    "hour_weekday_heatmap",
    "label",
    "pareto",
    "selection_value",
    "status_matrix",
    "sunburst",
]
