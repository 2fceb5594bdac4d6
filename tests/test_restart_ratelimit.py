"""CloudAgent's 10-requests-a-minute limit holds across a SIGKILL and a clean restart.

A real server process in live mode talks to a sandbox run in this test process (so the
sandbox's request log outlives the server). 14 campaigns: the server is killed right after the
10th send and restarted at once; later it is stopped cleanly and started again. The sandbox
must see at most 10 requests in any 60 s, never answer "Max limit exceeded", and every campaign
must be delivered.
"""

from __future__ import annotations

import time

import pytest

from lib.config import API_PATH
from lib.sandbox import SandboxConfig
from tests.support.asgi import serve_sandbox
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

API_KEY = "restart-limit-key-0123456789"
ACCOUNT = "restart_acct"
CAMPAIGNS = {f"Campaign {index:02d}": 30 for index in range(1, 15)}
WINDOW_S = 60.0


def wait_until(condition, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
    return value


def most_in_any_window(stamps: list[float], window_s: float) -> int:
    stamps = sorted(stamps)
    return max(
        (
            sum(1 for later in stamps[i:] if later - start < window_s)
            for i, start in enumerate(stamps)
        ),
        default=0,
    )


def test_the_limit_holds_across_a_sigkill_and_a_clean_restart(tmp_path):
    config = SandboxConfig(
        api_key=API_KEY, username=ACCOUNT, campaigns=CAMPAIGNS, rate_limit=10, window_s=WINDOW_S
    )
    with serve_sandbox(config) as sandbox:
        port = free_port()
        env = {
            "CLOUDAGENT_API_URL": sandbox.base_url + API_PATH,
            "CLOUDAGENT_USERNAME": ACCOUNT,
            "CLOUDAGENT_API_KEY": API_KEY,
            "DIALSTATUS_CAMPAIGNS": ",".join(CAMPAIGNS),
            "DIALSTATUS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "DIALSTATUS_SYNC_INTERVAL": "3600",
        }

        def sends() -> list[dict]:
            return sandbox.requests()

        server = ServerProcess(tmp_path, env=env, port=port).start()
        try:
            wait_until(lambda: len(sends()) >= 10, 90, "the first 10 sends")
            server.kill()  # right after the 10th send
            assert len(sends()) == 10
            server = ServerProcess(tmp_path, env=env, port=port).start()
            health = server.wait_for(
                lambda h: all(c["last_success_at"] for c in h["campaigns"]), timeout=150
            )
            assert len(health["campaigns"]) == 14
            server.stop()
            server = ServerProcess(tmp_path, env=env, port=port).start()
            # Its startup round asks for every campaign again. The previous process's last
            # sends are still in the window: a window that was not restored would fill it anew
            # (10 sends at once), which the sandbox's log below would show.
            server.wait_for(
                lambda h: (
                    h["sync"]["limiter"]["used"] == 10
                    and h["sync"]["limiter"]["next_slot_in_s"] > 1
                ),
                timeout=30,
            )
            time.sleep(2)  # any send past the limit would have arrived by now
        finally:
            server.stop()
        log = sends()
    stamps = [entry["monotonic"] for entry in log]
    assert most_in_any_window(stamps, WINDOW_S) <= 10, [round(s - stamps[0], 1) for s in stamps]
    assert [e for e in log if e["outcome"] != "accepted"] == []
