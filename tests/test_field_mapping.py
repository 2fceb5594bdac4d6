"""Field and value mapping, value formats that do not parse, the delivery report, and re-ingest:
against real DuckDB files, with report-style bodies written out here (the truth computed in the
test from the bodies themselves, never from lib/)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lib.config import ConfigError, load_settings
from lib.fields import FieldMappingError
from lib.store import Store, mappings
from lib.store.ingest import ingest_delivery
from lib.store.receive import DeliveryRejected, register_raw
from lib.store.reingest import (
    ReplayRunning,
    latest_run,
    replaying,
    start_replay,
    wait_for_replay,
)
from tests.conftest import writer_lock_held

TZ = "Asia/Kolkata"
ZONE = ZoneInfo(TZ)
CAMPAIGN = "Report Style"
# How a real account might name its fields: none of these three is recognised by name.
RIGHT = {
    "Customer Number": "phone_number",
    "Call Status": "dial_status",
    "Last Dialed On": "updated_at",
    "Talk Time": "call_duration",
}
BUCKETS = {"answered": "answered", "not_answered": "NoAnswer", "Busy": "Fail",
           "user_disconnected": "user_disconnected"}  # fmt: skip


def record(i: int, dialled: str, *, status: str | None = None) -> dict:
    return {
        "Lead Id": f"R{i}",
        "Customer Number": f"98{i:08d}",
        "Call Status": status or list(BUCKETS)[i % len(BUCKETS)],
        "Lead Status": "Pending",
        "Last Dialed On": dialled,
        "Talk Time": "00:01:05",
        "Attempts": str(1 + i % 3),
    }


def body(records: list[dict], unique_id: str) -> bytes:
    return json.dumps(
        {"status": "success", "uniqueId": unique_id, "campaignName": CAMPAIGN, "data": records}
    ).encode()


def deliver(store: Store, folder: Path, content: bytes) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "incoming.part"
    tmp.write_bytes(content)
    raw = register_raw(store, folder, tmp, "application/json")
    ingest_delivery(store, raw.id)
    return raw.id


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def report_of(store: Store, delivery_id: int) -> dict:
    with store.cursor() as cursor:
        (text,) = cursor.execute(
            "SELECT report FROM raw_deliveries WHERE id = ?", [delivery_id]
        ).fetchone()
    return json.loads(text)


def leads(store: Store) -> list[tuple]:
    with store.cursor() as cursor:
        return cursor.execute(
            "SELECT campaign_name, lead_key, phone_number, dial_status, dial_bucket, "
            "updated_at, call_duration_s, attempts, extra::VARCHAR, delivery_id FROM leads "
            "ORDER BY ALL"
        ).fetchall()


def summary(store: Store) -> list[tuple]:
    with store.cursor() as cursor:
        return cursor.execute("SELECT * FROM lead_summary ORDER BY ALL").fetchall()


FIRST = [record(i, f"0{1 + i % 9}-12-2026 0{1 + i % 9}:15 PM") for i in range(12)]
SECOND = [record(i, f"1{i % 9}-12-2026 10:4{i % 6} AM") for i in range(6, 18)]


def test_report_style_fields_go_to_extra_and_the_report_names_them(tmp_path):
    store = Store(tmp_path / "a.duckdb", TZ)
    delivery = deliver(store, tmp_path / "d", body(FIRST, "u1"))
    report = report_of(store, delivery)
    unmapped = {f["field"] for f in report["fields"] if f["column"] is None}
    assert set(RIGHT) <= unmapped
    assert report["shape"] == 'an inline list of records under the key "data"'
    assert report["rows"] == report["new"] == len(FIRST)
    with store.cursor() as cursor:
        buckets = cursor.execute("SELECT DISTINCT dial_bucket FROM leads").fetchall()
    assert buckets == [("Not dialled",)]  # no dial status read: what a wrong mapping looks like
    store.close()


@pytest.mark.parametrize("where", ["secrets", "settings"])
def test_a_mapping_from_secrets_or_settings_takes_effect(tmp_path, where):
    configured = RIGHT if where == "secrets" else {}
    store = Store(tmp_path / "a.duckdb", TZ, configured_fields=configured)
    if where == "settings":
        mappings.save_field_mapping(store, RIGHT, by="test")
    delivery = deliver(store, tmp_path / "d", body(FIRST, "u1"))
    report = report_of(store, delivery)
    got = {f["field"]: (f["column"], f["how"]) for f in report["fields"] if f["field"] in RIGHT}
    how = "secrets.toml" if where == "secrets" else "settings"
    assert got == {name: (column, how) for name, column in RIGHT.items()}
    expected = sorted(
        (f"98{i:08d}", BUCKETS[r["Call Status"]],
         datetime.strptime(r["Last Dialed On"], "%d-%m-%Y %I:%M %p").replace(tzinfo=ZONE))
        for i, r in enumerate(FIRST)
    )  # fmt: skip
    stored = sorted((row[2], row[4], row[5]) for row in leads(store))
    assert stored == expected
    assert report["warnings"] == 0 and report["failures"] == {}
    store.close()


def test_bad_mappings_are_refused_naming_both_fields_and_nothing_is_stored(tmp_path):
    store = Store(tmp_path / "a.duckdb", TZ, configured_fields={"Customer Number": "phone_number"})
    with pytest.raises(FieldMappingError, match=r"'Mobile'.*'Alt Mobile'|'Alt Mobile'.*'Mobile'"):
        mappings.save_field_mapping(store, {"Mobile": "name", "Alt Mobile": "name"}, by="t")
    with pytest.raises(FieldMappingError, match=r"'Customer Number'.*'Other'|'Other'.*'Customer"):
        mappings.save_field_mapping(store, {"Other": "phone_number"}, by="t")
    with pytest.raises(FieldMappingError, match=r"'Foo'.*'no_such_column'"):
        mappings.save_field_mapping(store, {"Foo": "no_such_column"}, by="t")
    with pytest.raises(FieldMappingError, match=r"secrets.toml"):
        mappings.save_field_mapping(store, {"Customer Number": "name"}, by="t")
    assert mappings.field_mapping_rows(store) == [
        {"field": "Customer Number", "target": "phone_number", "source": "secrets.toml",
         "set_by": None, "set_at": None}
    ]  # fmt: skip
    store.close()


def test_fields_in_secrets_toml_are_checked_at_start(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[fields]\n"Customer Number" = "phone_number"\n"Mobile" = "phone_number"\n')
    with pytest.raises(ConfigError, match=r"'Customer Number'.*'Mobile'"):
        load_settings({"DIALSTATUS_DB": str(tmp_path / "x.duckdb")}, secrets)
    secrets.write_text('[fields]\n"Customer Number" = "phone_numbr"\n')
    with pytest.raises(ConfigError, match=r"phone_numbr"):
        load_settings({"DIALSTATUS_DB": str(tmp_path / "x.duckdb")}, secrets)


def test_unparsed_values_are_stored_empty_counted_and_kept(tmp_path):
    store = Store(tmp_path / "a.duckdb", TZ, configured_fields=RIGHT)
    bad = [record(0, "31-02-2026 10:00 AM"), record(1, "soon"), record(2, "02-12-2026 09:32 PM")]
    bad[2]["Talk Time"] = "a while"
    delivery = deliver(store, tmp_path / "d", body(bad, "u1"))
    report = report_of(store, delivery)
    assert report["warnings"] == 3
    assert report["failures"]["updated_at"] == {
        "count": 2, "examples": ["31-02-2026 10:00 AM", "soon"]
    }  # fmt: skip
    assert report["failures"]["call_duration"]["count"] == 1
    with store.cursor() as cursor:
        rows = cursor.execute(
            "SELECT lead_key, updated_at, extra->>'$.\"Last Dialed On\"', warnings "
            "FROM leads, raw_deliveries WHERE raw_deliveries.id = ? ORDER BY lead_key",
            [delivery],
        ).fetchall()
    assert rows[0][1:3] == (None, "31-02-2026 10:00 AM")
    assert rows[1][1:3] == (None, "soon")
    assert rows[2][1] == datetime(2026, 12, 2, 21, 32, tzinfo=ZONE) and rows[2][2] is None
    assert rows[0][3] == 3
    store.close()


def test_a_value_mapping_moves_a_dial_status_to_another_bucket(tmp_path):
    store = Store(tmp_path / "a.duckdb", TZ, configured_fields=RIGHT)
    odd = [record(i, "02-12-2026 09:32 PM", status="Abandoned") for i in range(3)]
    first = deliver(store, tmp_path / "d", body(odd, "u1"))
    unknown = report_of(store, first)["unknown_values"]["dial_status"]
    assert unknown == [{"value": "Abandoned", "bucket": "Fail", "leads": 3, "mapped_by": "default"}]
    with pytest.raises(ValueError, match=r"'Sale'"):
        mappings.save_value_mapping(store, "dial_status", {"Abandoned": "Sale"}, by="t")
    mappings.save_value_mapping(store, "dial_status", {"Abandoned": "NoAnswer"}, by="t")
    later = [record(i, "03-12-2026 09:32 PM", status="Abandoned") for i in range(3)]
    second = deliver(store, tmp_path / "d", body(later, "u2"))
    assert report_of(store, second)["unknown_values"]["dial_status"][0]["mapped_by"] == "settings"
    with store.cursor() as cursor:
        assert cursor.execute("SELECT DISTINCT dial_bucket FROM leads").fetchall() == [
            ("NoAnswer",)
        ]
    store.close()


def test_the_report_counts_new_updated_and_unchanged_leads(tmp_path):
    store = Store(tmp_path / "a.duckdb", TZ, configured_fields=RIGHT)
    deliver(store, tmp_path / "d", body(FIRST, "u1"))
    second = deliver(store, tmp_path / "d", body(SECOND, "u2"))
    report = report_of(store, second)
    overlap = len({r["Lead Id"] for r in FIRST} & {r["Lead Id"] for r in SECOND})
    # SECOND's dates are all later than FIRST's: every overlapping lead is updated.
    assert (report["new"], report["updated"], report["unchanged"]) == (
        len(SECOND) - overlap, overlap, 0
    )  # fmt: skip
    stale = [record(0, "01-01-2026 01:00 AM")]
    third = deliver(store, tmp_path / "d", body(stale, "u3"))
    assert (report_of(store, third)["new"], report_of(store, third)["unchanged"]) == (0, 1)
    store.close()


def _bodies() -> list[bytes]:
    broken = [dict(r) for r in FIRST[:3]]
    for r in broken:
        r.pop("Lead Id")  # without a mapping these have no key field: the delivery fails
    return [body(FIRST, "u1"), body(broken, "u2"), body(SECOND, "u3")]


def test_reingest_after_fixing_the_mapping_equals_a_clean_ingest(tmp_path):
    wrong = Store(tmp_path / "wrong.duckdb", TZ)
    for content in _bodies():
        # The keyless delivery fails under the wrong mapping: kept, and marked failed.
        with contextlib.suppress(DeliveryRejected):
            deliver(wrong, tmp_path / "w", content)
    with wrong.cursor() as cursor:
        assert cursor.execute("SELECT count(*) FROM raw_deliveries WHERE state = 'failed'"
                              ).fetchone()[0] == 1  # fmt: skip
    mappings.save_field_mapping(wrong, RIGHT, by="test")
    start_replay(wrong, requested_by="test")
    assert wait_for_replay(wrong, 60)
    run = latest_run(wrong)
    assert (run.total, run.done, run.skipped, run.failed, run.error) == (3, 3, 0, 0, None)

    clean = Store(tmp_path / "clean.duckdb", TZ, configured_fields=RIGHT)
    for content in _bodies():
        deliver(clean, tmp_path / "c", content)
    assert leads(wrong) == leads(clean)
    assert summary(wrong) == summary(clean)
    with wrong.cursor() as cursor:
        states = cursor.execute("SELECT state FROM raw_deliveries ORDER BY id").fetchall()
    assert states == [("ingested",)] * 3
    wrong.close()
    clean.close()


def test_reingest_skips_a_pruned_body_and_refuses_a_second_run(tmp_path):
    store = Store(tmp_path / "a.duckdb", TZ, configured_fields=RIGHT)
    first = deliver(store, tmp_path / "d", body(FIRST, "u1"))
    deliver(store, tmp_path / "d", body(SECOND, "u2"))
    with store.writing() as cursor:
        (path,) = cursor.execute("SELECT path FROM raw_deliveries WHERE id = ?", [first]).fetchone()
        Path(path).unlink()
        cursor.execute("UPDATE raw_deliveries SET pruned_at = now() WHERE id = ?", [first])
    with writer_lock_held(store):
        # The first run waits for the writer lock the holder has; a second one is refused.
        threading.Thread(target=lambda: start_replay(store)).start()
        assert wait_until(lambda: replaying(store))
        with pytest.raises(ReplayRunning, match=r"already running"):
            start_replay(store)
    assert wait_for_replay(store, 60)
    run = latest_run(store)
    assert (run.done, run.skipped, run.failed) == (1, 1, 0)
    assert {row[1] for row in leads(store)} == {r["Lead Id"] for r in SECOND}
    store.close()
