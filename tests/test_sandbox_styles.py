"""The sandbox's field and date styles over real HTTP: a report x dmy_ampm delivery is the
cloudagent x standard delivery of the same seed, clock and request, renamed and re-dated; every
other field style x date style holds the same leads and the same instants under its own names.

The expected dates are written here with f-strings, not with the sandbox's tables, so a wrong
hour, AM/PM or day order in lib/sandbox/styles.py cannot hide behind the same mistake.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pyarrow as pa
import pytest

from lib.config import API_PATH
from lib.fields import API_TIMESTAMP_FORMAT, column_for
from lib.sandbox import (
    DATE_FORMATS,
    REPORT_FIELD_NAMES,
    WIRE_FIELDS,
    DateStyle,
    DeliveryVariant,
    FieldStyle,
    SandboxConfig,
)
from lib.sandbox.styles import styled
from tests.support.asgi import serve_sandbox
from tests.test_sandbox import records_of, wait_delivered

IST = ZoneInfo("Asia/Kolkata")
DATA_NOW = datetime(2026, 12, 2, 21, 40, tzinfo=IST)
LOCAL_NOW = DATA_NOW.replace(tzinfo=None)
API_KEY = "styles-test-key-7e21"
USER = "styles_ops"
CAMPAIGN = "Styles - Pune"
SECRET = "styles-secret-0123456789abcdef"
DMY = re.compile(r"\d\d-\d\d-\d{4} (0[1-9]|1[0-2]):[0-5]\d [AP]M")
# Leads updated in the last two days: a date filter on UpdatedDate, under single_record_cap.
WINDOW = {"sortby": "2", "fromDate": (LOCAL_NOW - timedelta(days=2)).strftime("%F %T"),
          "toDate": LOCAL_NOW.strftime("%F %T")}  # fmt: skip


@pytest.fixture(scope="module")
def sandbox():
    config = SandboxConfig(
        api_key=API_KEY,
        username=USER,
        campaigns={CAMPAIGN: 1500},
        seed=11,
        clock=lambda: DATA_NOW,
        delivery_delay_s=0.0,
        rate_limit=100_000,
    )
    with serve_sandbox(config) as sandbox:
        yield sandbox


def configure(sandbox, **changes) -> httpx.Response:
    return httpx.post(sandbox.base_url + "/_sandbox/config", json=changes)


def deliver(sandbox, receiver, variant: DeliveryVariant, filters=WINDOW, **styles) -> list[dict]:
    """Sets the variant and styles at run time, requests the leads `filters` select (WINDOW's
    unless told), returns the records."""
    assert configure(sandbox, delivery=variant.value, **styles).status_code == 200
    receiver.clear()
    body = {"campaignName": CAMPAIGN, "userName": USER, "status": "All", "dialstatus": "All",
            "dispositions": "ALL", "callBackUrl": f"{receiver.base_url}/callback/{SECRET}",
            **filters}  # fmt: skip
    answer = httpx.post(sandbox.base_url + API_PATH, json=body, headers={"apiKey": API_KEY})
    assert answer.status_code == 200 and answer.json()["status"] == "success"
    unique_id = answer.json()["uniqueId"]
    entry = wait_delivered(sandbox, unique_id)
    assert entry["state"] == "delivered", entry
    posts = receiver.wait_for(entry["posts"])
    return records_of(posts, variant, unique_id, CAMPAIGN)


@pytest.fixture
def restore(sandbox):
    yield
    configure(sandbox, delivery="json_data", field_style="cloudagent", date_style="standard")


def dmy_text(standard: str) -> str:
    """2026-12-02 21:32:39 -> 02-12-2026 09:32 PM, written independently of styles.py."""
    when = datetime.strptime(standard, API_TIMESTAMP_FORMAT)
    hour = when.hour % 12 or 12
    return f"{when:%d-%m-%Y} {hour:02d}:{when:%M} {'AM' if when.hour < 12 else 'PM'}"


def as_report(record: dict) -> dict:
    """A cloudagent x standard record as report x dmy_ampm should write it."""
    dates = ("CreatedDate", "UpdatedDate")
    return {REPORT_FIELD_NAMES[k]: dmy_text(v) if k in dates else v for k, v in record.items()}


def test_report_headers_are_not_aliases_of_the_lead_columns():
    """The operator must map report-style names by hand: no silent guess in lib/fields.py."""
    assert REPORT_FIELD_NAMES["PhoneNumber"] == "Customer Number"
    assert REPORT_FIELD_NAMES["DialStatus"] == "Call Status"
    assert REPORT_FIELD_NAMES["UpdatedDate"] == "Last Dialed On"
    assert set(REPORT_FIELD_NAMES) == set(WIRE_FIELDS)
    assert len(set(REPORT_FIELD_NAMES.values())) == len(WIRE_FIELDS)  # no two fields collide
    for cloudagent, column in [("PhoneNumber", "phone_number"), ("DialStatus", "dial_status"),
                               ("UpdatedDate", "updated_at")]:  # fmt: skip
        assert column_for(cloudagent) == column  # the test would notice a renamed column
        assert column_for(REPORT_FIELD_NAMES[cloudagent]) != column


VARIANTS = (DeliveryVariant.JSON_DATA, DeliveryVariant.FORM_DATA, DeliveryVariant.CSV_LINK,
            DeliveryVariant.SINGLE_RECORD)  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_report_dmy_delivery_is_the_standard_delivery_renamed_and_redated(
    sandbox, receiver, restore, variant
):
    standard = deliver(sandbox, receiver, variant, field_style="cloudagent", date_style="standard")
    report = deliver(sandbox, receiver, variant, field_style="report", date_style="dmy_ampm")
    assert 20 < len(standard) <= sandbox.config.single_record_cap  # the window selects some
    headers = [REPORT_FIELD_NAMES[name] for name in WIRE_FIELDS]
    assert all(list(record) == headers for record in report)
    # Same selection (the date filter ran on the data, not on the written dates), same values.
    assert report == [as_report(record) for record in standard]
    # Both parse to the same minute with datetime.strptime, and every date is dmy_ampm.
    for old, new in zip(standard, report, strict=True):
        for name in ("CreatedDate", "UpdatedDate"):
            text = new[REPORT_FIELD_NAMES[name]]
            assert DMY.fullmatch(text), text
            written = datetime.strptime(text, DATE_FORMATS[DateStyle.DMY_AMPM])
            original = datetime.strptime(old[name], API_TIMESTAMP_FORMAT)
            assert written == original.replace(second=0)
    updated = [datetime.strptime(r["UpdatedDate"], API_TIMESTAMP_FORMAT) for r in standard]
    assert any(when.hour >= 12 for when in updated) and any(when.hour < 12 for when in updated)


# The other date styles as datetime.strptime reads them, and the exact shape of their text.
ISO_T = ("%Y-%m-%dT%H:%M:%S%z", re.compile(r"\d{4}-\d\d-\d\dT[0-2]\d:[0-5]\d:[0-5]\d\+05:30"))
EPOCH_MS = re.compile(r"\d{13}")
OTHER_STYLES = [
    (field_style, date_style)
    for field_style in ("cloudagent", "report")
    for date_style in ("standard", "dmy_ampm", "iso_t", "epoch_ms")
    if (field_style, date_style) not in {("cloudagent", "standard"), ("report", "dmy_ampm")}
]  # the first is the reference, the second has its own test above


def local_time(value, date_style: str, from_csv: bool) -> datetime:
    """A delivered date as the account's naive wall-clock time, parsed with the standard
    library only (a CSV cell is text; a JSON epoch_ms must be a number)."""
    if date_style == "epoch_ms":
        if from_csv:
            assert EPOCH_MS.fullmatch(value), value
            value = int(value)
        assert type(value) is int and value % 1000 == 0, value
        return datetime.fromtimestamp(value / 1000, IST).replace(tzinfo=None)
    if date_style == "iso_t":
        assert ISO_T[1].fullmatch(value), value
        parsed = datetime.strptime(value, ISO_T[0])
        assert parsed.isoformat() == value  # nothing more, nothing less
        return parsed.astimezone(IST).replace(tzinfo=None)
    if date_style == "dmy_ampm":
        assert DMY.fullmatch(value), value
        return datetime.strptime(value, "%d-%m-%Y %I:%M %p")
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")


def assert_restyled(standard, records, field_style, date_style, from_csv=False) -> None:
    """`records` are `standard` (the cloudagent x standard delivery) under the style's names,
    every value the same, every date the same time (to the minute for dmy_ampm)."""
    names = REPORT_FIELD_NAMES if field_style == "report" else {n: n for n in WIRE_FIELDS}
    assert all(list(record) == [names[name] for name in WIRE_FIELDS] for record in records)
    assert len(records) == len(standard)
    for old, new in zip(standard, records, strict=True):
        for name in WIRE_FIELDS:
            value = new[names[name]]
            if name in ("CreatedDate", "UpdatedDate"):
                when = datetime.strptime(old[name], API_TIMESTAMP_FORMAT)
                if date_style == "dmy_ampm":
                    when = when.replace(second=0)
                assert local_time(value, date_style, from_csv) == when, (old["LeadID"], name)
            else:
                assert value == old[name], (old["LeadID"], name, value)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("field_style", "date_style"), OTHER_STYLES)
def test_every_other_style_holds_the_same_leads_and_times(
    sandbox, receiver, restore, field_style, date_style, variant
):
    standard = deliver(sandbox, receiver, variant, field_style="cloudagent", date_style="standard")
    assert 20 < len(standard) <= sandbox.config.single_record_cap
    records = deliver(sandbox, receiver, variant, field_style=field_style, date_style=date_style)
    assert_restyled(standard, records, field_style, date_style, variant == DeliveryVariant.CSV_LINK)


FILTERS = {
    "not answered, created in two weeks": {
        "dialstatus": "NoAnswer", "sortby": "1", "toDate": LOCAL_NOW.strftime("%F %T"),
        "fromDate": (LOCAL_NOW - timedelta(days=14)).strftime("%F %T"),
    },
    "Success, updated in a week": {
        "status": "Success", "sortby": "2", "toDate": LOCAL_NOW.strftime("%F %T"),
        "fromDate": (LOCAL_NOW - timedelta(days=7)).strftime("%F %T"),
    },
}  # fmt: skip


@pytest.mark.parametrize("case", list(FILTERS))
def test_the_api_filters_select_the_same_leads_whatever_the_style(sandbox, receiver, restore, case):
    """Created and updated dates, status and dialstatus filter the data, not the written text."""
    plain = deliver(sandbox, receiver, DeliveryVariant.JSON_DATA, FILTERS[case],
                    field_style="cloudagent", date_style="standard")  # fmt: skip
    assert plain, f"{case}: nothing selected; the case proves nothing"
    records = deliver(sandbox, receiver, DeliveryVariant.JSON_DATA, FILTERS[case],
                      field_style="report", date_style="epoch_ms")  # fmt: skip
    assert_restyled(plain, records, "report", "epoch_ms")


def test_an_empty_delivery_keeps_the_style(sandbox, receiver, restore):
    nothing = {**WINDOW, "fromDate": "2020-01-01 00:00:00", "toDate": "2020-01-02 00:00:00"}
    styles = {"field_style": "report", "date_style": "epoch_ms"}
    assert deliver(sandbox, receiver, DeliveryVariant.JSON_DATA, nothing, **styles) == []
    assert deliver(sandbox, receiver, DeliveryVariant.CSV_LINK, nothing, **styles) == []
    (post,) = receiver.posts
    header = httpx.get(json.loads(post.body)["fileUrl"]).text
    assert header.rstrip("\n") == ",".join(f'"{REPORT_FIELD_NAMES[n]}"' for n in WIRE_FIELDS)


def test_styles_change_at_run_time_and_independently(sandbox, receiver, restore):
    current = httpx.get(sandbox.base_url + "/_sandbox/config").json()
    assert (current["field_style"], current["date_style"]) == ("cloudagent", "standard")
    answer = configure(sandbox, field_style="report")
    assert answer.status_code == 200 and answer.json()["field_style"] == "report"
    renamed = deliver(sandbox, receiver, DeliveryVariant.JSON_DATA)
    assert list(renamed[0]) == [REPORT_FIELD_NAMES[name] for name in WIRE_FIELDS]
    datetime.strptime(renamed[0]["Last Dialed On"], API_TIMESTAMP_FORMAT)  # dates untouched
    answer = configure(sandbox, field_style="cloudagent", date_style="dmy_ampm")
    assert answer.json()["date_style"] == "dmy_ampm"
    redated = deliver(sandbox, receiver, DeliveryVariant.JSON_DATA)
    assert list(redated[0]) == list(WIRE_FIELDS)
    assert all(DMY.fullmatch(r["CreatedDate"]) and DMY.fullmatch(r["UpdatedDate"])
               for r in redated)  # fmt: skip
    configure(sandbox, date_style="standard")
    names = {header: name for name, header in REPORT_FIELD_NAMES.items()}
    back = [{names[k]: v for k, v in record.items()} for record in renamed]
    assert deliver(sandbox, receiver, DeliveryVariant.JSON_DATA) == back  # all undone


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"field_style": "Report"}, "field_style"), ({"date_style": "dd/mm/yyyy"}, "date_style")],
)
def test_a_bad_style_is_refused_with_a_clear_message(sandbox, changes, named):
    before = httpx.get(sandbox.base_url + "/_sandbox/config").json()
    answer = configure(sandbox, **changes)
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert named in message and repr(changes[named]) in message, message
    assert httpx.get(sandbox.base_url + "/_sandbox/config").json() == before


def test_a_bad_style_in_the_settings_names_the_allowed_values():
    with pytest.raises(ValueError, match="date_style must be one of standard, dmy_ampm"):
        SandboxConfig(date_style="dmy")
    with pytest.raises(ValueError, match="field_style must be one of cloudagent, report"):
        SandboxConfig(field_style="reports")


def test_empty_dates_stay_empty_and_midnight_is_twelve_am():
    """The sandbox's own data always has dates; an account's may not."""
    table = pa.table({
        "PhoneNumber": ["9800000001", "9800000002", "9800000003"],
        "CreatedDate": ["2026-12-02 00:05:59", "", "2026-12-01 12:00:00"],
        "UpdatedDate": ["", "2026-12-02 21:32:39", "2026-12-02 23:59:00"],
    })  # fmt: skip
    out = styled(table, FieldStyle.REPORT, DateStyle.DMY_AMPM, "Asia/Kolkata")
    assert out.to_pylist() == [
        {"Customer Number": "9800000001", "Uploaded On": "02-12-2026 12:05 AM",
         "Last Dialed On": ""},
        {"Customer Number": "9800000002", "Uploaded On": "",
         "Last Dialed On": "02-12-2026 09:32 PM"},
        {"Customer Number": "9800000003", "Uploaded On": "01-12-2026 12:00 PM",
         "Last Dialed On": "02-12-2026 11:59 PM"},
    ]  # fmt: skip
    empty = styled(table.slice(1, 1).select(["UpdatedDate", "CreatedDate"]), FieldStyle.CLOUDAGENT,
                   DateStyle.DMY_AMPM, "Asia/Kolkata")  # fmt: skip
    assert empty.column("CreatedDate").to_pylist() == [""]
    assert styled(table, FieldStyle.CLOUDAGENT, DateStyle.STANDARD, "Asia/Kolkata") is table
