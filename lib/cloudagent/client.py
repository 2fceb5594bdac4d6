"""HTTP client for CloudAgent's Campaign Dial Status API (sync httpx).

Shaped like notion-sdk-py: an options dataclass, a typed request, typed errors, bounded retries
that honour Retry-After. CloudAgent answers errors with HTTP 200 and a JSON body, so the body
decides, not the status code.

ASSUMPTIONS about the real API (vendor page: shared/reference/campaign-dial-status-api.txt;
C = documented, I = inferred, S = seen in a sibling CloudAgent API). Each is used in one place:
  A1 (I) URL path `/endpoint/dailer/data/preview/download`: lib/config.py API_PATH; configurable.
  A2 (I) auth: header `apiKey`, `userName` in the body: `_send_once`.
  A3 (I) body: a JSON object of strings: `DialStatusRequest.to_body`, `_send_once`.
  A4 (C) parameter names and values: `LeadStatus`, `DialStatusFilter`, `SortBy`, `to_body`.
  A5 (C) dates `YYYY-MM-DD HH:MM:SS` in the account's local time (I: no zone, local):
         `_format_local`; `ClientOptions.timezone`.
  A6 (C) messages below; (I) they come with HTTP 200: `ERROR_TYPES`, `_interpret`.
  A7 (S) 11th request in a minute: "Max limit exceeded", HTTP 200 or 429: `_is_rate_limit`.
  A8 (I) success: `{"status":"success","message":...,"uniqueId":...}`: `_interpret`.
  A9 (C) 10 requests per minute: lib/ratelimit.py (sliding 60 s per account is our reading).
  A10 (I) fromDate/toDate/sortby optional (no star on the vendor page); with sortby 1 or 2 the
         dates are required (our reading of "considering the created/updated date").
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx

from lib.cloudagent.ratelimit import OnWait, SlidingWindowLimiter
from lib.config import ConfigError, Settings

logger = logging.getLogger(__name__)

API_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

# Documented answers (vendor page, copied exactly; the curly quotes are the vendor's).
MSG_APIKEY_INVALID = "apiKey is invalid"
MSG_AUTH_FAILED = "Authentication failed"
MSG_USERNAME_INVALID = "userName is invalid"
MSG_CAMPAIGN_INVALID = "campaignName is invalid"
MSG_CALLBACK_INVALID = (
    "callBackUrl cannot be empty (OR) it should contain ‘http://test.com/’ or 'https://test.com/"
)
MSG_MAX_LIMIT = "Max limit exceeded"  # sibling APIs (S); not on the vendor page


# -- request vocabulary ------------------------------------------------------------------------


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


# -- errors --------------------------------------------------------------------------------------


class CloudAgentError(Exception):
    """Any failure of a Campaign Dial Status request. `server_message` is CloudAgent's text."""

    def __init__(
        self, message: str, *, server_message: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.server_message = server_message
        self.http_status = http_status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class RequestValidationError(CloudAgentError, ValueError):
    """The request was refused on our side before sending; the message says which parameter."""


class InvalidApiKeyError(CloudAgentError):
    """apiKey header missing, empty or misnamed."""


class AuthenticationError(CloudAgentError):
    """The apiKey or userName value is wrong."""


class InvalidUserNameError(CloudAgentError):
    """userName missing or empty."""


class InvalidCampaignError(CloudAgentError):
    """campaignName missing, empty or unknown to the account."""


class InvalidCallbackUrlError(CloudAgentError):
    """callBackUrl missing, empty or not an http(s) URL."""


class RateLimitedError(CloudAgentError):
    """Still "Max limit exceeded" (or HTTP 429) after every retry. `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class CloudAgentUnavailableError(CloudAgentError):
    """Connection errors, timeouts or 5xx answers on every attempt."""


class UnexpectedResponseError(CloudAgentError):
    """An answer that is not the documented JSON envelope; `excerpt` is its start (<=200 chars)."""

    def __init__(self, message: str, *, excerpt: str = "", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.excerpt = excerpt


def _folded(text: str) -> str:
    return " ".join(text.lower().split())


def _is_callback_message(message: str) -> bool:
    return _folded(message).startswith("callbackurl")


def _is_rate_limit(message: str) -> bool:
    return "max limit" in _folded(message)


# Server message (case and spacing folded) -> exception type. The callBackUrl message is matched
# by its start so a change of quote characters on the server does not lose the mapping.
ERROR_TYPES: tuple[tuple[Callable[[str], bool], type[CloudAgentError]], ...] = (
    (lambda m: _folded(m) == _folded(MSG_APIKEY_INVALID), InvalidApiKeyError),
    (lambda m: _folded(m) == _folded(MSG_AUTH_FAILED), AuthenticationError),
    (lambda m: _folded(m) == _folded(MSG_USERNAME_INVALID), InvalidUserNameError),
    (lambda m: _folded(m) == _folded(MSG_CAMPAIGN_INVALID), InvalidCampaignError),
    (_is_callback_message, InvalidCallbackUrlError),
    (_is_rate_limit, RateLimitedError),
)


def error_for_message(message: str, *, http_status: int | None = None) -> CloudAgentError:
    """The typed exception for an error message CloudAgent sent (CloudAgentError if unknown)."""
    for matches, error_type in ERROR_TYPES:
        if matches(message):
            return error_type(message, server_message=message, http_status=http_status)
    return CloudAgentError(
        f"CloudAgent refused the request: {message}",
        server_message=message,
        http_status=http_status,
    )


def excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_answer(text: str) -> dict:
    """Parses CloudAgent's answer envelope. Accepts plain JSON, JSON encoded twice, and the
    doubled-quote form the vendor page shows (`"{""status"": ""error"", ...}"`).

    Raises UnexpectedResponseError (with a short excerpt) for anything else.
    """
    candidates = [text.strip()]
    stripped = candidates[0]
    if len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"' and '""' in stripped:
        candidates.append(stripped[1:-1].replace('""', '"'))
    for candidate in candidates:
        try:
            value = json.loads(candidate)
            if isinstance(value, str):  # JSON text inside a JSON string
                value = json.loads(value)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    raise UnexpectedResponseError(
        f"CloudAgent sent an answer that is not the expected JSON: {excerpt(text)!r}",
        excerpt=excerpt(text),
    )


def redact_url(url: str) -> str:
    """scheme://host[:port]/path with the last path segment (the callback secret) as ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not parts.netloc:
        return "<invalid url>" if url else ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    path = parts.path
    if path.strip("/"):
        head, _, _ = path.rstrip("/").rpartition("/")
        path = head + "/***"
    return urlunsplit((parts.scheme, host, path, "", ""))


# -- the request ---------------------------------------------------------------------------------


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


def _zone(timezone: str | tzinfo) -> tzinfo:
    return ZoneInfo(timezone) if isinstance(timezone, str) else timezone


def _local_naive(value: datetime, timezone: str | tzinfo) -> datetime:
    """Naive datetimes are already account-local; aware ones are converted to the account zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=None)
    return value.astimezone(_zone(timezone)).replace(tzinfo=None)


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

    def validate(self, timezone: str | tzinfo = "Asia/Kolkata") -> None:
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
                    f"fromDate ({start:%Y-%m-%d %H:%M:%S}) is after toDate "
                    f"({end:%Y-%m-%d %H:%M:%S})"
                )

    def to_body(self, username: str, timezone: str | tzinfo = "Asia/Kolkata") -> dict[str, str]:
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
        self, username: str, timezone: str | tzinfo = "Asia/Kolkata"
    ) -> dict[str, str]:
        """`to_body` with the callback secret replaced by *** (for logs and the request table)."""
        body = self.to_body(username, timezone)
        body["callBackUrl"] = redact_url(body["callBackUrl"])
        return body


@dataclass(frozen=True)
class Accepted:
    """CloudAgent queued the job; the records arrive later at callBackUrl."""

    unique_id: str | None
    message: str


# -- options and client --------------------------------------------------------------------------


def _default_timeout() -> httpx.Timeout:
    return httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)


@dataclass(frozen=True)
class ClientOptions:
    api_url: str  # full URL including the path (lib/config.py DEFAULT_API_URL)
    username: str  # the CloudAgent account; also the rate limiter's key
    api_key: str = field(repr=False)
    timezone: str = "Asia/Kolkata"  # the account's zone: dates are sent as its local time
    timeout: httpx.Timeout = field(default_factory=_default_timeout)
    max_retries: int = 3  # retries after the first attempt (so 4 sends at most)
    backoff_base_s: float = 1.0  # 5xx/connection/timeout: base * 2**retry, capped
    backoff_max_s: float = 30.0
    rate_limit_wait_s: float = 60.0  # "Max limit exceeded" without Retry-After and no limiter
    max_retry_after_s: float = 300.0  # a longer Retry-After is not waited for: RateLimitedError
    limiter: SlidingWindowLimiter | None = None
    on_wait: OnWait | None = None
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    user_agent: str = "dialstatus-dashboard/0.1"

    def __post_init__(self) -> None:
        if not is_http_url(self.api_url):
            raise ConfigError(
                f"the CloudAgent API URL must be an http(s) URL, got {self.api_url!r}"
            )
        if self.max_retries < 0:
            raise ConfigError("max_retries must not be negative")
        _zone(self.timezone)  # raises for an unknown zone

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        api_url_override: str | None = None,
        **overrides,
    ) -> ClientOptions:
        """Options from the loaded settings; `api_url_override` (e.g. the demo sandbox) wins."""
        api_url = api_url_override or settings.cloudagent.api_url
        if not api_url:
            raise ConfigError(
                "no CloudAgent API URL: in demo mode pass api_url_override (the sandbox address)"
            )
        return cls(
            api_url=api_url,
            username=settings.cloudagent.username,
            api_key=settings.cloudagent.api_key,
            timezone=settings.timezone,
            **overrides,
        )

    def with_api_key(self, api_key: str) -> ClientOptions:
        return replace(self, api_key=api_key)


def _retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


@dataclass
class _Retry:
    """One failed attempt that may be retried."""

    error: CloudAgentError
    rate_limited: bool
    retry_after: float | None = None


class CloudAgentClient:
    """Sends Campaign Dial Status requests. Thread-safe: httpx.Client is, and state is read-only.

    `limiter` (or `options.limiter`) is acquired with key = account before every send, retries
    included, so every caller sharing the limiter stays within CloudAgent's limit together.
    """

    def __init__(
        self, options: ClientOptions, *, limiter: SlidingWindowLimiter | None = None
    ) -> None:
        self.options = options
        self.limiter = limiter if limiter is not None else options.limiter
        self._http = httpx.Client(
            timeout=options.timeout,
            transport=options.transport,
            headers={"User-Agent": options.user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return (
            f"CloudAgentClient(api_url={self.options.api_url!r}, "
            f"username={self.options.username!r})"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CloudAgentClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- public calls ------------------------------------------------------------------------

    def request_dial_status(self, request: DialStatusRequest) -> Accepted:
        """Validates and sends one request; returns Accepted or raises a CloudAgentError."""
        if not self.options.api_key:
            raise RequestValidationError(f"{MSG_APIKEY_INVALID}: no API key is configured")
        if not self.options.username.strip():
            raise RequestValidationError(MSG_USERNAME_INVALID)
        request.validate(self.options.timezone)
        body = request.to_body(self.options.username, self.options.timezone)
        return self.send(body)

    def send(self, body: Mapping[str, str]) -> Accepted:
        """Sends `body` exactly as given (no validation), with retries. Low level: for probing
        the real API and for tests that need to send what `request_dial_status` would refuse."""
        key = self.options.username
        campaign = body.get("campaignName", "")
        attempt = 0
        while True:
            self._acquire(key)
            outcome = self._send_once(body)
            if isinstance(outcome, Accepted):
                logger.info(
                    "CloudAgent accepted the request for campaign %r (uniqueId %s)",
                    campaign,
                    outcome.unique_id,
                )
                return outcome
            error = outcome.error
            if outcome.rate_limited:
                too_long = (
                    outcome.retry_after is not None
                    and outcome.retry_after > self.options.max_retry_after_s
                )
                if attempt >= self.options.max_retries or too_long:
                    raise RateLimitedError(
                        f"CloudAgent rate limit still reached after {attempt + 1} attempt(s): "
                        f"{error.server_message or error.message}",
                        retry_after=outcome.retry_after,
                        server_message=error.server_message,
                        http_status=error.http_status,
                    )
                self._wait_rate_limited(key, outcome.retry_after, attempt)
            else:
                if attempt >= self.options.max_retries:
                    raise CloudAgentUnavailableError(
                        f"CloudAgent unavailable after {attempt + 1} attempt(s): {error.message}",
                        server_message=error.server_message,
                        http_status=error.http_status,
                    )
                self._wait_backoff(error, outcome.retry_after, attempt)
            attempt += 1

    # -- internals -----------------------------------------------------------------------------

    def _acquire(self, key: str) -> None:
        if self.limiter is not None:
            self.limiter.acquire(key, on_wait=self.options.on_wait)

    def _announce_and_sleep(self, reason: str, seconds: float) -> None:
        logger.warning("waiting %.1f s: %s", seconds, reason)
        if self.options.on_wait is not None:
            self.options.on_wait(reason, seconds)
        self.options.sleep(seconds)

    def _wait_rate_limited(self, key: str, retry_after: float | None, attempt: int) -> None:
        retries = f"retry {attempt + 1} of {self.options.max_retries}"
        if self.limiter is not None:
            # Without Retry-After the server's window is unknown: assume it is full for a window.
            seconds = retry_after if retry_after is not None else self.limiter.span_s
            logger.warning(
                "CloudAgent answered %s for account %r; %s after %.1f s",
                MSG_MAX_LIMIT,
                key,
                retries,
                seconds,
            )
            self.limiter.penalise(key, seconds, reason=f"CloudAgent answered {MSG_MAX_LIMIT}")
            return  # the next acquire() waits, and announces the wait
        seconds = retry_after if retry_after is not None else self.options.rate_limit_wait_s
        self._announce_and_sleep(
            f"CloudAgent answered {MSG_MAX_LIMIT} for account {key}; {retries} in {seconds:.1f} s",
            seconds,
        )

    def _wait_backoff(self, error: CloudAgentError, retry_after: float | None, attempt: int):
        seconds = min(self.options.backoff_max_s, self.options.backoff_base_s * 2**attempt)
        if retry_after is not None:
            seconds = min(max(seconds, retry_after), self.options.max_retry_after_s)
        self._announce_and_sleep(
            f"{error.message}; retry {attempt + 1} of {self.options.max_retries} "
            f"in {seconds:.1f} s",
            seconds,
        )

    def _send_once(self, body: Mapping[str, str]) -> Accepted | _Retry:
        """One POST. Returns Accepted or a retryable failure; raises final errors."""
        content = json.dumps(dict(body)).encode("utf-8")
        headers = {"apiKey": self.options.api_key, "Content-Type": "application/json"}
        try:
            response = self._http.post(self.options.api_url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            return _Retry(
                CloudAgentUnavailableError(
                    f"CloudAgent did not answer in time ({type(exc).__name__})"
                ),
                rate_limited=False,
            )
        except httpx.TransportError as exc:
            return _Retry(
                CloudAgentUnavailableError(
                    f"cannot reach CloudAgent ({type(exc).__name__}: {self._redact(str(exc))})"
                ),
                rate_limited=False,
            )
        return self._interpret(response)

    def _redact(self, text: str) -> str:
        key = self.options.api_key
        return text.replace(key, "***") if key else text

    def _interpret(self, response: httpx.Response) -> Accepted | _Retry:
        status = response.status_code
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        text = self._redact(response.text)
        if status == 429:
            message = MSG_MAX_LIMIT
            with suppress(UnexpectedResponseError):
                message = str(parse_answer(text).get("message") or MSG_MAX_LIMIT)
            return _Retry(
                RateLimitedError(message, server_message=message, http_status=status),
                rate_limited=True,
                retry_after=retry_after,
            )
        if status >= 500:
            return _Retry(
                CloudAgentUnavailableError(
                    f"CloudAgent answered HTTP {status}", http_status=status
                ),
                rate_limited=False,
                retry_after=retry_after,
            )
        try:
            answer = parse_answer(text)
        except UnexpectedResponseError as error:
            raise UnexpectedResponseError(
                f"HTTP {status}: {error.message}", excerpt=error.excerpt, http_status=status
            ) from None
        state = str(answer.get("status", "")).strip().lower()
        message = str(answer.get("message") or "")
        if state == "success" and 200 <= status < 300:
            unique_id = answer.get("uniqueId")
            return Accepted(unique_id=str(unique_id) if unique_id else None, message=message)
        if state == "error" or (message and state != "success"):
            error = error_for_message(message, http_status=status)
            if isinstance(error, RateLimitedError):
                return _Retry(error, rate_limited=True, retry_after=retry_after)
            raise error
        raise UnexpectedResponseError(
            f"HTTP {status}: CloudAgent sent an answer without a known status: {excerpt(text)!r}",
            excerpt=excerpt(text),
            http_status=status,
        )
