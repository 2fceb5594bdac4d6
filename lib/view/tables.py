"""How the operational tables (Sync, Settings) read: people's column headers, and every time as
"02 Dec, 21:32" in the account's zone.

Only the display changes: `column_config` labels and formats the columns, so the frames keep
their names and typed values (a time column still sorts by time; a download writes the data).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

import pandas as pd
import streamlit as st

from lib.services import get_services
from lib.view import numbers
from lib.view.labels import (
    DIAL_STATUS_LABELS,
    LEAD_STATUS_LABELS,
    PROGRESS_LABELS,
    time_text,
)
from lib.view.metrics.trouble import duration_words

TIME_FORMAT = "DD MMM, HH:mm"  # momentjs for st.column_config: labels.TIME_TEXT's "02 Dec, 21:32"
OTHER_YEAR_TIME_FORMAT = "DD MMM YYYY, HH:mm"  # labels.OTHER_YEAR_TIME_TEXT's


# Column names the stored tables and the engine use -> what the page calls them. A name not
# here is read by `header`'s rules (snake case in words, `_at` dropped, `_s` as "(s)").
HEADERS: dict[str, str] = {
    "id": "#",
    "campaign": "Campaign",
    "campaign_name": "Campaign",
    "enabled": "Synced",
    "source": "Listed by",
    "leads": "Leads",
    "newest_update": "Newest lead update",
    "dated_after_now": "Dated after now",
    "last_success_at": "Last successful sync",
    "last_delivery_at": "Last delivery",
    "data_as_of": "Data as of",
    "data_age": "Age",
    "full_load_done": "Full load done",
    "last_error": "Last error",
    "last_error_at": "Last error at",
    "kind": "Kind",
    "state": "State",
    "params": "Parameters",
    "unique_id": "uniqueId",
    "request_id": "Request #",
    "queued_at": "Queued",
    "sent_at": "Sent",
    "accepted_at": "Accepted",
    "delivered_at": "Delivered",
    "received_at": "Received",
    "rows": "Rows",
    "error": "Error",
    "content_type": "Content type",
    "size_bytes": "Size (bytes)",
    "attempts": "Attempts",
    "file": "Body file",
    "asked_at": "Asked at",
    "wait_until": "No request before",
    "reason": "Reason",
    "in_force": "In force",
    "phone_number": "Phone",
    "call_duration_s": "Talk time (s)",
    "lead_key": "Lead key",
    "lead_id": "Lead id",
    "updated_at": "Last update",
    "dial_bucket": "Dial status",
    "bucket": "Dial status",
    "lead_status": "Lead status",
    "status": "CloudAgent status",
    "dial_status": "CloudAgent dial status",
    "progress": "Lead progress",
    "share %": "Share %",
    "day": "Day",
    "n_answered": "Answered leads",
    "n_attempted": "Attempted leads",
}
# Columns whose values are raw statuses, and the labels people read for them.
_VALUE_LABELS: dict[str, Mapping[str, str]] = {
    "bucket": DIAL_STATUS_LABELS,
    "dial_bucket": DIAL_STATUS_LABELS,
    "lead_status": LEAD_STATUS_LABELS,
    "progress": PROGRESS_LABELS,
}


def header(name: str) -> str:
    """The header people read for column `name` (a dial status as a column: its label)."""
    if name in HEADERS:
        return HEADERS[name]
    if name in DIAL_STATUS_LABELS:
        return DIAL_STATUS_LABELS[name]
    words = str(name)
    for suffix, replacement in (("_at", ""), ("_s", " (s)"), ("_ms", " (ms)")):
        if words.endswith(suffix):
            words = words[: -len(suffix)] + replacement
            break
    words = words.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else str(name)


def cell_text(name: str, value: Any, zone: tzinfo) -> str:
    """One value of column `name` as people read it in a record: a time as labels.TIME_TEXT
    in `zone`, a status by its label, nothing for a missing value."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return time_text(value, zone)
    labels = _VALUE_LABELS.get(name)
    return labels.get(value, str(value)) if labels else str(value)


def for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """A chart's numbers as people read them, on screen and in its downloads: every header in
    words, statuses by their labels; the numbers untouched."""
    result = frame.rename(columns={name: header(name) for name in frame.columns})
    for name, labels in _VALUE_LABELS.items():
        if name in frame.columns:
            result[header(name)] = [labels.get(value, value) for value in frame[name]]
    return result


def column_config(
    frame: pd.DataFrame, tz: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`st.dataframe`'s column_config for `frame`: every column under its header, every time
    column (aware or naive datetimes) as TIME_FORMAT in `tz`, or with the year when one of its
    times is not in the current year; `overrides` win."""
    config: dict[str, Any] = {}
    for name in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[name]):
            config[name] = st.column_config.DatetimeColumn(
                header(name), format=_time_format(frame[name], tz), timezone=tz
            )
        else:
            config[name] = header(name)
    config.update(overrides or {})
    return config


def _time_format(column: pd.Series, tz: str) -> str:
    times = column.dropna()
    if times.empty:
        return TIME_FORMAT
    local = times.dt.tz_convert(tz) if times.dt.tz is not None else times
    this_year = pd.Timestamp.now(tz).year
    return TIME_FORMAT if (local.dt.year == this_year).all() else OTHER_YEAR_TIME_FORMAT


def table(frame: pd.DataFrame | list, tz: str, *, key: str, **options: Any) -> None:
    """An operational table as people read it (see `column_config`); `options` go to
    st.dataframe (`column_config` among them, as overrides)."""
    shown = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
    overrides = options.pop("column_config", None)
    st.dataframe(
        _readable(shown),
        hide_index=True,
        key=key,
        column_config=column_config(shown, tz, overrides),
        placeholder="",  # a missing value is a blank cell, not "None"
        **options,
    )


_IDENTIFIERS = ("id", "request_id", "delivery_id")  # numbers that name a row, not count


def _readable(frame: pd.DataFrame) -> Any:
    """The frame with its counts in the account's number format, as a Styler: the values stay
    typed, so the columns still sort."""
    counts = [
        name
        for name in frame.columns
        if name not in _IDENTIFIERS
        and not str(name).endswith("_id")
        and _whole_numbers(frame[name])
    ]
    return numbers.styled(frame, get_services().settings.number_format, counts=counts, others=False)


def _whole_numbers(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return False
    if pd.api.types.is_integer_dtype(column):
        return True
    present = column.dropna()
    return bool(len(present)) and bool((present == present.round()).all())


def ago(moment: datetime, now: datetime) -> str:
    """How long before `now` `moment` was: "45 s ago", "3 min ago", "1 h 5 min ago"."""
    return f"{duration_words((now - moment).total_seconds())} ago"


def with_age(frame: pd.DataFrame, column: str, now: datetime) -> pd.DataFrame:
    """`frame` with `data_age` after `column`: how long ago it was ("3 min ago"), where
    freshness matters; blank without a time."""
    moments = pd.to_datetime(frame[column], utc=True)
    ages = ["" if pd.isna(moment) else ago(moment, now) for moment in moments]
    result = frame.copy()
    result.insert(result.columns.get_loc(column) + 1, "data_age", ages)
    return result
