"""The real server over HTTP: demo sync, callback ingestion, bad input, limiter, restart."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.support.file_host import FileHost, csv_bytes
from tests.support.server import ServerProcess

DEMO_CAMPAIGN_COUNT = 4


def _records(campaign: str, count: int, updated: str = "2026-11-20 10:00:00") -> list[dict]:
    return [
        {
            "LeadID": f"L{i}",
            "PhoneNumber": f"98{i:08d}",
            "Name": f"Lead {i}",
            "CampaignName": campaign,
            "Status": ["Success", "Fail", "Pending", ""][i % 4],
            "DialStatus": ["answered", "not_answered", "user_disconnected", "Busy", ""][i % 5],
            "Disposition": "Interested" if i % 5 == 0 else "",
            "Attempts": i % 4,
            "CreatedDate": "2026-11-01 09:30:00",
            "UpdatedDate": updated,
            "CallDuration": "00:01:05",
            "SurveyScore": str(i),  # an unknown field: must be kept
        }
        for i in range(count)
    ]


def _read_db(server: ServerProcess, sql: str, params: list | None = None) -> list[tuple]:
    """Reads the database after the server stopped (DuckDB lets one process open the file)."""
    with duckdb.connect(str(server.data_dir / "dialstatus.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'Asia/Kolkata'")
        return con.execute(sql, params or []).fetchall()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "srv", env={"DIALSTATUS_SYNC_INTERVAL": "3600"})
    with process:
        yield process


@pytest.fixture
def quiet_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that only receives: no background sync writes while a test counts versions."""
    process = ServerProcess(tmp_path / "srv", env={"DIALSTATUS_SYNC_ENABLED": "false"})
    with process:
        yield process


def _all_campaigns_loaded(health: dict, count: int = DEMO_CAMPAIGN_COUNT) -> bool:
    campaigns = health["campaigns"]
    return len(campaigns) >= count and all(
        c["rows"] > 0 and c["last_success_at"] for c in campaigns
    )


def test_demo_mode_fills_the_database_through_sandbox_requests_and_callbacks(server):
    health = server.wait_for(_all_campaigns_loaded, timeout=90)
    assert health["mode"] == "demo"
    sandbox_log = httpx.get(
        server.base_url + "/api/sandbox/_sandbox/requests", headers=server.admin_headers
    ).json()
    deliveries = httpx.get(
        server.base_url + "/api/sandbox/_sandbox/deliveries", headers=server.admin_headers
    ).json()
    requested = {entry["campaign"] for entry in sandbox_log if entry["outcome"] == "accepted"}
    assert requested == {c["name"] for c in health["campaigns"]}
    assert all(d["status_code"] == 200 for d in deliveries)
    delivered = {c["name"]: c["rows"] for c in health["campaigns"]}
    server.stop()
    stored = dict(_read_db(server, "SELECT campaign_name, count(*) FROM leads GROUP BY ALL"))
    assert stored == delivered
    states = _read_db(server, "SELECT DISTINCT state FROM sync_requests")
    assert states == [("delivered",)]


def _post(server: ServerProcess, body: bytes, content_type: str, url: str | None = None):
    return httpx.post(
        url or server.callback_url, content=body, headers={"content-type": content_type}, timeout=60
    )


def test_every_delivery_variant_is_ingested_with_the_same_rows(tmp_path):
    """Live mode with the file host as CloudAgent's API origin: file links are fetched only
    from the API URL's scheme, host and port."""
    from urllib.parse import urlencode

    variants = ["json_data", "form_data", "json_details", "json_records", "csv", "json_file"]
    files: dict[str, bytes] = {}
    host = FileHost(files)
    live = {
        "CLOUDAGENT_API_URL": f"http://127.0.0.1:{host.port}/endpoint/dailer/data/preview/download",
        "CLOUDAGENT_USERNAME": "variants",
        "CLOUDAGENT_API_KEY": "variants-key-not-used",
        "DIALSTATUS_SYNC_ENABLED": "false",
    }
    server = ServerProcess(tmp_path / "srv", env=live).start()
    try:
        for variant in variants:
            campaign = f"Variant {variant}"
            records = _records(campaign, 40)
            envelope = {"status": "success", "uniqueId": f"u-{variant}", "campaignName": campaign}
            if variant == "json_data":
                response = _post(server, json.dumps({**envelope, "data": records}).encode(),
                                 "application/json")  # fmt: skip
            elif variant == "form_data":
                form = urlencode({"data": json.dumps({**envelope, "data": records})})
                response = _post(server, form.encode(), "application/x-www-form-urlencoded")
            elif variant in ("json_details", "json_records"):
                key = variant.split("_")[1]
                response = _post(server, json.dumps({**envelope, key: records}).encode(),
                                 "application/json")  # fmt: skip
            else:
                path = f"/{variant}.{'csv' if variant == 'csv' else 'json'}"
                files[path] = (
                    csv_bytes(records) if variant == "csv" else json.dumps(records).encode()
                )
                link = {**envelope, "fileUrl": f"http://127.0.0.1:{host.port}{path}"}
                response = _post(server, json.dumps(link).encode(), "application/json")
            assert response.status_code == 200, (variant, response.text)
            assert response.json()["rows"] == 40
    finally:
        host.close()
        server.stop()
    rows = _read_db(
        server,
        "SELECT campaign_name, lead_key, phone_number, lead_status, dial_bucket, disposition, "
        "attempts, created_at::VARCHAR, updated_at::VARCHAR, call_duration_s, "
        "extra->>'$.SurveyScore' FROM leads WHERE campaign_name LIKE 'Variant %' ORDER BY ALL",
    )
    by_variant: dict[str, list[tuple]] = {}
    for campaign, *rest in rows:
        by_variant.setdefault(campaign, []).append(tuple(rest))
    assert len(by_variant) == len(variants)
    reference = by_variant["Variant json_data"]
    assert len(reference) == 40
    for campaign, variant_rows in by_variant.items():
        assert variant_rows == reference, campaign
    lead_3 = next(r for r in reference if r[0] == "L3")
    # L3: Status "" -> Pending, DialStatus Busy -> Fail, 3 attempts, 65 s, IST instant kept.
    assert lead_3[1:6] == ("9800000003", "Pending", "Fail", None, 3)  # empty text -> NULL
    assert lead_3[6].startswith("2026-11-01 09:30:00")
    assert lead_3[8:] == (65, "3")


def test_bad_callbacks_get_4xx_and_write_nothing(tmp_path):
    env = {"DIALSTATUS_SYNC_INTERVAL": "3600", "DIALSTATUS_MAX_BODY_MB": "1",
           "DIALSTATUS_CAMPAIGNS": "Nothing Here"}  # fmt: skip
    with ServerProcess(tmp_path / "srv", env=env) as server:
        version = server.wait_for(lambda h: _all_campaigns_loaded(h, 1))["data_version"]
        good = json.dumps({"uniqueId": "x", "campaignName": "C", "data": _records("C", 3)})
        wrong_secret = server.base_url + "/api/callback/not-the-secret"
        assert _post(server, good.encode(), "application/json", wrong_secret).status_code == 403
        assert _post(server, b'{"data": [ {"Phone', "application/json").status_code == 400
        assert _post(server, good.encode(), "image/png").status_code == 415
        big = b'{"data": [' + b'{"PhoneNumber": "1"},' * 120_000 + b"{}]}"
        assert _post(server, big, "application/json").status_code == 413
        assert _post(server, b"\xff\xfe\x00garbage", "application/json").status_code == 400
        assert server.health()["data_version"] == version
        server.stop()
        assert _read_db(server, "SELECT count(*) FROM leads WHERE campaign_name = 'C'") == [(0,)]
        assert not list((server.data_dir).glob("**/*.part"))


def test_duplicate_delivery_changes_nothing_and_newer_state_wins(quiet_server):
    server = quiet_server
    old = _records("Updates", 10, updated="2026-11-20 10:00:00")
    body = json.dumps({"uniqueId": "a", "campaignName": "Updates", "data": old}).encode()
    assert _post(server, body, "application/json").json()["rows"] == 10
    version = server.health()["data_version"]
    second = _post(server, body, "application/json")
    assert second.status_code == 200 and second.json().get("duplicate") is True
    assert server.health()["data_version"] == version

    newer = _records("Updates", 2, updated="2026-11-21 12:00:00")
    for record in newer:
        record["Status"], record["DialStatus"], record["Disposition"] = (
            "Success",
            "answered",
            "Sale",
        )
    _post(
        server, json.dumps({"campaignName": "Updates", "data": newer}).encode(), "application/json"
    )
    stale = _records("Updates", 2, updated="2026-11-19 08:00:00")  # arrives late, is older
    _post(
        server, json.dumps({"campaignName": "Updates", "data": stale}).encode(), "application/json"
    )
    server.stop()
    rows = _read_db(
        server,
        "SELECT lead_key, lead_status, disposition FROM leads WHERE campaign_name = 'Updates' "
        "AND lead_key IN ('L0', 'L1') ORDER BY lead_key",
    )
    assert rows == [("L0", "Success", "Sale"), ("L1", "Success", "Sale")]
    assert _read_db(server, "SELECT count(*) FROM leads WHERE campaign_name = 'Updates'") == [(10,)]
    # The digest the server computed while receiving is the body's own: the copy matched it.
    kept = _read_db(server, "SELECT sha256, size_bytes, state FROM raw_deliveries ORDER BY id")
    assert kept[:2] == [
        (hashlib.sha256(body).hexdigest(), len(body), "ingested"),
        (hashlib.sha256(body).hexdigest(), len(body), "duplicate"),
    ]
    assert [Path(path).read_bytes() for (path,) in _read_db(
        server, "SELECT path FROM raw_deliveries WHERE state = 'ingested' ORDER BY id LIMIT 1"
    )] == [body]  # fmt: skip


def test_restart_on_the_same_database_carries_on_incrementally(tmp_path):
    data_dir = tmp_path / "srv"
    env = {"DIALSTATUS_SYNC_INTERVAL": "3600"}
    with ServerProcess(data_dir, env=env) as first:
        before = first.wait_for(_all_campaigns_loaded, timeout=90)
    rows_before = {c["name"]: c["rows"] for c in before["campaigns"]}
    with ServerProcess(data_dir, env=env) as second:
        after = second.wait_for(
            lambda h: (
                len(
                    httpx.get(
                        second.base_url + "/api/sandbox/_sandbox/requests",
                        headers=second.admin_headers,
                    ).json()
                )
                >= DEMO_CAMPAIGN_COUNT
                and all(c["last_success_at"] for c in h["campaigns"])
            ),
            timeout=90,
        )
        log = httpx.get(
            second.base_url + "/api/sandbox/_sandbox/requests", headers=second.admin_headers
        ).json()
    assert all(entry["params"]["sortby"] == "2" and entry["params"]["fromDate"] for entry in log)
    assert {c["name"]: c["rows"] for c in after["campaigns"]}.keys() == rows_before.keys()
    assert all(after_c["rows"] >= rows_before[after_c["name"]] for after_c in after["campaigns"])


def test_every_response_carries_the_security_headers(quiet_server):
    base = quiet_server.base_url
    page = httpx.get(base + "/", timeout=10)
    bundle = re.search(r'src="\.?/?(static/js/[^"]+\.js)"', page.text)
    assert bundle, "the app page names its script bundle"
    responses = [
        page,
        httpx.get(base + "/campaign?campaign=x", timeout=10),
        httpx.get(base + "/api/health", timeout=10),
        httpx.post(base + "/api/callback/wrong", content=b"{}", timeout=10),
        httpx.get(base + "/_stcore/health", timeout=10),
        httpx.get(base + "/" + bundle.group(1), headers={"accept-encoding": "gzip"}, timeout=30),
    ]
    for response in responses:
        headers = response.headers
        where = f"{response.request.method} {response.request.url.path}"
        assert headers.get("x-content-type-options") == "nosniff", where
        assert headers.get("x-frame-options") == "SAMEORIGIN", where
        assert "frame-ancestors 'self'" in headers.get("content-security-policy", ""), where
        assert headers.get("referrer-policy") == "same-origin", where
    assert responses[-1].headers.get("content-encoding") == "gzip"  # compressed once, cached


PRELOAD_HINT = r'rel="modulepreload" href="\./(static/js/PlotlyChart\.[^"]+)"'


def test_pages_ask_for_plotlys_chunk_early_and_it_is_served(quiet_server):
    base = quiet_server.base_url
    for path in ("/", "/campaign?campaign=x&section=Trends"):
        page = httpx.get(base + path, headers={"accept-encoding": "gzip"}, timeout=10)
        assert page.status_code == 200
        assert int(page.headers["content-length"]) == len(page.content), path
        hints = re.findall(PRELOAD_HINT, page.text)
        assert len(hints) == 1, path
        assert page.text.index(hints[0]) < page.text.index("</head>")
    chunk = httpx.get(base + "/" + hints[0], headers={"accept-encoding": "gzip"}, timeout=30)
    assert chunk.status_code == 200 and "javascript" in chunk.headers["content-type"]
    assert len(chunk.content) > 1_000_000  # plotly.js itself, not an error page
    health = httpx.get(base + "/api/health", timeout=10)
    assert "modulepreload" not in health.text  # only HTML pages are touched
