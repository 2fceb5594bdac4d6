"""Load on loopback, bounded in count and time (marked slow and browser: `.ci/run` runs them).

1. 200 callback deliveries (up to 100k records each) from 20 concurrent senders while 10 real
   browser sessions reload the dashboard's pages: every acknowledged delivery stored exactly once,
   the p95 page-script time and /api/health latency reported (artifacts/load/), no error in the
   server log, no exception on any page.
2. 20 sessions pressing "Sync now" for 30 campaigns for 3 minutes (18 through POST /api/sync,
   the same engine path as the button, and 2 real browsers clicking the Sync page's button): the
   sandbox never sees more than 10 requests in any 60 s, and every campaign is refreshed.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import duckdb
import httpx
import pyarrow as pa
import pytest

from lib.sandbox.datagen import generate_campaign
from lib.sandbox.encode import envelope_json, records_json
from tests.support.chromium import launch_options
from tests.support.server import PROJECT_ROOT, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.browser]

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# A fresh page has run its script when the page's heading is drawn and the script is idle.
READY_JS = """
(idle) => !!document.querySelector(idle)
  && !!document.querySelector('[data-testid="stMain"] [data-testid="stHeading"]')
"""
REPORTS = PROJECT_ROOT / "artifacts" / "load"
NOW = datetime(2026, 11, 20, 12, 0)

SENDERS = 20
# 200 deliveries (records each), shuffled and dealt to the senders: ~450k records in all
# (a mix up to 100k, as the load goal asks, kept small enough for CI's 15 minutes).
SIZES = [100_000] + [50_000] * 2 + [10_000] * 12 + [2_000] * 45 + [300] * 140
random.Random(7).shuffle(SIZES)
BROWSER_SESSIONS = 10
PAGES = ("/", "/campaign", "/leads", "/sync")


def _run_in_own_loop(coroutine):
    """asyncio.run in a fresh thread: pytest-playwright's sync API may already run a loop here."""
    with ThreadPoolExecutor(1) as runner:
        return runner.submit(asyncio.run, coroutine).result()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _report(name: str, report: dict) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.json").write_text(json.dumps(report, indent=2))
    print(f"\n{name}: " + json.dumps(report))


def _server_errors(server: ServerProcess) -> list[str]:
    bad = ("Traceback", "ERROR", "Exception", "exception")
    return [line for line in server.log_text().splitlines() if any(b in line for b in bad)]


async def _browse(base_url: str, sessions: int, done, min_loads: int, max_loads: int,
                  action=None, think_s: float = 0.0) -> dict:  # fmt: skip
    """`sessions` browser contexts reloading pages until `done()` (at least min_loads each)."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    times: list[tuple[str, float]] = []
    problems: list[str] = []

    async def session(index: int, browser) -> None:
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        loads = 0
        while loads < max_loads and not (loads >= min_loads and done()):
            path = PAGES[(index + loads) % len(PAGES)] if action is None else "/sync"
            started = time.monotonic()
            try:
                await page.goto(base_url + path, wait_until="commit", timeout=180_000)
                await page.wait_for_function(READY_JS, arg=IDLE, polling=100, timeout=180_000)
            except PlaywrightTimeout:
                problems.append(f"{path} not loaded within 180 s")
                loads += 1
                continue
            times.append((path, time.monotonic() - started))
            if await page.locator('[data-testid="stException"]').count():
                problems.append(f"exception shown on {path}")
            if action is not None:
                await action(page, problems)
            loads += 1
            await asyncio.sleep(think_s)  # a person reads the page before refreshing it
        await context.close()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**launch_options())
        try:
            await asyncio.gather(*(session(i, browser) for i in range(sessions)))
        finally:
            await browser.close()
    return {"times": times, "problems": problems}


# -- 1. deliveries under load ---------------------------------------------------------------------


def _delivery(sender: int, number: int, size: int) -> tuple[str, bytes]:
    """A default-shape delivery with lead ids unique across the whole test."""
    campaign = f"Load {sender:02d}"
    table = generate_campaign(campaign, size, sender * 100 + number, NOW)
    table = table.slice(0, size)  # first versions only: one record per lead
    ids = pa.array([f"{sender:02d}-{number:02d}-{i:06d}" for i in range(size)])
    table = table.set_column(table.schema.get_field_index("LeadID"), "LeadID", ids)
    header = {"status": "success", "uniqueId": f"load-{sender}-{number}", "campaignName": campaign}
    return campaign, envelope_json(header, "data", records_json(table))


def _send_all(server: ServerProcess, sender: int, bodies: list[bytes], results: list) -> None:
    """One sender: its deliveries one after another; no answer or a 5xx is sent again."""
    with httpx.Client(timeout=600) as client:
        for body in bodies:
            for attempt in range(4):
                started = time.monotonic()
                try:
                    response = client.post(
                        server.callback_url, content=body,
                        headers={"content-type": "application/json"},
                    )  # fmt: skip
                except httpx.HTTPError as error:
                    results.append((sender, None, repr(error), time.monotonic() - started))
                    time.sleep(1 + attempt)
                    continue
                results.append((sender, response.status_code, "", time.monotonic() - started))
                if response.status_code < 500:
                    break
                time.sleep(1 + attempt)


def test_deliveries_from_20_senders_while_10_browsers_reload(tmp_path):
    dealt = [SIZES[s::SENDERS] for s in range(SENDERS)]
    work = [[_delivery(s, n, size) for n, size in enumerate(sizes)]
            for s, sizes in enumerate(dealt)]  # fmt: skip
    expected = {f"Load {s:02d}": sum(sizes) for s, sizes in enumerate(dealt)}
    total_records = sum(expected.values())

    env = {"DIALSTATUS_SYNC_ENABLED": "false", "DIALSTATUS_CAMPAIGNS": "Load 00"}
    server = ServerProcess(tmp_path / "srv", env=env).start()
    results: list = []
    health_ms: list[float] = []
    loop_ms: list[float] = []
    timeline: list = []
    t0 = time.monotonic()
    finished = threading.Event()

    def watch_health() -> None:
        with httpx.Client(timeout=30) as client:
            while not finished.is_set():
                started = time.monotonic()
                client.get(server.base_url + "/_stcore/health")  # the event loop alone
                loop_ms.append(1000 * (time.monotonic() - started))
                started = time.monotonic()
                client.get(server.base_url + "/api/health")  # + a worker thread + DuckDB
                health_ms.append(1000 * (time.monotonic() - started))
                timeline.append((round(started - t0, 1), round(health_ms[-1])))
                time.sleep(0.5)

    try:
        watcher = threading.Thread(target=watch_health, daemon=True)
        watcher.start()
        started = time.monotonic()
        with ThreadPoolExecutor(SENDERS) as pool:
            futures = [
                pool.submit(_send_all, server, s, [body for _, body in bodies], results)
                for s, bodies in enumerate(work)
            ]
            browsing = _run_in_own_loop(
                _browse(server.base_url, BROWSER_SESSIONS,
                        done=lambda: all(f.done() for f in futures), min_loads=3, max_loads=12,
                        think_s=8.0)
            )  # fmt: skip
            for future in futures:
                future.result()
        delivered_in = time.monotonic() - started
        finished.set()
        watcher.join(5)
    finally:
        finished.set()
        server.stop()

    acknowledged = [r for r in results if r[1] == 200]
    assert len(acknowledged) == len(SIZES), [r for r in results if r[1] != 200][:5]
    with duckdb.connect(str(server.data_dir / "dialstatus.duckdb"), read_only=True) as con:
        stored = dict(
            con.execute("SELECT campaign_name, count(*) FROM leads GROUP BY ALL").fetchall()
        )
        raw = con.execute(
            "SELECT count(*) FILTER (WHERE state = 'ingested'), "
            "count(DISTINCT sha256) FILTER (WHERE state = 'ingested'), "
            "count(*) FILTER (WHERE state NOT IN ('ingested', 'duplicate')) FROM raw_deliveries"
        ).fetchone()
    assert stored == expected  # every record of every delivery, exactly once
    assert raw == (len(SIZES), len(SIZES), 0)

    page_seconds = [t for _, t in browsing["times"]]
    report = {
        "deliveries": len(acknowledged),
        "records": total_records,
        "retries": len(results) - len(acknowledged),
        "delivery_phase_s": round(delivered_in, 1),
        "page_loads": len(page_seconds),
        "page_script_p50_s": round(statistics.median(page_seconds), 2),
        "page_script_p95_s": round(_p95(page_seconds), 2),
        "page_script_max_s": round(max(page_seconds), 2),
        "event_loop_p95_ms": round(_p95(loop_ms), 1),
        "event_loop_max_ms": round(max(loop_ms), 1),
        "health_p95_ms": round(_p95(health_ms), 1),
        "health_max_ms": round(max(health_ms), 1),
        "delivery_p95_s": round(_p95([r[3] for r in acknowledged]), 2),
    }
    report["health_timeline"] = [t for t in timeline if t[1] > 1000]
    report["problems"] = browsing["problems"][:10]
    _report("deliveries_under_browser_load", report)
    assert browsing["problems"] == []
    assert len(page_seconds) >= BROWSER_SESSIONS * 3
    # Bounds well above what this machine showed while shared with other benchmarks (page p95
    # 49-60 s, health p95 1.6-3.5 s, event loop p95 < 1 s; without the browsers the 200
    # deliveries take ~60 s), and below a server that freezes (page loads give up at 180 s).
    assert report["page_script_p95_s"] < 120
    assert report["health_p95_ms"] < 10_000 and report["event_loop_p95_ms"] < 5000
    assert _server_errors(server) == []


# -- 2. "Sync now" pressed by 20 sessions for 3 minutes ------------------------------------------

SYNC_CAMPAIGNS = [f"Press {i:02d}" for i in range(1, 31)]
PRESS_SECONDS = 180
API_SESSIONS = 18
BROWSER_PRESSERS = 2


def _max_in_any_window(stamps: list[float], window: float = 60.0) -> int:
    stamps = sorted(stamps)
    best = start = 0
    for end, moment in enumerate(stamps):
        while moment - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_sync_now_pressed_by_20_sessions_for_3_minutes(tmp_path):
    env = {"DIALSTATUS_SYNC_INTERVAL": "3600", "DIALSTATUS_CAMPAIGNS": ",".join(SYNC_CAMPAIGNS)}
    server = ServerProcess(tmp_path / "srv", env=env).start()
    token = {"X-Dialstatus-Token": server.callback_secret}
    deadline = time.monotonic() + PRESS_SECONDS
    presses: list[tuple[int, int]] = []

    def press(session: int) -> None:
        rng = random.Random(session)
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                campaign = rng.choice([None, *SYNC_CAMPAIGNS])
                response = client.post(
                    server.base_url + "/api/sync",
                    params={"campaign": campaign} if campaign else None,
                    headers=token,
                )
                presses.append((session, response.status_code))
                time.sleep(rng.uniform(0.5, 3.0))

    async def click_sync_now(page, problems) -> None:
        """Clicks Sync now until the deadline; each click must be answered. Clicks used to go
        unanswered for 60 s: the header's live check reran the app in the middle of the click's
        own run whenever data had landed since the top of that run, dropping the press (the
        server's fault, not the browsers'; fixed in ui.live_status, test_pages has the exact
        case). A person would click again, so a click still gets one retry (counted in the
        report) before it fails the test."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        # The answer names the time of its press, so the previous click's answer never counts.
        shown = """() => [...document.querySelectorAll('[data-testid="stAlert"]')]
            .map((a) => a.innerText).filter((text) => /Queued|Already queued/.test(text))"""
        answered = """(before) => [...document.querySelectorAll('[data-testid="stAlert"]')]
            .some((a) => /Queued|Already queued/.test(a.innerText)
                         && !before.includes(a.innerText))"""
        clicks = 0
        while time.monotonic() < deadline and clicks < 12:
            clicked = time.monotonic()  # a retried click's answer time includes the lost wait
            for attempt in (1, 2):
                before = await page.evaluate(shown)
                await page.locator(".st-key-sync_now button").click()
                try:
                    await page.wait_for_function(answered, arg=before, polling=100, timeout=60_000)
                    answer_s.append(time.monotonic() - clicked)
                    break
                except PlaywrightTimeout:
                    if attempt == 2:
                        raise
                    retried.append(clicks)
            clicks += 1
            ui_clicks.append(clicks)
            await asyncio.sleep(8)

    ui_clicks: list[int] = []
    retried: list[int] = []
    answer_s: list[float] = []  # click -> answer shown, per answered click
    try:
        with ThreadPoolExecutor(API_SESSIONS) as pool:
            pressers = [pool.submit(press, i) for i in range(API_SESSIONS)]
            browsing = _run_in_own_loop(
                _browse(server.base_url, BROWSER_PRESSERS, done=lambda: True, min_loads=1,
                        max_loads=1, action=click_sync_now)
            )  # fmt: skip
            for presser in pressers:
                presser.result()
        health = server.health()
        admin = {"headers": server.admin_headers, "timeout": 30}
        log = httpx.get(server.base_url + "/api/sandbox/_sandbox/requests", **admin).json()
        deliveries = httpx.get(server.base_url + "/api/sandbox/_sandbox/deliveries", **admin).json()
    finally:
        server.stop()

    stamps = [entry["monotonic"] for entry in log]
    busiest = _max_in_any_window(stamps)
    refreshed = {d["campaign"] for d in deliveries if d["state"] == "delivered"}
    report = {
        "api_presses": len(presses),
        "ui_clicks": len(ui_clicks),
        "ui_clicks_retried": len(retried),
        "ui_answer_p50_s": round(statistics.median(answer_s), 2),
        "ui_answer_p95_s": round(_p95(answer_s), 2),
        "ui_answer_max_s": round(max(answer_s), 2),
        "requests_seen_by_sandbox": len(log),
        "max_requests_in_any_60s": busiest,
        "campaigns_refreshed": len(refreshed),
        "refreshes": len(deliveries),
    }
    _report("sync_now_pressed_for_3_minutes", report)
    assert browsing["problems"] == []
    assert {status for _, status in presses} == {202}
    assert len(ui_clicks) >= 2 * BROWSER_PRESSERS
    assert len(retried) * 4 <= len(ui_clicks)  # a lost click is the exception, not the rule
    assert report["ui_answer_p95_s"] < 10  # a person sees their click answered
    assert busiest <= 10
    assert all(entry["outcome"] == "accepted" for entry in log)  # never "Max limit exceeded"
    assert refreshed == set(SYNC_CAMPAIGNS)
    campaigns = {c["name"]: c for c in health["campaigns"]}
    assert all(campaigns[n]["last_success_at"] and not campaigns[n]["last_error"]
               for n in SYNC_CAMPAIGNS)  # fmt: skip
    assert _server_errors(server) == []
