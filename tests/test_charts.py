"""Chart figures as a reader sees them: what the legend names is what the bars show."""

from __future__ import annotations

import pandas as pd

from lib.view import charts


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
