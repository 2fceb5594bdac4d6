"""Ingest into a real DuckDB file: every delivery variant gives the same rows, computed here
independently from the source records; updates, staleness, duplicates, failures, crash recovery,
file links, time zones, sync bookkeeping, and a property test over arbitrary bodies."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lib.store import Store
from lib.store.ingest import IngestResult, ingest_delivery, ingest_pending
from lib.store.receive import DeliveryRejected, register_raw
from tests.support.file_host import FileHost, csv_bytes

TZ = "Asia/Kolkata"
ZONE = ZoneInfo(TZ)

# The vocabulary written out literally (not taken from lib.fields) so the expectations are
# independent of the mapping code under test.
LEAD_STATUS = {"Success": "Success", "success": "Success", "Fail": "Fail", "FAILED": "Fail",
               "Pending": "Pending", "": "Pending", "Callback": "Pending"}  # fmt: skip
DIAL_BUCKET = {"answered": "answered", "ANSWERED": "answered", "not_answered": "NoAnswer",
               "ring": "NoAnswer", "user_disconnected": "user_disconnected", "Busy": "Fail",
               "Congestion": "Fail", "invalid_number": "Fail", "exception": "Fail",
               "NotDialed": "Not dialled", "": "Not dialled"}  # fmt: skip
STATUSES = list(LEAD_STATUS)
DIALS = list(DIAL_BUCKET)
EXTRA_FIELDS = ("SurveyScore", "Region")
COLUMNS = (
    "campaign_name, lead_key, lead_id, phone_number, name, status, lead_status, dial_status, "
    "dial_bucket, disposition, comments, agent_id, agent_name, attempts, priority, ucid, "
    "call_duration_s, created_at, updated_at, extra::VARCHAR"
)


def source_records(campaign: str = "Camp A", count: int = 30) -> list[dict]:
    """CloudAgent-style records with the variety the receiver must tolerate."""
    records = []
    for i in range(count):
        created = ["2026-11-01 09:30:00", "2026-11-01T09:31:00", "2026-11-02"][i % 3]
        record = {
            "LeadID": f"L{i}",
            "PhoneNumber": f"98{i:08d}",
            "Name": f'Lead {i} Ünïcode, "quoted"' if i % 4 == 0 else f"Lead {i}",
            "CampaignName": campaign,
            "Status": STATUSES[i % len(STATUSES)],
            "DialStatus": DIALS[i % len(DIALS)],
            "Disposition": ["Interested", "", "Call Back", "Wrap up time exceeded :30"][i % 4],
            "Comments": "line one\nline two" if i % 9 == 0 else "",
            "AgentID": f"A{i % 3}",
            "AgentName": f"Agent {i % 3}",
            "Attempts": i % 4 if i % 2 else str(i % 4),
            "Priority": str(1 + i % 3),
            "UCID": str(1_000_000 + i),
            "CreatedDate": created,
            "UpdatedDate": "" if i % 7 == 3 else f"2026-11-{10 + i % 5:02d} 1{i % 10}:0{i % 6}:00",
            "CallDuration": ["00:01:05", 65, "125", "", "1:02:03"][i % 5],
            "SurveyScore": str(i),
            "Region": ["North", ""][i % 2],
        }
        if i % 8 == 5:
            del record["LeadID"]  # keyed by phone number and creation time instead
        records.append(record)
    return records


def _timestamp(text) -> datetime | None:
    if text in (None, ""):
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=ZONE)
        except ValueError:
            continue
    raise AssertionError(text)


def _seconds(value) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, int):
        return value
    if ":" in value:
        hours, minutes, seconds = (int(part) for part in value.split(":"))
        return hours * 3600 + minutes * 60 + seconds
    return int(value)


def expected_row(record: dict, names: dict[str, str] | None = None, campaign=None) -> tuple:
    """The leads row a record must become. `names` maps PascalCase to the delivered spelling."""
    names = names or {}

    def get(field):
        return record.get(names.get(field, field))

    def text(field):
        value = get(field)
        return None if value in (None, "") else str(value)

    created = _timestamp(get("CreatedDate"))
    lead_id, phone = text("LeadID"), text("PhoneNumber")
    key = lead_id or f"{phone}|{created.strftime('%Y-%m-%d %H:%M:%S') if created else ''}"
    extra = {names.get(f, f): str(get(f)) for f in EXTRA_FIELDS if get(f) not in (None, "")} or None
    return (
        text("CampaignName") or campaign,
        key,
        lead_id,
        phone,
        text("Name"),
        text("Status"),
        LEAD_STATUS[get("Status") or ""],
        text("DialStatus"),
        DIAL_BUCKET[get("DialStatus") or ""],
        text("Disposition"),
        text("Comments"),
        text("AgentID"),
        text("AgentName"),
        None if text("Attempts") is None else int(get("Attempts")),
        None if text("Priority") is None else int(get("Priority")),
        text("UCID"),
        _seconds(get("CallDuration")),
        created,
        _timestamp(get("UpdatedDate")),
        extra,
    )


def stored_rows(store: Store, where: str = "true") -> list[tuple]:
    rows = store.cursor().execute(f"SELECT {COLUMNS} FROM leads WHERE {where}").fetchall()
    return sorted((*row[:-1], json.loads(row[-1]) if row[-1] is not None else None) for row in rows)


def expected_rows(records, names=None, campaign=None) -> list[tuple]:
    return sorted(expected_row(r, names, campaign) for r in records)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "t.duckdb", timezone=TZ)
    yield store
    store.close()


def deliveries_dir(store: Store) -> Path:
    folder = store.path.parent / (store.path.stem + ".deliveries")
    folder.mkdir(exist_ok=True)
    return folder


def receive(store: Store, body: bytes | str, content_type: str | None = "application/json"):
    """What the callback route does: body to a temp file, then register_raw."""
    data = body.encode() if isinstance(body, str) else body
    folder = deliveries_dir(store)
    part = folder / f"incoming-{len(list(folder.iterdir()))}.part"
    part.write_bytes(data)
    return register_raw(store, folder, part, content_type)


def deliver(store, body, content_type="application/json", **kwargs) -> IngestResult:
    raw = receive(store, body, content_type)
    if raw.duplicate:
        return IngestResult(raw.id, 0, None, None, duplicate=True)
    return ingest_delivery(store, raw.id, **kwargs)


def envelope(records, key="data", unique_id="u-1", campaign="Camp A") -> str:
    doc = {"status": "success", "uniqueId": unique_id, "campaignName": campaign, key: records}
    return json.dumps(doc)


# -- every variant, the same rows ----------------------------------------------------------

VARIANTS = [
    "json_data", "json_details", "json_records", "json_nested", "json_pretty", "form_data",
    "form_fields_list", "bare_list", "link_json", "link_csv", "link_wrapped", "link_in_data",
]  # fmt: skip


def variant_body(variant: str, records: list[dict], host: FileHost) -> tuple[str, str | None]:
    if variant == "json_data":
        return envelope(records), "application/json"
    if variant in ("json_details", "json_records"):
        return envelope(records, key=variant.split("_")[1]), "application/json"
    if variant == "json_nested":
        return envelope({"total": len(records), "records": records}), "application/json"
    if variant == "json_pretty":
        return json.dumps(json.loads(envelope(records)), indent=2), "text/plain"
    if variant == "form_data":
        return urlencode({"data": envelope(records)}), "application/x-www-form-urlencoded"
    if variant == "form_fields_list":
        form = {"uniqueId": "u-1", "campaignName": "Camp A", "data": json.dumps(records)}
        return urlencode(form), "application/x-www-form-urlencoded"
    if variant == "bare_list":
        return json.dumps(records), "application/json"
    if variant == "link_json":
        host.files["/r.json"] = json.dumps(records).encode()
        link = {"uniqueId": "u-1", "campaignName": "Camp A", "fileUrl": host.base + "/r.json"}
        return json.dumps(link), "application/json"
    if variant == "link_csv":
        host.files["/r.csv"] = csv_bytes(records)
        link = {"uniqueId": "u-1", "campaignName": "Camp A", "file_url": host.base + "/r.csv"}
        return json.dumps(link), "application/json"
    if variant == "link_wrapped":
        host.files["/w.json"] = envelope(records, key="details").encode()
        return json.dumps({"downloadUrl": host.base + "/w.json"}), "application/json"
    if variant == "link_in_data":
        host.files["/f.csv"] = csv_bytes(records)
        doc = {"data": {"uniqueId": "u-1", "failedFilePath": host.base + "/f.csv"}}
        return json.dumps(doc), "application/json"
    raise AssertionError(variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_stores_the_same_rows(store, file_host, variant):
    records = source_records()
    body, content_type = variant_body(variant, records, file_host)
    version = store.data_version()
    result = deliver(store, body, content_type, allowed_hosts=["127.0.0.1"])
    assert result.rows == len(records) and not result.duplicate
    assert result.campaigns == ("Camp A",)
    assert stored_rows(store) == expected_rows(records)
    assert store.data_version() == version + 1
    # The same records again (a different body): the general write path, same rows.
    body, content_type = variant_body(variant, records, file_host)
    body = body.replace("u-1", "u-2") if "u-1" in body else body + " "
    again = deliver(store, body, content_type, allowed_hosts=["127.0.0.1"])
    assert again.rows == len(records) and not again.duplicate
    assert stored_rows(store) == expected_rows(records)
    assert leftovers(store) == []


def leftovers(store: Store) -> list[str]:
    """Files other than delivery bodies in the deliveries folder (parse artefacts)."""
    return sorted(p.name for p in deliveries_dir(store).iterdir() if not p.name.endswith(".body"))


def test_single_record_variants(store):
    record = source_records(count=1)[0]
    deliver(store, envelope(record))
    assert stored_rows(store) == expected_rows([record])
    other = {**record, "LeadID": "X1"}
    deliver(store, json.dumps(other))
    assert stored_rows(store, "lead_key = 'X1'") == expected_rows([other])


def test_the_default_shape_takes_the_fast_path(store, caplog):
    caplog.set_level(logging.DEBUG, logger="lib.store.ingest")
    records = source_records()
    deliver(store, envelope(records))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "(json/data, 30 rows)" in messages and "direct insert" in messages
    assert "fallback" not in messages and "refused" not in messages
    assert stored_rows(store) == expected_rows(records)


def test_a_wrong_fast_cut_falls_back_to_the_right_rows(store):
    records = source_records()
    body = json.dumps({"details": [{"x": 1}], "data": records, "campaignName": "Camp A"})
    assert deliver(store, body).rows == len(records)
    assert stored_rows(store) == expected_rows(records)
    assert leftovers(store) == []


PASCAL = [
    "LeadID", "PhoneNumber", "Name", "CampaignName", "Status", "DialStatus", "Disposition",
    "Comments", "AgentID", "AgentName", "Attempts", "Priority", "UCID", "CreatedDate",
    "UpdatedDate", "CallDuration", "SurveyScore", "Region",
]  # fmt: skip
CAMEL = dict(zip(PASCAL, [
    "leadId", "phoneNumber", "name", "campaignName", "status", "dialStatus", "disposition",
    "comments", "agentId", "agentName", "attempts", "priority", "ucid", "createdDate",
    "updatedDate", "callDuration", "surveyScore", "region",
], strict=True))  # fmt: skip
SNAKE = dict(zip(PASCAL, [
    "lead_id", "phone_number", "name", "campaign_name", "status", "dial_status", "disposition",
    "comments", "agent_id", "agent_name", "attempts", "priority", "ucid", "created_date",
    "updated_date", "call_duration", "survey_score", "region",
], strict=True))  # fmt: skip
ALIASES = dict(zip(PASCAL, [
    "id", "mobile", "customerName", "Campaign", "LeadStatus", "dialstatus", "DISPOSITION",
    "comment", "Agent-ID", "Agent Name", "current_trail", "PRIORITY", "ucid", "date_created",
    "dateUpdated", "duration", "Survey Score", "region",
], strict=True))  # fmt: skip


@pytest.mark.parametrize("names", [CAMEL, SNAKE, ALIASES], ids=["camel", "snake", "aliases"])
def test_field_name_styles_all_land(store, names):
    records = [{names[k]: v for k, v in r.items()} for r in source_records()]
    deliver(store, envelope(records))
    assert stored_rows(store) == expected_rows(records, names)


def test_unknown_fields_are_kept_verbatim_in_extra(store):
    record = {"LeadID": "E1", "PhoneNumber": "1", "CampaignName": "C",
              "Nested": {"a": [1, 2]}, "Flag": True, "Score": 4.5, "Empty": "", "Null": None,
              "Text": "it's \"x\""}  # fmt: skip
    deliver(store, envelope([record]))
    extra = json.loads(store.cursor().execute("SELECT extra::VARCHAR FROM leads").fetchone()[0])
    assert extra == {"Nested": '{"a":[1,2]}', "Flag": "true", "Score": "4.5", "Text": 'it\'s "x"'}


def test_fields_that_appear_only_after_the_first_records_are_kept(store):
    records = [{"LeadID": f"L{i}", "PhoneNumber": str(i)} for i in range(25_000)]
    records[-1]["LateExtra"] = "late"
    records[-2]["Disposition"] = "Sale"
    result = deliver(store, envelope(records))
    assert result.rows == 25_000
    row = (
        store.cursor()
        .execute("SELECT extra->>'$.LateExtra' FROM leads WHERE lead_key = 'L24999'")
        .fetchone()
    )
    assert row == ("late",)
    sale = store.cursor().execute("SELECT lead_key FROM leads WHERE disposition = 'Sale'")
    assert sale.fetchall() == [("L24998",)]


# -- time ----------------------------------------------------------------------------------


def test_timestamps_are_the_right_instants_in_the_account_zone(store):
    record = {"LeadID": "T1", "PhoneNumber": "1", "CampaignName": "C",
              "CreatedDate": "2026-11-01 09:30:00",
              "UpdatedDate": "2026-11-01T23:45:10"}  # fmt: skip
    deliver(store, envelope([record]))
    created, updated = (
        store.cursor().execute("SELECT epoch(created_at), epoch(updated_at) FROM leads").fetchone()
    )
    assert created == datetime(2026, 11, 1, 4, 0, tzinfo=UTC).timestamp()
    assert updated == datetime(2026, 11, 1, 18, 15, 10, tzinfo=UTC).timestamp()
    local = store.cursor().execute("SELECT hour(updated_at), updated_at::DATE FROM leads")
    assert local.fetchone() == (23, datetime(2026, 11, 1).date())


def test_another_account_zone_interprets_local_times_there(tmp_path):
    store = Store(tmp_path / "ny.duckdb", timezone="America/New_York")
    try:
        record = {"LeadID": "T1", "PhoneNumber": "1", "CampaignName": "C",
                  "CreatedDate": "2026-07-01 09:30:00",
                  "UpdatedDate": "2026-12-01 09:30:00"}  # fmt: skip
        deliver(store, envelope([record]))
        created, updated = (
            store.cursor()
            .execute("SELECT epoch(created_at), epoch(updated_at) FROM leads")
            .fetchone()
        )
        assert created == datetime(2026, 7, 1, 13, 30, tzinfo=UTC).timestamp()  # EDT, -4
        assert updated == datetime(2026, 12, 1, 14, 30, tzinfo=UTC).timestamp()  # EST, -5
    finally:
        store.close()


# -- updates, staleness, duplicates --------------------------------------------------------


def _leads(count, updated, status="Pending", campaign="Upd"):
    return [{"LeadID": f"L{i}", "PhoneNumber": f"9{i}", "CampaignName": campaign,
             "Status": status, "UpdatedDate": updated} for i in range(count)]  # fmt: skip


def test_newer_state_replaces_older_and_a_late_older_delivery_changes_nothing(store):
    first = deliver(store, envelope(_leads(10, "2026-11-20 10:00:00"), unique_id="a"))
    newer = deliver(store, envelope(_leads(2, "2026-11-21 12:00:00", "Success"), unique_id="b"))
    new_lead = {"LeadID": "NEW", "PhoneNumber": "1", "UpdatedDate": "2026-11-19 08:00:00"}
    stale = [*_leads(3, "2026-11-19 08:00:00", "Fail"), new_lead]
    deliver(store, envelope(stale, unique_id="c", campaign="Upd"))
    rows = dict(
        store.cursor().execute("SELECT lead_key, lead_status || '@' || delivery_id FROM leads")
        .fetchall()
    )  # fmt: skip
    assert len(rows) == 11
    assert rows["L0"] == rows["L1"] == f"Success@{newer.delivery_id}"
    assert rows["L2"] == f"Pending@{first.delivery_id}"  # the stale Fail did not win
    assert rows["NEW"].startswith("Pending@")  # but the new lead in it is stored


def test_equal_or_missing_update_times(store):
    deliver(store, envelope(_leads(2, "")))
    deliver(store, envelope(_leads(1, "2026-11-20 10:00:00", "Success"), unique_id="2"))
    deliver(store, envelope(_leads(2, "", "Fail"), unique_id="3"))
    rows = dict(store.cursor().execute("SELECT lead_key, lead_status FROM leads").fetchall())
    # L0: NULL -> dated Success; an undated Fail does not replace a dated state.
    # L1: undated -> undated Fail replaces it (nothing says it is older).
    assert rows == {"L0": "Success", "L1": "Fail"}


@pytest.mark.parametrize("existing", [False, True], ids=["first-load", "existing-campaign"])
def test_duplicates_in_one_delivery_keep_the_newest(store, existing):
    if existing:
        deliver(store, envelope(_leads(1, "2026-11-01 00:00:00", campaign="Upd"), unique_id="0"))
    batch = [
        {"LeadID": lead, "PhoneNumber": lead[1], "Status": status, "UpdatedDate": updated}
        for lead, status, updated in [
            ("D1", "Pending", "2026-11-20 10:00:00"),
            ("D1", "Success", "2026-11-21 10:00:00"),
            ("D1", "Fail", "2026-11-19 10:00:00"),
            ("D2", "Fail", ""),
            ("D2", "Success", "2026-11-19 10:00:00"),
        ]
    ]
    result = deliver(store, envelope(batch, campaign="Upd"))
    assert result.rows == 2
    rows = dict(
        store.cursor()
        .execute("SELECT lead_key, lead_status FROM leads WHERE lead_key LIKE 'D%'")
        .fetchall()
    )
    assert rows == {"D1": "Success", "D2": "Success"}


def test_a_first_load_naming_a_stored_campaign_updates_its_leads_once(store):
    """The delivery's own campaign has no leads (a first load), but its records name another
    campaign, stored: those leads are updated in place, never stored twice."""
    deliver(store, envelope(_leads(3, "2026-11-20 10:00:00", campaign="Upd"), unique_id="a"))
    new_lead = {"LeadID": "N1", "PhoneNumber": "7", "UpdatedDate": "2026-11-21 11:00:00"}
    records = [*_leads(2, "2026-11-21 10:00:00", "Success", campaign="Upd"), new_lead]
    result = deliver(store, envelope(records, unique_id="b", campaign="Fresh"))
    assert result.rows == 3
    stored = (
        store.cursor()
        .execute("SELECT campaign_name, lead_key, lead_status FROM leads ORDER BY ALL")
        .fetchall()
    )
    assert stored == [("Fresh", "N1", "Pending"), ("Upd", "L0", "Success"),
                      ("Upd", "L1", "Success"), ("Upd", "L2", "Pending")]  # fmt: skip


def test_a_duplicate_delivery_changes_nothing(store):
    body = envelope(source_records())
    first = deliver(store, body)
    version = store.data_version()
    before = stored_rows(store)
    raw = receive(store, body)
    assert raw.duplicate
    assert store.data_version() == version
    again = ingest_delivery(store, first.delivery_id)  # asking twice for the same one
    assert again.duplicate and again.rows == first.rows
    dup = ingest_delivery(store, raw.id)
    assert dup.duplicate
    assert store.data_version() == version and stored_rows(store) == before


def test_concurrent_ingests_of_one_delivery_store_it_once(store):
    raw = receive(store, envelope(source_records()))
    others = [receive(store, envelope(source_records(campaign=f"P{i}"))) for i in range(3)]
    version = store.data_version()
    results: list = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(ingest_delivery(store, i)))
        for i in [raw.id, raw.id, raw.id] + [o.id for o in others]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mine = [r for r in results if r.delivery_id == raw.id]
    assert sorted(r.duplicate for r in mine) == [False, True, True]
    assert store.data_version() == version + 4
    counts = store.cursor().execute("SELECT campaign_name, count(*) FROM leads GROUP BY 1")
    assert sorted(counts.fetchall()) == [("Camp A", 30), ("P0", 30), ("P1", 30), ("P2", 30)]
    assert leftovers(store) == []


def test_records_without_campaign_take_the_delivery_campaign(store):
    records = source_records(campaign="")
    for record in records[::2]:
        del record["CampaignName"]
    result = deliver(store, envelope(records, campaign="From Envelope"))
    assert result.campaign_name == "From Envelope"
    assert stored_rows(store) == expected_rows(records, campaign="From Envelope")


# -- failures ------------------------------------------------------------------------------

BAD_BODIES = [
    (b'{"data": [ {"Phone', "not valid JSON"),
    (b'{"campaignName": "C", "data": [{"LeadID": "1"}, {"LeadID": ]}', "not valid JSON"),
    (b"\xff\xfe\x00garbage", "UTF-8"),
    (b'{"campaignName": "C", "data": [{"LeadID": "\xff"}]}', "UTF-8"),
    (b'{"campaignName": "C", "data": [{"LeadID": "1"}, 2, 3]}', "JSON object"),
    (b'{"campaignName": "C", "data": [[1]]}', "JSON object"),
    (b'[{"LeadID": "1", "PhoneNumber": "2"}]', "no campaign"),
    (b'{"data": [{"LeadID": "1", "CampaignName": ""}]}', "no campaign"),
    (b'{"campaignName": "C", "data": [{"Foo": "1"}, {"Bar": 2}]}', "neither a lead id"),
    (b'{"campaignName": "C", "data": [{"LeadID": "1"}, {"Name": "x"}]}', "neither a lead id"),
    (b'{"campaignName": "C", "data": [{}]}', "neither a lead id"),
    (b'{"status": "error", "message": "Max limit exceeded"}', "Max limit exceeded"),
    (b'{"fileUrl": "ftp://127.0.0.1/x.csv", "campaignName": "C"}', "http"),
    (b'{"fileUrl": "http://example.com/x.csv", "campaignName": "C"}', "points outside"),
    (b'{"fileUrl": "file:///etc/passwd", "campaignName": "C"}', "http"),
]


@pytest.mark.parametrize(("body", "words"), BAD_BODIES)
def test_bad_deliveries_are_rejected_and_change_nothing(store, body, words):
    deliver(store, envelope(source_records(campaign="Keep")))
    before, version = stored_rows(store), store.data_version()
    raw = receive(store, body)
    with pytest.raises(DeliveryRejected) as caught:
        ingest_delivery(store, raw.id, allowed_hosts=["127.0.0.1"])
    assert caught.value.status_code == 400
    assert words in caught.value.message
    state, error = (
        store.cursor()
        .execute("SELECT state, error FROM raw_deliveries WHERE id = ?", [raw.id])
        .fetchone()
    )
    assert state == "failed" and error == caught.value.message
    assert stored_rows(store) == before and store.data_version() == version
    assert leftovers(store) == []
    assert raw.path.exists()  # the body is kept for inspection


@pytest.mark.parametrize("field", ["Comments", "DialStatus", "Status", "AgentID", "UCID",
                                   "CampaignName"])  # fmt: skip
@pytest.mark.parametrize("existing", [False, True], ids=["first-load", "existing-campaign"])
def test_a_huge_field_is_refused_on_every_write_path(store, existing, field):
    if existing:
        deliver(store, envelope(_leads(1, "2026-11-01 00:00:00", campaign="Big"), unique_id="0"))
    before, version = stored_rows(store), store.data_version()
    record = {"LeadID": "H1", "PhoneNumber": "1", field: "x" * 70_000}
    raw = receive(store, envelope([record], campaign="Big"))
    with pytest.raises(DeliveryRejected) as caught:
        ingest_delivery(store, raw.id)
    assert caught.value.status_code == 400 and "longer than" in caught.value.message
    assert stored_rows(store) == before and store.data_version() == version


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("Big\n", "space around it"),
        (" \tBig", "space around it"),
        ("Big\x00evil", "control characters"),
        ("Big\x1b[31mred", "control characters"),
        ("B" * 201, "at most 200 characters"),
    ],
    ids=["line break", "tab", "NUL", "escape", "201 characters"],
)
@pytest.mark.parametrize("existing", [False, True], ids=["first-load", "existing-campaign"])
def test_a_campaign_name_the_dashboard_could_not_link_to_is_refused(store, existing, name, words):
    """The Settings page's rule for campaign names holds for the names deliveries bring: a name
    with a control character, a line break around it or over 200 characters would be a
    campaign that looks like another one, or that no link or filter can name."""
    deliver(store, envelope(_leads(2, "2026-11-01 00:00:00", campaign="Big"), campaign="Big"))
    before, version = stored_rows(store), store.data_version()
    records = _leads(1, "2026-11-02 00:00:00", campaign=name)
    raw = receive(store, envelope(records, campaign=name if not existing else "Big"))
    with pytest.raises(DeliveryRejected) as caught:
        ingest_delivery(store, raw.id)
    assert caught.value.status_code == 400
    assert "the campaign name" in caught.value.message and words in caught.value.message
    assert len(caught.value.message) < 200  # a 100,000-character name is not echoed whole
    assert stored_rows(store) == before and store.data_version() == version
    longest = "B" * 199 + "\u0928"  # 200 characters (202 bytes): usable
    deliver(store, envelope(_leads(1, "2026-11-02 00:00:00", campaign=longest), campaign=longest))
    assert len(stored_rows(store, f"campaign_name = '{longest}'")) == 1


def test_a_long_campaign_name_given_only_by_the_envelope_is_refused_not_cut(store):
    records = [{"LeadID": "E1", "PhoneNumber": "1"}]  # no CampaignName: the envelope's applies
    raw = receive(store, envelope(records, campaign="E" * 250))
    with pytest.raises(DeliveryRejected) as caught:
        ingest_delivery(store, raw.id)
    assert "at most 200 characters" in caught.value.message
    assert stored_rows(store) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"campaignName": "N", "data": [{"LeadID": NaN, "Name": Infinity, "PhoneNumber": "1"}]}',
        b'[{"CampaignName": "N", "LeadID": NaN, "Name": Infinity, "PhoneNumber": "1"}]',
        b'{"CampaignName": "N", "LeadID": NaN, "Name": Infinity, "PhoneNumber": "1"}',
        b'{"campaignName": "N", "data": "[{\\"LeadID\\": NaN, \\"Name\\": Infinity, '
        b'\\"PhoneNumber\\": \\"1\\"}]"}',
    ],
    ids=["records array", "bare list", "one record", "double-encoded"],
)
def test_nan_and_infinity_read_as_their_text_in_every_shape_of_body(store, body):
    """Not JSON, but DuckDB's reader (the fast path) takes them as the text "NaN": the other
    shapes, parsed by Python, read them the same, rather than refusing the delivery."""
    assert deliver(store, body).rows == 1
    cursor = store.cursor()
    assert cursor.execute("SELECT lead_key, name FROM leads").fetchall() == [("NaN", "Infinity")]


def test_a_failed_delivery_does_not_touch_sync_bookkeeping(store):
    _request(store, "C", "u-9")
    raw = receive(store, b'{"uniqueId": "u-9", "campaignName": "C", "data": [{"Name": "x"}]}')
    with pytest.raises(DeliveryRejected):
        ingest_delivery(store, raw.id)
    cursor = store.cursor()
    assert cursor.execute("SELECT state FROM sync_requests").fetchall() == [("accepted",)]
    assert cursor.execute("SELECT count(*) FROM sync_state").fetchone() == (0,)
    assert cursor.execute(
        "SELECT unique_id, campaign_name FROM raw_deliveries WHERE id = ?", [raw.id]
    ).fetchone() == ("u-9", "C")
    with pytest.raises(DeliveryRejected) as caught:  # a retry names them on the rejection too
        ingest_delivery(store, raw.id)
    assert (caught.value.unique_id, caught.value.campaign_name) == ("u-9", "C")


def test_link_failures(store, file_host):
    link = {"campaignName": "C", "fileUrl": file_host.base + "/missing.csv"}
    raw = receive(store, json.dumps(link))
    with pytest.raises(DeliveryRejected) as caught:
        ingest_delivery(store, raw.id, allowed_hosts=["127.0.0.1"])
    assert caught.value.status_code == 502
    with pytest.raises(DeliveryRejected) as caught:  # the host is not in the allowed list
        ingest_delivery(store, raw.id, allowed_hosts=["api.example.com"])
    assert caught.value.status_code == 400 and "points outside" in caught.value.message
    file_host.files["/missing.csv"] = csv_bytes(source_records(campaign="C"))
    result = ingest_delivery(store, raw.id, allowed_hosts=["127.0.0.1"])  # a retry works
    assert result.rows == 30 and leftovers(store) == []


def test_an_injected_fetcher_is_still_held_to_the_allowed_hosts(store):
    calls = []

    def fetch(url, dest):
        calls.append(url)
        Path(dest).write_bytes(json.dumps(source_records(campaign="C")).encode())

    body = json.dumps({"campaignName": "C", "fileUrl": "https://files.example.net/r.json"})
    raw = receive(store, body)
    with pytest.raises(DeliveryRejected):
        ingest_delivery(store, raw.id, fetch_file=fetch, allowed_hosts=["api.example.com"])
    assert calls == []
    result = ingest_delivery(store, raw.id, fetch_file=fetch, allowed_hosts=["files.example.net"])
    assert result.rows == 30 and calls == ["https://files.example.net/r.json"]


# -- crash recovery ------------------------------------------------------------------------


def test_a_delivery_registered_but_not_ingested_is_ingested_once_after_restart(tmp_path):
    store = Store(tmp_path / "t.duckdb", timezone=TZ)
    records = source_records()
    raw = receive(store, envelope(records))
    (deliveries_dir(store) / f"{raw.id}.x1y2.slice.json").write_text("[")  # a crash leftover
    store.close()  # the crash

    store = Store(tmp_path / "t.duckdb", timezone=TZ)
    try:
        results = ingest_pending(store)
        assert [r.delivery_id for r in results] == [raw.id]
        assert stored_rows(store) == expected_rows(records)
        assert leftovers(store) == []
        version = store.data_version()
        assert ingest_pending(store) == []
        assert store.data_version() == version
        assert leftovers(store) == []
    finally:
        store.close()


def test_a_body_file_without_a_row_is_adopted_and_ingested(store):
    records = source_records()
    folder = deliveries_dir(store)
    (folder / "777.body").write_text(envelope(records))  # crash between rename and row
    (folder / "778.body.part").write_text("not ours")  # someone else's file: left alone
    results = ingest_pending(store)
    assert len(results) == 1 and results[0].rows == 30
    assert stored_rows(store) == expected_rows(records)
    paths = store.cursor().execute("SELECT path, state FROM raw_deliveries").fetchall()
    assert paths == [(str(folder / f"{results[0].delivery_id}.body"), "ingested")]
    assert not (folder / "777.body").exists() or results[0].delivery_id == 777
    assert (folder / "778.body.part").exists()
    assert ingest_pending(store) == []


def test_pending_failures_are_marked_and_skipped(store):
    bad = receive(store, b"{nope")
    good = receive(store, envelope(source_records()))
    results = ingest_pending(store)
    assert [r.delivery_id for r in results] == [good.id]
    state = store.cursor().execute("SELECT state FROM raw_deliveries WHERE id = ?", [bad.id])
    assert state.fetchone() == ("failed",)


# -- sync bookkeeping ----------------------------------------------------------------------


def _request(store, campaign, unique_id=None, state="accepted", kind="full") -> int:
    with store.writing() as cursor:
        return cursor.execute(
            "INSERT INTO sync_requests (campaign_name, kind, params, unique_id, state) "
            "VALUES (?, ?, '{}', ?, ?) RETURNING id",
            [campaign, kind, unique_id, state],
        ).fetchone()[0]


def _request_row(store, request_id):
    return (
        store.cursor()
        .execute(
            "SELECT state, rows, delivered_at IS NOT NULL, unique_id FROM sync_requests "
            "WHERE id = ?",
            [request_id],
        )
        .fetchone()
    )


def test_the_request_is_matched_by_unique_id_and_the_watermark_moves(store):
    older = _request(store, "Camp A", "u-0")
    request = _request(store, "Camp A", "u-1")
    records = source_records()
    result = deliver(store, envelope(records, unique_id="u-1"))
    assert result.request_id == request
    assert _request_row(store, request) == ("delivered", 30, True, "u-1")
    assert _request_row(store, older)[0] == "accepted"
    newest = max(_timestamp(r["UpdatedDate"]) for r in records if r["UpdatedDate"])
    state = (
        store.cursor()
        .execute(
            "SELECT watermark, full_load_done, last_success_at IS NOT NULL, last_error "
            "FROM sync_state WHERE campaign_name = 'Camp A'"
        )
        .fetchone()
    )
    assert state == (newest, True, True, None)
    raw = (
        store.cursor()
        .execute(
            "SELECT request_id, unique_id, campaign_name, rows, state FROM raw_deliveries "
            "WHERE id = ?",
            [result.delivery_id],
        )
        .fetchone()
    )
    assert raw == (request, "u-1", "Camp A", 30, "ingested")


def test_without_unique_id_the_newest_open_request_of_the_campaign_is_matched(store):
    old = _request(store, "Camp B", state="accepted", kind="incremental")
    new = _request(store, "Camp B", state="sent", kind="incremental")  # callback beat the answer
    done = _request(store, "Camp B", state="delivered")
    body = json.dumps({"campaignName": "Camp B", "data": source_records(campaign="Camp B")})
    result = deliver(store, body)
    assert result.request_id == new
    assert _request_row(store, new) == ("delivered", 30, True, None)
    assert _request_row(store, old)[0] == "accepted" and _request_row(store, done)[0] == "delivered"
    full = store.cursor().execute("SELECT full_load_done FROM sync_state").fetchone()
    assert full == (False,)


def test_the_watermark_never_moves_back_and_errors_clear(store):
    with store.writing() as cursor:
        cursor.execute(
            "INSERT INTO sync_state (campaign_name, watermark, last_error, last_error_at) "
            "VALUES ('Upd', TIMESTAMPTZ '2026-12-01 00:00:00+05:30', 'timed out', now())"
        )
    deliver(store, envelope(_leads(3, "2026-11-20 10:00:00"), campaign="Upd"))
    watermark, error = (
        store.cursor()
        .execute("SELECT watermark, last_error FROM sync_state WHERE campaign_name = 'Upd'")
        .fetchone()
    )
    assert watermark == datetime(2026, 12, 1, tzinfo=ZONE) and error is None


@pytest.mark.parametrize("kind", ["manual", None], ids=["filtered-request", "unsolicited"])
def test_only_refresh_deliveries_move_the_watermark(store, kind):
    if kind is not None:
        _request(store, "Upd", "u-m", kind=kind)
    result = deliver(
        store, envelope(_leads(3, "2026-11-20 10:00:00"), unique_id="u-m", campaign="Upd")
    )
    assert result.rows == 3
    watermark, success = (
        store.cursor()
        .execute(
            "SELECT watermark, last_success_at IS NOT NULL FROM sync_state "
            "WHERE campaign_name = 'Upd'"
        )
        .fetchone()
    )
    # Stored, but neither the incremental starting point nor "data as of" (last_success_at)
    # moves: a filtered or unsolicited answer says nothing of the campaign as a whole.
    assert watermark is None and not success
    _request(store, "Upd", "u-i", kind="incremental")
    deliver(store, envelope(_leads(3, "2026-11-21 10:00:00"), unique_id="u-i", campaign="Upd"))
    watermark = store.cursor().execute("SELECT watermark FROM sync_state").fetchone()[0]
    assert watermark == datetime(2026, 11, 21, 10, tzinfo=ZONE)


def test_an_empty_delivery_is_a_successful_sync(store):
    request = _request(store, "Quiet", "u-q")
    version = store.data_version()
    result = deliver(store, json.dumps({"uniqueId": "u-q", "campaignName": "Quiet", "data": []}))
    assert result.rows == 0 and result.request_id == request
    assert _request_row(store, request) == ("delivered", 0, True, "u-q")
    state = store.cursor().execute("SELECT campaign_name, watermark FROM sync_state").fetchall()
    assert state == [("Quiet", None)]
    assert store.data_version() == version + 1


def test_several_campaigns_in_one_delivery(store):
    records = source_records(campaign="X", count=5) + source_records(campaign="Y", count=4)
    result = deliver(store, json.dumps(records))
    assert result.campaigns == ("X", "Y") and result.campaign_name is None
    assert result.rows == 9
    names = store.cursor().execute("SELECT campaign_name FROM sync_state ORDER BY 1").fetchall()
    assert names == [("X",), ("Y",)]


# -- property: any body gives a result or a clean rejection, never a partial write ----------

FIELD_NAMES = ["LeadID", "leadId", "PhoneNumber", "phone", "CampaignName", "Status",
               "DialStatus", "UpdatedDate", "CreatedDate", "CallDuration", "Attempts", "X", "",
               "a", "A", "données"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["", "2026-11-01 09:30:00", "2026-11-01", "00:01:05", "answered", "Success"]),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
records = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(max_size=6), json_values, max_size=6
)
plausible = st.fixed_dictionaries(
    {
        "LeadID": st.text(min_size=1, max_size=4) | st.integers(0, 9),
        "CampaignName": st.sampled_from("CD"),
    },
    optional={
        n: scalars | json_values for n in FIELD_NAMES if n not in ("", "LeadID", "CampaignName")
    },
)
record_lists = st.lists(st.one_of(plausible, plausible, records, json_values), max_size=5)
documents = st.one_of(
    st.fixed_dictionaries(
        {"data": st.lists(plausible, max_size=6)},
        optional={"uniqueId": scalars, "campaignName": st.text(max_size=4)},
    ),
    st.lists(plausible, min_size=1, max_size=6),
    st.fixed_dictionaries(
        {"data": record_lists},
        optional={"campaignName": st.text(max_size=6) | scalars, "uniqueId": scalars,
                  "status": st.sampled_from(["success", "error"])},
    ),
    st.fixed_dictionaries({"details": st.one_of(records, record_lists, json_values)}),
    st.fixed_dictionaries({"data": st.fixed_dictionaries({"records": record_lists})}),
    record_lists,
    records,
    json_values,
)  # fmt: skip


def _encode(doc, how: str) -> bytes:
    text = json.dumps(doc)
    if how == "form":
        return urlencode({"data": text}).encode()
    if how == "truncated":
        return text[: max(1, len(text) // 2)].encode()
    return text.encode()


encoded = st.builds(_encode, documents, st.sampled_from(["json", "json", "form", "truncated"]))
bodies = st.one_of(st.binary(max_size=200), encoded, encoded, encoded)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory) -> Iterator[Store]:
    store = Store(tmp_path_factory.mktemp("fuzz") / "f.duckdb", timezone=TZ)
    deliver(store, envelope(source_records(campaign="Baseline")))
    yield store
    store.close()


def _fingerprint(store: Store):
    return (
        store.cursor()
        .execute(
            "SELECT count(*), sum(hash(campaign_name, lead_key, lead_status, updated_at, "
            "extra::VARCHAR, delivery_id)) FROM leads"
        )
        .fetchone()
    )


@settings(
    max_examples=int(os.environ.get("INGEST_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    body=bodies,
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain", None]
    ),
)
def test_any_body_gives_a_result_or_a_clean_rejection(fuzz_store, body, content_type):
    store = fuzz_store
    if not body:
        body = b" "
    before, version = _fingerprint(store), store.data_version()
    raw = receive(store, body, content_type)
    if raw.duplicate:
        return
    try:
        result = ingest_delivery(store, raw.id, allowed_hosts=())
    except DeliveryRejected as rejected:
        event(f"rejected {rejected.status_code}")
        assert 400 <= rejected.status_code < 600 and rejected.message
        assert _fingerprint(store) == before and store.data_version() == version
        state = store.cursor().execute("SELECT state FROM raw_deliveries WHERE id = ?", [raw.id])
        assert state.fetchone() == ("failed",)
    else:
        event("ingested, some rows" if result.rows else "ingested, no rows")
        assert result.rows >= 0 and store.data_version() == version + 1
        state = store.cursor().execute("SELECT state FROM raw_deliveries WHERE id = ?", [raw.id])
        assert state.fetchone() == ("ingested",)
    assert leftovers(store) == []


# -- a large slice read in pieces ----------------------------------------------------------


@pytest.mark.parametrize("nested", [False, True])
def test_a_slice_read_in_pieces_stores_every_record(store, monkeypatch, caplog, nested):
    # Pieces are cut where one record seems to end and the next begin; with nested lists of
    # objects in every record most such places are inside a record: DuckDB refuses that piece
    # and the one-file slice is read instead. Either way the rows are the same.
    import lib.store.receive.json_slice

    monkeypatch.setattr(lib.store.receive.json_slice, "_SPLIT_MIN_BYTES", 4_000)
    caplog.set_level(logging.DEBUG, logger="lib.store.ingest")
    records = source_records(count=200)
    if nested:
        for record in records:
            record["SurveyScore"] = [{"q": 1}, {"q": 2, "note": '},{"LeadID":"x"}'}]
    assert deliver(store, envelope(records)).rows == len(records)
    messages = " ".join(r.getMessage() for r in caplog.records)
    if nested:
        assert "fast path refused" in messages
        kept = json.dumps(records[0]["SurveyScore"], separators=(",", ":"))  # in extra, as JSON
        expected = [
            (*row[:-1], {**(row[-1] or {}), "SurveyScore": kept})
            for row in expected_rows([{**r, "SurveyScore": ""} for r in records])
        ]
        assert stored_rows(store) == sorted(expected)
    else:
        assert "(2 files)" in messages and "fast path refused" not in messages
        assert stored_rows(store) == expected_rows(records)
    assert leftovers(store) == []


def test_status_values_the_sample_did_not_see_are_mapped_too(store):
    # Status and dial status are mapped once per value seen in the first records; values that
    # appear only later take the full mapping. Both must give the vocabulary's answer.
    records = [
        {"LeadID": f"L{i}", "PhoneNumber": str(i), "Status": "Pending", "DialStatus": "ring"}
        for i in range(25_000)
    ]
    late = records[-len(STATUSES) * len(DIALS) :]
    for index, record in enumerate(late):
        record["Status"] = STATUSES[index % len(STATUSES)]
        record["DialStatus"] = DIALS[index // len(STATUSES)]
    assert deliver(store, envelope(records)).rows == len(records)
    stored = dict(
        (key, (status, bucket))
        for key, status, bucket in store.cursor()
        .execute("SELECT lead_key, lead_status, dial_bucket FROM leads")
        .fetchall()
    )
    for record in records:
        expected = (LEAD_STATUS[record["Status"]], DIAL_BUCKET[record["DialStatus"]])
        assert stored[record["LeadID"]] == expected, record


def test_data_as_of_is_when_the_refresh_was_asked_and_never_moves_back(store):
    def asked(request_id, moment):
        with store.writing() as cursor:
            cursor.execute(
                "UPDATE sync_requests SET sent_at = ? WHERE id = ?", [moment, request_id]
            )

    def last_success():
        return (
            store.cursor()
            .execute("SELECT last_success_at FROM sync_state WHERE campaign_name = 'Camp A'")
            .fetchone()[0]
        )

    _request(store, "Camp A", "u-m", kind="manual")
    deliver(store, envelope(source_records(count=3), unique_id="u-m"))
    assert last_success() is None  # a filtered, hand-made answer says nothing of the whole

    early, late = datetime(2026, 11, 20, 9, 0, tzinfo=UTC), datetime(2026, 11, 20, 9, 5, tzinfo=UTC)
    slow = _request(store, "Camp A", "u-slow", kind="incremental")
    fast = _request(store, "Camp A", "u-fast", kind="incremental")
    asked(slow, early)
    asked(fast, late)
    deliver(store, envelope(source_records(count=5), unique_id="u-fast"))
    assert last_success() == late  # not the moment the callback landed (today)
    deliver(store, envelope(source_records(count=4), unique_id="u-slow"))  # lands last
    assert last_success() == late  # the older request's answer does not make the data older
