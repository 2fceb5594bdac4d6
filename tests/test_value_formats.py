"""Dates and durations in the forms deliveries really use: each one read to the right instant
(the truth computed here with datetime/zoneinfo, never from lib/), day-first and month-first
told apart or flagged, a minority form left NULL and counted. Through the real ingest into a
DuckDB file, so the detection, the parsing SQL and the report are all the shipped ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from lib.store import Store
from lib.store.ingest import ingest_delivery
from lib.store.ingest.formats import duration_sql
from lib.store.receive import register_raw

TZ = "Asia/Kolkata"
ZONE = ZoneInfo(TZ)
FIELDS = {"Customer Number": "phone_number", "Last Dialed On": "updated_at"}
# Local times with a day over 12 (the 14th, 25th) and the hours 12-hour clocks get wrong.
MOMENTS = [
    datetime(2026, 12, 3, 0, 5, 7, 250000, tzinfo=ZONE),
    datetime(2026, 12, 14, 12, 40, 9, tzinfo=ZONE),
    datetime(2026, 11, 25, 13, 15, 0, tzinfo=ZONE),
    datetime(2026, 1, 9, 23, 59, 30, tzinfo=ZONE),
]


def ingest(tmp_path: Path, dialled: list[str | None], date_order: str = "DMY") -> tuple:
    """Stores one delivery whose records carry `dialled` (None: the field left out) and
    returns the stored updated_at of each, in order, and the delivery's report."""
    store = Store(tmp_path / "a.duckdb", TZ, configured_fields=FIELDS, date_order=date_order)
    records = []
    for i, value in enumerate(dialled):
        row = {"Lead Id": f"L{i:03d}", "Customer Number": f"98{i:08d}"}
        if value is not None:
            row["Last Dialed On"] = value
        records.append(row)
    content = {"status": "success", "uniqueId": "u1", "campaignName": "Formats", "data": records}
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "incoming.part").write_text(json.dumps(content))
    raw = register_raw(store, folder, folder / "incoming.part", "application/json")
    ingest_delivery(store, raw.id)
    with store.cursor() as cursor:
        rows = cursor.execute("SELECT updated_at FROM leads ORDER BY lead_id").fetchall()
        (report,) = cursor.execute(
            "SELECT report FROM raw_deliveries WHERE id = ?", [raw.id]
        ).fetchone()
    store.close()
    return [r[0] for r in rows], json.loads(report)


def offset_text(moment: datetime, zone: timezone, pattern: str) -> str:
    return moment.astimezone(zone).strftime(pattern)


IST = timezone(timedelta(hours=5, minutes=30))
MINUS_4 = timezone(timedelta(hours=-4))
# (case, how a moment is written, how precise it stays)
WRITTEN = {
    "standard": (lambda m: m.strftime("%Y-%m-%d %H:%M:%S"), "s"),
    "no seconds": (lambda m: m.strftime("%Y-%m-%d %H:%M"), "min"),
    "fraction": (lambda m: m.strftime("%Y-%m-%d %H:%M:%S.%f"), "us"),
    "iso T naive": (lambda m: m.strftime("%Y-%m-%dT%H:%M:%S"), "s"),
    "iso Z": (lambda m: offset_text(m, UTC, "%Y-%m-%dT%H:%M:%S.%fZ"), "us"),
    "iso +05:30": (lambda m: offset_text(m, IST, "%Y-%m-%dT%H:%M:%S+05:30"), "s"),
    "iso -0400": (lambda m: offset_text(m, MINUS_4, "%Y-%m-%dT%H:%M:%S-0400"), "s"),
    "DD-MM-YYYY HH:MM": (lambda m: m.strftime("%d-%m-%Y %H:%M"), "min"),
    "DD/MM/YYYY HH:MM:SS": (lambda m: m.strftime("%d/%m/%Y %H:%M:%S"), "s"),
    "MM/DD/YYYY hh:mm AM/PM": (lambda m: m.strftime("%m/%d/%Y %I:%M %p"), "min"),
    "MM-DD-YYYY hh:mm:ss AM/PM": (lambda m: m.strftime("%m-%d-%Y %I:%M:%S %p"), "s"),
    "DD-MM-YYYY hh:mm am/pm": (lambda m: m.strftime("%d-%m-%Y %I:%M %p").lower(), "min"),
    "DD-MM-YYYY": (lambda m: m.strftime("%d-%m-%Y"), "day"),
    "MM/DD/YYYY": (lambda m: m.strftime("%m/%d/%Y"), "day"),
    "epoch s": (lambda m: str(int(m.timestamp())), "s"),
    "epoch ms": (lambda m: str(int(m.timestamp() * 1000)), "ms"),
}


def truncated(moment: datetime, precision: str) -> datetime:
    if precision == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if precision == "min":
        return moment.replace(second=0, microsecond=0)
    if precision == "s":
        return moment.replace(microsecond=0)
    if precision == "ms":
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return moment


@pytest.mark.parametrize("case", list(WRITTEN))
def test_each_form_is_read_to_its_instant(tmp_path, case):
    write, precision = WRITTEN[case]
    stored, report = ingest(tmp_path, [write(m) for m in MOMENTS])
    assert stored == [truncated(m, precision) for m in MOMENTS]
    assert report.get("warnings", 0) == 0
    assert report["formats"]["updated_at"]["ambiguous"] is False


@pytest.mark.parametrize(
    ("values", "label", "truth"),
    [
        (["14-05-2026 10:00", "03-04-2026 10:00"], "DD-MM-YYYY HH:MM",
         [datetime(2026, 5, 14, 10, tzinfo=ZONE), datetime(2026, 4, 3, 10, tzinfo=ZONE)]),
        (["05-14-2026 10:00", "03-04-2026 10:00"], "MM-DD-YYYY HH:MM",
         [datetime(2026, 5, 14, 10, tzinfo=ZONE), datetime(2026, 3, 4, 10, tzinfo=ZONE)]),
    ],
)  # fmt: skip
def test_a_day_over_12_tells_day_first_from_month_first(tmp_path, values, label, truth):
    """One value is enough, whatever the account's date_order says (here the other one)."""
    order = "MDY" if label.startswith("DD") else "DMY"
    stored, report = ingest(tmp_path, values, date_order=order)
    assert stored == truth
    found = report["formats"]["updated_at"]
    assert (found["label"], found["ambiguous"]) == (label, False)


@pytest.mark.parametrize(
    ("order", "truth"),
    [("DMY", datetime(2026, 4, 3, 9, 30, tzinfo=ZONE)),
     ("MDY", datetime(2026, 3, 4, 9, 30, tzinfo=ZONE))],
)  # fmt: skip
def test_no_day_over_12_is_decided_by_date_order_and_flagged(tmp_path, order, truth):
    stored, report = ingest(tmp_path, ["03/04/2026 09:30 AM", "11/12/2026 09:30 AM"], order)
    assert stored[0] == truth
    found = report["formats"]["updated_at"]
    assert (found["ambiguous"], found["decided_by"]) == (True, f"date_order {order}")


def test_a_mixed_column_takes_the_majority_and_counts_the_rest(tmp_path):
    """Day-first 12-hour values win; a month-first slash value and an epoch are not read
    (NULL, counted); an empty value or a missing field is no warning."""
    majority = [m.strftime("%d-%m-%Y %I:%M %p") for m in MOMENTS] * 2
    minority = ["12/25/2026 10:00", "1764757507"]
    stored, report = ingest(tmp_path, [*majority, *minority, "", "  ", None])
    assert stored[: len(majority)] == [truncated(m, "min") for m in MOMENTS] * 2
    assert stored[len(majority) :] == [None] * 5
    assert report["formats"]["updated_at"]["label"] == "DD-MM-YYYY hh:mm AM/PM"
    assert report["failures"]["updated_at"]["count"] == len(minority)
    assert report["warnings"] == len(minority)


def test_durations_in_three_forms_and_garbage():
    """HH:MM:SS, MM:SS (two parts are minutes, not hours) and seconds, rounded; anything
    else NULL, never an error."""
    values = {"01:02:03": 3723, "02:05": 125, "75": 75, "75.6": 76, "soon": None,
              "": None, None: None, "1:2:3:4": None, "-00:00:05": None}  # fmt: skip
    connection = duckdb.connect()
    rows = connection.execute(
        f"SELECT v, {duration_sql('v')} FROM (SELECT unnest(?::VARCHAR[]) AS v)", [list(values)]
    ).fetchall()
    assert dict(rows) == values
