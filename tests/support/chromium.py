"""Debian's Chromium, launched offline-safe (`playwright install` cannot download browsers here).

`launch_options()` is what every launch passes: pytest-playwright's `browser_type_launch_args`,
the async launches of the load tests, and `launched_chromium()` for the benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)  # fmt: skip


def launch_options() -> dict:
    """Keyword arguments for Playwright's `chromium.launch` (sync or async API)."""
    return {"executable_path": CHROMIUM, "args": list(CHROMIUM_ARGS)}


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """One headless Chromium outside pytest (the benchmarks); closed on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_options())
        try:
            yield browser
        finally:
            browser.close()
