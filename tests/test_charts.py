"""Chart figures as a reader sees them: what the legend names is what the bars show, and what a
count axis's ticks say."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lib.view import axes, charts


def test_the_pareto_legend_names_each_colour_its_bars_use():
    frame = pd.DataFrame(
        {
            "disposition": ["Sold", "Call back", "Sold again", "No disposition", "Other"],
            "category": ["Sale", "Callback", "Sale", None, None],
            "is_other": [False, False, False, False, True],
            "leads": [50, 30, 10, 6, 4],
            "share": [0.5, 0.3, 0.1, 0.06, 0.04],
            "cumulative_share": [0.5, 0.8, 0.9, 0.96, 1.0],
        }
    )
    fig = charts.pareto(frame)
    bars, line, *swatches = fig.data
    assert bars.showlegend is False  # one many-coloured trace has no single swatch
    assert list(bars.marker.color) == ["#009E73", "#E69F00", "#009E73", "#B0B0B0", "#B0B0B0"]
    legend = [(s.name, s.marker.color, s.marker.symbol) for s in swatches]
    assert legend == [
        ("Sale", "#009E73", "square"),
        ("Callback", "#E69F00", "square"),
        ("No category", "#B0B0B0", "square"),
        ("Smaller dispositions, grouped", "#B0B0B0", "square"),
    ]
    assert line.name == "Cumulative %"
    assert all(s.x == (None,) and s.hoverinfo == "skip" for s in swatches)  # no point drawn


def _stacked(values_by_trace: dict[str, list[int]], categories: list[str]):
    fig = go.Figure(
        [go.Bar(name=n, y=categories, x=v, orientation="h") for n, v in values_by_trace.items()]
    )
    fig.update_layout(barmode="stack")
    return fig


def test_a_count_axis_past_a_lakh_writes_its_ticks_in_the_set_format():
    # Campaign A stacks 60,000 + 63,456 = 1,23,456 leads; a fifth of that is 24,691, so the
    # step is the next nice number, 25,000, and six ticks reach 1,25,000, past the top bar.
    for fmt, expected in (
        ("indian", ["0", "25 K", "50 K", "75 K", "1 L", "1.25 L"]),
        ("international", ["0", "25K", "50K", "75K", "100K", "125K"]),
    ):
        fig = axes.count_axis(
            _stacked({"answered": [60_000, 10], "busy": [63_456, 5]}, ["A", "B"]), fmt, axis="x"
        )
        assert list(fig.layout.xaxis.tickvals) == [0, 25_000, 50_000, 75_000, 100_000, 125_000]
        assert list(fig.layout.xaxis.ticktext) == expected


def test_a_small_count_axis_steps_by_whole_leads():
    # Grouped bars: the tallest single bar (7), not the sum, sets the axis; 7/5 = 1.4 -> step 2.
    fig = go.Figure([go.Bar(x=["9h", "10h"], y=[7, 3]), go.Bar(x=["9h", "10h"], y=[6, 6])])
    fig.update_layout(barmode="group")
    axes.count_axis(fig, "indian")
    assert list(fig.layout.yaxis.ticktext) == ["0", "2", "4", "6", "8"]
    # Three leads: never a tick at half a lead.
    three = axes.count_axis(go.Figure([go.Bar(x=["a"], y=[3])]), "international")
    assert list(three.layout.yaxis.tickvals) == [0, 1, 2, 3]


def test_a_count_axis_leaves_out_a_rate_drawn_on_the_second_axis():
    fig = go.Figure(
        [
            go.Bar(x=["ana", "raj"], y=[40, 12], name="conversions"),
            go.Scatter(x=["ana", "raj"], y=[90.0, 400.0], name="rate line"),
            go.Bar(x=["ana", "raj"], y=[5_000_000, 1], yaxis="y2", name="on y2"),
        ]
    )
    axes.count_axis(fig, "indian")
    assert list(fig.layout.yaxis.tickvals) == [0, 10, 20, 30, 40]


def test_a_count_axis_with_nothing_counted_never_ticks_a_fraction():
    # A day with no dial yet: plotly's own ticks would read 0.2, 0.4 ... 1 dials.
    for fig in (go.Figure([go.Bar(x=[9, 10], y=[0, 0])]), go.Figure()):
        axis = axes.count_axis(fig, "indian").layout.yaxis
        assert list(axis.tickvals) == [0, 1] and list(axis.range) == [0, 1]
