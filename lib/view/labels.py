"""The labels people read for the raw values that links, the API and the database carry.

One table per kind of value, read by the sidebar and the pages; a value with no label is shown
as itself. URL parameters keep the raw values (lib/view/filters.py): a label is never parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo

RANGE_LABELS: dict[str, str] = {
    "today": "Today",
    "yesterday": "Yesterday",
    "last_7d": "Last 7 days (incl. today)",
    "last_30d": "Last 30 days (incl. today)",
    "this_month": "This month to date",
    "last_month": "Last calendar month",
    "all": "All dates",
    "custom": "Custom dates",
}
BASIS_LABELS: dict[str, str] = {"updated": "Last update", "created": "Upload date"}
DIAL_STATUS_LABELS: dict[str, str] = {
    "answered": "Answered",
    "NoAnswer": "No answer",
    "user_disconnected": "Customer disconnected",
    "Fail": "Failed",
    "Not dialled": "Not dialled",
}
LEAD_STATUS_LABELS: dict[str, str] = {"Success": "Success", "Fail": "Failed", "Pending": "Pending"}
PROGRESS_LABELS: dict[str, str] = {
    "not_dialled": "Not dialled",
    "retrying": "Retrying",
    "out_of_tries": "Out of tries",
    "success": "Success",
    "failed": "Failed",
}


def label(labels: Mapping[str, str], value: object) -> str:
    """`value`'s label in `labels`, or the value itself as text."""
    return labels.get(str(value), str(value))


TIME_TEXT = "%d %b, %H:%M"  # every time people read: "02 Dec, 21:32"
OTHER_YEAR_TIME_TEXT = "%d %b %Y, %H:%M"  # one outside the current year: "01 Jun 2027, 12:00"


def time_text(moment: datetime, zone: tzinfo | None = None, *, seconds: bool = False) -> str:
    """`moment` as TIME_TEXT in the account's `zone` (else its own), with its year when that is
    not the current one, or with ":05" kept to the second where two times a few seconds apart
    must differ."""
    local = moment if zone is None else moment.astimezone(zone)
    this_year = local.year == datetime.now(local.tzinfo).year
    shown = f"{local:{TIME_TEXT if this_year else OTHER_YEAR_TIME_TEXT}}"
    return shown + (f":{local:%S}" if seconds else "")
