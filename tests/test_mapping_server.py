"""Meeting an account that names its fields and writes its dates otherwise, on the real server:
the demo sandbox delivers report-style names with `DD-MM-YYYY hh:mm AM` dates through real
requests and callbacks; the stored report names what was not understood; a `[fields]` mapping
in secrets.toml and `POST /api/reingest` then give the leads the bodies hold. The truth is read
from the kept bodies here, with json and strptime, never through lib/."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import httpx

from tests.support.server import ServerProcess

ZONE = ZoneInfo("Asia/Kolkata")
CAMPAIGN = "Mapped & Co (Pune)"
DATE_FORMAT = "%d-%m-%Y %I:%M %p"
# Delivered name -> the dashboard column an operator maps it to (lib/fields.py's targets).
MAPPING = {
    "Customer Number": "phone_number",
    "Call Status": "dial_status",
    "Last Dialed On": "updated_at",
    "Uploaded On": "created_at",
    "Talk Time": "call_duration",
}
ENV = {
    "DIALSTATUS_CAMPAIGNS": CAMPAIGN,
    "DIALSTATUS_SYNC_INTERVAL": "3600",
    "DIALSTATUS_SANDBOX_CONFIG": json.dumps({"field_style": "report", "date_style": "dmy_ampm"}),
}


def _read_db(data_dir: Path, sql: str) -> list[tuple]:
    """Only while no server runs: DuckDB lets one process open the file."""
    with duckdb.connect(str(data_dir / "dialstatus.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'Asia/Kolkata'")
        return con.execute(sql).fetchall()


def _loaded(health: dict) -> bool:
    return any(c["name"] == CAMPAIGN and c["rows"] and c["last_success_at"]
               for c in health["campaigns"])  # fmt: skip


def _seconds(text: str) -> int | None:
    if not text:
        return None
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def _truth(data_dir: Path) -> dict[str, tuple]:
    """Lead id -> (phone, dial status, updated, created, talk seconds) from the kept bodies, the
    newest update of each lead winning, as CloudAgent's current state is."""
    paths = _read_db(
        data_dir, f"SELECT path FROM raw_deliveries WHERE campaign_name = '{CAMPAIGN}' ORDER BY id"
    )
    leads: dict[str, tuple] = {}
    for (path,) in paths:
        file = Path(path) if Path(path).is_absolute() else data_dir / path
        if not file.exists():
            file = next(data_dir.rglob(Path(path).name))
        for r in json.loads(file.read_bytes())["data"]:
            updated = datetime.strptime(r["Last Dialed On"], DATE_FORMAT).replace(tzinfo=ZONE)
            state = (r["Customer Number"], r["Call Status"] or None, updated,
                     datetime.strptime(r["Uploaded On"], DATE_FORMAT).replace(tzinfo=ZONE),
                     _seconds(r["Talk Time"]))  # fmt: skip
            if r["Lead Id"] not in leads or leads[r["Lead Id"]][2] <= updated:
                leads[r["Lead Id"]] = state
    return leads


def _stored(data_dir: Path) -> dict[str, tuple]:
    rows = _read_db(
        data_dir,
        "SELECT lead_id, phone_number, dial_status, updated_at, created_at, call_duration_s "
        f"FROM leads WHERE campaign_name = '{CAMPAIGN}'",
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def test_report_style_deliveries_are_named_then_mapped_in_secrets_and_reingested(tmp_path):
    data_dir = tmp_path / "srv"
    with ServerProcess(data_dir, env=ENV) as server:
        server.wait_for(_loaded, timeout=120)
    truth = _truth(data_dir)
    assert len(truth) == 2000 and len({t[1] for t in truth.values()}) > 3

    # Before: the leads are there (the lead id is understood), their call facts are not.
    before = _stored(data_dir)
    assert set(before) == set(truth)
    assert {(s[0], s[1], s[2]) for s in before.values()} == {(None, None, None)}
    ((report,),) = _read_db(
        data_dir,
        f"SELECT report FROM raw_deliveries WHERE campaign_name = '{CAMPAIGN}' ORDER BY id LIMIT 1",
    )
    fields = {f["field"]: f["column"] for f in json.loads(report)["fields"]}
    assert {name: fields[name] for name in MAPPING} == dict.fromkeys(MAPPING)  # kept as extra

    # The mapping in secrets.toml, a restart without syncing, and a re-ingest of what was kept.
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        "[fields]\n" + "".join(f'"{name}" = "{column}"\n' for name, column in MAPPING.items())
    )
    quiet = {**ENV, "DIALSTATUS_SYNC_ENABLED": "false", "DIALSTATUS_SECRETS_FILE": str(secrets)}
    with ServerProcess(data_dir, env=quiet) as server:
        refused = httpx.post(server.base_url + "/api/reingest", timeout=30)
        assert refused.status_code == 401
        started = httpx.post(
            server.base_url + "/api/reingest", headers=server.admin_headers, timeout=30
        )
        assert started.status_code == 202, started.text
        health = server.wait_for(
            lambda h: h["reingest"] and not h["reingest"]["running"], timeout=120
        )
        assert health["reingest"]["failed"] == 0 and health["reingest"]["error"] is None
        assert health["reingest"]["done"] == health["reingest"]["total"] >= 1
        assert health["records_with_warnings"] == 0

        # A delivery with dates nobody can read: stored with the date empty, and counted.
        bad = [
            {"Lead Id": "BAD1", "Customer Number": "9811111111", "Call Status": "answered",
             "Last Dialed On": "31-02-2026 10:00 AM", "Uploaded On": "01-12-2026 09:00 AM"},
            {"Lead Id": "BAD2", "Customer Number": "9822222222", "Call Status": "answered",
             "Last Dialed On": "soon", "Uploaded On": "01-12-2026 09:00 AM"},
        ]  # fmt: skip
        envelope = {"status": "success", "uniqueId": "hand-1", "campaignName": "Hand Made"}
        answer = httpx.post(
            server.callback_url, json={**envelope, "data": bad}, timeout=30
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        health = server.wait_for(lambda h: h["records_with_warnings"] == 2, timeout=60)
        assert health["deliveries_with_warnings"] == 1

    assert _stored(data_dir) == truth
    ((report,),) = _read_db(
        data_dir, "SELECT report FROM raw_deliveries WHERE unique_id = 'hand-1'"
    )
    failures = json.loads(report)["failures"]
    assert failures["updated_at"]["count"] == 2
    assert sorted(failures["updated_at"]["examples"]) == ["31-02-2026 10:00 AM", "soon"]
    stored_bad = _read_db(
        data_dir, "SELECT lead_id, updated_at FROM leads WHERE campaign_name = 'Hand Made'"
    )
    assert sorted(stored_bad) == [("BAD1", None), ("BAD2", None)]
