"""Issue 14, the new pages' queries: Progress, Agents and the Campaign Trends best time to call.

Project: exactly what each page asks `lib.view.metrics` for one view, with the arguments the page
passes (app_pages/progress.py, app_pages/agents.py, `_best_time` in app_pages/campaign.py),
undecorated (no Streamlit cache), plus the pure helpers the page runs on the frames (the
definitions, the count links, the funnel, the numbers, the best windows). Views: Progress and
Agents as they open (no filter: every campaign, range "all") and for the focus campaign; the best
time for the focus campaign (the Campaign page always looks at one campaign).

Baseline: bare DuckDB SQL computing the same numbers directly from `leads`, one statement per
frame the page asks for, on the same connection (the attempts allowed from `campaign_policy` or
the highest attempts seen, the disposition categories from `disposition_categories` or the
guess, as the product defines them); the best windows' greedy pick in Python over the candidate
windows the SQL ranks.

Every round runs project and baseline back to back (median of the rounds), and the answers are
compared (every count of the Progress table per campaign and in total, the outcome by attempt,
the calling-window list, every column of the agents' table, the conversions chart, the talk
time per campaign and its bands, the best windows and the overall rate), so a baseline that
computes something else cannot look fast.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from fractions import Fraction

from bench.common import FOCUS, TZ, median, timed
from bench.queries import categories_cte
from lib.store.lead_sql import AGENT_SQL, ATTEMPTED_SQL
from lib.store.policy import dial_policy
from lib.store.summary import TALK_BANDS, summary_ready
from lib.view import metrics
from lib.view.filters import NO_AGENT, Filters
from lib.view.metrics.agents import TOP_DISPOSITIONS
from lib.view.metrics.best_time import BEST_TIME_WINDOWS

ALL = Filters()
ONE = Filters(campaigns=(FOCUS,))
TOP = metrics.CHART_TOP
WRAP_UP = "starts_with(lower(trim(disposition)), 'wrap up time exceeded')"
HAS_DISPOSITION = "coalesce(trim(disposition), '') <> ''"
ANSWERED = "dial_bucket = 'answered'"
COUNTS = (
    "leads", "not_dialled", "retrying", "out_of_tries", "success", "failed", "attempted",
    "retries_left", "retries_unknown", "stale_pending", "outside_window", "dnc_pending",
    "answered", "answered_no_disposition", "with_disposition", "wrap_up",
)  # fmt: skip
WINDOW_ROW = ("Campaign", "Status", "Dial status", "Disposition", "Agent", "Attempts", "Last call")


# -- project: what the pages call ------------------------------------------------------------


def project_progress(cursor, store, filters: Filters, today: date) -> dict:
    """app_pages/progress.py, top to bottom (charts and widgets left out)."""
    policy = dial_policy(store)  # operations.dial_policy()
    rules = {
        "window_start": policy.window_start,
        "window_end": policy.window_end,
        "stale_days": policy.stale_days,
    }
    table = metrics.progress_table(cursor, filters, TZ, today, **rules)
    helps = metrics.progress_definitions(TZ, **rules)
    links = [
        metrics.count_links(row, filters, today, policy.stale_days)
        for row in table.to_dict("records")
    ]
    return {
        "table": table,
        "helps": helps,
        "links": links,
        "funnel": metrics.progress_funnel(table),
        "numbers": metrics.progress_numbers(table),
        "outcomes": metrics.attempt_outcomes(cursor, filters, TZ, today),
        "window": metrics.window_leads(
            cursor,
            filters,
            TZ,
            today,
            window_start=policy.window_start,
            window_end=policy.window_end,
            show_phones=False,  # the default (DIALSTATUS_SHOW_PHONES unset)
        ),
    }


def project_agents(cursor, store, filters: Filters, today: date) -> dict:
    """app_pages/agents.py: four queries, default options."""
    del store
    return {
        "table": metrics.agent_table(cursor, filters, TZ, today),
        "conversions": metrics.agent_conversions(cursor, filters, TZ, today),
        "talk": metrics.talk_time_by_campaign(cursor, filters, TZ, today),
        "bands": metrics.talk_time_bands(cursor, filters, TZ, today),
    }


def project_best_time(cursor, store, filters: Filters, today: date) -> dict:
    """`_best_time` of app_pages/campaign.py: the heatmap's grid, the tiles' counts, the advice."""
    del store
    heat = metrics.hour_weekday(cursor, filters, TZ, today)
    counts = metrics.kpi_counts(cursor, filters, TZ, today)
    advice = metrics.best_windows(heat, counts["answered"], counts["attempted"])
    return {"advice": advice, "lines": advice.lines()}


# -- baseline: bare SQL over leads -----------------------------------------------------------


def _where(filters: Filters) -> tuple[str, dict]:
    if filters.campaigns:
        return "list_contains($c, campaign_name)", {"c": list(filters.campaigns)}
    return "TRUE", {}


def _allowed(where: str) -> str:
    """Attempts allowed per campaign of the view (the views filter by campaign only, so the
    highest attempts seen over `where` is the campaign's)."""
    return (
        "allowed AS (SELECT coalesce(m.campaign_name, p.campaign_name) AS campaign_name, "
        "coalesce(p.attempts_allowed, m.seen) AS allowed "
        f"FROM (SELECT campaign_name, max(attempts) AS seen FROM leads WHERE {where} GROUP BY 1) m "
        "FULL JOIN campaign_policy p USING (campaign_name))"
    )


_PROGRESS = f"""CASE WHEN NOT {ATTEMPTED_SQL} THEN 'not_dialled'
    WHEN lead_status = 'Success' THEN 'success' WHEN lead_status = 'Fail' THEN 'failed'
    WHEN coalesce(attempts, 1) >= allowed THEN 'out_of_tries' ELSE 'retrying' END"""


def sql_progress(cursor, store, filters: Filters, today: date) -> dict:
    where, p = _where(filters)
    policy = cursor.execute(
        "SELECT window_start, window_end, stale_days FROM dial_policy WHERE id = 1"
    ).fetchone() or (9, 21, 3)
    ws, we, stale_days = policy
    opened = "progress IN ('not_dialled', 'retrying')"
    table = cursor.execute(
        f"""
        WITH {categories_cte(where)}, {_allowed(where)},
        l AS (
            SELECT campaign_name, lead_status, dial_bucket, disposition, attempts, updated_at,
                   {ATTEMPTED_SQL} AS attempted, a.allowed, cat.category, {_PROGRESS} AS progress
            FROM leads LEFT JOIN cat USING (disposition) LEFT JOIN allowed a USING (campaign_name)
            WHERE {where}
        )
        SELECT campaign_name, count(*),
               count(*) FILTER (WHERE progress = 'not_dialled'),
               count(*) FILTER (WHERE progress = 'retrying'),
               count(*) FILTER (WHERE progress = 'out_of_tries'),
               count(*) FILTER (WHERE progress = 'success'),
               count(*) FILTER (WHERE progress = 'failed'),
               count(*) FILTER (WHERE attempted),
               coalesce(sum(allowed - coalesce(attempts, attempted::INTEGER))
                        FILTER (WHERE {opened}), 0),
               count(*) FILTER (WHERE {opened} AND allowed IS NULL),
               count(*) FILTER (WHERE lead_status = 'Pending' AND attempted
                                AND CAST(updated_at AS DATE) < $stale),
               count(*) FILTER (WHERE attempted
                                AND (hour(updated_at) < $ws OR hour(updated_at) >= $we)),
               count(*) FILTER (WHERE category = 'Do not call' AND lead_status = 'Pending'),
               count(*) FILTER (WHERE {ANSWERED}),
               count(*) FILTER (WHERE {ANSWERED} AND NOT {HAS_DISPOSITION}),
               count(*) FILTER (WHERE {HAS_DISPOSITION}),
               count(*) FILTER (WHERE {WRAP_UP}),
               coalesce(list(DISTINCT disposition ORDER BY disposition)
                        FILTER (WHERE category = 'Do not call' AND lead_status = 'Pending'), []),
               coalesce(list(DISTINCT disposition ORDER BY disposition)
                        FILTER (WHERE {WRAP_UP}), [])
        FROM l GROUP BY GROUPING SETS ((campaign_name), ())
        """,
        {**p, "stale": today - timedelta(days=int(stale_days)), "ws": ws, "we": we},
    ).fetchall()
    outcomes = cursor.execute(
        f"""
        WITH {categories_cte(where)}, {_allowed(where)},
        per AS (
            SELECT campaign_name, {ATTEMPTED_SQL} AS attempted, coalesce(attempts, 1) AS k,
                   count(*) AS n, count(*) FILTER (WHERE {ANSWERED}) AS answered,
                   count(*) FILTER (WHERE cat.category = 'Sale') AS conversions
            FROM leads LEFT JOIN cat USING (disposition) WHERE {where} GROUP BY ALL
        ), last AS (
            SELECT greatest(coalesce(max(a.allowed), 1), 1) AS last
            FROM (SELECT DISTINCT campaign_name FROM per) JOIN allowed a USING (campaign_name)
        )
        SELECT least(k, last) AS attempt, sum(n), sum(answered), sum(conversions)
        FROM per, last WHERE attempted GROUP BY 1 ORDER BY 1
        """,
        p,
    ).fetchall()
    window = cursor.execute(
        f"""
        SELECT campaign_name, lead_status, dial_status, disposition, {AGENT_SQL}, attempts,
               strftime(updated_at, '%Y-%m-%d %H:%M:%S'), phone_number, name
        FROM leads
        WHERE {where} AND {ATTEMPTED_SQL} AND (hour(updated_at) < $ws OR hour(updated_at) >= $we)
        ORDER BY updated_at DESC, campaign_name, lead_key LIMIT {metrics.WINDOW_LIST_LIMIT}
        """,
        {**p, "ws": ws, "we": we},
    ).fetchall()
    return {"table": table, "outcomes": outcomes, "window": window}


def _band_sql() -> str:
    cases = " ".join(
        f"WHEN call_duration_s < {limit} THEN {i}"
        for i, (_, limit) in enumerate(TALK_BANDS)
        if limit
    )
    return f"CASE {cases} ELSE {len(TALK_BANDS) - 1} END"


def sql_agents(cursor, store, filters: Filters, today: date) -> dict:
    where, p = _where(filters)
    agent = f"coalesce({AGENT_SQL}, $no_agent)"
    table = cursor.execute(
        f"""
        WITH {categories_cte(where)},
        l AS (
            SELECT {agent} AS agent, disposition, dial_bucket, call_duration_s, cat.category
            FROM leads LEFT JOIN cat USING (disposition) WHERE {where}
        ), per AS (
            SELECT agent, count(*) AS handled, count(*) FILTER (WHERE {ANSWERED}) AS answered,
                   count(*) FILTER (WHERE category = 'Sale') AS conversions,
                   count(*) FILTER (WHERE {HAS_DISPOSITION}) AS with_disposition,
                   count(*) FILTER (WHERE {HAS_DISPOSITION} AND {WRAP_UP}) AS wrap_ups,
                   quantile_cont(call_duration_s, [0.5, 0.9]) FILTER (WHERE {ANSWERED}) AS q
            FROM l GROUP BY agent
        ), disp AS (
            SELECT agent, disposition, count(*) AS n,
                   row_number() OVER (PARTITION BY agent ORDER BY count(*) DESC, disposition) AS r
            FROM l WHERE {HAS_DISPOSITION} GROUP BY agent, disposition
        ), top AS (
            SELECT agent, string_agg(disposition || ' (' || format('{{:,}}', n) || ')', ', '
                                     ORDER BY r) AS top
            FROM disp WHERE r <= $top_n GROUP BY agent
        )
        SELECT agent, handled, answered, conversions,
               round(100 * conversions / nullif(answered, 0), 1), round(q[1], 1), round(q[2], 1),
               round(100 * wrap_ups / nullif(with_disposition, 0), 1), coalesce(top, '')
        FROM per LEFT JOIN top USING (agent) ORDER BY handled DESC, agent
        """,
        {**p, "no_agent": NO_AGENT, "top_n": TOP_DISPOSITIONS},
    ).fetchall()
    conversions = cursor.execute(
        f"""
        WITH {categories_cte(where)},
        per AS (
            SELECT {agent} AS agent, count(*) FILTER (WHERE {ANSWERED}) AS answered,
                   count(*) FILTER (WHERE cat.category = 'Sale') AS conversions
            FROM leads LEFT JOIN cat USING (disposition) WHERE {where} GROUP BY 1
        ), ranked AS (
            SELECT *, row_number() OVER (ORDER BY conversions DESC, answered DESC, agent) AS r
            FROM per
        )
        SELECT CASE WHEN r <= $top THEN agent END AS shown, sum(answered), sum(conversions)
        FROM ranked GROUP BY 1 ORDER BY shown IS NULL, min(r)
        """,
        {**p, "no_agent": NO_AGENT, "top": TOP},
    ).fetchall()
    answered = (
        f"a AS (SELECT campaign_name, call_duration_s FROM leads WHERE {where} AND {ANSWERED}), "
        "ranked AS (SELECT campaign_name, "
        "row_number() OVER (ORDER BY count(*) DESC, campaign_name) AS r FROM a GROUP BY 1), "
        "g AS (SELECT CASE WHEN r <= $top THEN campaign_name END AS grp, r, call_duration_s "
        "FROM a JOIN ranked USING (campaign_name))"
    )
    talk = cursor.execute(
        f"""
        WITH {answered}
        SELECT grp, grouping(grp) = 1 AS is_total, count(*),
               round(quantile_cont(call_duration_s, [0.5, 0.9])[1], 1),
               round(quantile_cont(call_duration_s, [0.5, 0.9])[2], 1),
               count(*) FILTER (WHERE call_duration_s < {TALK_BANDS[0][1]})
        FROM g GROUP BY GROUPING SETS ((grp), ())
        """,
        {**p, "top": TOP},
    ).fetchall()
    bands = cursor.execute(
        f"""
        WITH {answered}
        SELECT grp, {_band_sql()} AS band, count(*)
        FROM g WHERE call_duration_s IS NOT NULL GROUP BY ALL
        """,
        {**p, "top": TOP},
    ).fetchall()
    return {"table": table, "conversions": conversions, "talk": talk, "bands": bands}


def sql_best_time(cursor, store, filters: Filters, today: date) -> dict:
    where, p = _where(filters)
    candidates = cursor.execute(
        f"""
        WITH cells AS (
            SELECT isodow(updated_at) AS w, hour(updated_at) AS h, count(*) AS attempted,
                   count(*) FILTER (WHERE {ANSWERED}) AS answered
            FROM leads WHERE {where} AND {ATTEMPTED_SQL} AND updated_at IS NOT NULL GROUP BY ALL
        )
        SELECT a.w, a.h, a.answered + b.answered, a.attempted + b.attempted
        FROM cells a JOIN cells b ON b.w = a.w AND b.h = a.h + 1
        WHERE a.attempted >= $min AND b.attempted >= $min
        """,
        {**p, "min": metrics.BEST_TIME_MIN},
    ).fetchall()
    overall = cursor.execute(
        f"SELECT count(*) FILTER (WHERE {ANSWERED}), count(*) FILTER (WHERE {ATTEMPTED_SQL}) "
        f"FROM leads WHERE {where}",
        p,
    ).fetchone()
    candidates.sort(key=lambda c: (-Fraction(c[2], c[3]), -c[3], c[0], c[1]))
    picked: list[tuple] = []
    for c in candidates:
        if len(picked) == BEST_TIME_WINDOWS:
            break
        if all(c[0] != q[0] or abs(c[1] - q[1]) >= 2 for q in picked):
            picked.append(c)
    return {"windows": picked, "overall": overall}


# -- agreement -------------------------------------------------------------------------------


def _n(value) -> int:
    return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _f(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _agree_progress(project: dict, sql: dict) -> dict[str, bool]:
    table = project["table"]
    got = {}
    for r in table.to_dict("records"):
        key = None if r["is_total"] else r["campaign_name"]
        got[key] = (
            tuple(_n(r[c]) for c in COUNTS),
            sorted(r["dnc_dispositions"]),
            sorted(r["wrap_up_dispositions"]),
        )
    want = {
        r[0]: (tuple(_n(v) for v in r[1:17]), sorted(r[17]), sorted(r[18])) for r in sql["table"]
    }
    checks = {"no other": not table["is_other"].any(), "table": got == want}  # 20 <= CHART_TOP
    outcomes = {
        int(r.attempt): (int(r.leads), int(r.answered), int(r.conversions))
        for r in project["outcomes"].itertuples()
        if r.leads
    }
    checks["outcomes"] = outcomes == {
        int(a): (int(n), int(b), int(c)) for a, n, b, c in sql["outcomes"]
    }
    window = [
        tuple(None if _f(v) is None else v for v in row)
        for row in project["window"][list(WINDOW_ROW)].itertuples(index=False)
    ]
    checks["window"] = window == [tuple(r[:7]) for r in sql["window"]]
    checks["links"] = len(project["links"]) == len(table) and len(project["funnel"]) > 0
    return checks


def _agree_agents(project: dict, sql: dict) -> dict[str, bool]:
    table = [
        tuple(_f(v) for v in row)
        for row in project["table"][list(metrics.AGENT_COLUMNS)].itertuples(index=False)
    ]
    checks = {"table": table == [tuple(_f(v) for v in r) for r in sql["table"]]}
    conversions = [
        (None if r.is_other else r.agent, int(r.answered), int(r.conversions))
        for r in project["conversions"].itertuples()
    ]
    checks["conversions"] = conversions == [(a, int(b), int(c)) for a, b, c in sql["conversions"]]
    talk = {
        (None if r["is_total"] else r["Campaign"]) if not r["is_other"] else "other": (
            int(r["Answered"]),
            _f(r["Median talk time"]),
            _f(r["P90 talk time"]),
            int(r["Short answered calls"]),
        )
        for r in project["talk"].to_dict("records")
    }
    want = {
        (None if is_total else grp or "other"): (int(n), _f(m), _f(q), int(s))
        for grp, is_total, n, m, q, s in sql["talk"]
        if n
    }
    checks["talk"] = talk == want
    labels = [name for name, _ in TALK_BANDS]
    bands = {
        ("other" if r.is_other else r.campaign, labels.index(r.band)): int(r.leads)
        for r in project["bands"].itertuples()
        if r.leads
    }
    checks["bands"] = bands == {(grp or "other", int(b)): int(n) for grp, b, n in sql["bands"]}
    return checks


def _agree_best_time(project: dict, sql: dict) -> dict[str, bool]:
    advice = project["advice"]
    windows = [(w.weekday, w.hour, w.answered, w.attempted) for w in advice.windows]
    return {
        "windows": windows == [tuple(int(v) for v in c) for c in sql["windows"]],
        "overall": (advice.answered, advice.attempted) == tuple(sql["overall"]),
        "three windows": len(windows) == BEST_TIME_WINDOWS,  # the bench data has enough calls
    }


# -- the measurement -------------------------------------------------------------------------

PAGES = {
    "progress": (project_progress, sql_progress, _agree_progress, {"all": ALL, "campaign": ONE}),
    "agents": (project_agents, sql_agents, _agree_agents, {"all": ALL, "campaign": ONE}),
    "best_time": (project_best_time, sql_best_time, _agree_best_time, {"campaign": ONE}),
}


def summary_rows(cursor) -> dict:
    """The summaries' row counts against the leads' (issue 14: a summary must grow with the
    distinct groups, not with the leads)."""
    leads, full, coarse = cursor.execute(
        "SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM lead_summary), "
        "(SELECT count(*) FROM lead_counts)"
    ).fetchone()
    return {
        "leads": leads,
        "lead_summary": full,
        "lead_counts": coarse,
        "lead_summary_per_lead": full / leads if leads else None,
        "lead_counts_per_lead": coarse / leads if leads else None,
    }


def measure(store, today: date, rounds: int) -> dict:
    """Project and bare SQL for every page and view, interleaved; medians in seconds."""
    cursor = store.cursor()
    out: dict = {"summary_ready": summary_ready(cursor)}
    for page, (project, sql, agree, views) in PAGES.items():
        for view, filters in views.items():

            def run_project(f=filters, p=project):
                return p(cursor, store, f, today)

            def run_sql(f=filters, s=sql):
                return s(cursor, store, f, today)

            checks = agree(run_project(), run_sql())  # also warms up
            wrong = [name for name, ok in checks.items() if not ok]
            assert not wrong, f"{page}/{view}: project and bare SQL disagree on {wrong}"
            times: dict[str, list[float]] = {"project": [], "sql": []}
            for _ in range(rounds):
                times["project"].append(timed(run_project))
                times["sql"].append(timed(run_sql))
            project_s, sql_s = median(times["project"]), median(times["sql"])
            out.setdefault(page, {})[view] = {
                "project_s": project_s,
                "sql_s": sql_s,
                "ratio": project_s / sql_s,
                "runs": {k: [round(v, 4) for v in vals] for k, vals in times.items()},
                "agree": all(checks.values()),
                "disagree": [name for name, ok in checks.items() if not ok],
            }
    out["rows"] = summary_rows(cursor)
    out["summary_ready_after"] = summary_ready(cursor)
    cursor.close()
    return out
