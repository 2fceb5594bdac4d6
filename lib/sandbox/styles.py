"""How a delivery writes its records: the field names (FieldStyle) and the dates (DateStyle).

The real account's names and date formats are undocumented, so the sandbox can send them other
ways than its default. Its data and the API's filters always keep CloudAgent's names and
"YYYY-MM-DD HH:MM:SS" (datagen.py, data.py); `styled` rewrites only the selected records, just
before encode.py writes them, so a style never changes which records a request selects.
Vectorised like encode.py: the dates are parsed once by pyarrow and written from per-day,
per-hour and per-second tables, with no per-record Python.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lib.fields import API_TIMESTAMP_FORMAT
from lib.sandbox.config import DateStyle, FieldStyle
from lib.sandbox.datagen import DAY_S, EPOCH, clock_table, day_text, joined_text, per_key

# CloudAgent name -> the header of an account that sends report-style names (assumed, like
# the headers of CloudAgent's downloadable reports). "Customer Number", "Call Status" and "Last
# Dialed On" are on purpose no alias in lib/fields.py: the operator maps them by hand.
REPORT_FIELD_NAMES: dict[str, str] = {
    "LeadID": "Lead Id",
    "PhoneNumber": "Customer Number",
    "Name": "Customer Name",
    "CampaignName": "Campaign Name",
    "Status": "Lead Status",
    "DialStatus": "Call Status",
    "Disposition": "Disposition",
    "Comments": "Comments",
    "AgentID": "Agent Id",
    "AgentName": "Agent Name",
    "Attempts": "Attempts",
    "Priority": "Priority",
    "UCID": "UCID",
    "CreatedDate": "Uploaded On",
    "UpdatedDate": "Last Dialed On",
    "CallDuration": "Talk Time",
}
DATE_FIELDS = ("CreatedDate", "UpdatedDate")  # CallDuration is a length of time, not a date
# What each date style looks like to datetime.strptime (epoch_ms: a number, not text).
DATE_FORMATS: dict[DateStyle, str | None] = {
    DateStyle.STANDARD: API_TIMESTAMP_FORMAT,
    DateStyle.DMY_AMPM: "%d-%m-%Y %I:%M %p",
    DateStyle.ISO_T: "%Y-%m-%dT%H:%M:%S%z",
    DateStyle.EPOCH_MS: None,
}


def styled(
    table: pa.Table, field_style: FieldStyle, date_style: DateStyle, timezone: str
) -> pa.Table:
    """`table` (CloudAgent names, standard dates in `timezone`'s wall clock) as the styles write
    it: the same rows and column order; the cloudagent + standard style returns it as it is."""
    if date_style != DateStyle.STANDARD:
        zone = ZoneInfo(timezone)
        for name in DATE_FIELDS:
            written = _write_dates(table.column(name), date_style, zone)
            table = table.set_column(table.schema.get_field_index(name), name, written)
    if field_style == FieldStyle.REPORT:
        table = table.rename_columns([REPORT_FIELD_NAMES[name] for name in table.column_names])
    return table


def _write_dates(column: pa.ChunkedArray, style: DateStyle, zone: ZoneInfo) -> pa.Array:
    """Standard date texts -> `style`; an empty date stays empty (null for epoch_ms, a number)."""
    kind = pa.int64() if style == DateStyle.EPOCH_MS else pa.string()
    blank = pa.scalar(None if style == DateStyle.EPOCH_MS else "", kind)
    empty = pc.equal(column, "").combine_chunks()
    parsed = pc.strptime(pc.if_else(empty, None, column), format=API_TIMESTAMP_FORMAT, unit="s")
    parsed = parsed.cast(pa.int64())
    earliest = pc.min(parsed)
    if not earliest.is_valid:  # no rows, or only empty dates
        return pa.repeat(blank, len(column))
    # Empty rows borrow a real date, so the per-day and per-hour tables span only real dates.
    written = _from_seconds(parsed.fill_null(earliest).to_numpy(), style, zone)
    return pc.if_else(empty, blank, written) if empty.true_count else written


def _from_seconds(seconds: np.ndarray, style: DateStyle, zone: ZoneInfo) -> pa.Array:
    """Local epoch seconds -> `style`'s dates."""
    days = seconds // DAY_S
    of_day = seconds - days * DAY_S
    if style == DateStyle.DMY_AMPM:
        return joined_text(day_text(days, "%d-%m-%Y "), _twelve_hour_minutes()[of_day // 60])
    hours = seconds // 3600
    offsets = per_key(hours, lambda hour: _utc_offset_s(hour, zone), np.int64)
    if style == DateStyle.EPOCH_MS:
        return pa.array((seconds - offsets) * 1000, pa.int64())
    offset_text = per_key(hours, lambda hour: _offset_text(_utc_offset_s(hour, zone)), "S6")
    return joined_text(day_text(days, "%Y-%m-%dT"), clock_table()[of_day], offset_text)


@cache
def _twelve_hour_minutes() -> np.ndarray:
    """All 1,440 b"hh:mm AM" values by minute of the day, written out (strftime's %p follows
    the locale, which may have no AM/PM at all)."""
    return np.array(
        [f"{(m // 60) % 12 or 12:02d}:{m % 60:02d} {'AM' if m < 720 else 'PM'}"
         for m in range(1440)],
        dtype="S8",
    )  # fmt: skip


def _utc_offset_s(hour: int, zone: ZoneInfo) -> int:
    """The zone's UTC offset at local wall-clock hour `hour` (hours since 1970-01-01 00:00)."""
    local = EPOCH + timedelta(hours=hour)
    return int(local.replace(tzinfo=zone).utcoffset().total_seconds())


def _offset_text(offset_s: int) -> str:
    """+05:30, -03:00, +00:00."""
    sign = "-" if offset_s < 0 else "+"
    minutes = abs(offset_s) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
