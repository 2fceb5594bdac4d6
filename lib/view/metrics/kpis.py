"""The KPI vocabulary, once: how each count is computed (`COUNT_SQL`), the tiles in order with
their help text (`KPIS`), their values, and the per-campaign comparison table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from lib.store.catalog import SALE
from lib.view.filters import Filters
from lib.view.metrics.breakdowns import CHART_TOP, OTHER_CAMPAIGNS, ranked
from lib.view.metrics.relation import count_sql, fetch_frame, filtered_groups

SMALL_SAMPLE = 30  # a rate whose denominator is below this is shown but marked as a small sample


# Count columns over the filtered leads (`filtered_groups` has `attempted` and `category`).
COUNT_SQL: dict[str, str] = {
    "leads": count_sql(),
    "pending": count_sql("lead_status = 'Pending'"),
    "attempted": count_sql("attempted"),
    "answered": count_sql("dial_bucket = 'answered'"),
    "successes": count_sql("lead_status = 'Success'"),
    "conversions": count_sql(f"category = '{SALE}'"),
}


@dataclass(frozen=True)
class Kpi:
    name: str  # the tile's label: the product's vocabulary, the same on every page
    column: str  # the count column (rates: the numerator)
    denominator: str | None  # rates only
    help: str

    @property
    def is_rate(self) -> bool:
        return self.denominator is not None


KPIS: tuple[Kpi, ...] = (
    Kpi("Leads", "leads", None, "Leads matching the filters (one row per lead per campaign)."),
    Kpi(
        "Pending",
        "pending",
        None,
        "Leads whose status is Pending or empty (not yet dialled, or not final). "
        "Shown with its share of Leads.",
    ),
    Kpi(
        "Attempted",
        "attempted",
        None,
        "Leads dialled at least once: attempts > 0, or, when the attempt count is absent, "
        "a dial status other than not dialled. Shown with its share of Leads.",
    ),
    Kpi(
        "Answered",
        "answered",
        None,
        "Leads whose last dial status is in the answered bucket. Shown with its share of Leads.",
    ),
    Kpi(
        "Answer rate",
        "answered",
        "attempted",
        "Answered / Attempted.",
    ),
    Kpi(
        "Success rate",
        "successes",
        "attempted",
        "Leads with status Success / Attempted.",
    ),
    Kpi(
        "Conversions",
        "conversions",
        None,
        "Leads whose disposition is in the Sale category (Settings page: disposition "
        "categories). Shown with its share of Leads.",
    ),
    Kpi(
        "Conversion rate",
        "conversions",
        "answered",
        "Conversions / Answered.",
    ),
)


KPI_NAMES: tuple[str, ...] = tuple(k.name for k in KPIS)


def kpi_named(name: str) -> Kpi:
    """The KPI whose tile reads `name` (a KeyError names an unknown one)."""
    for kpi in KPIS:
        if kpi.name == name:
            return kpi
    raise KeyError(name)


SMALL_SAMPLE_HELP = (
    f"Rates whose denominator is under {SMALL_SAMPLE} are shown but marked as small samples."
)


@dataclass(frozen=True)
class KpiValue:
    kpi: Kpi
    value: float | int | None  # a count, or a rate as a fraction (None: nothing to divide by)
    numerator: int
    denominator: int | None  # rates: the denominator; counts: the Leads total (their share)

    @property
    def small_sample(self) -> bool:
        return self.kpi.is_rate and (self.denominator or 0) < SMALL_SAMPLE

    @property
    def share(self) -> float | None:
        """Counts: the share of Leads. Rates: the rate itself."""
        if not self.denominator:
            return None
        return self.numerator / self.denominator


def rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def kpi_values(counts: Mapping[str, int]) -> list[KpiValue]:
    """The tiles' values from the counts of `kpi_counts` (pure)."""
    values = []
    for kpi in KPIS:
        numerator = int(counts.get(kpi.column, 0) or 0)
        if kpi.is_rate:
            denominator = int(counts.get(kpi.denominator or "", 0) or 0)
            values.append(KpiValue(kpi, rate(numerator, denominator), numerator, denominator))
        else:
            total = int(counts.get("leads", 0) or 0)
            values.append(
                KpiValue(kpi, numerator, numerator, None if kpi.column == "leads" else total)
            )
    return values


def _counts_select() -> str:
    return ", ".join(f"{sql} AS {name}" for name, sql in COUNT_SQL.items())


def kpi_counts(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> dict[str, int]:
    """Every count behind the KPI tiles (`COUNT_SQL` keys) for the filtered leads."""
    base, params = filtered_groups(cursor, filters, tz, today, coarse=True)
    row = cursor.execute(f"SELECT {_counts_select()} FROM ({base})", params).fetchone()
    return {name: int(value or 0) for name, value in zip(COUNT_SQL, row, strict=True)}


def kpis(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, tz: str, today: date | None = None
) -> list[KpiValue]:
    return kpi_values(kpi_counts(cursor, filters, tz, today))


def _with_rates(frame: pd.DataFrame) -> pd.DataFrame:
    for kpi in KPIS:
        if kpi.is_rate:
            num, den = frame[kpi.column].astype(float), frame[kpi.denominator].astype(float)
            frame[kpi.name] = (num / den.where(den > 0)) * 100.0
            frame[kpi.name + " n"] = frame[kpi.denominator]
    return frame


def campaign_kpis(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    top: int = CHART_TOP,
) -> pd.DataFrame:
    """One row per campaign, the `top` largest by leads, then one "Other campaigns" row for the
    rest (`is_other`): every count, every rate (percent) and its denominator (`<rate> n`)."""
    base, params = filtered_groups(cursor, filters, tz, today, coarse=True)
    frame = fetch_frame(
        cursor,
        f"""
        SELECT coalesce(name, $other) AS campaign, name IS NULL AS is_other, * EXCLUDE (name)
        FROM (
            SELECT CASE WHEN rank <= $top THEN campaign_name END AS name, {_counts_select()}
            FROM ({ranked(base, "campaign_name")}) GROUP BY name
        ) ORDER BY is_other, leads DESC, campaign
        """,
        {**params, "top": int(top), "other": OTHER_CAMPAIGNS},
    )
    return _with_rates(frame)


P_RANK = "rank"  # the Overview's URL parameter: a KPI name
RANK_BY_DEFAULT = "Leads"  # the comparison's order before a KPI is chosen: the largest first
RANK = "Rank"
RANKED_LAST = "Small sample, ranked last"


def rank_campaigns(frame: pd.DataFrame, kpi_name: str) -> pd.DataFrame:
    """`campaign_kpis` ordered by one KPI, highest first, with a `Rank` column (ties share the
    better rank). A rate whose denominator is a small sample (or zero) is ranked after every
    campaign that has enough calls, in its own order; the "Other campaigns" row comes last,
    unranked (it is not one campaign)."""
    kpi = kpi_named(kpi_name)
    value = frame[kpi.name if kpi.is_rate else kpi.column].astype("float64")
    thin = (
        frame[kpi.denominator] < SMALL_SAMPLE
        if kpi.is_rate
        else pd.Series(False, index=frame.index)
    ) | value.isna()
    ordered = frame.assign(_thin=thin | frame["is_other"], _value=value, _other=frame["is_other"])
    ordered = ordered.sort_values(
        ["_other", "_thin", "_value", "campaign"],
        ascending=[True, True, False, True],
        na_position="last",
        kind="stable",
    )
    ranks = ordered.groupby(["_other", "_thin"], sort=False)["_value"].rank(
        method="min", ascending=False, na_option="bottom"
    )
    offset = (~ordered["_thin"] & ~ordered["_other"]).sum()
    ranks = ranks.where(~ordered["_thin"], ranks + offset)
    ordered[RANK] = ranks.where(~ordered["_other"]).astype("Int64")
    ordered[RANKED_LAST] = ordered["_thin"] & ~ordered["_other"]
    return ordered.drop(columns=["_thin", "_value", "_other"]).reset_index(drop=True)


def ranked_chart_frame(ranked: pd.DataFrame, kpi_name: str) -> pd.DataFrame:
    """The ranked bars' numbers: Rank, Campaign, the KPI (rates in percent, one decimal) and
    whether it was ranked last for a small sample; the "Other campaigns" row left out."""
    kpi = kpi_named(kpi_name)
    ranked = ranked[~ranked["is_other"]]
    value = ranked[kpi.name if kpi.is_rate else kpi.column]
    return pd.DataFrame(
        {
            RANK: ranked[RANK],
            "Campaign": ranked["campaign"],
            kpi.name: value.astype("float64").round(1) if kpi.is_rate else value,
            RANKED_LAST: ranked[RANKED_LAST],
        }
    ).reset_index(drop=True)


def comparison_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The Overview's comparison table: KPI names as columns, rates in percent, small samples;
    the `Rank` first when the frame was ranked (`rank_campaigns`)."""
    columns = {RANK: RANK} if RANK in frame else {}
    columns["campaign"] = "Campaign"
    for kpi in KPIS:
        columns[kpi.name if kpi.is_rate else kpi.column] = kpi.name
    table = frame[list(columns)].rename(columns=columns)
    for kpi in KPIS:
        if kpi.is_rate:  # one decimal, as shown: the CSV says what the table says
            table[kpi.name] = table[kpi.name].astype("float64").round(1)
    notes = []
    for _, row in frame.iterrows():
        small = [
            f"{k.name} (n={int(row[k.denominator])})"
            for k in KPIS
            if k.is_rate and int(row[k.denominator]) < SMALL_SAMPLE
        ]
        notes.append(", ".join(small))
    table["Small samples"] = notes
    return table


def best_and_worst(table: pd.DataFrame) -> dict[tuple[int, str], str]:
    """{(row position, rate column): "best" | "worst"} for the comparison table. Only campaigns
    whose denominator for that rate is not a small sample compete (not the "Other campaigns"
    row); ties are all marked; nothing is marked when fewer than two compete or all are equal."""
    marks: dict[tuple[int, str], str] = {}
    for kpi in KPIS:
        if not kpi.is_rate:
            continue
        rows = zip(table["Campaign"], table[kpi.name], table["Small samples"], strict=True)
        eligible = [
            (i, value)
            for i, (campaign, value, note) in enumerate(rows)
            if pd.notna(value) and f"{kpi.name} (n=" not in note and campaign != OTHER_CAMPAIGNS
        ]
        if len(eligible) < 2:
            continue
        best = max(v for _, v in eligible)
        worst = min(v for _, v in eligible)
        if best == worst:
            continue
        for i, value in eligible:
            if value == best:
                marks[(i, kpi.name)] = "best"
            elif value == worst:
                marks[(i, kpi.name)] = "worst"
    return marks
