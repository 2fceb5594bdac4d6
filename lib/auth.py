"""Who may see the dashboard and who may change it: the `[auth]` table, roles, password hashing
and the growing delays after failed sign-ins and failed tokens.

Two roles: a viewer sees the dashboards and exports; an operator can also change Settings, press
Sync now and send hand-made requests. Three modes, from `[auth]` in secrets.toml:
- none (no `[auth]`): no sign-in, and everyone is an operator, so the demo works with no setup;
- oidc: Streamlit's own `st.login`; only `allowed_emails` / `allowed_domains` get in, and the
  accounts in `operator_emails` are operators;
- password: one shared password (`password_hash`, a scrypt hash, compared in constant time) for
  viewers, and optionally a second one (`operator_password_hash`) for operators.
Anything else in `[auth]` stops the server with a message naming the key: a typo must never
turn sign-in off. `python -m lib.auth` prints a hash for a password.
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
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "operator"]
VIEWER: Role = "viewer"
OPERATOR: Role = "operator"

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_OIDC_KEYS = ("client_id", "server_metadata_url")
# What a provider's settings may hold (Streamlit's st.login passes them to Authlib), at the top
# of [auth] for the default provider or in a sub-table such as [auth.google].
_PROVIDER_KEYS = frozenset(
    {"client_id", "client_secret", "server_metadata_url", "client_kwargs", "expose_tokens"}
)
_STREAMLIT_KEYS = _PROVIDER_KEYS | {"redirect_uri", "cookie_secret"}
_OIDC_ACCESS_KEYS = frozenset({"allowed_emails", "allowed_domains", "operator_emails"})
_PASSWORD_KEYS = frozenset({"password_hash", "operator_password_hash"})
_PASSWORD_ENV = {
    "password_hash": "DIALSTATUS_PASSWORD_HASH",
    "operator_password_hash": "DIALSTATUS_OPERATOR_PASSWORD_HASH",
}


@dataclass(frozen=True)
class AuthConfig:
    mode: Literal["none", "oidc", "password"]
    password_hash: str | None = None
    operator_password_hash: str | None = None
    allowed_emails: frozenset[str] = frozenset()
    allowed_domains: frozenset[str] = frozenset()
    operator_emails: frozenset[str] = frozenset()
    providers: tuple[str, ...] = ()  # named [auth.<name>] providers; () = the default one

    def email_allowed(self, email: str | None) -> bool:
        """An OIDC account gets in only when listed, by address or by domain (case-insensitive)."""
        address = (email or "").strip().lower()
        if "@" not in address:
            return False
        domain = address.rpartition("@")[2]
        return address in self.allowed_emails | self.operator_emails or (
            domain in self.allowed_domains
        )

    def role_for_email(self, email: str | None) -> Role:
        return OPERATOR if (email or "").strip().lower() in self.operator_emails else VIEWER

    def role_for_password(self, password: str) -> Role | None:
        """The role a shared password opens, or None. Both hashes are always checked, so the
        time taken does not tell which one a guess was close to."""
        operator = bool(self.operator_password_hash) and verify_password(
            password, self.operator_password_hash or ""
        )
        viewer = bool(self.password_hash) and verify_password(password, self.password_hash or "")
        return OPERATOR if operator else VIEWER if viewer else None


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


def _names(value, key: str, *, addresses: bool) -> frozenset[str]:
    """A list (or comma-separated text) of addresses or of domains, lower-cased; ValueError
    naming the key for an entry of the wrong kind, so a typo cannot widen or void the list."""
    items = value if isinstance(value, list | tuple) else str(value or "").split(",")
    names = frozenset(str(item).strip().lower() for item in items) - {""}
    if not names and value not in (None, "", []):
        raise ValueError(f"[auth] {key} lists nothing")
    for name in names:
        local, at, domain = name.partition("@")
        if (addresses and not (local and at and domain)) or (not addresses and at):
            kind = "an email address" if addresses else "a domain without @"
            raise ValueError(f"[auth] {key}: every entry must be {kind}")
    return names


def _checked_hash(value, key: str) -> str:
    text = str(value)
    if not text.startswith("scrypt$") or text.count("$") != 2:
        raise ValueError(f"[auth] {key} must be made with `python -m lib.auth` (scrypt$salt$hash)")
    return text


def _oidc_config(table: Mapping, providers: list[str]) -> AuthConfig:
    allowed_emails = _names(table.get("allowed_emails"), "allowed_emails", addresses=True)
    allowed_domains = _names(table.get("allowed_domains"), "allowed_domains", addresses=False)
    if not allowed_emails and not allowed_domains:
        raise ValueError(
            "[auth] with an identity provider needs allowed_emails or allowed_domains: without "
            "them any account the provider signs in would get in"
        )
    return AuthConfig(
        "oidc",
        allowed_emails=allowed_emails,
        allowed_domains=allowed_domains,
        operator_emails=_names(table.get("operator_emails"), "operator_emails", addresses=True),
        providers=tuple(providers),
    )


def _unknown(keys: Iterable[str], known: Set[str], what: str) -> None:
    unknown = sorted(set(keys) - known)
    if unknown:
        raise ValueError(f"[auth] has key(s) {', '.join(unknown)} that {what} does not use")


def _check_provider(name: str, section: Mapping) -> None:
    """A sub-table of [auth] is one named provider; anything else in it (allowed_emails put
    under [auth.google], a typo) is named rather than ignored."""
    _unknown(
        (f"{name}.{key}" for key in section), {f"{name}.{k}" for k in _PROVIDER_KEYS}, "a provider"
    )
    if "client_id" not in section:
        raise ValueError(f"[auth.{name}] is not an identity provider: it has no client_id")


def auth_config(auth_table: Mapping | None, env: Mapping[str, str] | None = None) -> AuthConfig:
    """Reads `[auth]` (and DIALSTATUS_[OPERATOR_]PASSWORD_HASH); raises ValueError naming the
    key when the table is not clearly one mode: sign-in fails closed, never silently off."""
    env = os.environ if env is None else env
    table = dict(auth_table or {})
    hashes = {key: env.get(name) or table.get(key) for key, name in _PASSWORD_ENV.items()}
    providers = [key for key, value in table.items() if isinstance(value, Mapping)]
    has_provider = any(key in table for key in _OIDC_KEYS) or any(
        any(k in table[key] for k in _OIDC_KEYS) for key in providers
    )
    if has_provider:
        if any(hashes.values()):
            raise ValueError("[auth] sets both an identity provider and password_hash: keep one")
        _unknown(set(table) - set(providers), _STREAMLIT_KEYS | _OIDC_ACCESS_KEYS, "OIDC sign-in")
        for name in providers:
            _check_provider(name, table[name])
        return _oidc_config(table, providers)
    if hashes["password_hash"]:
        _unknown(table, _PASSWORD_KEYS, "shared-password sign-in")
        operator_hash = hashes["operator_password_hash"]
        return AuthConfig(
            "password",
            _checked_hash(hashes["password_hash"], "password_hash"),
            _checked_hash(operator_hash, "operator_password_hash") if operator_hash else None,
        )
    if auth_table is not None or hashes["operator_password_hash"]:
        named = ", ".join(sorted(table)) or "no keys"
        raise ValueError(
            f"[auth] ({named}) is neither an identity provider (client_id, server_metadata_url) "
            "nor a shared password (password_hash): remove it to turn sign-in off"
        )
    return AuthConfig("none")


class Backoff:
    """Failed attempts of one caller and the growing wait they impose: none for the first
    `free` failures, then `first_s`, doubling, at most `cap_s`. A success starts over."""

    def __init__(
        self,
        *,
        free: int = 0,
        first_s: float = 1.0,
        cap_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.first_s, self.cap_s, self.clock = free, first_s, cap_s, clock
        self.failures = 0
        self._not_before = 0.0

    def wait_left(self) -> float:
        """Seconds until the caller may try again; 0 when it may try now."""
        return max(0.0, self._not_before - self.clock())

    def failed(self) -> float:
        """Counts one failure; returns the wait it imposes."""
        self.failures += 1
        over = self.failures - self.free
        delay = 0.0 if over <= 0 else min(self.cap_s, self.first_s * 2 ** (over - 1))
        self._not_before = self.clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self._not_before = 0, 0.0


class BackoffByClient:
    """One Backoff per client key, thread-safe, at most `max_clients` remembered (the oldest
    forgotten first), so anonymous traffic cannot grow it without bound."""

    def __init__(self, max_clients: int = 4096, **backoff) -> None:
        self._settings = backoff
        self._max = max_clients
        self._clients: OrderedDict[str, Backoff] = OrderedDict()
        self._lock = threading.Lock()

    def wait_left(self, client: str) -> float:
        with self._lock:
            backoff = self._clients.get(client)
            return backoff.wait_left() if backoff else 0.0

    def failed(self, client: str) -> float:
        with self._lock:
            backoff = self._clients.pop(client, None) or Backoff(**self._settings)
            self._clients[client] = backoff
            while len(self._clients) > self._max:
                self._clients.popitem(last=False)
            return backoff.failed()

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)


class HourlyQuota:
    """At most `limit` uses per key in any hour (the hand-made requests of one operator)."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._uses: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Counts one use and returns 0, or returns the seconds until one is free (not counted)."""
        with self._lock:
            now = self._clock()
            uses = [t for t in self._uses.get(key, []) if t > now - 3600]
            if len(uses) >= self.limit:
                self._uses[key] = uses
                return uses[len(uses) - self.limit] + 3600 - now
            self._uses[key] = [*uses, now]
            return 0.0


if __name__ == "__main__":
    # `python -m lib.auth` for the viewers' password, `python -m lib.auth operator` for theirs.
    import sys

    key = "operator_password_hash" if sys.argv[1:] == ["operator"] else "password_hash"
    first = getpass.getpass("Shared dashboard password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("The two passwords differ.")
    print(f'[auth]\n{key} = "{hash_password(first)}"')
