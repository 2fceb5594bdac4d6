"""Browser tests: Debian's Chromium driven by pytest-playwright against the real demo server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.helpers import Watch
from tests.support.chromium import launch_options
from tests.support.server import PROJECT_ROOT, ServerProcess

SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
ALL_CAMPAIGNS_LOADED_TIMEOUT = 120
# The first sync round loads every demo campaign; the next one would add newer versions of some
# leads while tests compare numbers across page loads, so it is pushed past the session.
STILL_DATA_ENV = {"DIALSTATUS_SYNC_INTERVAL": "3600"}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Playwright cannot download browsers here: use the system Chromium, offline-safe flags."""
    return {**browser_type_launch_args, **launch_options()}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 2400}}


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """One demo server for the browser session, with every demo campaign loaded and no sync
    request outstanding."""
    server = ServerProcess(tmp_path_factory.mktemp("browser-server"), env=STILL_DATA_ENV)
    with server:
        server.wait_for(settled, timeout=ALL_CAMPAIGNS_LOADED_TIMEOUT)
        yield server


def settled(health: dict) -> bool:
    """Every campaign has rows and nothing is queued, being sent or awaiting its delivery."""
    sync = health.get("sync") or {}
    return bool(
        health["campaigns"]
        and all(c["rows"] > 0 for c in health["campaigns"])
        and not sync.get("queue")
        and not sync.get("sending")
        and not sync.get("in_flight")
    )


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def watch(context, demo_server) -> Watch:
    """Console errors, page errors and requests of the test's `page`/`context`; counts runs."""
    return Watch(demo_server.base_url).attach(context)
