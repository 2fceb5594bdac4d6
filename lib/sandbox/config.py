"""Sandbox configuration: account, campaigns, delivery variant, rate limit, clocks."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from lib.config import DEFAULT_TIMEZONE, DEMO_CAMPAIGNS, DEMO_USERNAME


class DeliveryVariant(StrEnum):
    """How the records reach callBackUrl (the real shape is undocumented: cloudagent-api.md)."""

    JSON_DATA = "json_data"  # {"status","uniqueId","campaignName","data":[...]} as JSON
    FORM_DATA = "form_data"  # data=<that JSON>, form-encoded (CloudAgent's per-call callback)
    JSON_DETAILS = "json_details"  # records under "details"
    JSON_RECORDS = "json_records"  # records under "records"
    SINGLE_RECORD = "single_record"  # one POST per record, the record object as the body
    CSV_LINK = "csv_link"  # {"uniqueId","campaignName","fileUrl": .../files/<token>.csv}
    JSON_LINK = "json_link"  # the same with a .json file holding a top-level array


class FieldStyle(StrEnum):
    """The field names of the delivered records (the real ones are undocumented)."""

    CLOUDAGENT = "cloudagent"  # LeadID, PhoneNumber, DialStatus, UpdatedDate, ... (lib/fields.py)
    REPORT = "report"  # report-style headers: "Customer Number", "Call Status", "Last Dialed On"
    # (the whole table: lib/sandbox/styles.py REPORT_FIELD_NAMES)


class DateStyle(StrEnum):
    """How the delivered records write their dates (account local time unless it says a zone)."""

    STANDARD = "standard"  # 2026-12-02 21:32:39
    DMY_AMPM = "dmy_ampm"  # 02-12-2026 09:32 PM (12-hour clock, no seconds)
    ISO_T = "iso_t"  # 2026-12-02T21:32:39+05:30 (the account's zone offset at that time)
    EPOCH_MS = "epoch_ms"  # 1796227359000: milliseconds since 1970 UTC, a JSON number


class Fault(StrEnum):
    """Ways CloudAgent misbehaves, played on demand (`fault` + `fault_count` at run time).

    API faults apply to the next `fault_count` requests that reach the API (answered by the
    fault, so not counted against the rate limit, except slow/timeout which are processed);
    callback faults apply to the deliveries of the next `fault_count` accepted requests.
    """

    NONE = "none"
    # -- the answer to the API request
    SLOW = "slow"  # processed, answered after fault_delay_s (default 3 s)
    TIMEOUT = "timeout"  # processed (job queued), answer held until the client gives up
    HTTP_500 = "http_500"  # HTTP 500 with a plain-text body; not processed
    RATE_LIMIT_200 = "rate_limit_200"  # "Max limit exceeded" with HTTP 200
    RATE_LIMIT_429 = "rate_limit_429"  # HTTP 429 with Retry-After: fault_retry_after_s
    RATE_LIMIT_429_NO_RETRY_AFTER = "rate_limit_429_no_retry_after"  # HTTP 429, no Retry-After
    GARBAGE = "garbage"  # HTTP 200, bytes that are not JSON
    HTML = "html"  # HTTP 200, an HTML page (a proxy or login page in front of the API)
    # -- the delivery to callBackUrl
    NO_CALLBACK = "no_callback"  # accepted, never delivered
    DOUBLE_CALLBACK = "double_callback"  # the same delivery POSTed twice
    LATE_CALLBACK = "late_callback"  # held until a later delivery for the same campaign went out
    OUT_OF_ORDER = "out_of_order"  # the next fault_count deliveries held, then posted newest first
    LINK_404 = "link_404"  # a file-link delivery whose file answers 404
    LINK_TRUNCATED = "link_truncated"  # a file-link delivery whose file is cut inside a record


API_FAULTS = frozenset({
    Fault.SLOW, Fault.TIMEOUT, Fault.HTTP_500, Fault.RATE_LIMIT_200, Fault.RATE_LIMIT_429,
    Fault.RATE_LIMIT_429_NO_RETRY_AFTER, Fault.GARBAGE, Fault.HTML,
})  # fmt: skip
CALLBACK_FAULTS = frozenset(set(Fault) - API_FAULTS - {Fault.NONE})
# Defaults for fault_delay_s: slow answer; longest hold of a timeout answer; longest wait of a
# late or out-of-order delivery for the deliveries it waits for.
FAULT_DELAY_DEFAULTS = {Fault.SLOW: 3.0, Fault.TIMEOUT: 120.0, Fault.LATE_CALLBACK: 120.0,
                        Fault.OUT_OF_ORDER: 120.0}  # fmt: skip


class ErrorStyle(StrEnum):
    JSON = "json"  # {"status": "error", "message": ..., "uniqueId": ""}
    DOC_QUOTED = "doc_quoted"  # "{""status"": ""error"", ...}" as printed on the vendor page


_Style = TypeVar("_Style", FieldStyle, DateStyle)


# A few thousand leads per demo campaign; sizes differ so the charts differ.
DEMO_CAMPAIGN_SIZES = (4000, 2500, 3200, 1500)


def default_campaigns() -> dict[str, int]:
    return dict(zip(DEMO_CAMPAIGNS, DEMO_CAMPAIGN_SIZES, strict=True))


def _member(kind: type[_Style], value: object, name: str) -> _Style:
    """`value` as a member of `kind`, or a ValueError listing the values it may have."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}") from None


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SandboxConfig:
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    username: str = DEMO_USERNAME
    campaigns: dict[str, int] = field(default_factory=default_campaigns)  # name -> lead count
    seed: int = 20240601
    delivery: DeliveryVariant = DeliveryVariant.JSON_DATA
    rate_limit: int = 10  # requests per window per account (vendor page: 10 per minute)
    window_s: float = 60.0
    rate_limit_http_status: int = 200  # 200 or 429 (unknown for the real API)
    rate_limit_retry_after: bool = True  # send Retry-After with a 429
    # Where the sandbox itself is reachable (for file links); None: from each request's URL.
    public_base_url: str | None = None
    clock: Callable[[], datetime] = utc_now  # the data's "now" (aware, or naive = local)
    monotonic: Callable[[], float] = time.monotonic  # rate-limit window and request log
    timezone: str = DEFAULT_TIMEZONE  # the account's zone: dates on the wire are its wall clock
    delivery_delay_s: float = 0.2  # between the answer and the callback
    callback_timeout_s: float = 60.0
    single_record_cap: int = 500  # single_record posts at most this many records
    error_style: ErrorStyle = ErrorStyle.JSON
    update_horizon_h: float = 6.0  # second versions of leads appear over these hours
    # Share of leads with a second version (a redial after now); 0: the data changes only
    # through POST /_sandbox/leads. Read when a campaign is generated (its first request).
    update_fraction: float = 0.10
    files_dir: Path | None = None  # link variants' files; None: a temporary folder
    max_files: int = 20  # older link files are deleted
    max_log_entries: int = 10_000
    # /_sandbox/* (request log, deliveries, runtime config) need this as X-Dialstatus-Token or
    # a Bearer token; "" shuts them; None leaves them open (a standalone sandbox on loopback).
    admin_token: str | None = field(default=None, repr=False)
    fault: Fault = Fault.NONE  # see Fault
    fault_count: int = 1  # requests the fault applies to; 0 = every request until changed
    fault_delay_s: float | None = None  # None: FAULT_DELAY_DEFAULTS
    fault_retry_after_s: float = 2.0  # the Retry-After of rate_limit_429
    clock_offset_s: float = 0.0  # moves the data's clock (later lead versions become visible)
    # How the apiKey must come: "apikey" (header), "basic" (userName:apiKey), or "token" (a
    # bearer token from /ca_apis/CAToken/generateToken, CloudAgent's TOKEN_AUTH).
    auth_style: str = "apikey"
    field_style: FieldStyle = FieldStyle.CLOUDAGENT
    date_style: DateStyle = DateStyle.STANDARD

    def fault_delay(self) -> float:
        if self.fault_delay_s is not None:
            return self.fault_delay_s
        return FAULT_DELAY_DEFAULTS.get(self.fault, 0.0)

    def __post_init__(self) -> None:
        self.delivery = DeliveryVariant(self.delivery)
        self.error_style = ErrorStyle(self.error_style)
        self.field_style = _member(FieldStyle, self.field_style, "field_style")
        self.date_style = _member(DateStyle, self.date_style, "date_style")
        self.fault = Fault(self.fault)
        if self.fault_count < 0:
            raise ValueError("fault_count must be 0 (every request) or more")
        if self.fault_delay_s is not None and not 0 <= self.fault_delay_s <= 600:
            raise ValueError("fault_delay_s must be between 0 and 600")
        if not 0 <= self.fault_retry_after_s <= 3600:
            raise ValueError("fault_retry_after_s must be between 0 and 3600")
        if not 0 <= self.update_fraction <= 1:
            raise ValueError("update_fraction must be between 0 and 1")
        if abs(self.clock_offset_s) > 30 * 86400:
            raise ValueError("clock_offset_s must be within 30 days")
        if self.auth_style not in ("apikey", "basic", "token"):
            raise ValueError("auth_style must be apikey, basic or token")
        if self.rate_limit_http_status not in (200, 429):
            raise ValueError("rate_limit_http_status must be 200 or 429")
        if self.rate_limit < 1 or self.window_s <= 0:
            raise ValueError("rate_limit must be >= 1 and window_s > 0")
        if not self.api_key or not self.username:
            raise ValueError("the sandbox needs an api_key and a username")
        if self.public_base_url:
            self.public_base_url = self.public_base_url.rstrip("/")
