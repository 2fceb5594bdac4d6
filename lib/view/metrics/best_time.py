"""Best time to call: the answer-rate advice drawn from the hour x weekday grid.

The grid is `breakdowns.hour_weekday` (attempted and answered leads by the local weekday and hour
of their last call); the overall rate is the Answer rate tile's counts (`kpis.kpi_counts`). Both
are cached queries on the pages, so the advice is pure arithmetic over them and adds no SQL.

A window is two consecutive hours of one weekday (h and h+1, never across midnight); its rate
pools the two cells (answered / attempted over both), and it qualifies only when each cell has at
least `BEST_TIME_MIN` attempted leads, so a thin hour can neither be advised nor lift its
neighbour. Windows are picked best rate first (ties: more calls, then the earlier window) and
never share an hour."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pandas as pd

from lib.view import numbers
from lib.view.metrics.breakdowns import WEEKDAYS

BEST_TIME_MIN = 30  # attempted leads a cell needs to be coloured and advised
BEST_TIME_WINDOWS = 3
WINDOW_HOURS = 2

BEST_TIME_HELP = (
    "Answer rate (answered / attempted leads) by the local weekday and hour of each lead's last "
    f"call. A window is {WINDOW_HOURS} consecutive hours on one weekday; its rate pools the "
    f"answered and attempted leads of both hours, and each hour needs at least {BEST_TIME_MIN} "
    f"attempted leads (cells under {BEST_TIME_MIN} are greyed and left out). The best "
    f"{BEST_TIME_WINDOWS} windows are shown, none sharing an hour with another. Overall = the "
    "Answer rate of the whole selection."
)
NOT_ENOUGH_CALLS = f"Not enough calls yet: each hour needs at least {BEST_TIME_MIN} dialled leads"


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


@dataclass(frozen=True)
class CallWindow:
    weekday: int  # 1 = Monday, as isodow
    hour: int  # the first hour, local; the window ends WINDOW_HOURS later
    answered: int
    attempted: int

    @property
    def rate(self) -> float:
        return self.answered / self.attempted

    @property
    def label(self) -> str:
        """ "Tue 10:00–12:00" (the last window of a day ends at 24:00)."""
        return f"{WEEKDAYS[self.weekday - 1]} {self.hour:02d}:00–{self.hour + WINDOW_HOURS:02d}:00"

    def overlaps(self, other: CallWindow) -> bool:
        return self.weekday == other.weekday and abs(self.hour - other.hour) < WINDOW_HOURS


@dataclass(frozen=True)
class BestTime:
    windows: tuple[CallWindow, ...]  # best first; empty when no window qualifies
    answered: int  # the whole selection's, the Answer rate tile's numerator
    attempted: int

    @property
    def overall_rate(self) -> float | None:
        return self.answered / self.attempted if self.attempted else None

    def lines(self, number_format: str = numbers.DEFAULT_FORMAT) -> list[str]:
        """One sentence per window, e.g. "Tue 10:00–12:00: 41% answered (212 calls) vs 28%
        overall" (no window means the selection has attempts, so the overall rate exists); the
        calls grouped in `number_format`."""
        overall = _percent(self.overall_rate or 0.0)
        return [
            f"{w.label}: {_percent(w.rate)} answered ({numbers.count(w.attempted, number_format)} "
            f"calls) vs {overall} overall"
            for w in self.windows
        ]


def best_windows(
    cells: pd.DataFrame, answered: int, attempted: int, top: int = BEST_TIME_WINDOWS
) -> BestTime:
    """The `top` best windows of `cells` (the frame of `hour_weekday`: weekday, hour, attempted,
    answered), against the overall `answered` / `attempted` of the same filtered selection."""
    grid = {
        (int(r.weekday), int(r.hour)): (int(r.answered), int(r.attempted))
        for r in cells.itertuples(index=False)
        if r.attempted >= BEST_TIME_MIN
    }
    candidates = []
    for weekday, hour in grid:  # hours past 23 are never in the grid: no window spans midnight
        span = [grid.get((weekday, hour + i)) for i in range(WINDOW_HOURS)]
        if all(span):
            candidates.append(
                CallWindow(weekday, hour, sum(a for a, _ in span), sum(n for _, n in span))
            )
    # Exact rates (fractions), so equal rates tie exactly and the tie-breaks decide.
    candidates.sort(
        key=lambda w: (-Fraction(w.answered, w.attempted), -w.attempted, w.weekday, w.hour)
    )
    picked: list[CallWindow] = []
    for window in candidates:
        if len(picked) == top:
            break
        if not any(window.overlaps(p) for p in picked):
            picked.append(window)
    return BestTime(tuple(picked), int(answered), int(attempted))
