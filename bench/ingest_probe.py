"""Ingest speed probe: the default delivery shape, body file on disk -> committed rows.

    python bench/ingest_probe.py                 # 100k and 1M records, 3 rounds each
    python bench/ingest_probe.py --sizes 200000 --rounds 5 --keep /tmp/probe

For each size it generates the records (numpy random arrays, formatted by DuckDB), writes them
with `COPY ... (FORMAT json, ARRAY true)` as a top-level array file, wraps that array in the
delivery object `{"status":..,"uniqueId":..,"campaignName":..,"data":[...]}`, then measures in
this one process, alternating:

- baseline: `CREATE TABLE t AS SELECT * FROM read_json('<array file>')` into a fresh database file;
- ingest:   `register_raw` (sha256 + fsync + rename + row) and `ingest_delivery` (locate the
            array, slice it, load, map, upsert, bookkeeping, commit) into a fresh `Store`.

It prints the median of each and the ratio ingest / baseline (the target is <= 2).

    python bench/ingest_probe.py --history --sizes 1000000 --phases

With `--history`, the bench's figure 7a in this process (no HTTP): each round a fresh store
gets the first load of n leads of the bench's history data (bench/history.py), then every lead
changed; each is timed against read_json of its own records. With `--phases`, the phase timings
of every ingest (lib/store/ingest/phases.py) are logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.store import Store
from lib.store.ingest import ingest_delivery
from lib.store.receive import register_raw

STATUSES = ["Success", "Fail", "Pending", ""]
DIAL = ["answered", "not_answered", "ring", "user_disconnected", "Busy", "Congestion",
        "invalid_number", "exception", "NotDialed", ""]  # fmt: skip
DISPOSITIONS = ["Interested", "Call Back", "Not Interested", "Wrong Number", "DNC", ""]


def generate(n: int, directory: Path, seed: int = 7) -> tuple[Path, Path]:
    """Writes <n>.array.json (top-level array) and <n>.body.json (the delivery object)."""
    rng = np.random.default_rng(seed)
    created = rng.integers(0, 30 * 86400, n)
    table = pa.table(
        {
            "i": np.arange(n),
            "status": rng.integers(0, len(STATUSES), n),
            "dial": rng.integers(0, len(DIAL), n),
            "disposition": rng.integers(0, len(DISPOSITIONS), n),
            "agent": rng.integers(0, 50, n),
            "attempts": rng.integers(0, 5, n),
            "priority": rng.integers(1, 4, n),
            "created": created,
            "updated": created + rng.integers(0, 5 * 86400, n),
            "duration": rng.integers(0, 900, n),
        }
    )
    array_path = directory / f"{n}.array.json"
    body_path = directory / f"{n}.body.json"
    con = duckdb.connect()
    con.register("g", table)
    con.execute(
        f"""
        COPY (
            SELECT 'L' || i AS LeadID,
                   '91' || (9000000000 + i)::VARCHAR AS PhoneNumber,
                   'Lead ' || i AS Name,
                   'Renewals_Q4' AS CampaignName,
                   {_pick("status", STATUSES)} AS Status,
                   {_pick("dial", DIAL)} AS DialStatus,
                   {_pick("disposition", DISPOSITIONS)} AS Disposition,
                   '' AS Comments,
                   'A' || agent AS AgentID,
                   'Agent ' || agent AS AgentName,
                   attempts AS Attempts,
                   priority AS Priority,
                   (1000000000000 + i)::VARCHAR AS UCID,
                   strftime(TIMESTAMP '2026-10-01' + to_seconds(created), '%Y-%m-%d %H:%M:%S')
                       AS CreatedDate,
                   strftime(TIMESTAMP '2026-10-01' + to_seconds(updated), '%Y-%m-%d %H:%M:%S')
                       AS UpdatedDate,
                   strftime(TIMESTAMP '2000-01-01' + to_seconds(duration), '%H:%M:%S')
                       AS CallDuration
            FROM g
        ) TO '{array_path}' (FORMAT json, ARRAY true)
        """
    )
    con.close()
    with open(body_path, "wb") as body:
        body.write(b'{"status":"success","uniqueId":"probe-1","campaignName":"Renewals_Q4","data":')
        with open(array_path, "rb") as array:
            shutil.copyfileobj(array, body, 16 * 1024 * 1024)
        body.write(b"}")
    return array_path, body_path


def _pick(column: str, values: list[str]) -> str:
    items = ", ".join("'" + v + "'" for v in values)
    return f"[{items}][{column} + 1]"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def baseline(array_path: Path, work: Path) -> tuple[float, float]:
    db = work / "baseline.duckdb"
    for leftover in (db, db.with_suffix(".duckdb.wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    cpu, started = _cpu(), time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{array_path}')")
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    con.close()
    db.unlink(missing_ok=True)
    return elapsed, cpu


def ingest(body_path: Path, work: Path, n: int) -> tuple[float, float, float]:
    store_dir = work / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir()
    store = Store(store_dir / "probe.duckdb")
    deliveries = store_dir / "probe.deliveries"
    deliveries.mkdir()
    part = deliveries / "incoming.part"
    shutil.copyfile(body_path, part)  # what the route streams to disk; not timed
    started = time.perf_counter()
    raw = register_raw(store, deliveries, part, "application/json")
    registered, cpu = time.perf_counter(), _cpu()
    result = ingest_delivery(store, raw.id)
    done, cpu = time.perf_counter(), _cpu() - cpu
    assert result.rows == n, result
    store.close()
    shutil.rmtree(store_dir, ignore_errors=True)
    return registered - started, done - registered, cpu


def history(n: int, rounds: int, work: Path) -> None:
    """First load, then every lead changed, into one fresh store per round (see the docstring)."""
    from bench.common import TZ, now_local
    from bench.history import _versions
    from lib.sandbox.encode import envelope_json, records_json

    kinds = dict(zip(("first", "changed"), _versions(n, now_local()), strict=True))
    for kind, table in kinds.items():
        records = records_json(table)
        (work / f"{kind}.array.json").write_bytes(records)
        header = {"status": "success", "uniqueId": kind, "campaignName": "History"}
        (work / f"{kind}.body.json").write_bytes(envelope_json(header, "data", records))
    baseline(work / "first.array.json", work)  # warm-up: page cache, allocator
    ratios: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        store_dir = work / "store"
        shutil.rmtree(store_dir, ignore_errors=True)
        (store_dir / "probe.deliveries").mkdir(parents=True)
        store = Store(store_dir / "probe.duckdb", TZ)
        for kind in kinds:
            base, _ = baseline(work / f"{kind}.array.json", work)
            part = store_dir / "probe.deliveries" / "incoming.part"
            shutil.copyfile(work / f"{kind}.body.json", part)
            started, cpu = time.perf_counter(), _cpu()
            raw = register_raw(store, part.parent, part, "application/json")
            result = ingest_delivery(store, raw.id)
            spent, cpu = time.perf_counter() - started, _cpu() - cpu
            assert result.rows == n, result
            ratios[kind].append(spent / base)
            print(f"{n:>9,} {kind:>7}: {spent:.2f} s (CPU {cpu:.2f}), read_json {base:.2f} s, "
                  f"ratio {spent / base:.2f}", flush=True)  # fmt: skip
        store.close()
    for kind, values in ratios.items():
        print(f"{n:>9,} {kind:>7}: ratio median {statistics.median(values):.2f} ({_fmt(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="folder for the generated files (kept)")
    parser.add_argument("--phases", action="store_true", help="log ingest phase timings")
    parser.add_argument("--history", action="store_true", help="first load, then all changed")
    args = parser.parse_args()
    if args.phases:
        logging.basicConfig(format="           %(message)s")
        logging.getLogger("lib.store.ingest").setLevel(logging.DEBUG)
    work = args.keep or Path(tempfile.mkdtemp(prefix="ingest-probe-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for n in args.sizes:
            if args.history:
                history(n, args.rounds, work)
                continue
            array_path, body_path = work / f"{n}.array.json", work / f"{n}.body.json"
            if not body_path.exists():
                started = time.perf_counter()
                array_path, body_path = generate(n, work)
                print(f"{n:>9,} records: generated {body_path.stat().st_size / 1e6:.0f} MB "
                      f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
            baseline(array_path, work)  # warm-up: page cache, allocator
            base_times, base_cpu, register_times, ingest_times, ingest_cpu = [], [], [], [], []
            load = os.getloadavg()[0]
            for _ in range(args.rounds):
                wall, cpu = baseline(array_path, work)
                base_times.append(wall)
                base_cpu.append(cpu)
                register_s, ingest_s, cpu = ingest(body_path, work, n)
                register_times.append(register_s)
                ingest_times.append(ingest_s)
                ingest_cpu.append(cpu)
            base = statistics.median(base_times)
            reg = statistics.median(register_times)
            ing = statistics.median(ingest_times)
            print(
                f"{n:>9,} records: baseline {base:.2f} s | register_raw {reg:.2f} s | "
                f"ingest_delivery {ing:.2f} s | ingest/baseline {ing / base:.2f} | "
                f"(register+ingest)/baseline {(reg + ing) / base:.2f}"
            )
            ratios = [i / b for i, b in zip(ingest_times, base_times, strict=True)]
            print(
                f"           rounds: baseline {_fmt(base_times)}; ingest {_fmt(ingest_times)}; "
                f"ratio per round {_fmt(ratios)}"
            )
            print(
                f"           CPU s (median): baseline {statistics.median(base_cpu):.2f}, ingest "
                f"{statistics.median(ingest_cpu):.2f}; load average {load:.1f} -> "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    main()
