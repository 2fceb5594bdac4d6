"""Starts a real `streamlit run` process on a free port: the dashboard for the tests and the
benchmarks, or any other script (the benchmarks' floor page).

Each server gets its own data folder and, unless told otherwise, its own temporary database;
it never sees the developer's secrets.toml or their CLOUDAGENT_/DIALSTATUS_ variables, so tests
are hermetic and can run in any order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Every server gets it unless `env` says otherwise: the demo sandbox's admin routes need it.
ADMIN_TOKEN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """One `streamlit run <script>` process on 127.0.0.1; `base_url`, `pid`, `health()`,
    `wait_for()`, `callback_url`, `log_text()`, `stop()`, `kill()`.

    `env` overrides the defaults (a database and a missing secrets file in `data_dir`);
    `health_path` is polled until it answers 200 (the floor page has only Streamlit's own).
    """

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
        script: str = "streamlit_app.py",
        health_path: str = "/api/health",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self.extra_env = env or {}
        self.script = script
        self.health_path = health_path
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The process that serves (the benchmarks read its memory from /proc)."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120.0) -> ServerProcess:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CLOUDAGENT_", "DIALSTATUS_"))
        }
        env.update(
            {
                "DIALSTATUS_DB": str(self.data_dir / "dialstatus.duckdb"),
                "DIALSTATUS_SECRETS_FILE": str(self.data_dir / "no-secrets.toml"),
                "DIALSTATUS_ADMIN_TOKEN": ADMIN_TOKEN,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        command = [
            sys.executable, "-m", "streamlit", "run", self.script,
            "--server.port", str(self.port), "--server.address", "127.0.0.1",
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        self.process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + self.health_path, timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log_text()[-3000:]}")

    @property
    def callback_secret(self) -> str:
        return (self.data_dir / "callback_secret").read_text().strip()

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}/api/callback/{self.callback_secret}"

    @property
    def admin_headers(self) -> dict[str, str]:
        """What the sandbox's admin routes (and POST /api/sync) accept from tests."""
        return {"X-Dialstatus-Token": self.extra_env.get("DIALSTATUS_ADMIN_TOKEN", ADMIN_TOKEN)}

    def health(self) -> dict:
        return httpx.get(self.base_url + "/api/health", timeout=10).json()

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.5):
        """Polls /api/health until predicate(health) is truthy; returns the last health."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.health()
            if predicate(health):
                return health
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s; health: {health}")
            time.sleep(interval)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
