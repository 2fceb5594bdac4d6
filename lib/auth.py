"""Viewer access: which sign-in mode is configured, shared-password hashing, attempt limiting.

Two modes, from the `[auth]` table of secrets.toml: Streamlit's own `st.login` (OIDC) when an
identity provider is configured, or one shared password for small teams, stored only as a scrypt
hash and compared in constant time. `python -m lib.auth` prints a hash for a password.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_OIDC_KEYS = ("client_id", "server_metadata_url")


@dataclass(frozen=True)
class AuthConfig:
    mode: Literal["none", "oidc", "password"]
    password_hash: str | None = None


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$<salt>$<hash>` (base64); the plain password is never stored."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored_hash: str) -> bool:
    try:
        scheme, salt_text, digest_text = stored_hash.split("$")
        salt, expected = base64.b64decode(salt_text), base64.b64decode(digest_text)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    actual = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return hmac.compare_digest(actual, expected)


def auth_config(auth_table: Mapping | None, env: Mapping[str, str] | None = None) -> AuthConfig:
    """Reads `[auth]`: OIDC when a provider is configured, else a shared password hash."""
    env = os.environ if env is None else env
    table = dict(auth_table or {})
    password_hash = env.get("DIALSTATUS_PASSWORD_HASH") or table.get("password_hash")
    has_provider = any(key in table for key in _OIDC_KEYS) or any(
        isinstance(value, Mapping) and any(k in value for k in _OIDC_KEYS)
        for value in table.values()
    )
    if has_provider:
        return AuthConfig("oidc")
    if password_hash:
        if not str(password_hash).startswith("scrypt$") or str(password_hash).count("$") != 2:
            raise ValueError(
                "[auth] password_hash must be made with `python -m lib.auth` (scrypt$salt$hash)"
            )
        return AuthConfig("password", str(password_hash))
    return AuthConfig("none")


class AttemptLimiter:
    """At most `max_failures` failed sign-ins per client in `window_s`; successes don't count."""

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may try now."""
        with self._lock:
            failures = self._recent(client)
            if len(failures) < self._max:
                return 0.0
            return max(0.0, failures[0] + self._window - self._clock())

    def record_failure(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self._clock())

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= self._clock() - self._window:
            failures.popleft()
        return failures


if __name__ == "__main__":
    first = getpass.getpass("Shared dashboard password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("The two passwords differ.")
    print(f'[auth]\npassword_hash = "{hash_password(first)}"')
