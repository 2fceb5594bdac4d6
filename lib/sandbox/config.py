"""Sandbox configuration: account, campaigns, delivery variant, rate limit, clocks."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from lib.config import DEMO_CAMPAIGNS, DEMO_USERNAME


class DeliveryVariant(StrEnum):
    """How the records reach callBackUrl (the real shape is undocumented: cloudagent-api.md)."""

    JSON_DATA = "json_data"  # {"status","uniqueId","campaignName","data":[...]} as JSON
    FORM_DATA = "form_data"  # data=<that JSON>, form-encoded (CloudAgent's per-call callback)
    JSON_DETAILS = "json_details"  # records under "details"
    JSON_RECORDS = "json_records"  # records under "records"
    SINGLE_RECORD = "single_record"  # one POST per record, the record object as the body
    CSV_LINK = "csv_link"  # {"uniqueId","campaignName","fileUrl": .../files/<token>.csv}
    JSON_LINK = "json_link"  # the same with a .json file holding a top-level array


class ErrorStyle(StrEnum):
    JSON = "json"  # {"status": "error", "message": ..., "uniqueId": ""}
    DOC_QUOTED = "doc_quoted"  # "{""status"": ""error"", ...}" as printed on the vendor page


# A few thousand leads per demo campaign; sizes differ so the charts differ.
DEMO_CAMPAIGN_SIZES = (4000, 2500, 3200, 1500)


def default_campaigns() -> dict[str, int]:
    return dict(zip(DEMO_CAMPAIGNS, DEMO_CAMPAIGN_SIZES, strict=True))


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
    timezone: str = "Asia/Kolkata"  # the account's zone: dates on the wire are its wall clock
    delivery_delay_s: float = 0.2  # between the answer and the callback
    callback_timeout_s: float = 60.0
    single_record_cap: int = 500  # single_record posts at most this many records
    error_style: ErrorStyle = ErrorStyle.JSON
    update_horizon_h: float = 6.0  # second versions of leads appear over these hours
    files_dir: Path | None = None  # link variants' files; None: a temporary folder
    max_files: int = 20  # older link files are deleted
    max_log_entries: int = 10_000
    admin_routes: bool = True  # /_sandbox/* (request log, deliveries, runtime config)

    def __post_init__(self) -> None:
        self.delivery = DeliveryVariant(self.delivery)
        self.error_style = ErrorStyle(self.error_style)
        if self.rate_limit_http_status not in (200, 429):
            raise ValueError("rate_limit_http_status must be 200 or 429")
        if self.rate_limit < 1 or self.window_s <= 0:
            raise ValueError("rate_limit must be >= 1 and window_s > 0")
        if not self.api_key or not self.username:
            raise ValueError("the sandbox needs an api_key and a username")
        if self.public_base_url:
            self.public_base_url = self.public_base_url.rstrip("/")
