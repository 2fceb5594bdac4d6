"""File links: which URLs may be followed (http(s), allowed hosts, every redirect hop), the
downloader (streamed to disk, size- and time-limited), and gunzip of a downloaded .gz file."""

from __future__ import annotations

import gzip
import os
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from lib.store.receive.files import DEFAULT_MAX_BYTES
from lib.store.receive.types import DeliveryRejected, Fetcher

DEFAULT_DOWNLOAD_TIMEOUT_S = 120.0
_MAX_REDIRECTS = 5


def _host_rules(allowed_hosts: Iterable[str]) -> list[tuple[str, int | None]]:
    rules = []
    for entry in allowed_hosts:
        entry = (entry or "").strip()
        if not entry:
            continue
        parts = urlsplit(entry if "//" in entry else "//" + entry)
        if parts.hostname:
            try:
                port = parts.port
            except ValueError:
                continue
            rules.append((parts.hostname.lower().rstrip("."), port))
    return rules


def check_link(url: str, allowed_hosts: Iterable[str]) -> str:
    """The URL if it is http(s) on an allowed host (any port unless the entry names one)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise DeliveryRejected(400, "the file link is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise DeliveryRejected(400, "the file link must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise DeliveryRejected(400, "the file link must not carry credentials")
    host = (parts.hostname or "").lower().rstrip(".")
    for allowed_host, allowed_port in _host_rules(allowed_hosts):
        if host == allowed_host and (allowed_port is None or allowed_port == port):
            return url.strip()
    raise DeliveryRejected(400, "the file link points to a host that is not allowed")


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
                            raise DeliveryRejected(
                                502, f"the file link answered HTTP {response.status_code}"
                            )
                        declared = response.headers.get("content-length", "")
                        if declared.isdigit() and int(declared) > max_bytes:
                            raise DeliveryRejected(413, "the linked file is over the size limit")
                        _stream_to(response, dest, max_bytes, deadline)
                        return
                raise DeliveryRejected(502, "the file link redirects too often")
            except httpx.TimeoutException:
                raise DeliveryRejected(504, "the file download timed out") from None
            except httpx.HTTPError as exc:
                raise DeliveryRejected(
                    502, f"the file download failed ({type(exc).__name__})"
                ) from None

    return fetch


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
