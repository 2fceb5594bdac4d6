"""File links: which URLs may be followed (http(s), allowed places, every redirect hop), the
downloader (streamed to disk, size- and time-limited), and gunzip of a downloaded .gz file.

The server allows exactly the configured API's scheme, host and port (in demo mode: this
server's own sandbox file path); anything else is refused before a connection is made, with
one plain reason, so the callback cannot be used as a port scanner."""

from __future__ import annotations

import gzip
import os
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from lib.store.receive.files import DEFAULT_MAX_BYTES
from lib.store.receive.types import DeliveryRejected, Fetcher

DEFAULT_DOWNLOAD_TIMEOUT_S = 120.0
_MAX_REDIRECTS = 5


# The one reason a caller is given for a link that is not followed: it names no port, host or
# status, so the callback cannot be used to probe what answers where.
OUTSIDE_REASON = "the file link points outside CloudAgent's host"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class _Rule:
    """One allowed place. An entry "scheme://host[:port][/path]" allows exactly that scheme,
    host and port (the scheme's default when none is written) and, when it has a path, only
    paths under it. A bare "host" or "host:port" allows http(s) there, any port unless one is
    named (local test file hosts)."""

    host: str
    scheme: str | None
    port: int | None
    path: str | None

    def allows(self, scheme: str, host: str, port: int, path: str) -> bool:
        return (
            host == self.host
            and (self.scheme is None or scheme == self.scheme)
            and (self.port is None or port == self.port)
            and (self.path is None or path.startswith(self.path))
        )


def _rules(allowed_hosts: Iterable[str]) -> list[_Rule]:
    rules = []
    for entry in allowed_hosts:
        entry = (entry or "").strip()
        has_scheme = "://" in entry
        parts = urlsplit(entry if has_scheme else "//" + entry)
        try:
            port = parts.port
        except ValueError:
            continue
        if not parts.hostname:
            continue
        scheme = parts.scheme.lower() if has_scheme else None
        if scheme is not None and port is None:
            port = _DEFAULT_PORTS.get(scheme)
        path = parts.path.rstrip("/") + "/" if has_scheme and parts.path.strip("/") else None
        rules.append(_Rule(parts.hostname.lower().rstrip("."), scheme, port, path))
    return rules


def check_link(url: str, allowed_hosts: Iterable[str]) -> str:
    """The URL if it is http(s) without credentials in an allowed place (see `_Rule`); else
    DeliveryRejected 400, with OUTSIDE_REASON for a place that is not allowed."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise DeliveryRejected(400, "the file link is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise DeliveryRejected(400, "the file link must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise DeliveryRejected(400, "the file link must not carry credentials")
    host = (parts.hostname or "").lower().rstrip(".")
    path = unquote(parts.path) or "/"
    if any(segment in (".", "..") for segment in path.split("/")):
        raise DeliveryRejected(400, OUTSIDE_REASON)  # a path that climbs out of where it starts
    effective_port = port if port is not None else _DEFAULT_PORTS[scheme]
    if any(rule.allows(scheme, host, effective_port, path) for rule in _rules(allowed_hosts)):
        return url.strip()
    raise DeliveryRejected(400, OUTSIDE_REASON)


def make_fetcher(
    allowed_hosts: Iterable[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = DEFAULT_DOWNLOAD_TIMEOUT_S,
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Fetcher:
    """A downloader for file links: allowed hosts only (every redirect hop too), streamed to disk,
    at most max_bytes (after decompression), at most timeout_s in all."""
    allowed = tuple(allowed_hosts)

    def fetch(url: str, dest: Path) -> None:
        deadline = time.monotonic() + timeout_s
        current = check_link(url, allowed)
        timeout = httpx.Timeout(min(timeout_s, 30.0))
        with httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers=headers,
            transport=transport,
        ) as client:
            try:
                for _ in range(_MAX_REDIRECTS + 1):
                    with client.stream("GET", current) as response:
                        if response.is_redirect:
                            location = response.headers.get("location", "")
                            current = check_link(urljoin(current, location), allowed)
                            continue
                        if response.status_code != 200:
                            raise _host_answered(response.status_code)
                        declared = response.headers.get("content-length", "")
                        if declared.isdigit() and int(declared) > max_bytes:
                            raise DeliveryRejected(413, "the linked file is over the size limit")
                        _stream_to(response, dest, max_bytes, deadline)
                        return
                raise DeliveryRejected(502, "the file link redirects too often", transient=False)
            except httpx.TimeoutException:
                raise DeliveryRejected(504, "the file download timed out") from None
            except httpx.HTTPError as exc:
                raise DeliveryRejected(
                    502, f"the file download failed ({type(exc).__name__})"
                ) from None

    return fetch


def _host_answered(status: int) -> DeliveryRejected:
    """A 502 naming the file host's answer; trying again helps only after a 5xx, 408 or 429
    (a 404 or 403 will not change by asking again)."""
    return DeliveryRejected(
        502,
        f"the file link answered HTTP {status}",
        transient=status >= 500 or status in (408, 429),
    )


def _stream_to(response: httpx.Response, dest: Path, max_bytes: int, deadline: float) -> None:
    written = 0
    with open(dest, "wb") as handle:
        for chunk in response.iter_bytes(1024 * 1024):
            written += len(chunk)
            if written > max_bytes:
                raise DeliveryRejected(413, "the linked file is over the size limit")
            if time.monotonic() > deadline:
                raise DeliveryRejected(504, "the file download timed out")
            handle.write(chunk)


def gunzip_in_place(path: Path, max_bytes: int) -> None:
    plain = path.with_name(path.name + ".plain")
    written = 0
    try:
        with gzip.open(path, "rb") as source, open(plain, "wb") as target:
            while chunk := source.read(1024 * 1024):
                written += len(chunk)
                if written > max_bytes:
                    raise DeliveryRejected(413, "the linked file is over the size limit")
                target.write(chunk)
    except (OSError, EOFError, zlib.error):
        plain.unlink(missing_ok=True)
        raise DeliveryRejected(400, "the linked file is not valid gzip") from None
    except BaseException:
        plain.unlink(missing_ok=True)
        raise
    os.replace(plain, path)
