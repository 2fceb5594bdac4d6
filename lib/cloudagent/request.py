"""The Campaign Dial Status request: its vocabulary, its validation and its JSON body.

Validation uses the vendor's wording where there is one, so a refusal on our side reads like
CloudAgent's own (A4, A5, A10 in `lib/cloudagent/__init__.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from lib.cloudagent.errors import MSG_CALLBACK_INVALID, MSG_CAMPAIGN_INVALID, RequestValidationError
from lib.config import DEFAULT_TIMEZONE, redact_callback_url
from lib.fields import API_TIMESTAMP_FORMAT


class LeadStatus(StrEnum):
    ALL = "All"
    SUCCESS = "Success"
    FAIL = "Fail"
    PENDING = "Pending"


class DialStatusFilter(StrEnum):
    ALL = "All"
    FAIL = "Fail"
    NO_ANSWER = "NoAnswer"
    USER_DISCONNECTED = "user_disconnected"
    ANSWERED = "answered"


class SortBy(StrEnum):
    ALL = "0"  # no date filter: all the campaign's data
    CREATED = "1"  # fromDate/toDate apply to the lead's created date
    UPDATED = "2"  # fromDate/toDate apply to the lead's last update


ALL_DISPOSITIONS = "ALL"


def _enum_value(enum_type: type[StrEnum], value: object, name: str) -> str:
    """The canonical string for an enum value given as a member or text (any case)."""
    if isinstance(value, enum_type):
        return value.value
    text = str(value).strip() if value is not None else ""
    for member in enum_type:
        if text.lower() == member.value.lower():
            return member.value
    allowed = ", ".join(member.value for member in enum_type)
    raise RequestValidationError(f"{name} must be one of {allowed}; got {text!r}")


def resolve_zone(timezone: str | tzinfo) -> tzinfo:
    """The zone for a name or a tzinfo; raises for an unknown name."""
    return ZoneInfo(timezone) if isinstance(timezone, str) else timezone


def _local_naive(value: datetime, timezone: str | tzinfo) -> datetime:
    """Naive datetimes are already account-local; aware ones are converted to the account zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=None)
    return value.astimezone(resolve_zone(timezone)).replace(tzinfo=None)


def _format_local(value: datetime, timezone: str | tzinfo) -> str:
    return _local_naive(value, timezone).strftime(API_TIMESTAMP_FORMAT)


def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url.strip())
    except (ValueError, AttributeError):
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True)
class DialStatusRequest:
    """One Campaign Dial Status request (one campaign, per the vendor page)."""

    campaign_name: str
    callback_url: str = field(repr=False)  # its last path segment is the receiver's secret
    from_date: datetime | None = None
    to_date: datetime | None = None
    sortby: SortBy | str = SortBy.ALL
    status: LeadStatus | str = LeadStatus.ALL
    dial_status: DialStatusFilter | str = DialStatusFilter.ALL
    dispositions: str = ALL_DISPOSITIONS

    def validate(self, timezone: str | tzinfo = DEFAULT_TIMEZONE) -> None:
        """Raises RequestValidationError, with the documented wording where there is one."""
        if not isinstance(self.campaign_name, str) or not self.campaign_name.strip():
            raise RequestValidationError(MSG_CAMPAIGN_INVALID)
        if not isinstance(self.callback_url, str) or not is_http_url(self.callback_url):
            raise RequestValidationError(MSG_CALLBACK_INVALID)
        sortby = _enum_value(SortBy, self.sortby, "sortby")
        _enum_value(LeadStatus, self.status, "status")
        _enum_value(DialStatusFilter, self.dial_status, "dialstatus")
        if not isinstance(self.dispositions, str) or not self.dispositions.strip():
            raise RequestValidationError(
                "dispositions must be ALL or one disposition configured for the campaign"
            )
        for name, value in (("fromDate", self.from_date), ("toDate", self.to_date)):
            if value is not None and not isinstance(value, datetime):
                raise RequestValidationError(f"{name} must be a datetime, got {value!r}")
        if sortby != SortBy.ALL and (self.from_date is None or self.to_date is None):
            raise RequestValidationError(
                f"sortby {sortby} filters by the "
                f"{'created' if sortby == SortBy.CREATED else 'updated'} date: "
                "it needs both fromDate and toDate"
            )
        if self.from_date is not None and self.to_date is not None:
            start = _local_naive(self.from_date, timezone)
            end = _local_naive(self.to_date, timezone)
            if start > end:
                raise RequestValidationError(
                    f"fromDate ({start.strftime(API_TIMESTAMP_FORMAT)}) is after toDate "
                    f"({end.strftime(API_TIMESTAMP_FORMAT)})"
                )

    def to_body(self, username: str, timezone: str | tzinfo = DEFAULT_TIMEZONE) -> dict[str, str]:
        """The JSON body, every value a string, under the documented parameter names."""
        body: dict[str, str] = {}
        if self.from_date is not None:
            body["fromDate"] = _format_local(self.from_date, timezone)
        if self.to_date is not None:
            body["toDate"] = _format_local(self.to_date, timezone)
        body["sortby"] = _enum_value(SortBy, self.sortby, "sortby")
        body["status"] = _enum_value(LeadStatus, self.status, "status")
        body["dialstatus"] = _enum_value(DialStatusFilter, self.dial_status, "dialstatus")
        dispositions = self.dispositions.strip()
        body["dispositions"] = (
            ALL_DISPOSITIONS if dispositions.upper() == ALL_DISPOSITIONS else dispositions
        )
        body["campaignName"] = self.campaign_name
        body["userName"] = username
        body["callBackUrl"] = self.callback_url
        return body

    def redacted_body(
        self, username: str, timezone: str | tzinfo = DEFAULT_TIMEZONE
    ) -> dict[str, str]:
        """`to_body` with the callback secret replaced by *** (for logs and the request table)."""
        body = self.to_body(username, timezone)
        body["callBackUrl"] = redact_callback_url(body["callBackUrl"])
        return body


@dataclass(frozen=True)
class Accepted:
    """CloudAgent queued the job; the records arrive later at callBackUrl."""

    unique_id: str | None
    message: str
    answer: str = field(default="", compare=False)  # the answer's start, secrets removed
