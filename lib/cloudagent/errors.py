"""Every error the Campaign Dial Status client raises, and CloudAgent's documented messages.

One module, like notion-sdk-py's `errors.py`: callers catch by type, never by message text.
CloudAgent answers errors with HTTP 200 and a JSON message, so `error_for_message` maps that
message to its type (A6, A7 in `lib/cloudagent/__init__.py`). `parse_answer` reads the envelope
(the Dial Status API's and the token API's alike).
"""

from __future__ import annotations

import json
from collections.abc import Callable

# Documented answers (vendor page, copied exactly; the curly quotes are the vendor's).
MSG_APIKEY_INVALID = "apiKey is invalid"
MSG_AUTH_FAILED = "Authentication failed"
MSG_USERNAME_INVALID = "userName is invalid"
MSG_CAMPAIGN_INVALID = "campaignName is invalid"
MSG_CALLBACK_INVALID = (
    "callBackUrl cannot be empty (OR) it should contain ‘http://test.com/’ or 'https://test.com/"
)
MSG_MAX_LIMIT = "Max limit exceeded"  # sibling APIs (S); not on the vendor page
# The token API's answers (its vendor page, C; lib/cloudagent/token.py). "Token Expired" is what
# an API answers to an expired token; "Invalid Token" (I) what it answers to one it never issued.
MSG_TOKEN_USERNAME_NULL = "UserName is null"  # noqa: S105 (answers, not secrets)
MSG_TOKEN_CREDENTIALS = "Invalid userName or apiKey"  # noqa: S105
MSG_TOKEN_EXPIRED = "Token Expired"  # noqa: S105
MSG_TOKEN_INVALID = "Invalid Token"  # noqa: S105


class CloudAgentError(Exception):
    """Any failure of a Campaign Dial Status request. `server_message` is CloudAgent's text;
    `answer` the start of its answer, secrets removed; `stage` is "token" when generating the
    TOKEN_AUTH token failed, else "request"."""

    def __init__(
        self,
        message: str,
        *,
        server_message: str | None = None,
        http_status: int | None = None,
        answer: str = "",
        stage: str = "request",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.server_message = server_message
        self.http_status = http_status
        self.answer = answer
        self.stage = stage

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


class TokenRejectedError(AuthenticationError):
    """The API refused the bearer token: expired, superseded by a newer one, or never issued."""


class TokenLimitError(RequestValidationError):
    """No token: 10 were generated for the account in the last hour (CloudAgent's limit), so
    nothing was sent. `retry_after`: seconds until the next may be generated (None: unknown)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


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


class CloudAgentTimeoutError(CloudAgentUnavailableError):
    """Retries ran out and the last attempt timed out (httpx raised a timeout)."""


class UnexpectedResponseError(CloudAgentError):
    """An answer that is not the documented JSON envelope; `excerpt` is its start (<=200 chars)."""

    def __init__(self, message: str, *, excerpt: str = "", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.excerpt = excerpt


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


def _folded(text: str) -> str:
    return " ".join(text.lower().split())


def _is_callback_message(message: str) -> bool:
    return _folded(message).startswith("callbackurl")


def _is_rate_limit_message(message: str) -> bool:
    return "max limit" in _folded(message)


def _is_token_message(message: str) -> bool:
    """ "Token Expired", "Invalid Token" and their like: the bearer token was not accepted."""
    folded = _folded(message)
    return "token" in folded and ("expired" in folded or "valid" in folded)


def _is(text: str) -> Callable[[str], bool]:
    return lambda message: _folded(message) == _folded(text)


# Server message (case and spacing folded) -> exception type. The callBackUrl message is matched
# by its start so a change of quote characters on the server does not lose the mapping.
ERROR_TYPES: tuple[tuple[Callable[[str], bool], type[CloudAgentError]], ...] = (
    (_is(MSG_APIKEY_INVALID), InvalidApiKeyError),
    (_is(MSG_AUTH_FAILED), AuthenticationError),
    (_is(MSG_USERNAME_INVALID), InvalidUserNameError),
    (_is(MSG_CAMPAIGN_INVALID), InvalidCampaignError),
    (_is_callback_message, InvalidCallbackUrlError),
    (_is_rate_limit_message, RateLimitedError),
    (_is(MSG_TOKEN_USERNAME_NULL), InvalidUserNameError),
    (_is(MSG_TOKEN_CREDENTIALS), AuthenticationError),
    (_is_token_message, TokenRejectedError),
)


def error_for_message(message: str, **details) -> CloudAgentError:
    """The typed exception for an error message CloudAgent sent (CloudAgentError if unknown);
    `details` are CloudAgentError's keyword arguments (http_status, answer, stage)."""
    for matches, error_type in ERROR_TYPES:
        if matches(message):
            return error_type(message, server_message=message, **details)
    return CloudAgentError(
        f"CloudAgent refused the request: {message}", server_message=message, **details
    )
