"""Goal 1, ingest: N delivered records POSTed to the running server's callback route in the
sandbox's default format, timed until they are queryable (the route answers after the commit).

Body: exactly what the sandbox sends by default (`DeliveryVariant.JSON_DATA`):
`{"status":"success","uniqueId":..,"campaignName":..,"data":[records]}` built with the sandbox's
own encoder. Each round delivers a campaign the server has not seen (a first full load) into one
server whose database keeps the earlier rounds. Baseline, in this process, alternating with the
project: DuckDB `read_json` of the same records, as a file holding a top-level array, into a
table of a fresh database file. Meanwhile a thread times `GET /api/health` every 100 ms.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa

from bench.common import (
    CALLBACK_SECRET,
    leads_table,
    median,
    now_local,
    percentile,
    project_server,
    settle_disk,
)
from lib.sandbox.encode import envelope_json, records_json


def _renamed(table: pa.Table, campaign: str) -> pa.Table:
    """The same records under another campaign name (a fresh first load for the server)."""
    column = table.column("CampaignName").combine_chunks()
    renamed = pa.DictionaryArray.from_arrays(column.indices, pa.array([campaign]))
    return table.set_column(table.schema.get_field_index("CampaignName"), "CampaignName", renamed)


def baseline(array_path: Path, work: Path) -> float:
    db = work / "baseline.duckdb"
    db.unlink(missing_ok=True)
    Path(str(db) + ".wal").unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    try:
        con.execute("SET enable_progress_bar = false")
        settle_disk()
        started = time.perf_counter()
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{array_path}')")
        return time.perf_counter() - started
    finally:
        con.close()
        db.unlink(missing_ok=True)


class HealthProbe(threading.Thread):
    """GET /api/health every `interval` s until stopped; latencies in seconds."""

    def __init__(self, url: str, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.latencies: list[float] = []
        self.failures = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop_event.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started)
                self.failures += not ok
                self._stop_event.wait(self.interval)

    def stop(self) -> list[float]:
        self._stop_event.set()
        self.join()
        return self.latencies


def _chunks(body: bytes, size: int = 1 << 20):
    view = memoryview(body)
    for start in range(0, len(view), size):
        yield view[start : start + size]


def post(url: str, body: bytes) -> tuple[float, dict]:
    """POSTs the body streamed in 1 MiB chunks, as an HTTP client sending a large body does
    (httpx handed one 370 MB bytes object spends seconds slicing it: quadratic, client-side)."""
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    settle_disk()
    started = time.perf_counter()
    response = httpx.post(url, content=_chunks(body), headers=headers, timeout=1800)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()


def measure(work: Path, sizes: list[int], rounds: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    now = now_local()
    results = {}
    data_dir = work / "ingest-server"
    db = data_dir / "ingest.duckdb"
    for leftover in data_dir.glob("ingest.*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink()
    with project_server(db, data_dir) as server:
        callback = f"{server.base_url}/api/callback/{CALLBACK_SECRET}"
        idle = HealthProbe(server.base_url + "/api/health")
        idle.start()
        time.sleep(2.0)
        idle_latencies = idle.stop()
        for n in sizes:
            table = leads_table("Ingest", n, now)
            array_path = work / f"ingest-{n}.array.json"
            array_path.write_bytes(records_json(table))
            baseline(array_path, work)  # warm-up: page cache, allocator
            base_times, project_times, latencies, failures = [], [], [], 0
            body_bytes = 0
            for index in range(rounds):
                campaign = f"Ingest {n} round {index + 1}"
                header = {"status": "success", "uniqueId": str(uuid.uuid4()),
                          "campaignName": campaign}  # fmt: skip
                body = envelope_json(header, "data", records_json(_renamed(table, campaign)))
                body_bytes = len(body)
                base_times.append(baseline(array_path, work))
                probe = HealthProbe(server.base_url + "/api/health")
                probe.start()
                try:
                    seconds, answer = post(callback, body)
                finally:
                    latencies += probe.stop()
                    failures += probe.failures
                assert answer.get("rows") == n, answer
                project_times.append(seconds)
                del body
            with contextlib.suppress(FileNotFoundError):
                array_path.unlink()
            base, project = median(base_times), median(project_times)
            results[str(n)] = {
                "records": n,
                "body_mb": round(body_bytes / 1e6, 1),
                "project_s": project,
                "baseline_s": base,
                "ratio": project / base,
                "runs": {"project": project_times, "baseline": base_times},
                "health_during_ingest_ms": {
                    "samples": len(latencies),
                    "p50": 1000 * percentile(latencies, 0.5),
                    "p95": 1000 * percentile(latencies, 0.95),
                    "max": 1000 * max(latencies) if latencies else None,
                    "failures": failures,
                },
            }
            print(
                f"   {n:>9,} records: project {project:.2f} s, baseline {base:.2f} s, "
                f"ratio {project / base:.2f}; health p95 "
                f"{results[str(n)]['health_during_ingest_ms']['p95']:.0f} ms",
                flush=True,
            )
    results["health_idle_ms"] = {
        "p50": 1000 * percentile(idle_latencies, 0.5),
        "p95": 1000 * percentile(idle_latencies, 0.95),
    }
    return results
