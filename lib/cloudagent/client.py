"""The Campaign Dial Status client: options, one POST per attempt in the configured shape
(a JSON body, a form body or the query string; the apiKey header, HTTP Basic or a TOKEN_AUTH
bearer token), and the retries.

Shaped like notion-sdk-py: an options dataclass, a typed request, typed errors, bounded retries
that honour Retry-After. CloudAgent answers errors with HTTP 200 and a JSON body, so the body
decides, not the status code (A2, A3, A6-A8 in `lib/cloudagent/__init__.py`).
"""

from __future__ import annotations

import base64
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
    TokenRejectedError,
    UnexpectedResponseError,
    error_for_message,
    excerpt,
    parse_answer,
)
from lib.cloudagent.ratelimit import OnWait, SlidingWindowLimiter
from lib.cloudagent.request import Accepted, DialStatusRequest, is_http_url, resolve_zone
from lib.cloudagent.token import (
    RENEW_BEFORE_S,
    TOKEN_LIFETIME_S,
    TOKENS,
    TokenCache,
    generate_token,
    token_url_for,
)
from lib.config import AUTH_STYLES, DEFAULT_TIMEZONE, REQUEST_ENCODINGS, ConfigError, Settings

logger = logging.getLogger(__name__)


class _HideQueryParameters(logging.Filter):
    """httpx logs every request URL at INFO; with request_encoding "query" the URL carries the
    parameters, callBackUrl's secret among them. Logs such URLs without their query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=b"***")
                if isinstance(arg, httpx.URL) and b"callBackUrl=" in arg.query
                else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideQueryParameters())


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
    # How a request travels (A2, A3): json | form (x-www-form-urlencoded) | query (no body);
    # apikey (the apiKey header) | basic (userName:apiKey) | token (TOKEN_AUTH, token.py).
    request_encoding: str = "json"
    auth_style: str = "apikey"
    token_url: str | None = None  # None: beside api_url (token.py `token_url_for`)
    token_lifetime_s: float = TOKEN_LIFETIME_S
    token_renew_before_s: float = RENEW_BEFORE_S
    tokens: TokenCache | None = field(default=None, repr=False)  # None: the process's TOKENS

    def __post_init__(self) -> None:
        if not is_http_url(self.api_url):
            raise ConfigError(
                f"the CloudAgent API URL must be an http(s) URL, got {self.api_url!r}"
            )
        if self.max_retries < 0:
            raise ConfigError("max_retries must not be negative")
        if self.request_encoding not in REQUEST_ENCODINGS:
            raise ConfigError(
                f"request_encoding must be one of {', '.join(REQUEST_ENCODINGS)}, "
                f"got {self.request_encoding!r}"
            )
        if self.auth_style not in AUTH_STYLES:
            raise ConfigError(
                f"auth_style must be one of {', '.join(AUTH_STYLES)}, got {self.auth_style!r}"
            )
        if self.token_url is not None and not is_http_url(self.token_url):
            raise ConfigError(f"the token URL must be an http(s) URL, got {self.token_url!r}")
        if not 0 <= self.token_renew_before_s < self.token_lifetime_s:
            raise ConfigError("token_renew_before_s must be at least 0 and under the lifetime")
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
            **{
                "request_encoding": settings.cloudagent.request_encoding,
                "auth_style": settings.cloudagent.auth_style,
                **overrides,
            },
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
    """Sends Campaign Dial Status requests. Thread-safe: httpx.Client is, the token cache locks,
    and the rest is read-only.

    `limiter` (or `options.limiter`) is acquired with key = account before every send, retries
    included, so every caller sharing the limiter stays within CloudAgent's limit together. The
    token API is another API: its requests never take a limiter slot, only the token budget.
    """

    def __init__(
        self, options: ClientOptions, *, limiter: SlidingWindowLimiter | None = None
    ) -> None:
        self.options = options
        self.limiter = limiter if limiter is not None else options.limiter
        self.tokens = options.tokens if options.tokens is not None else TOKENS
        self.token_url = options.token_url or token_url_for(options.api_url)
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

    def prepare(self, request: DialStatusRequest) -> dict[str, str]:
        """The request's parameters, validated (RequestValidationError: nothing to send)."""
        if not self.options.api_key:
            raise RequestValidationError(f"{MSG_APIKEY_INVALID}: no API key is configured")
        if not self.options.username.strip():
            raise RequestValidationError(MSG_USERNAME_INVALID)
        request.validate(self.options.timezone)
        return request.to_body(self.options.username, self.options.timezone)

    def request_dial_status(self, request: DialStatusRequest) -> Accepted:
        """Validates and sends one request; returns Accepted or raises a CloudAgentError."""
        return self.send(self.prepare(request))

    def attempt(self, body: Mapping[str, str]) -> Accepted:
        """One send of `body`, through the limiter: no retry, no second token (the connection
        probe). Raises the CloudAgentError of the attempt; a transport failure is its cause."""
        outcome = self._attempt(body, note=f"{body.get('campaignName', '')} (check)")
        if isinstance(outcome, Accepted):
            return outcome
        self._record_imposed_wait(self.options.username, outcome)
        raise outcome.error

    def send(self, body: Mapping[str, str]) -> Accepted:
        """Sends `body` exactly as given (no validation), with retries. Low level: for probing
        the real API and for tests that need to send what `request_dial_status` would refuse.
        A token the API refuses is dropped and one new token is tried (not counted a retry)."""
        key = self.options.username
        campaign = body.get("campaignName", "")
        attempt = 0
        renewed = False
        while True:
            try:
                outcome = self._attempt(body, note=f"{campaign} (attempt {attempt + 1})")
            except TokenRejectedError:
                if renewed or self.options.auth_style != "token":
                    raise
                renewed = True
                logger.warning("CloudAgent refused the token of account %r: a new one", key)
                continue
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
                        answer=error.answer,
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
                        answer=error.answer,
                        stage=error.stage,
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

    def _attempt(self, body: Mapping[str, str], note: str) -> Accepted | _Retry:
        """The auth (a token first, outside the limiter), then one POST in a limiter slot.
        Returns Accepted or a retryable failure; raises final errors."""
        stage, token = "token", None
        try:
            headers, token = self._auth()
            stage = "request"
            with self._slot(self.options.username, note):
                response = self._post(body, headers)
        except httpx.TransportError as exc:
            return _Retry(self._transport_error(exc, body, stage), rate_limited=False)
        except CloudAgentUnavailableError as error:  # the token URL answered 5xx
            return _Retry(error, rate_limited=False)
        try:
            return self._interpret(response, body, token)
        except TokenRejectedError:
            if token is not None:
                self.tokens.drop(self.token_url, self.options.username, token)
            raise

    def _auth(self) -> tuple[dict[str, str], str | None]:
        """The auth headers of the configured style (A2, T5) and the token they carry."""
        options = self.options
        if options.auth_style == "apikey":
            return {"apiKey": options.api_key}, None
        if options.auth_style == "basic":
            return {"Authorization": f"Basic {self._basic_credentials()}"}, None
        token = self.tokens.token(
            self.token_url,
            options.username,
            options.api_key,
            lambda: generate_token(self._http, self.token_url, options.username, options.api_key),
            lifetime_s=options.token_lifetime_s,
            renew_before_s=options.token_renew_before_s,
        )
        return {"apiKey": options.api_key, "Authorization": f"Bearer {token}"}, token

    def _basic_credentials(self) -> str:
        pair = f"{self.options.username}:{self.options.api_key}".encode()
        return base64.b64encode(pair).decode("ascii")

    def _post(self, body: Mapping[str, str], headers: dict[str, str]) -> httpx.Response:
        """One POST with the parameters as a JSON body, a form body or the query string (A3)."""
        fields, url = dict(body), self.options.api_url
        if self.options.request_encoding == "form":
            return self._http.post(url, data=fields, headers=headers)
        if self.options.request_encoding == "query":
            return self._http.post(url, params=fields, headers=headers)
        content = json.dumps(fields).encode("utf-8")
        return self._http.post(
            url, content=content, headers={**headers, "Content-Type": "application/json"}
        )

    def _transport_error(
        self, exc: httpx.TransportError, body: Mapping[str, str], stage: str
    ) -> CloudAgentError:
        """The failure in words, secrets out; `exc` stays its cause (the probe reads it)."""
        where = " while generating the token" if stage == "token" else ""
        if isinstance(exc, httpx.TimeoutException):
            error = CloudAgentTimeoutError(
                f"CloudAgent did not answer in time ({type(exc).__name__}){where}", stage=stage
            )
        else:
            said = self.redact(str(exc), body)
            error = CloudAgentUnavailableError(
                f"cannot reach CloudAgent ({type(exc).__name__}: {said}){where}", stage=stage
            )
        error.__cause__ = exc
        return error

    def redact(self, text: str, body: Mapping[str, str], token: str | None = None) -> str:
        """The apiKey, the token and the callback secret out of a text that is kept (errors are
        stored and shown): CloudAgent's answer, or a proxy's page, may echo what it was sent.
        The secret is callBackUrl's last path segment (lib/config.py), 16 characters or more."""
        callback_path = urlsplit(str(body.get("callBackUrl", ""))).path.rstrip("/")
        secret = callback_path.rpartition("/")[2]
        hidden = [self.options.api_key, token, secret if len(secret) >= 16 else ""]
        if self.options.api_key and self.options.auth_style == "basic":
            hidden.append(self._basic_credentials())
        for value in hidden:
            if value:
                text = text.replace(value, "***")
        return text

    def _interpret(
        self, response: httpx.Response, body: Mapping[str, str], token: str | None
    ) -> Accepted | _Retry:
        status = response.status_code
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        text = self.redact(response.text, body, token)
        details = {"http_status": status, "answer": excerpt(text)}
        if status == 429:
            message = MSG_MAX_LIMIT
            with suppress(UnexpectedResponseError):
                message = str(parse_answer(text).get("message") or MSG_MAX_LIMIT)
            return _Retry(
                RateLimitedError(
                    message, server_message=message, retry_after=retry_after, **details
                ),
                rate_limited=True,
                retry_after=retry_after,
            )
        if status >= 500:
            return _Retry(
                CloudAgentUnavailableError(f"CloudAgent answered HTTP {status}", **details),
                rate_limited=False,
                retry_after=retry_after,
            )
        try:
            answer = parse_answer(text)
        except UnexpectedResponseError as error:
            raise UnexpectedResponseError(
                f"HTTP {status}: {error.message}", excerpt=error.excerpt, **details
            ) from None
        state = str(answer.get("status", "")).strip().lower()
        message = str(answer.get("message") or "")
        if state == "success" and 200 <= status < 300:
            unique_id = answer.get("uniqueId")
            return Accepted(
                unique_id=str(unique_id) if unique_id else None,
                message=message,
                answer=details["answer"],
            )
        if state in ("error", "false") or (message and state != "success"):
            error = error_for_message(message, **details)
            if isinstance(error, RateLimitedError):
                error.retry_after = retry_after
                return _Retry(error, rate_limited=True, retry_after=retry_after)
            raise error
        raise UnexpectedResponseError(
            f"HTTP {status}: CloudAgent sent an answer without a known status: {excerpt(text)!r}",
            excerpt=excerpt(text),
            **details,
        )
