"""Goal 2, page queries: everything the Campaign and Overview pages compute for one view.

Project: the very `lib.view.metrics` functions the pages call through `lib.view.ui.query`
(undecorated, so no Streamlit cache), plus what every script run of `dashboard.py` asks (data
version, filter options) and the freshness line of `ui.live_status`. Two views: the Campaign
page with the focus campaign selected and range "all", and the all-campaigns Overview.

Baseline A: the same aggregates as bare DuckDB SQL over `leads`, on the same connection.
Baseline B: what many Streamlit dashboards do: the rows into pandas (only the columns the
aggregates need, which favours B), every aggregate a pandas groupby.

Every round runs project, A and B back to back (median of the rounds), and the three answers are
compared (lead counts per dial bucket, per status x bucket, per day, per hour cell, KPI counts).
"""

from __future__ import annotations

import math
from datetime import date

import pandas as pd

from bench.common import FOCUS, TZ, median, timed
from lib.fields import DIAL_BUCKETS
from lib.store import summary
from lib.store.catalog import category_sql, guess_category
from lib.view import metrics
from lib.view.filters import Filters

ALL = Filters()
ONE = Filters(campaigns=(FOCUS,))
ATTEMPTED = "coalesce(attempts > 0, dial_bucket <> 'Not dialled')"
KPI_NAMES = ("leads", "pending", "attempted", "answered", "successes", "conversions")


# -- project -----------------------------------------------------------------------------------


def project_common(cursor, store) -> dict:
    """What dashboard.py computes on every run (ui.options is cached by data version; cold here)."""
    version = store.data_version()
    return {
        "version": version,
        "catalog": metrics.catalog_state(cursor),
        "campaigns": metrics.campaign_options(cursor, ()),
        "dispositions": metrics.disposition_options(cursor),
        "total": metrics.total_leads(cursor),
    }


def project_campaign(cursor, store, today: date) -> dict:
    common = project_common(cursor, store)
    per_campaign = metrics.campaign_kpis(cursor, ONE, TZ, today)
    focus = ONE.replace(campaigns=(per_campaign["campaign"].iloc[0],))
    out = {
        "common": common,
        "per_campaign": per_campaign,
        "kpis": metrics.kpi_counts(cursor, focus, TZ, today),
        "buckets": metrics.bucket_counts(cursor, focus, TZ, today),
        "matrix": metrics.status_bucket_matrix(cursor, focus, TZ, today),
        "pareto": metrics.disposition_pareto(cursor, focus, TZ, today, top=10),
        "sunburst": metrics.sunburst_paths(cursor, focus, TZ, today),
        "trend": metrics.daily_trend(cursor, focus, TZ, today),
        "heat": metrics.hour_weekday(cursor, focus, TZ, today),
        "freshness": metrics.data_as_of(cursor, focus.campaigns),
    }
    return out


def project_overview(cursor, store, today: date) -> dict:
    common = project_common(cursor, store)
    return {
        "common": common,
        "kpis": metrics.kpi_counts(cursor, ALL, TZ, today),
        "buckets": metrics.dial_buckets_by_campaign(cursor, ALL, TZ, today),
        "dispositions": metrics.dispositions_by_campaign(cursor, ALL, TZ, today, top=8),
        "table": metrics.comparison_table(metrics.campaign_kpis(cursor, ALL, TZ, today)),
        "freshness": metrics.data_as_of(cursor, common["campaigns"]),
    }


# -- baseline A: bare SQL ----------------------------------------------------------------------

# The pages' "data as of" line reads the delivery log and the sync state, never the leads; both
# baselines read the same small tables their own way.
DATA_AS_OF_SQL = """
    SELECT s.campaign_name, coalesce(s.last_success_at, d.last_delivery_at)
    FROM sync_state s FULL JOIN (
        SELECT campaign_name, max(coalesce(ingested_at, received_at)) AS last_delivery_at
        FROM raw_deliveries WHERE state = 'ingested' GROUP BY 1
    ) d USING (campaign_name)
"""


def categories_cte(where: str) -> str:
    """The baselines' `cat` CTE: each disposition of the matching leads and its category, as
    the product resolves it (stored, else guessed from the name)."""
    category = category_sql("d.disposition", "dc.category")
    return (
        f"cat AS (SELECT d.disposition, {category} AS category FROM (SELECT DISTINCT disposition "
        f"FROM leads WHERE {where} AND disposition IS NOT NULL) d "
        "LEFT JOIN disposition_categories dc USING (disposition))"
    )


def _counts(where: str, group: str = "") -> str:
    select = f"{group}, " if group else ""
    tail = f" GROUP BY {group}" if group else ""
    return (
        f"WITH {categories_cte(where)} SELECT {select}count(*), "
        "count(*) FILTER (WHERE lead_status = 'Pending'), "
        f"count(*) FILTER (WHERE {ATTEMPTED}), count(*) FILTER (WHERE dial_bucket = 'answered'), "
        "count(*) FILTER (WHERE lead_status = 'Success'), "
        "count(*) FILTER (WHERE cat.category = 'Sale') "
        f"FROM leads LEFT JOIN cat USING (disposition) WHERE {where}{tail}"
    )


def _common_sql(cursor) -> dict:
    return {
        "version": cursor.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone(),
        "campaigns": cursor.execute("SELECT DISTINCT campaign_name FROM leads").fetchall(),
        "dispositions": cursor.execute(
            "SELECT disposition, count(*) FROM leads WHERE trim(disposition) <> '' GROUP BY 1"
        ).fetchall(),
        "total": cursor.execute("SELECT count(*) FROM leads").fetchone(),
    }


def sql_campaign(cursor, campaign: str) -> dict:
    where = "campaign_name = $c"
    p = {"c": campaign}

    def run(sql: str):
        return cursor.execute(sql, p).fetchall()

    return {
        "common": _common_sql(cursor),
        "per_campaign": run(_counts(where, "campaign_name")),
        "kpis": run(_counts(where)),
        "buckets": run(f"SELECT dial_bucket, count(*) FROM leads WHERE {where} GROUP BY 1"),
        "matrix": run(
            f"SELECT lead_status, dial_bucket, count(*) FROM leads WHERE {where} GROUP BY ALL"
        ),
        "pareto": run(
            f"WITH {categories_cte(where)} SELECT disposition, any_value(category), count(*) "
            f"FROM leads JOIN cat USING (disposition) WHERE {where} AND trim(disposition) <> '' "
            "GROUP BY 1"
        ),
        "sunburst": run(
            "SELECT lead_status, dial_bucket, coalesce(nullif(trim(disposition), ''), '(none)'), "
            f"count(*) FROM leads WHERE {where} GROUP BY ALL"
        ),
        "trend": run(
            f"SELECT CAST(updated_at AS DATE) AS day, dial_bucket, count(*), "
            f"count(*) FILTER (WHERE {ATTEMPTED}) FROM leads "
            f"WHERE {where} AND updated_at IS NOT NULL GROUP BY ALL"
        ),
        "heat": run(
            "SELECT isodow(updated_at), hour(updated_at), count(*), "
            "count(*) FILTER (WHERE dial_bucket = 'answered') FROM leads "
            f"WHERE {where} AND {ATTEMPTED} AND updated_at IS NOT NULL GROUP BY ALL"
        ),
        "freshness": cursor.execute(DATA_AS_OF_SQL).fetchall(),
    }


def sql_overview(cursor) -> dict:
    return {
        "common": _common_sql(cursor),
        "kpis": cursor.execute(_counts("TRUE")).fetchall(),
        "buckets": cursor.execute(
            "SELECT campaign_name, dial_bucket, count(*) FROM leads GROUP BY ALL"
        ).fetchall(),
        "dispositions": cursor.execute(
            "SELECT campaign_name, disposition, count(*) FROM leads "
            "WHERE trim(disposition) <> '' GROUP BY ALL"
        ).fetchall(),
        "table": cursor.execute(_counts("TRUE", "campaign_name")).fetchall(),
        "freshness": cursor.execute(DATA_AS_OF_SQL).fetchall(),
    }


# -- baseline B: pandas ------------------------------------------------------------------------


def _pandas_data_as_of(cursor) -> pd.Series:
    deliveries = cursor.execute("SELECT * FROM raw_deliveries").df()
    ingested = deliveries[deliveries["state"] == "ingested"]
    last = (
        ingested["ingested_at"].fillna(ingested["received_at"]).groupby(ingested["campaign_name"])
    ).max()
    success = cursor.execute("SELECT * FROM sync_state").df().set_index("campaign_name")
    return success["last_success_at"].combine_first(last)


_B_COLUMNS = (
    "campaign_name, lead_status, dial_bucket, disposition, attempts, updated_at, created_at"
)


def _load(cursor) -> pd.DataFrame:
    return cursor.execute(f"SELECT {_B_COLUMNS} FROM leads").df()


def _categories(cursor, dispositions: pd.Series) -> pd.Series:
    stored = dict(
        cursor.execute("SELECT disposition, category FROM disposition_categories").fetchall()
    )
    names = dispositions.dropna().unique()
    mapping = {d: stored.get(d) or guess_category(d) for d in names}
    return dispositions.map(mapping).fillna("Other")


def _attempted(frame: pd.DataFrame) -> pd.Series:
    attempts = frame["attempts"]
    return (
        (attempts > 0).where(attempts.notna(), frame["dial_bucket"] != "Not dialled").astype(bool)
    )


def _kpis(frame: pd.DataFrame, category: pd.Series, attempted: pd.Series) -> dict:
    return {
        "leads": len(frame),
        "pending": int((frame["lead_status"] == "Pending").sum()),
        "attempted": int(attempted.sum()),
        "answered": int((frame["dial_bucket"] == "answered").sum()),
        "successes": int((frame["lead_status"] == "Success").sum()),
        "conversions": int((category == "Sale").sum()),
    }


def pandas_campaign(cursor, campaign: str) -> dict:
    everything = _load(cursor)
    frame = everything[everything["campaign_name"] == campaign]
    category = _categories(cursor, frame["disposition"])
    attempted = _attempted(frame)
    updated = frame["updated_at"].dt.tz_convert(TZ)
    named = frame["disposition"].where(frame["disposition"].str.strip() != "")
    answered = frame["dial_bucket"] == "answered"
    heat_rows = attempted & updated.notna()
    return {
        "common": (
            everything["campaign_name"].unique(),
            named.value_counts(),
            len(everything),
        ),
        "kpis": _kpis(frame, category, attempted),
        "buckets": frame["dial_bucket"].value_counts(),
        "matrix": frame.groupby(["lead_status", "dial_bucket"]).size(),
        "pareto": named.groupby(named).size(),
        "sunburst": frame.groupby(
            [frame["lead_status"], frame["dial_bucket"], named.fillna("(none)")]
        ).size(),
        "trend": pd.DataFrame(
            {"day": updated.dt.date, "bucket": frame["dial_bucket"], "attempted": attempted}
        )
        .dropna(subset=["day"])
        .groupby(["day", "bucket"])
        .agg(leads=("attempted", "size"), attempted=("attempted", "sum")),
        "heat": pd.DataFrame(
            {
                "weekday": updated[heat_rows].dt.dayofweek + 1,
                "hour": updated[heat_rows].dt.hour,
                "answered": answered[heat_rows],
            }
        )
        .groupby(["weekday", "hour"])
        .agg(attempted=("answered", "size"), answered=("answered", "sum")),
        "freshness": _pandas_data_as_of(cursor),
    }


def pandas_overview(cursor) -> dict:
    frame = _load(cursor)
    category = _categories(cursor, frame["disposition"])
    attempted = _attempted(frame)
    named = frame["disposition"].where(frame["disposition"].str.strip() != "")
    by_campaign = frame.assign(
        attempted=attempted,
        pending=frame["lead_status"] == "Pending",
        answered=frame["dial_bucket"] == "answered",
        successes=frame["lead_status"] == "Success",
        conversions=category == "Sale",
    ).groupby("campaign_name")
    return {
        "common": (frame["campaign_name"].unique(), named.value_counts(), len(frame)),
        "kpis": _kpis(frame, category, attempted),
        "buckets": frame.groupby(["campaign_name", "dial_bucket"]).size(),
        "dispositions": frame.groupby([frame["campaign_name"], named]).size(),
        "table": by_campaign[
            ["attempted", "pending", "answered", "successes", "conversions"]
        ].sum(),
        "freshness": _pandas_data_as_of(cursor),
    }


# -- agreement -----------------------------------------------------------------------------------


def _agree_campaign(project: dict, sql: dict, pandas_: dict | None) -> bool:
    """The three answers give the same key numbers (counts per bucket, matrix, days, cells)."""
    kpi_sql = dict(zip(KPI_NAMES, sql["kpis"][0], strict=True))
    checks = [project["kpis"] == kpi_sql]
    buckets = {r.bucket: r.leads for r in project["buckets"].itertuples() if r.leads}
    checks.append(buckets == dict(sql["buckets"]))
    matrix = {
        (status, bucket): int(v)
        for status, row in project["matrix"].iterrows()
        for bucket, v in row.items()
        if v
    }
    checks.append(matrix == {(a, b): n for a, b, n in sql["matrix"]})
    trend = project["trend"]
    checks.append(int(trend[[c for c in trend.columns if c in DIAL_BUCKETS]].sum().sum())
                  == sum(r[2] for r in sql["trend"]))  # fmt: skip
    checks.append(len(trend) == len({r[0] for r in sql["trend"]}))
    heat = {(r.weekday, r.hour): (r.attempted, r.answered) for r in project["heat"].itertuples()}
    checks.append(heat == {(a, b): (c, d) for a, b, c, d in sql["heat"]})
    if pandas_ is not None:
        checks.append(project["kpis"] == pandas_["kpis"])
        checks.append(buckets == pandas_["buckets"].to_dict())
        pheat = {(int(w), int(h)): (int(r.attempted), int(r.answered))
                 for (w, h), r in pandas_["heat"].iterrows()}  # fmt: skip
        checks.append(heat == pheat)
    return all(checks)


def _agree_overview(project: dict, sql: dict, pandas_: dict | None) -> bool:
    kpi_sql = dict(zip(KPI_NAMES, sql["kpis"][0], strict=True))
    checks = [project["kpis"] == kpi_sql]
    buckets = {(r.campaign, r.bucket): r.leads for r in project["buckets"].itertuples() if r.leads}
    checks.append(buckets == {(a, b): n for a, b, n in sql["buckets"]})
    if pandas_ is not None:
        checks.append(project["kpis"] == pandas_["kpis"])
    return all(checks)


# -- the measurement -----------------------------------------------------------------------------


def measure(store, today: date, rounds: int, pandas_rounds: int) -> dict:
    """Project, A and B for both views, interleaved; medians in seconds and the agreement."""
    cursor = store.cursor()
    views = {
        "campaign": (
            lambda: project_campaign(cursor, store, today),
            lambda: sql_campaign(cursor, FOCUS),
            lambda: pandas_campaign(cursor, FOCUS),
            _agree_campaign,
        ),
        "overview": (
            lambda: project_overview(cursor, store, today),
            lambda: sql_overview(cursor),
            lambda: pandas_overview(cursor),
            _agree_overview,
        ),
    }
    out = {}
    for view, (project, sql, pandas_, agree) in views.items():
        agreed = agree(project(), sql(), pandas_() if pandas_rounds else None)  # also warms up
        times: dict[str, list[float]] = {"project": [], "sql": [], "pandas": []}
        for index in range(rounds):
            times["project"].append(timed(project))
            times["sql"].append(timed(sql))
            if index < pandas_rounds:
                times["pandas"].append(timed(pandas_))
        out[view] = {
            "project_s": median(times["project"]),
            "sql_s": median(times["sql"]),
            "pandas_s": median(times["pandas"]) if times["pandas"] else None,
            "runs": {k: [round(v, 4) for v in vals] for k, vals in times.items()},
            "agree": agreed,
        }
    out["summary_rows"] = cursor.execute("SELECT count(*) FROM lead_summary").fetchone()[0]
    out["summary_rebuild_s"] = _rebuild_time(store)
    cursor.close()
    return out


def _rebuild_time(store) -> float:
    """What the first query pays after something other than ingest changed the data version
    (a category edit): one full rebuild of the summary."""
    with store.writing() as cursor:
        cursor.execute("BEGIN")
        seconds = timed(lambda: summary.rebuild_summary(cursor))
        cursor.execute("COMMIT")
    return seconds


def growth_exponent(points: list[tuple[int, float]]) -> float | None:
    """Slope of log(time) over log(rows) between the smallest and the largest size (1 = linear)."""
    if len(points) < 2:
        return None
    (n0, t0), (n1, t1) = points[0], points[-1]
    if min(t0, t1) <= 0 or n0 == n1:
        return None
    return math.log(t1 / t0) / math.log(n1 / n0)
