"""Shared pieces of the benchmark suite: data, databases, timing, servers, results.

Data always comes from the sandbox's vectorised generator (`lib.sandbox.datagen`), first versions
only (one row per lead). A database "of N leads" holds one focus campaign of N leads, the one the
Campaign view looks at, plus 19 smaller campaigns of N/100 leads each, so an account has the
"dozens of campaigns" of the issue and the all-campaigns Overview covers 1.19 N leads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from lib.config import DEFAULT_TIMEZONE  # noqa: E402
from lib.sandbox.datagen import generate_campaign  # noqa: E402
from lib.sandbox.encode import envelope_json, records_json  # noqa: E402
from lib.store import Store, summary  # noqa: E402
from lib.store.ingest import ingest_delivery  # noqa: E402
from lib.store.ingest.mapping import (  # noqa: E402
    LEADS_COLUMNS,
    Source,
    mapped_select,
    sample_lookups,
)
from lib.store.receive import register_raw  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

TZ = DEFAULT_TIMEZONE
SEED = 20240601
FOCUS = "Bench Focus"
OTHER_CAMPAIGNS = tuple(f"Bench {i:02d}" for i in range(1, 20))
# Databases, bodies and server logs; large (GBs in full mode), never in the repository.
CALLBACK_SECRET = "bench-callback-secret-0123456789"  # noqa: S105 - a throwaway local server's
DEFAULT_WORK = Path(os.environ.get("DIALSTATUS_BENCH_WORK", "/tmp/dialstatus-bench"))  # noqa: S108


def now_local() -> datetime:
    """The data's present: now in the account's zone (so date presets like last_7d have data)."""
    return datetime.now(ZoneInfo(TZ)).replace(microsecond=0)


def campaign_sizes(n: int) -> dict[str, int]:
    return {FOCUS: n, **dict.fromkeys(OTHER_CAMPAIGNS, max(1, n // 100))}


def leads_table(name: str, n: int, now: datetime) -> pa.Table:
    """n leads of one campaign in the wire format (first versions only: one row per lead)."""
    return generate_campaign(name, n, SEED, now, timezone=TZ).slice(0, n)


def write_array(table: pa.Table, path: Path) -> None:
    """The records as one top-level JSON array (what DuckDB's read_json reads fastest)."""
    con = duckdb.connect()
    try:
        con.register("records", table)
        con.execute(f"COPY records TO '{path}' (FORMAT json, ARRAY true)")
    finally:
        con.close()


# -- timing ----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def settle_disk() -> None:
    """Writes every dirty page out before a timed step, so the step does not pay for the one
    before: a 1M-lead ingest leaves hundreds of MB of DuckDB writes behind, and the kernel then
    throttles the next writer (measured: receiving the next 370 MB body took 1.5 s instead of
    0.3 s whenever it followed an incremental ingest)."""
    os.sync()


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# -- databases -------------------------------------------------------------------------------


@dataclass
class BuiltDb:
    path: Path
    leads: int
    seconds: float
    method: str
    campaigns: dict[str, int] = field(default_factory=dict)


def _remove_db(path: Path) -> None:
    for leftover in (path, Path(str(path) + ".wal")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(path.parent / (path.stem + ".deliveries"), ignore_errors=True)


def build_db(path: Path, n: int, now: datetime, method: str = "ingest") -> BuiltDb:
    """A database of n leads (see the module docstring), built one of two ways:

    `ingest`: each campaign's records as the sandbox's default delivery body (an object with
    the records under `data`), then `register_raw` + `ingest_delivery`: the path a callback
    takes once the body is on disk (summary included).
    `direct`: each campaign's Arrow table loaded as text and mapped with ingest's own mapping
    SELECT in one INSERT, then the summary rebuilt: the same rows, no JSON in between.
    """
    _remove_db(path)
    sizes = campaign_sizes(n)
    started = time.perf_counter()
    store = Store(path, TZ)
    try:
        if method == "ingest":
            folder = path.parent / (path.stem + ".deliveries")
            folder.mkdir(parents=True, exist_ok=True)
            for name, size in sizes.items():
                part = folder / "incoming.part"
                header = {"status": "success", "uniqueId": f"bench-{name}", "campaignName": name}
                body = envelope_json(header, "data", records_json(leads_table(name, size, now)))
                part.write_bytes(body)
                del body
                raw = register_raw(store, folder, part, "application/json")
                result = ingest_delivery(store, raw.id)
                assert result.rows == size, (name, result)
        else:
            with store.writing() as cursor:
                cursor.execute("BEGIN")
                for number, (name, size) in enumerate(sizes.items(), start=1):
                    table = leads_table(name, size, now)
                    text = pa.table(
                        {c: table.column(c).cast(pa.string()) for c in table.column_names}
                    )
                    cursor.register("_arrow", text)
                    cursor.execute("CREATE OR REPLACE TEMP TABLE _raw AS SELECT * FROM _arrow")
                    cursor.unregister("_arrow")
                    keys = list(text.column_names)
                    source = Source(None, keys, "_raw", sample_lookups(cursor, keys, "_raw"))
                    sql, params = mapped_select(source, number, name)
                    cursor.execute(f"INSERT INTO leads ({', '.join(LEADS_COLUMNS)}) {sql}", params)
                cursor.execute("DROP TABLE _raw")
                store.bump_data_version(cursor)
                summary.rebuild_summary(cursor)
                cursor.execute("COMMIT")
        with store.writing() as cursor:
            for name in sizes:
                cursor.execute(
                    "INSERT INTO campaigns (name, source) VALUES (?, 'config') "
                    "ON CONFLICT DO NOTHING",
                    [name],
                )
            cursor.execute("CHECKPOINT")
    finally:
        store.close()
    return BuiltDb(path, sum(sizes.values()), time.perf_counter() - started, method, sizes)


def copy_db(source: Path, target: Path) -> Path:
    _remove_db(target)
    shutil.copyfile(source, target)
    return target


# -- servers ---------------------------------------------------------------------------------


def project_server(
    db: Path, data_dir: Path, campaigns: dict[str, int] | None = None
) -> ServerProcess:
    """The dashboard on a stored database, sync off (serves the stored data as it is)."""
    env = {
        "DIALSTATUS_DB": str(db),
        "DIALSTATUS_SYNC_ENABLED": "false",
        "DIALSTATUS_TIMEZONE": TZ,
        "DIALSTATUS_CALLBACK_SECRET": CALLBACK_SECRET,
    }
    if campaigns:
        env["DIALSTATUS_CAMPAIGNS"] = ",".join(campaigns)
    return ServerProcess(data_dir, env)


def floor_server(data_dir: Path) -> ServerProcess:
    """The floor page: plain `streamlit run bench/floor_app.py`, same Streamlit, no middleware
    (so only Streamlit's own health route)."""
    return ServerProcess(data_dir, script="bench/floor_app.py", health_path="/_stcore/health")


def rss_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak) and VmRSS (now) of a process, in KiB, from /proc/<pid>/status."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                values[name] = int(rest.split()[0])
    return values


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    started = time.perf_counter()
    print(f"\n== {title}", flush=True)
    try:
        yield
    finally:
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
