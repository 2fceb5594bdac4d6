"""`python -m bench [--quick] [--only SECTION ...]`: every benchmark, a table and a JSON file.

Sections: economy (API requests, simulated hour), queries (page queries at several sizes),
pages (the Progress, Agents and best-time queries, issue 14, at the same sizes), ingest (POST to
the running server), history (issue 15: ingest with the lead history's events, a delivery
changing 10k stored leads, the activity and what-changed queries over 20M events), browser
(bytes, memory, time to charts in Chromium).
`--quick` uses small sizes and single runs (about 2 minutes on 2 cores); the full mode uses the
issue's sizes (100k/1M/5M leads) and takes about 15-20 minutes. Databases and bodies go to
--work (default /tmp/dialstatus-bench), never into the repository; the results go to
bench/results/latest.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    DEFAULT_WORK,
    PROJECT_ROOT,
    TZ,
    build_db,
    campaign_sizes,
    floor_server,
    now_local,
    project_server,
    section,
)

RESULTS = PROJECT_ROOT / "bench" / "results"
SECTIONS = ("economy", "queries", "pages", "ingest", "history", "browser")

FULL = {
    "economy_leads": 50_000,
    "query_sizes": [100_000, 1_000_000, 5_000_000],
    "query_rounds": 5,
    "pandas_rounds": 3,
    "ingest_sizes": [100_000, 1_000_000],
    "ingest_rounds": 3,
    "bytes_sizes": [10_000, 5_000_000],
    "browser_size": 1_000_000,
    "browser_runs": 5,  # the browser figures vary by about ±0.2 in the ratio from run to run
    "browser_conditions": [
        "loopback/fresh",
        "loopback/warm",
        "office_link/fresh",
        "office_link/warm",
    ],
    "memory_size": 5_000_000,
    "memory_views": 50,
    "direct_build_from": 5_000_000,  # sizes from here on: set-based insert, not ingest
    "history_ingest_size": 1_000_000,  # records per delivery, first load and incremental
    "history_size": 5_000_000,  # focus leads of the database given 4 events per focus lead
    "history_rounds": 3,
}
QUICK = {
    "economy_leads": 2_000,
    "query_sizes": [10_000, 30_000, 100_000],
    "query_rounds": 3,
    "pandas_rounds": 1,
    "ingest_sizes": [10_000, 50_000],
    "ingest_rounds": 1,
    "bytes_sizes": [10_000, 100_000],
    "browser_size": 100_000,
    "browser_runs": 1,
    "browser_conditions": ["loopback/fresh"],
    "memory_size": 100_000,
    "memory_views": 3,
    "direct_build_from": 0,  # quick: every database by the set-based insert (seconds, not tens)
    "history_ingest_size": 20_000,
    "history_size": 100_000,  # at least 50,000: the 10k changes are of leads 1..50,000
    "history_rounds": 1,
}


def _versions() -> dict:
    import duckdb
    import pandas
    import plotly
    import pyarrow
    import streamlit

    return {
        "python": platform.python_version(),
        "streamlit": streamlit.__version__,
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "plotly": plotly.__version__,
    }


class Databases:
    """Databases of n leads, built once per run and reused by every section."""

    def __init__(self, work: Path, direct_from: int) -> None:
        self.work = work / "db"
        self.work.mkdir(parents=True, exist_ok=True)
        self.direct_from = direct_from
        self.now = now_local()
        self.built: dict[int, dict] = {}

    def path(self, n: int) -> Path:
        if n not in self.built:
            method = "direct" if n >= self.direct_from else "ingest"
            db = build_db(self.work / f"leads-{n}.duckdb", n, self.now, method)
            self.built[n] = {"leads": db.leads, "seconds": round(db.seconds, 1), "method": method}
            print(
                f"   built {n:,}-lead database ({db.leads:,} rows, {method}) in {db.seconds:.1f} s",
                flush=True,
            )
        return self.work / f"leads-{n}.duckdb"


def run_economy(cfg: dict) -> dict:
    from bench import economy

    result = economy.measure(cfg["economy_leads"])
    inc, naive = result["incremental"], result["naive"]
    print(
        f"   incremental {inc['requests']} requests, {inc['records']:,} records; naive "
        f"{naive['requests']} requests, {naive['records']:,} records; max in 60 s "
        f"{max(inc['max_requests_in_60s'], naive['max_requests_in_60s'])}",
        flush=True,
    )
    return result


def run_queries(cfg: dict, dbs: Databases) -> dict:
    from bench import queries
    from lib.store import Store

    out: dict = {"sizes": {}}
    for n in cfg["query_sizes"]:
        path = dbs.path(n)
        store = Store(path, TZ)
        try:
            result = queries.measure(
                store, dbs.now.date(), cfg["query_rounds"], cfg["pandas_rounds"]
            )
        finally:
            store.close()
        out["sizes"][str(n)] = result
        c, o = result["campaign"], result["overview"]
        print(
            f"   {n:>9,} leads: campaign view project {c['project_s']:.3f} s, SQL "
            f"{c['sql_s']:.3f} s, pandas {c['pandas_s'] or float('nan'):.3f} s; overview "
            f"{o['project_s']:.3f} / {o['sql_s']:.3f} / {o['pandas_s'] or float('nan'):.3f} s; "
            f"agree {c['agree'] and o['agree']}",
            flush=True,
        )
    for view in ("campaign", "overview"):
        for side in ("project_s", "sql_s", "pandas_s"):
            points = [
                (n, out["sizes"][str(n)][view][side])
                for n in cfg["query_sizes"]
                if out["sizes"][str(n)][view][side]
            ]
            out.setdefault("growth_exponent", {}).setdefault(view, {})[side] = (
                queries.growth_exponent(points)
            )
    return out


def run_pages(cfg: dict, dbs: Databases) -> dict:
    """Issue 14: the Progress, Agents and best-time queries at the query sizes, and the
    summaries' row counts against the leads'."""
    from bench import pages, queries
    from lib.store import Store

    out: dict = {"sizes": {}}
    for n in cfg["query_sizes"]:
        store = Store(dbs.path(n), TZ)
        try:
            result = pages.measure(store, dbs.now.date(), cfg["query_rounds"])
        finally:
            store.close()
        out["sizes"][str(n)] = result
        rows = result["rows"]
        print(
            f"   {n:>9,} leads ({rows['leads']:,} rows): lead_summary {rows['lead_summary']:,} "
            f"rows ({rows['lead_summary_per_lead']:.4f} per lead), lead_counts "
            f"{rows['lead_counts']:,} ({rows['lead_counts_per_lead']:.4f}); summary ready "
            f"{result['summary_ready'] and result['summary_ready_after']}",
            flush=True,
        )
        for page in pages.PAGES:
            for view, r in result[page].items():
                print(
                    f"      {page}/{view}: project {r['project_s']:.3f} s, SQL {r['sql_s']:.3f} s"
                    f" = {r['ratio']:.2f}x; agree {r['agree']} {' '.join(r['disagree'])}",
                    flush=True,
                )
    for page, (_, _, _, views) in pages.PAGES.items():
        for view in views:
            for side in ("project_s", "sql_s"):
                points = [(n, out["sizes"][str(n)][page][view][side]) for n in cfg["query_sizes"]]
                out.setdefault("growth_exponent", {}).setdefault(f"{page}/{view}", {})[side] = (
                    queries.growth_exponent(points)
                )
    for table in ("lead_summary", "lead_counts"):  # rows against leads (1 = one row per lead)
        points = [
            (out["sizes"][str(n)]["rows"]["leads"], out["sizes"][str(n)]["rows"][table])
            for n in cfg["query_sizes"]
        ]
        out.setdefault("rows_growth_exponent", {})[table] = queries.growth_exponent(points)
    return out


def run_ingest(cfg: dict, work: Path) -> dict:
    from bench import ingest

    return ingest.measure(work, cfg["ingest_sizes"], cfg["ingest_rounds"])


def run_history(cfg: dict, dbs: Databases, work: Path) -> dict:
    """Issue 15: ingest with the events, a 10k-lead change of a large stored set, the history's
    queries over 4 events per focus lead."""
    from bench import history

    n = cfg["history_ingest_size"]
    out = {"ingest": history.measure_ingest(work, n, cfg["history_rounds"], dbs.now)}
    i = out["ingest"]
    print(
        f"   ingest {n:,} records with events: first load {i['first']['project_s']:.2f} s vs "
        f"read_json {i['first']['baseline_s']:.2f} s = {i['first']['ratio']:.2f}x; incremental "
        f"{i['incremental']['project_s']:.2f} s vs {i['incremental']['baseline_s']:.2f} s = "
        f"{i['incremental']['ratio']:.2f}x; events per delivery {i['events']}",
        flush=True,
    )
    size = cfg["history_size"]
    out.update(history.measure_history(dbs.path(size), work, size, dbs.now, cfg["history_rounds"]))
    for key, seconds in out["queries"]["seconds"].items():
        print(f"      {key}: {seconds:.3f} s", flush=True)
    d = out["delivery"]["seconds"]
    print(
        f"   delivery changing {history.CHANGED:,} stored leads: ingest {d['ingest']:.3f} s, "
        f"events {d['events']:.3f} s (record_changes {d['record_changes']:.3f}, add_event_hours "
        f"{d['add_event_hours']:.3f}); read_json of the records {d['read_json']:.3f} s",
        flush=True,
    )
    for phases in out["delivery"]["phases"]:
        print(f"      phases: {phases}", flush=True)
    return out


def run_browser(cfg: dict, dbs: Databases, work: Path) -> dict:
    """One server per database size, each doing what is asked at that size: memory first (its
    first view is the cold one), then the bytes of one view, then time to charts vs the floor."""
    from bench import browser
    from tests.support.chromium import launched_chromium

    out: dict = {"bytes": {}, "memory": None, "time_to_charts": None}
    url_path = browser.CAMPAIGN_PATH
    sizes = dict.fromkeys([cfg["memory_size"], *cfg["bytes_sizes"], cfg["browser_size"]])
    with launched_chromium() as chrome:
        for n in sizes:
            with project_server(dbs.path(n), work / f"server-{n}", campaign_sizes(n)) as server:
                url = server.base_url + url_path
                if n == cfg["memory_size"]:
                    m = browser.memory(
                        chrome, server.pid, url, browser.CAMPAIGN_CHARTS, cfg["memory_views"]
                    )
                    out["memory"] = {**m, "leads": n}
                    print(
                        f"   memory at {n:,} leads: peak {m['peak_hwm_mib']:.0f} MiB, after "
                        f"{m['views']} views {m['rss_after_mib']:.0f} MiB, growth after warm-up "
                        f"{m['growth_after_warmup_mib']:+.0f} MiB",
                        flush=True,
                    )
                if n in cfg["bytes_sizes"]:
                    b = browser.page_bytes(chrome, url, browser.CAMPAIGN_CHARTS)
                    out["bytes"][str(n)] = b
                    print(
                        f"   bytes at {n:,} leads: {b['total_bytes']:,} (WebSocket "
                        f"{b['ws_bytes']:,} in {b['ws_frames']} frames, HTTP {b['http_bytes']:,}; "
                        f"static bundles {b['static_bytes']:,} not counted)",
                        flush=True,
                    )
                if n == cfg["browser_size"]:
                    with floor_server(work / "floor") as floor:
                        targets = {
                            "project": (url, browser.CAMPAIGN_CHARTS),
                            "floor": (floor.base_url + "/", browser.FLOOR_CHARTS),
                        }
                        out["time_to_charts"] = browser.time_to_charts(
                            chrome, targets, cfg["browser_runs"], cfg["browser_conditions"]
                        )
                        out["time_to_charts"]["leads"] = n
    return out


# -- goals and the table -------------------------------------------------------------------------


def _goal(name: str, met: bool | None, detail: str) -> dict:
    return {"goal": name, "met": met, "detail": detail}


def evaluate(cfg: dict, results: dict, quick: bool) -> list[dict]:
    goals = []
    sizes_note = " (quick mode: small sizes, indicative only)" if quick else ""
    ingest = results.get("ingest")
    if ingest:
        n = str(max(cfg["ingest_sizes"]))
        r = ingest[n]
        h = r["health_during_ingest_ms"]
        goals.append(
            _goal(
                "1 ingest <= 2x read_json at 1M" + sizes_note,
                r["ratio"] <= 2.0,
                f"{int(n):,} records: {r['project_s']:.2f} s vs {r['baseline_s']:.2f} s = "
                f"{r['ratio']:.2f}x; /api/health during ingest p50 {h['p50']:.0f} ms, p95 "
                f"{h['p95']:.0f} ms, max {h['max']:.0f} ms, {h['failures']} failures",
            )
        )
    queries = results.get("queries")
    if queries:
        sizes = cfg["query_sizes"]
        worst = max(
            queries["sizes"][str(n)][v]["project_s"] / queries["sizes"][str(n)][v]["sql_s"]
            for n in sizes
            for v in ("campaign", "overview")
        )
        goals.append(
            _goal(
                "2a page queries <= 1.5x bare SQL" + sizes_note,
                worst <= 1.5,
                f"worst project/SQL ratio over sizes and views {worst:.2f}",
            )
        )
        mid = str(1_000_000 if 1_000_000 in sizes else sizes[-1])
        speedups = {
            v: queries["sizes"][mid][v]["pandas_s"] / queries["sizes"][mid][v]["project_s"]
            for v in ("campaign", "overview")
            if queries["sizes"][mid][v]["pandas_s"]
        }
        goals.append(
            _goal(
                f"2b >= 10x faster than pandas at {int(mid):,}" + sizes_note,
                bool(speedups) and min(speedups.values()) >= 10,
                ", ".join(f"{v} {s:.1f}x" for v, s in speedups.items()),
            )
        )
        exponents = queries["growth_exponent"]
        slope = max(exponents[v]["project_s"] or 0 for v in exponents)
        goals.append(
            _goal(
                "2c time grows no faster than linearly",
                slope <= 1.0,
                f"growth exponent (1 = linear) campaign {exponents['campaign']['project_s']:.2f}, "
                f"overview {exponents['overview']['project_s']:.2f}; bare SQL "
                f"{exponents['campaign']['sql_s']:.2f}",
            )
        )
        top = str(sizes[-1])
        slowest = max(queries["sizes"][top][v]["project_s"] for v in ("campaign", "overview"))
        goals.append(
            _goal(
                f"2d sub-second view at {int(top):,} leads" + sizes_note,
                slowest < 1.0,
                f"slowest view {slowest:.3f} s",
            )
        )
    goals += _pages_goals(cfg, results.get("pages"), sizes_note)
    goals += _history_goals(cfg, results.get("history"), sizes_note)
    browser = results.get("browser")
    if browser:
        b = browser["bytes"]
        small, big = (b[str(n)]["total_bytes"] for n in cfg["bytes_sizes"])
        goals.append(
            _goal(
                f"3 bytes per Campaign view {cfg['bytes_sizes'][1]:,} / {cfg['bytes_sizes'][0]:,} "
                "leads <= 1.2",
                big / small <= 1.2,
                f"{big:,} / {small:,} bytes = {big / small:.2f}",
            )
        )
        ttc = browser["time_to_charts"]
        for condition in [*cfg["browser_conditions"], "interaction/loopback"]:
            r = ttc[condition]
            ratio = r["project"]["median_s"] / r["floor"]["median_s"]
            goals.append(
                _goal(
                    f"4 time to charts <= 1.5x floor, {condition}",
                    ratio <= 1.5,
                    f"{r['project']['median_s']:.2f} s vs floor {r['floor']['median_s']:.2f} s = "
                    f"{ratio:.2f}x",
                )
            )
        m = browser["memory"]
        goals.append(
            _goal(
                f"5a peak server RSS < 1.5 GB at {m['leads']:,} leads",
                m["peak_hwm_mib"] < 1536,
                f"VmHWM {m['peak_hwm_mib']:.0f} MiB",
            )
        )
        growth_ok = m["growth_after_warmup_mib"] <= max(32.0, 0.05 * m["rss_after_mib"])
        goals.append(
            _goal(
                f"5b no growth over {m['views']} views",
                growth_ok,
                f"RSS {m['growth_after_warmup_mib']:+.0f} MiB from view "
                f"{max(1, m['views'] // 5)} to {m['views']} (allowance: 32 MiB or 5%)",
            )
        )
    economy = results.get("economy")
    if economy:
        inc, naive = economy["incremental"], economy["naive"]
        goals.append(
            _goal(
                "6 API economy: never over 10 per 60 s, incremental saving",
                economy["limit_respected"],
                f"{inc['requests']} requests either way; records {inc['records']:,} vs naive "
                f"{naive['records']:,} (-{economy['records_saved_pct']:.1f}%; refreshes after the "
                f"first load -{economy['refresh_records_saved_pct']:.1f}%); max in any 60 s "
                f"{max(inc['max_requests_in_60s'], naive['max_requests_in_60s'])}",
            )
        )
    return goals


PAGE_GOALS = {  # issue 14: per page, every view's queries
    "progress": ("2e", "Progress page"),
    "agents": ("2f", "Agents page"),
    "best_time": ("2g", "Campaign Trends best time"),
}
PAGE_SECONDS = 0.3  # at the largest size
PAGE_RATIO = 1.5  # against bare SQL, at every size


def _pages_goals(cfg: dict, pages: dict | None, sizes_note: str) -> list[dict]:
    if not pages:
        return []
    goals = []
    sizes = cfg["query_sizes"]
    top = str(sizes[-1])
    for page, (number, title) in PAGE_GOALS.items():
        views = pages["sizes"][top][page]
        slowest = max(r["project_s"] for r in views.values())
        worst = max(pages["sizes"][str(n)][page][v]["ratio"] for n in sizes for v in views)
        agree = all(pages["sizes"][str(n)][page][v]["agree"] for n in sizes for v in views)
        per_size = "; ".join(
            f"{int(n):,}: "
            + ", ".join(
                f"{v} {r['project_s']:.3f} vs {r['sql_s']:.3f} s = {r['ratio']:.2f}x"
                for v, r in pages["sizes"][str(n)][page].items()
            )
            for n in sizes
        )
        goals.append(
            _goal(
                f"{number} {title} queries <= {PAGE_SECONDS} s at {int(top):,}, <= {PAGE_RATIO}x "
                "bare SQL" + sizes_note,
                slowest <= PAGE_SECONDS and worst <= PAGE_RATIO and agree,
                f"slowest view {slowest:.3f} s, worst ratio {worst:.2f}x, agree {agree} "
                f"({per_size})",
            )
        )
    rows = pages["sizes"][top]["rows"]
    goals.append(
        _goal(
            f"2h summaries grow with groups, not leads ({int(top):,})",
            None,
            ", ".join(
                f"{int(n):,}: leads {pages['sizes'][str(n)]['rows']['leads']:,}, lead_summary "
                f"{pages['sizes'][str(n)]['rows']['lead_summary']:,}, lead_counts "
                f"{pages['sizes'][str(n)]['rows']['lead_counts']:,}"
                for n in sizes
            )
            + f" (at {int(top):,}: {rows['lead_summary_per_lead']:.4f} / "
            f"{rows['lead_counts_per_lead']:.4f} rows per lead; growth exponent of rows over "
            "leads, 1 = one row per lead: "
            + ", ".join(
                f"{t} {e:.2f}" if e is not None else f"{t} n/a"
                for t, e in pages.get("rows_growth_exponent", {}).items()
            )
            + ")",
        )
    )
    return goals


HISTORY_SECONDS = 0.3  # each history query, at history_size
HISTORY_EVENTS_SECONDS = 0.5  # the events of a delivery changing 10k stored leads


def _history_goals(cfg: dict, h: dict | None, sizes_note: str) -> list[dict]:
    if not h:
        return []
    n, size = cfg["history_ingest_size"], cfg["history_size"]
    i, d, q = h["ingest"], h["delivery"], h["queries"]
    worst = max(i["first"]["ratio"], i["incremental"]["ratio"])
    seconds = {k: v for k, v in q["seconds"].items() if k != "scan"}
    slowest = max(seconds, key=seconds.get)
    return [
        _goal(
            f"7a ingest {n:,} records with events <= 2x read_json, first load and incremental"
            + sizes_note,
            worst <= 2.0,
            f"first load {i['first']['project_s']:.2f} vs {i['first']['baseline_s']:.2f} s = "
            f"{i['first']['ratio']:.2f}x, incremental (every lead changed) "
            f"{i['incremental']['project_s']:.2f} vs {i['incremental']['baseline_s']:.2f} s = "
            f"{i['incremental']['ratio']:.2f}x; events per delivery: first seen "
            f"{i['events']['first']}, changes {i['events']['incremental']}",
        ),
        _goal(
            f"7b a delivery changing {d['changed']:,} of {size:,} stored leads: events <= "
            f"{HISTORY_EVENTS_SECONDS} s" + sizes_note,
            d["seconds"]["events"] <= HISTORY_EVENTS_SECONDS,
            f"events {d['seconds']['events']:.3f} s (record_changes "
            f"{d['seconds']['record_changes']:.3f}, add_event_hours "
            f"{d['seconds']['add_event_hours']:.3f}); whole ingest {d['seconds']['ingest']:.3f} s;"
            f" read_json of the records {d['seconds']['read_json']:.3f} s",
        ),
        _goal(
            f"7c history queries <= {HISTORY_SECONDS} s each at {size:,} leads, "
            f"{h['database']['events']:,} events" + sizes_note,
            seconds[slowest] <= HISTORY_SECONDS,
            f"slowest {slowest} {seconds[slowest]:.3f} s; "
            + ", ".join(f"{k} {v:.3f}" for k, v in seconds.items())
            + f"; one scan of lead_events {q['seconds']['scan']:.3f} s",
        ),
    ]


def print_table(goals: list[dict]) -> None:
    width = max(len(g["goal"]) for g in goals)
    print("\n" + "goal".ljust(width) + "  met   figures")
    print("-" * (width + 80))
    for g in goals:
        mark = {True: "yes", False: "NO", None: "n/a"}[g["met"]]
        print(f"{g['goal'].ljust(width)}  {mark:5s} {g['detail']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    chosen = args.only or list(SECTIONS)
    work = args.work / ("quick" if args.quick else "full")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict = {
        "command": "python -m bench" + (" --quick" if args.quick else ""),
        "mode": "quick" if args.quick else "full",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
        "versions": _versions(),
        "config": cfg,
        "results": {},
    }
    dbs = Databases(work, cfg["direct_build_from"])
    try:
        if "economy" in chosen:
            with section("API economy: one simulated hour, 20 campaigns"):
                report["results"]["economy"] = run_economy(cfg)
        if "queries" in chosen:
            with section("Page queries: project vs bare SQL vs pandas"):
                report["results"]["queries"] = run_queries(cfg, dbs)
        if "pages" in chosen:
            with section("New pages' queries (issue 14): Progress, Agents, best time vs bare SQL"):
                report["results"]["pages"] = run_pages(cfg, dbs)
        if "ingest" in chosen:
            with section("Ingest: POST to the callback route vs read_json"):
                report["results"]["ingest"] = run_ingest(cfg, work)
        if "history" in chosen:
            with section("Lead history (issue 15): ingest with events, a 10k change, queries"):
                report["results"]["history"] = run_history(cfg, dbs, work)
        if "browser" in chosen:
            with section("Browser: memory, bytes, time to charts (Chromium)"):
                report["results"]["browser"] = run_browser(cfg, dbs, work)
    finally:
        report["databases"] = {str(n): v for n, v in dbs.built.items()}
        report["machine"]["load_avg_end"] = os.getloadavg()
        report["seconds"] = round(time.perf_counter() - started, 1)
        try:
            report["goals"] = evaluate(cfg, report["results"], args.quick)
        except (KeyError, TypeError, ZeroDivisionError) as exc:  # a section failed midway
            report["goals"] = [_goal("evaluation", None, f"incomplete results: {exc!r}")]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_table(report["goals"])
    print(f"\n{report['command']}: {report['seconds']:.0f} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
