"""Every error the Campaign Dial Status client raises, and CloudAgent's documented messages.

One module, like notion-sdk-py's `errors.py`: callers catch by type, never by message text.
CloudAgent answers errors with HTTP 200 and a JSON message, so `error_for_message` maps that
message to its type (A6, A7 in `lib/cloudagent/__init__.py`).
"""

from __future__ import annotations

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


class CloudAgentTimeoutError(CloudAgentUnavailableError):
    """Retries ran out and the last attempt timed out (httpx raised a timeout)."""


class UnexpectedResponseError(CloudAgentError):
    """An answer that is not the documented JSON envelope; `excerpt` is its start (<=200 chars)."""

    def __init__(self, message: str, *, excerpt: str = "", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.excerpt = excerpt


def _folded(text: str) -> str:
    return " ".join(text.lower().split())


def _is_callback_message(message: str) -> bool:
    return _folded(message).startswith("callbackurl")


def _is_rate_limit_message(message: str) -> bool:
    return "max limit" in _folded(message)


# Server message (case and spacing folded) -> exception type. The callBackUrl message is matched
# by its start so a change of quote characters on the server does not lose the mapping.
ERROR_TYPES: tuple[tuple[Callable[[str], bool], type[CloudAgentError]], ...] = (
    (lambda m: _folded(m) == _folded(MSG_APIKEY_INVALID), InvalidApiKeyError),
    (lambda m: _folded(m) == _folded(MSG_AUTH_FAILED), AuthenticationError),
    (lambda m: _folded(m) == _folded(MSG_USERNAME_INVALID), InvalidUserNameError),
    (lambda m: _folded(m) == _folded(MSG_CAMPAIGN_INVALID), InvalidCampaignError),
    (_is_callback_message, InvalidCallbackUrlError),
    (_is_rate_limit_message, RateLimitedError),
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
