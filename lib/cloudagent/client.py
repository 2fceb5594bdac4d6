"""The Campaign Dial Status client: options, one POST per attempt, and the retries.

Shaped like notion-sdk-py: an options dataclass, a typed request, typed errors, bounded retries
that honour Retry-After. CloudAgent answers errors with HTTP 200 and a JSON body, so the body
decides, not the status code (A2, A3, A6-A8 in `lib/cloudagent/__init__.py`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from lib.cloudagent.errors import (
    MSG_APIKEY_INVALID,
    MSG_MAX_LIMIT,
    MSG_USERNAME_INVALID,
    CloudAgentError,
    CloudAgentTimeoutError,
    CloudAgentUnavailableError,
    RateLimitedError,
    RequestValidationError,
    UnexpectedResponseError,
    error_for_message,
)
from lib.cloudagent.ratelimit import OnWait, SlidingWindowLimiter
from lib.cloudagent.request import Accepted, DialStatusRequest, is_http_url, resolve_zone
from lib.config import DEFAULT_TIMEZONE, ConfigError, Settings

logger = logging.getLogger(__name__)


def excerpt(text: str, limit: int = 200) -> str:
    """The start of an answer, whitespace folded: enough to recognise it in an error."""
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


def _default_timeout() -> httpx.Timeout:
    return httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)


@dataclass(frozen=True)
class ClientOptions:
    api_url: str  # full URL including the path (lib/config.py DEFAULT_API_URL)
    username: str  # the CloudAgent account; also the rate limiter's key
    api_key: str = field(repr=False)
    timezone: str = DEFAULT_TIMEZONE  # the account's zone: dates are sent as its local time
    timeout: httpx.Timeout = field(default_factory=_default_timeout)
    max_retries: int = 3  # retries after the first attempt (so 4 sends at most)
    backoff_base_s: float = 1.0  # 5xx/connection/timeout: base * 2**retry, capped
    backoff_max_s: float = 30.0
    rate_limit_wait_s: float = 60.0  # "Max limit exceeded" without Retry-After and no limiter
    # A longer Retry-After ends the call at once (RateLimitedError or CloudAgentUnavailableError);
    # the limiter, if any, still holds the whole wait for the next send.
    max_retry_after_s: float = 300.0
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
        resolve_zone(self.timezone)  # raises for an unknown zone

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


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
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
            with self._slot(key, note=f"{campaign} (attempt {attempt + 1})"):
                outcome = self._send_once(body)
            if isinstance(outcome, Accepted):
                logger.info(
                    "CloudAgent accepted the request for campaign %r (uniqueId %s)",
                    campaign,
                    outcome.unique_id,
                )
                return outcome
            error = outcome.error
            # A wait the server imposed holds for the next send, whoever makes it: set it first.
            self._record_imposed_wait(key, outcome)
            too_long = (
                outcome.retry_after is not None
                and outcome.retry_after > self.options.max_retry_after_s
            )
            if outcome.rate_limited:
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
                if attempt >= self.options.max_retries or too_long:
                    # The last attempt's failure names the outcome (a timeout, or unreachable).
                    final_type = (
                        CloudAgentTimeoutError
                        if isinstance(error, CloudAgentTimeoutError)
                        else CloudAgentUnavailableError
                    )
                    raise final_type(
                        f"CloudAgent unavailable after {attempt + 1} attempt(s): {error.message}",
                        server_message=error.server_message,
                        http_status=error.http_status,
                    )
                self._wait_backoff(error, outcome.retry_after, attempt)
            attempt += 1

    # -- internals -----------------------------------------------------------------------------

    @contextmanager
    def _slot(self, key: str, note: str) -> Iterator[None]:
        """One send inside a limiter slot, held until its answer (or failure) comes back."""
        if self.limiter is None:
            yield
            return
        stamp = self.limiter.acquire(key, on_wait=self.options.on_wait, note=note)
        try:
            yield
        finally:
            self.limiter.answered(key, stamp)

    def _record_imposed_wait(self, key: str, outcome: _Retry) -> None:
        """ "Max limit exceeded" or a Retry-After blocks the account in the (durable) limiter for
        as long as the server said, uncapped, even when this call gives up: the next send of any
        caller waits for it. Without Retry-After, a rate limit assumes a full window."""
        if self.limiter is None or not (outcome.rate_limited or outcome.retry_after is not None):
            return
        seconds = outcome.retry_after if outcome.retry_after is not None else self.limiter.span_s
        what = MSG_MAX_LIMIT if outcome.rate_limited else outcome.error.message
        self.limiter.penalise(key, seconds, reason=f"CloudAgent answered {what}")

    def _announce_and_sleep(self, reason: str, seconds: float) -> None:
        logger.warning("waiting %.1f s: %s", seconds, reason)
        if self.options.on_wait is not None:
            self.options.on_wait(reason, seconds)
        self.options.sleep(seconds)

    def _wait_rate_limited(self, key: str, retry_after: float | None, attempt: int) -> None:
        retries = f"retry {attempt + 1} of {self.options.max_retries}"
        if self.limiter is not None:  # the penalty is set: the next acquire() waits, announced
            logger.warning("CloudAgent answered %s for account %r; %s", MSG_MAX_LIMIT, key, retries)
            return
        seconds = retry_after if retry_after is not None else self.options.rate_limit_wait_s
        self._announce_and_sleep(
            f"CloudAgent answered {MSG_MAX_LIMIT} for account {key}; {retries} in {seconds:.1f} s",
            seconds,
        )

    def _wait_backoff(self, error: CloudAgentError, retry_after: float | None, attempt: int):
        seconds = min(self.options.backoff_max_s, self.options.backoff_base_s * 2**attempt)
        if retry_after is not None and self.limiter is None:  # else the limiter holds the wait
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
                CloudAgentTimeoutError(f"CloudAgent did not answer in time ({type(exc).__name__})"),
                rate_limited=False,
            )
        except httpx.TransportError as exc:
            said = self._redact(str(exc), body)
            return _Retry(
                CloudAgentUnavailableError(
                    f"cannot reach CloudAgent ({type(exc).__name__}: {said})"
                ),
                rate_limited=False,
            )
        return self._interpret(response, body)

    def _redact(self, text: str, body: Mapping[str, str]) -> str:
        """The apiKey and the callback secret out of a text that is kept (errors are stored and
        shown): CloudAgent's answer, or a proxy's page, may echo what it was sent. The secret is
        callBackUrl's last path segment (lib/config.py), at least 16 characters long."""
        callback_path = urlsplit(str(body.get("callBackUrl", ""))).path.rstrip("/")
        secret = callback_path.rpartition("/")[2]
        for hidden in (self.options.api_key, secret if len(secret) >= 16 else ""):
            if hidden:
                text = text.replace(hidden, "***")
        return text

    def _interpret(self, response: httpx.Response, body: Mapping[str, str]) -> Accepted | _Retry:
        status = response.status_code
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        text = self._redact(response.text, body)
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
