"""Issue 15, the lead history (lib/store/events.py, lib/view/metrics/history.py and activity.py).

Three measurements:

`ingest`: N records POSTed to the running server's callback route, twice per round: a first
load of a campaign the server has not seen (the direct write; every lead gets a "first seen"
event) and then an incremental delivery of the same N leads, each at its second version (the
sandbox generator's redial after `now`: one more attempt, another outcome), against the stored
set (the general write; every lead changed, so N change events). Baseline, alternating with the
project: DuckDB `read_json` of the same records as a top-level array file into a fresh database
(`bench.ingest.baseline`). After the server stops, the bench counts `lead_events` per delivery
and asserts N first-seen rows for each first load and N changes for each incremental one.

`delivery`: in this process, a delivery of 10,000 second versions of stored leads of the focus
campaign (of a database of 5M focus leads, 5.95M in all, with the history below) through
`register_raw` + `ingest_delivery`; the events' part is timed by wrapping the two functions that
write them (`record_changes`, before the overwrite, and `add_event_hours`, with the summary).
Each round delivers other states (the generator's `now` moves 7 hours a round), so every round
changes 10,000 stored leads. Reference: `read_json` of the same records into a fresh database.

`queries`: the history's page queries on that database with its history: 4 events per focus
lead (20M at 5M), built set-based (`build_history`): every lead gets a first-seen event and 2 or
3 later changes, spaced 1 to 47 hours apart back from its stored state (its last event is its
stored state), inserted in the order of their time as ingest appends them, `event_hours`
rebuilt with the summary (`rebuild_summary`, which stamps both current). Timed: activity_hours,
activity_days (range all and last_7d), today_so_far, pace_hours, forecast_table (which runs
progress_table too), what_changed (since yesterday 18:00, the default) and lead_timeline (a
lead with 4 events), each for every campaign and for the focus campaign. Reference: one full
scan of `lead_events` (count and sum of dials) in the same rounds. The bench asserts that the
history's totals from `event_hours` equal those computed from `lead_events`.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from bench.common import (
    CALLBACK_SECRET,
    FOCUS,
    SEED,
    TZ,
    copy_db,
    median,
    project_server,
    timed,
)
from bench.ingest import _renamed, baseline, post
from lib.sandbox.datagen import generate_campaign
from lib.sandbox.encode import envelope_json, records_json
from lib.store import Store, summary
from lib.store.events import EVENT_COLUMNS, key_tag_sql
from lib.store.lead_sql import AGENT_SQL
from lib.view.filters import Filters
from lib.view.metrics import activity, history

EVENTS_PER_FOCUS_LEAD = 4  # 20M events at 5M focus leads (5.95M leads in all)
CHANGED = 10_000


# -- 1: ingest through the callback, with the events ------------------------------------------


def _versions(n: int, now: datetime) -> tuple[pa.Table, pa.Table]:
    """n leads' first versions and, for every one of them, its second version."""
    table = generate_campaign("History", n, SEED, now, timezone=TZ, update_fraction=1.0)
    assert table.num_rows == 2 * n, table.num_rows
    return table.slice(0, n), table.slice(n)


def measure_ingest(work: Path, n: int, rounds: int, now: datetime) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "history-server"
    shutil.rmtree(data_dir, ignore_errors=True)
    db = data_dir / "history.duckdb"
    first, second = _versions(n, now)
    arrays = {}
    for kind, table in (("first", first), ("incremental", second)):
        arrays[kind] = work / f"history-{n}-{kind}.array.json"
        arrays[kind].write_bytes(records_json(table))
    times: dict[str, list[float]] = {k: [] for k in ("first", "incremental")}
    base: dict[str, list[float]] = {k: [] for k in ("first", "incremental")}
    deliveries: dict[str, list[int]] = {k: [] for k in ("first", "incremental")}
    body_mb = {}
    with project_server(db, data_dir) as server:
        callback = f"{server.base_url}/api/callback/{CALLBACK_SECRET}"
        for path in arrays.values():
            baseline(path, work)  # warm-up: page cache, allocator
        for index in range(rounds):
            campaign = f"History {n} round {index + 1}"
            for kind, table in (("first", first), ("incremental", second)):
                header = {"status": "success", "uniqueId": str(uuid.uuid4()),
                          "campaignName": campaign}  # fmt: skip
                body = envelope_json(header, "data", records_json(_renamed(table, campaign)))
                body_mb[kind] = round(len(body) / 1e6, 1)
                base[kind].append(baseline(arrays[kind], work))
                seconds, answer = post(callback, body)
                del body
                assert answer.get("rows") == n, answer
                times[kind].append(seconds)
                deliveries[kind].append(int(answer["deliveryId"]))
    for path in arrays.values():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    store = Store(db, TZ)
    try:
        cursor = store.cursor()
        counts = dict(
            ((d, fs), c)
            for d, fs, c in cursor.execute(
                "SELECT delivery_id, first_seen, count(*) FROM lead_events GROUP BY ALL"
            ).fetchall()
        )
        dials = cursor.execute("SELECT coalesce(sum(dials), 0) FROM lead_events").fetchone()[0]
        cursor.close()
    finally:
        store.close()
    events = {
        "first": [counts.get((d, True), 0) for d in deliveries["first"]],
        "incremental": [counts.get((d, False), 0) for d in deliveries["incremental"]],
        "dials_observed": int(dials),
    }
    assert events["first"] == [n] * rounds, ("first-seen events per first load", events)
    assert events["incremental"] == [n] * rounds, ("change events per delivery", events)
    out: dict = {"records": n, "body_mb": body_mb, "events": events}
    for kind in ("first", "incremental"):
        project, reference = median(times[kind]), median(base[kind])
        out[kind] = {
            "project_s": project,
            "baseline_s": reference,
            "ratio": project / reference,
            "runs": {"project": times[kind], "baseline": base[kind]},
        }
    return out


# -- the database with its history --------------------------------------------------------------


def build_history(source: Path, target: Path, focus_leads: int) -> dict:
    """A copy of a bench database with EVENTS_PER_FOCUS_LEAD x focus_leads events over all its
    leads, set-based (see the module docstring); returns rows and seconds."""
    started = time.perf_counter()
    copy_db(source, target)
    store = Store(target, TZ)
    try:
        with store.writing() as cursor:
            leads = cursor.execute("SELECT count(*) FROM leads").fetchone()[0]
            per_lead = EVENTS_PER_FOCUS_LEAD * focus_leads / leads  # 3.36 with the bench sizes
            whole = int(per_lead)  # events every lead gets (first seen included)
            extra = round((per_lead - whole) * 1000)  # per mille of leads with one more
            cursor.execute("BEGIN")
            cursor.execute(
                f"""
                INSERT INTO lead_events ({", ".join(EVENT_COLUMNS)})
                WITH l AS (
                    SELECT campaign_name, lead_key,
                           coalesce(updated_at, created_at) AS t_last, coalesce(attempts, 0) AS a,
                           attempts, dial_status, dial_bucket, lead_status, disposition,
                           {AGENT_SQL} AS agent, call_duration_s, hash(lead_key) AS hk
                    FROM leads
                ), e AS (
                    SELECT l.*, j,
                           CASE WHEN hk % 1000 < {extra} THEN {whole + 1} ELSE {whole} END AS m,
                           (1 + (hk // 1000) % 47)::BIGINT AS step
                    FROM l, range({whole + 1}) r(j)
                ), s AS (
                    SELECT e.*, m - 1 - j AS back, j = m - 1 AS last,
                           t_last - to_hours(((m - 1 - j) * step)::BIGINT) AS t
                    FROM e WHERE j < m
                )
                SELECT campaign_name, lead_key, t, t + INTERVAL 4 MINUTE,
                       (epoch(t) // 300)::BIGINT, j = 0,
                       CASE WHEN j = 0 THEN 0
                            ELSE greatest(a - back, 0) - greatest(a - back - 1, 0) END,
                       CASE WHEN j > 0 THEN greatest(a - back - 1, 0) END,
                       CASE WHEN last THEN attempts ELSE greatest(a - back, 0) END,
                       CASE WHEN j > 0 THEN 'not_answered' END,
                       CASE WHEN last THEN dial_status ELSE 'not_answered' END,
                       CASE WHEN j > 0 THEN 'NoAnswer' END,
                       CASE WHEN last THEN dial_bucket ELSE 'NoAnswer' END,
                       CASE WHEN j > 0 THEN 'Pending' END,
                       CASE WHEN last THEN lead_status ELSE 'Pending' END,
                       NULL,
                       CASE WHEN last THEN disposition END,
                       CASE WHEN last THEN agent END,
                       CASE WHEN last THEN call_duration_s END,
                       {key_tag_sql("campaign_name", "lead_key")}
                FROM s ORDER BY t
                """
            )
            store.bump_data_version(cursor)
            summary.rebuild_summary(cursor)
            cursor.execute("COMMIT")
            cursor.execute("CHECKPOINT")
            events, hours = cursor.execute(
                "SELECT (SELECT count(*) FROM lead_events), (SELECT count(*) FROM event_hours)"
            ).fetchone()
    finally:
        store.close()
    return {
        "leads": leads,
        "events": events,
        "event_hours": hours,
        "seconds": round(time.perf_counter() - started, 1),
    }


# -- 3: the history's queries -------------------------------------------------------------------

ALL = Filters()
ONE = Filters(campaigns=(FOCUS,))
WEEK = Filters(range="last_7d")


def _queries(cursor, now: datetime, today: date, lead_key: str) -> dict:
    since = history.default_since(today)
    return {
        "activity_hours": lambda f: activity.activity_hours(cursor, f, TZ, today),
        "activity_days": lambda f: activity.activity_days(cursor, f, TZ, today),
        "activity_days_7d": lambda f: activity.activity_days(
            cursor, Filters(campaigns=f.campaigns, range="last_7d"), TZ, today
        ),
        "today_so_far": lambda f: activity.today_so_far(cursor, f, TZ, today, now=now),
        "pace_hours": lambda f: activity.pace_hours(cursor, f, TZ, today, now=now),
        "forecast_table": lambda f: activity.forecast_table(cursor, f, TZ, today, now=now),
        "what_changed": lambda f: history.what_changed(cursor, f, TZ, today, since=since),
        "lead_timeline": lambda f: history.lead_timeline(cursor, FOCUS, lead_key),
    }


def _scan(cursor) -> None:
    cursor.execute("SELECT count(*), sum(dials) FROM lead_events").fetchone()


def _check_totals(cursor, now: datetime, today: date, lead_key: str) -> dict:
    """event_hours against lead_events: the history's totals, today so far, one timeline."""
    days = activity.activity_days(cursor, ALL, TZ, today)  # range all: the history's span
    dials, first, last = cursor.execute(
        "SELECT sum(dials), min(CAST(updated_at AS DATE)), max(CAST(updated_at AS DATE)) "
        "FROM lead_events WHERE updated_at IS NOT NULL"
    ).fetchone()
    want = {"dials": int(dials), "first_day": first, "last_day": max(last, today)}
    got = {
        "dials": int(days["dials"].sum()),
        "first_day": days["day"].min().date(),
        "last_day": days["day"].max().date(),
    }
    assert got == want, ("event_hours vs lead_events", got, want)
    midnight = datetime.combine(now.date(), datetime.min.time()).replace(tzinfo=now.tzinfo)
    (today_dials,) = cursor.execute(
        "SELECT coalesce(sum(dials), 0) FROM lead_events WHERE updated_at >= $a AND "
        "updated_at <= $b",
        {"a": midnight, "b": now},
    ).fetchone()
    so_far = activity.today_so_far(cursor, ALL, TZ, today, now=now)["today"]["dials"]
    assert so_far == today_dials, ("today so far", so_far, today_dials)
    timeline = history.lead_timeline(cursor, FOCUS, lead_key)
    assert len(timeline) == EVENTS_PER_FOCUS_LEAD, timeline
    return {
        **want,
        "days": len(days),
        "today_dials": int(today_dials),
        "timeline_rows": len(timeline),
    }


def measure_queries(store: Store, now: datetime, rounds: int) -> dict:
    today = now.date()
    cursor = store.cursor()
    try:
        assert summary.summary_ready(cursor)
        (lead_key,) = cursor.execute(
            "SELECT lead_key FROM lead_events WHERE campaign_name = $c GROUP BY lead_key "
            f"HAVING count(*) = {EVENTS_PER_FOCUS_LEAD} ORDER BY lead_key LIMIT 1",
            {"c": FOCUS},
        ).fetchone()
        out: dict = {"checks": _check_totals(cursor, now, today, lead_key)}
        queries = _queries(cursor, now, today, lead_key)
        views = {"all": ALL, "campaign": ONE}
        runs: dict[str, list[float]] = {"scan": []}
        for name, query in queries.items():
            for view, filters in views.items():
                if name == "lead_timeline" and view == "all":
                    continue
                query(filters)  # warm-up
                runs[f"{name}/{view}"] = []
        for _ in range(rounds):  # interleaved: every query once per round, then the scan
            for key in runs:
                if key == "scan":
                    runs[key].append(timed(lambda: _scan(cursor)))
                    continue
                name, view = key.split("/")
                runs[key].append(timed(lambda n=name, v=view: queries[n](views[v])))
        out["seconds"] = {k: median(v) for k, v in runs.items()}
        out["runs"] = {k: [round(x, 4) for x in v] for k, v in runs.items()}
        out["lead_key"] = lead_key
        return out
    finally:
        cursor.close()


# -- 2: a delivery that changes 10k of the stored leads ----------------------------------------


@contextlib.contextmanager
def _timing_events(seconds: dict):
    """Adds up the wall time of the two functions that write a general write's events, where
    ingest looks them up (write.py and summary.py import them by name), and keeps the
    ingest's own phase timings (lib/store/ingest/phases.py)."""
    from lib.store import summary as summary_module
    from lib.store.ingest import lifecycle
    from lib.store.ingest import write as write_module
    from lib.store.ingest.phases import Phases

    class Recorded(Phases):  # the ingest's own phase timings, kept for the results
        def __init__(self) -> None:
            super().__init__()
            seconds.setdefault("phases", []).append(self)

    originals = [(lifecycle, "Phases", Phases)]
    lifecycle.Phases = Recorded
    for module, name in ((write_module, "record_changes"), (summary_module, "add_event_hours")):
        original = getattr(module, name)

        def timed_call(*args, _original=original, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds[_name] = seconds.get(_name, 0.0) + time.perf_counter() - started

        originals.append((module, name, original))
        setattr(module, name, timed_call)
    try:
        yield
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


def _changes(now: datetime, round_index: int, changed: int) -> pa.Table:
    """`changed` second versions of stored focus leads (the generator's LeadIDs are 1..n
    whatever n, and second versions are later than every stored state)."""
    moved = now + timedelta(hours=7 * (round_index + 1))
    table = generate_campaign(FOCUS, 5 * changed, SEED + round_index, moved, timezone=TZ,
                              update_fraction=0.5)  # fmt: skip
    seconds = table.slice(5 * changed)
    assert seconds.num_rows >= changed, seconds.num_rows
    return seconds.slice(0, changed)


def measure_delivery(store: Store, db: Path, now: datetime, rounds: int) -> dict:
    from lib.store.ingest import ingest_delivery
    from lib.store.receive import register_raw

    work = db.parent
    folder = db.parent / (db.stem + ".deliveries")
    folder.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[float]] = {"ingest": [], "events": [], "record_changes": [],
                                    "add_event_hours": [], "read_json": []}  # fmt: skip
    written, phases = [], []
    for index in range(rounds):
        table = _changes(now, index, CHANGED)
        array = work / "history-changes.array.json"
        array.write_bytes(records_json(table))
        header = {"status": "success", "uniqueId": str(uuid.uuid4()), "campaignName": FOCUS}
        part = folder / "incoming.part"
        part.write_bytes(envelope_json(header, "data", records_json(table)))
        runs["read_json"].append(baseline(array, work))
        array.unlink()
        spent: dict = {}
        started = time.perf_counter()
        with _timing_events(spent):
            raw = register_raw(store, folder, part, "application/json")
            result = ingest_delivery(store, raw.id)
        runs["ingest"].append(time.perf_counter() - started)
        assert result.rows == CHANGED, result
        for name in ("record_changes", "add_event_hours"):
            runs[name].append(spent.get(name, 0.0))
        runs["events"].append(spent.get("record_changes", 0.0) + spent.get("add_event_hours", 0.0))
        phases.append("; ".join(str(p) for p in spent.get("phases", [])))
        cursor = store.cursor()
        (events,) = cursor.execute(
            "SELECT count(*) FROM lead_events WHERE delivery_id = ? AND NOT first_seen", [raw.id]
        ).fetchone()
        cursor.close()
        written.append(int(events))
    assert written == [CHANGED] * rounds, ("change events per delivery", written)
    return {
        "changed": CHANGED,
        "events_written": written,
        "seconds": {k: median(v) for k, v in runs.items()},
        "runs": {k: [round(x, 4) for x in v] for k, v in runs.items()},
        "phases": phases,  # lib/store/ingest/phases.py: wall and CPU time per phase, per round
    }


# -- all three on one database ------------------------------------------------------------------


def measure_history(source_db: Path, work: Path, focus_leads: int, now: datetime,
                    rounds: int) -> dict:  # fmt: skip
    target = work / "history" / "history.duckdb"
    target.parent.mkdir(parents=True, exist_ok=True)
    built = build_history(source_db, target, focus_leads)
    print(
        f"   history database: {built['leads']:,} leads, {built['events']:,} events, "
        f"{built['event_hours']:,} event_hours rows, built in {built['seconds']:.1f} s",
        flush=True,
    )
    store = Store(target, TZ)
    try:
        queries = measure_queries(store, now, rounds)
        delivery = measure_delivery(store, target, now, rounds)
    finally:
        store.close()
        shutil.rmtree(target.parent, ignore_errors=True)
    return {"database": built, "queries": queries, "delivery": delivery}
