"""Browser tests: Debian's Chromium driven by pytest-playwright against the real demo server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_process import PROJECT_ROOT, ServerProcess

SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ALL_CAMPAIGNS_LOADED_TIMEOUT = 120


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Playwright cannot download browsers here: use the system Chromium, offline-safe flags."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage",
        ],
    }  # fmt: skip


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 2400}}


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """One demo server for the browser session, with every demo campaign loaded."""
    server = ServerProcess(tmp_path_factory.mktemp("browser-server"))
    with server:
        server.wait_for(
            lambda h: h["campaigns"] and all(c["rows"] > 0 for c in h["campaigns"]),
            timeout=ALL_CAMPAIGNS_LOADED_TIMEOUT,
        )
        yield server


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
