"""Hostile callback bodies over real HTTP: each refused with a 4xx, nothing written."""

from __future__ import annotations

import itertools
import json
import logging
import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from lib.server import CALLBACK_PREFIX, routes
from lib.services import Services, get_services, reset_services
from tests.support.asgi import run_asgi

SECRET = "hostile-callback-secret-0123456789"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[tuple[str, Services]]:
    data = tmp_path_factory.mktemp("hostile")
    patch = pytest.MonkeyPatch()
    patch.delenv("CLOUDAGENT_API_KEY", raising=False)
    patch.setenv("DIALSTATUS_DB", str(data / "hostile.duckdb"))
    patch.setenv("DIALSTATUS_SECRETS_FILE", str(data / "none.toml"))
    patch.setenv("DIALSTATUS_CALLBACK_SECRET", SECRET)
    patch.setenv("DIALSTATUS_MAX_BODY_MB", "4")
    reset_services()
    services = get_services()
    with run_asgi(Starlette(routes=routes())) as url:
        yield url + CALLBACK_PREFIX + SECRET, services
    reset_services()
    patch.undo()


def _record(**extra) -> dict:
    return {"PhoneNumber": "9800000001", "CampaignName": "Hostile", "Status": "Pending", **extra}


def _nested(depth: int) -> bytes:
    return b'{"data": ' + b"[" * depth + b"]" * depth + b"}"


HOSTILE_BODIES = {
    "deeply nested arrays": (_nested(200_000), "application/json"),
    "deeply nested objects": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
    "non-UTF-8 bytes": (b'{"data": [{"Name": "\xff\xfe\xfa"}]}', "application/json"),
    "a 3 MB string in one field": (
        json.dumps({"data": [_record(Comments="x" * 3_000_000)]}).encode(),
        "application/json",
    ),
    "file link with a file: scheme": (
        json.dumps({"campaignName": "Hostile", "fileUrl": "file:///etc/passwd"}).encode(),
        "application/json",
    ),
    "file link to another host": (
        json.dumps({"campaignName": "Hostile", "fileUrl": "http://example.com/x.json"}).encode(),
        "application/json",
    ),
    "file link with credentials in the URL": (
        json.dumps(
            {"campaignName": "Hostile", "fileUrl": "http://u:p@127.0.0.1:1/x.json"}
        ).encode(),
        "application/json",
    ),
    "form without a data field": (b"other=1", "application/x-www-form-urlencoded"),
    "JSON that is a bare number": (b"12345", "application/json"),
    "HTML": (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    "multipart": (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
}


@pytest.mark.parametrize("case", HOSTILE_BODIES, ids=list(HOSTILE_BODIES))
def test_hostile_body_is_refused_and_writes_nothing(endpoint, case):
    url, services = endpoint
    body, content_type = HOSTILE_BODIES[case]
    version = services.store.data_version()
    with services.store.cursor() as cursor:
        leads_before = cursor.execute("SELECT count(*) FROM leads").fetchone()[0]
    response = httpx.post(url, content=body, headers={"content-type": content_type}, timeout=60)
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text[:200])
    message = response.json()["message"]
    assert message and len(message) < 500 and SECRET not in message
    assert services.store.data_version() == version
    with services.store.cursor() as cursor:
        assert cursor.execute("SELECT count(*) FROM leads").fetchone()[0] == leads_before


def _send_until_answered(url: str, headers: str, chunks) -> tuple[bytes, int]:
    """Streams chunks over a raw socket until the server answers; returns (answer, bytes sent)."""
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(f"POST {parts.path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        for chunk in chunks:
            readable, _, _ = select.select([connection], [], [], 0)
            if readable:
                break
            try:
                connection.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        connection.settimeout(10)
        return connection.recv(4096), sent


def test_oversized_body_is_refused_before_it_is_read(endpoint):
    url, services = endpoint
    limit = services.settings.max_body_bytes
    piece = b'{"PhoneNumber": "1"},' * 5000  # about 100 KB

    declared = f"Content-Type: application/json\r\nContent-Length: {50 * limit}\r\n"
    answer, sent = _send_until_answered(url, declared, [b'{"data": [', *[piece] * 2000])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert sent < limit  # answered from the declared length, without reading the body

    def chunked():
        yield b"a\r\n" + b'{"data": [' + b"\r\n"
        while True:  # no declared length: the server stops reading at its limit
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    headers = "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    answer, sent = _send_until_answered(url, headers, itertools.islice(chunked(), 500))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert sent < 3 * limit
    assert not list(services.settings.deliveries_dir.glob("*.part"))


def test_a_good_body_after_all_that_still_lands(endpoint):
    url, _ = endpoint
    body = json.dumps({"campaignName": "Hostile", "data": [_record(LeadID="ok-1")]}).encode()
    response = httpx.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200 and response.json()["rows"] == 1


def test_the_access_log_never_prints_the_callback_secret(endpoint, caplog):
    url, _ = endpoint
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        httpx.post(url, content=b"{}", headers={"content-type": "application/json"})
        for _ in range(20):
            if any("/api/callback/" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if "/api/callback/" in r.getMessage()]
    assert lines and all(SECRET not in line and "/api/callback/***" in line for line in lines)


def test_a_sender_echoing_the_secret_in_its_error_never_gets_it_stored(endpoint):
    """A body that reports an error in its own words, the callback secret among them: the
    answer, the delivery's stored reason and the campaign's error all hold it masked."""
    url, services = endpoint
    said = {"status": "error", "campaignName": "Hostile", "message": f"bad secret {SECRET} here"}
    response = httpx.post(url, json=said)
    assert response.status_code == 400 and SECRET not in response.text
    with services.store.cursor() as cursor:
        stored = cursor.execute("SELECT error FROM raw_deliveries WHERE error LIKE '%bad secret%'")
        errors = [row[0] for row in stored.fetchall()]
        kept = cursor.execute("SELECT string_agg(report::VARCHAR, ' ') FROM raw_deliveries")
        reports = kept.fetchone()[0] or ""
    assert errors and all(SECRET not in e and "bad secret *** here" in e for e in errors)
    assert SECRET not in reports
