"""Goals 3, 4 and 5 in a real browser: headless Debian Chromium driven by Playwright.

- Time to charts: from navigation until every chart of the page is drawn (each plotly chart
  has a trace, heatmap image or sunburst slice) and the script is idle, Campaign page vs the
  floor page (`bench/floor_app.py`), on loopback and under Chromium's network emulation
  (20 Mbit/s, 40 ms), with a fresh browser context (empty cache) and with a warm one (the same
  context after one earlier load). Then the interaction: choosing "last_7d" in the sidebar's
  Date range until every chart is redrawn (each chart's data replaced) and the script is idle.
- Bytes to the browser for one Campaign view: WebSocket frames received (CDP
  `Network.webSocketFrameReceived`, binary payloads decoded) plus HTTP responses other than the
  static bundles (`Network.loadingFinished` encodedDataLength).
- Memory: VmHWM/VmRSS of the server process (/proc/<pid>/status) over repeated page views.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import quote

from playwright.sync_api import Browser, BrowserContext, Page

from bench.common import FOCUS, median, rss_kib
from lib.view.labels import RANGE_LABELS

VIEWPORT = {"width": 1400, "height": 2400}
OFFICE_LINK = {"latency": 40, "throughput_bps": 20_000_000}
CAMPAIGN_CHARTS = 2  # the open section (Breakdown): dial status and the disposition Pareto
FLOOR_CHARTS = 1
TIMEOUT_MS = 180_000

CAMPAIGN_PATH = f"/campaign?campaign={quote(FOCUS)}"

_DRAWN = """n => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    const plots = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')];
    return plots.length >= n && plots.every(p => p.querySelector('.trace, .hm, .slice'));
}"""
_REMEMBER = """() => {
    window.__benchOld = new Set([...document.querySelectorAll(
        '[data-testid="stPlotlyChart"] .js-plotly-plot')].map(p => p.data));
}"""
_REDRAWN = """n => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    const plots = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')];
    return plots.length >= n && plots.every(
        p => p.data && !window.__benchOld.has(p.data) && p.querySelector('.trace, .hm, .slice'));
}"""


def _emulate(context: BrowserContext, page: Page) -> None:
    session = context.new_cdp_session(page)
    session.send("Network.enable")
    rate = OFFICE_LINK["throughput_bps"] / 8
    session.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": OFFICE_LINK["latency"], "downloadThroughput": rate,
         "uploadThroughput": rate},
    )  # fmt: skip


def load(context: BrowserContext, url: str, charts: int, emulate: bool) -> tuple[float, Page]:
    """Seconds from navigation until `charts` charts are drawn and the script is idle."""
    page = context.new_page()
    if emulate:
        _emulate(context, page)
    started = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=TIMEOUT_MS)
    page.wait_for_function(_DRAWN, arg=charts, timeout=TIMEOUT_MS, polling=20)
    return time.perf_counter() - started, page


# The option chosen in each target's Date range: the dashboard shows the label of last_7d, the
# floor page its bare value.
RANGE_OPTION = {"project": RANGE_LABELS["last_7d"], "floor": "last_7d"}


def change_range(page: Page, charts: int, value: str) -> float:
    """Seconds from choosing `value` in the sidebar's Date range until every chart is redrawn."""
    page.evaluate(_REMEMBER)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("combobox", name="Date range").click()
    option = page.get_by_role("option", name=value, exact=True)
    option.wait_for(timeout=TIMEOUT_MS)
    started = time.perf_counter()
    option.click()
    page.wait_for_function(_REDRAWN, arg=charts, timeout=TIMEOUT_MS, polling=20)
    return time.perf_counter() - started


def time_to_charts(
    browser: Browser, targets: dict[str, tuple[str, int]], runs: int, conditions: list[str]
) -> dict:
    """Each condition ("loopback/fresh", "office_link/warm"...) for every target
    ({name: (url, charts)}), targets interleaved run by run; then the filter change."""
    results: dict = {}
    for condition in conditions:
        link, cache = condition.split("/")
        emulate = link == "office_link"
        times: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(runs):
            for name, (url, charts) in targets.items():
                context = browser.new_context(viewport=VIEWPORT)
                try:
                    if cache == "warm":
                        _, first = load(context, url, charts, emulate)
                        first.close()
                    seconds, page = load(context, url, charts, emulate)
                    times[name].append(seconds)
                    page.close()
                finally:
                    context.close()
        results[f"{link}/{cache}"] = {
            name: {"median_s": median(values), "runs": values} for name, values in times.items()
        }
        line = ", ".join(f"{n} {median(v):.2f} s" for n, v in times.items())
        print(f"   {link:11s} {cache:5s}: {line}", flush=True)
    interaction: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, (url, charts) in targets.items():
            context = browser.new_context(viewport=VIEWPORT)
            try:
                _, page = load(context, url, charts, emulate=False)
                interaction[name].append(change_range(page, charts, RANGE_OPTION[name]))
            finally:
                context.close()
    results["interaction/loopback"] = {
        name: {"median_s": median(values), "runs": values} for name, values in interaction.items()
    }
    line = ", ".join(f"{n} {median(v):.2f} s" for n, v in interaction.items())
    print(f"   filter change    : {line}", flush=True)
    return results


def page_bytes(browser: Browser, url: str, charts: int, settle_s: float = 1.0) -> dict:
    """Bytes the server sends for one view (fresh context): WebSocket frames + non-static HTTP."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    session = context.new_cdp_session(page)
    session.send("Network.enable")
    counts = {"ws_frames": 0, "ws_bytes": 0, "http_bytes": 0, "static_bytes": 0, "requests": 0}
    urls: dict[str, str] = {}
    lock = threading.Lock()

    def frame(event: dict) -> None:
        response = event["response"]
        payload = response.get("payloadData", "")
        size = (
            len(payload) * 3 // 4 - payload.count("=")
            if response.get("opcode") == 2
            else len(payload.encode())
        )
        with lock:
            counts["ws_frames"] += 1
            counts["ws_bytes"] += size

    def response(event: dict) -> None:
        urls[event["requestId"]] = event["response"]["url"]

    def finished(event: dict) -> None:
        url = urls.get(event["requestId"], "")
        with lock:
            counts["requests"] += 1
            key = "static_bytes" if "/static/" in url else "http_bytes"
            counts[key] += int(event.get("encodedDataLength", 0))

    session.on("Network.webSocketFrameReceived", frame)
    session.on("Network.responseReceived", response)
    session.on("Network.loadingFinished", finished)
    try:
        page.goto(url, wait_until="commit", timeout=TIMEOUT_MS)
        page.wait_for_function(_DRAWN, arg=charts, timeout=TIMEOUT_MS, polling=20)
        time.sleep(settle_s)
        with lock:
            result = dict(counts)
    finally:
        context.close()
    result["total_bytes"] = result["ws_bytes"] + result["http_bytes"]
    return result


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss_kib = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_rss_kib = max(self.peak_rss_kib, rss_kib(self.pid)["VmRSS"])
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak_rss_kib


def memory(browser: Browser, pid: int, url: str, charts: int, views: int) -> dict:
    """Server RSS over `views` Campaign page views (each a new tab, closed after drawing)."""
    before = rss_kib(pid)
    sampler = RssSampler(pid)
    sampler.start()
    series = []
    context = browser.new_context(viewport=VIEWPORT)
    try:
        for index in range(1, views + 1):
            _, page = load(context, url, charts, emulate=False)
            page.close()
            series.append((index, rss_kib(pid)["VmRSS"]))
    finally:
        context.close()
        sampler.stop()
    time.sleep(2.0)
    after = rss_kib(pid)
    settled = series[min(len(series) - 1, max(0, views // 5 - 1))][1]  # after a fifth of them
    return {
        "views": views,
        "rss_before_mib": before["VmRSS"] / 1024,
        "peak_hwm_mib": after["VmHWM"] / 1024,
        "rss_after_mib": after["VmRSS"] / 1024,
        "rss_series_mib": [(i, round(kib / 1024, 1)) for i, kib in series],
        "growth_after_warmup_mib": (series[-1][1] - settled) / 1024,
    }
