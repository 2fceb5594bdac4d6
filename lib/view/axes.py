"""Count axes whose ticks read in the set number format.

Plotly writes its own ticks with d3, which cannot group by lakh (it would say 250k and 1M
whatever the format); `count_axis` sets them from 0 past the tallest bar, in nice steps, as text
from `lib.view.numbers`: 25,000 or, from a lakh up, compact (2.5 L / 250K).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from lib.view import numbers

COUNT_TICKS = 5  # about this many intervals on a count axis
COMPACT_FROM = 100_000  # a count axis reaching a lakh writes its ticks compact (1 L, 100K)


def count_axis(
    fig: go.Figure, number_format: str = numbers.DEFAULT_FORMAT, axis: str = "y"
) -> go.Figure:
    """Ticks of the figure's count axis (`x` for horizontal bars, `y` for upright ones) written
    in `number_format`, from 0 past the tallest bar (stacked bars summed per category): whole
    counts grouped (25,000) or, from a lakh up, compact (2.5 L / 250K)."""
    top = _tallest_bar(fig, axis)
    if top <= 0:  # nothing counted yet: plotly would tick 0.2 and 0.4 of a dial
        ticks = {"tickmode": "array", "tickvals": [0, 1], "ticktext": ["0", "1"], "range": [0, 1]}
        fig.update_layout({f"{axis}axis": ticks})
        return fig
    raw = top / COUNT_TICKS
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 2.5, 5, 10) if magnitude >= 10 else (1, 2, 5, 10)  # whole counts: no 2.5
    step = max(1, next(m * magnitude for m in steps if m * magnitude >= raw))
    ticks = [i * step for i in range(math.ceil(top / step) + 1)]
    if ticks[-1] >= COMPACT_FROM:
        text = [numbers.compact(t, number_format, digits=2) for t in ticks]
    else:
        text = [numbers.count(t, number_format) for t in ticks]
    fig.update_layout({f"{axis}axis": {"tickmode": "array", "tickvals": ticks, "ticktext": text}})
    return fig


def _tallest_bar(fig: go.Figure, axis: str) -> float:
    """The largest bar, or stack of bars, on the count axis `axis` of the figure's bar traces
    (those drawn against a second axis, like a rate, are left out)."""
    other = "y" if axis == "x" else "x"
    stacked = fig.layout.barmode in ("stack", "relative")
    totals: dict[Any, float] = {}
    for trace in fig.data:
        if trace.type != "bar" or (getattr(trace, f"{axis}axis") or axis) != axis:
            continue
        values = getattr(trace, axis)
        places = getattr(trace, other)
        if values is None:
            continue
        places = places if places is not None else range(len(values))
        for place, value in zip(places, values, strict=False):
            if value is None or pd.isna(value):
                continue
            key = place if stacked else len(totals)
            totals[key] = totals.get(key, 0.0) + float(value)
    return max(totals.values(), default=0.0)
