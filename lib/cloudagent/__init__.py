"""CloudAgent's Campaign Dial Status API: the request, the client, its errors, the rate limiter.

    errors.py     every error class, CloudAgent's documented messages, its answer envelope
    request.py    the request model, its validation and its parameters
    client.py     ClientOptions, CloudAgentClient, its request shapes and its retries
    token.py      TOKEN_AUTH: the bearer token per account, its cache and its hourly budget
    ratelimit.py  the sliding-window limiter shared by every caller of one account
    probe.py      the connection check's one request, classified in plain words

It imports neither `lib.store` nor `lib.view`. The client is tested against `lib.sandbox`, which
never imports it.

ASSUMPTIONS about the real API (vendor page: shared/reference/campaign-dial-status-api.txt;
C = documented, I = inferred, S = seen in a sibling CloudAgent API). Each is used in one place:
  A1 (I) URL path `/endpoint/dailer/data/preview/download`: lib/config.py API_PATH; configurable.
  A2 (I) auth: header `apiKey`, `userName` in the body: client.py `_auth` (auth_style apikey,
         the default; basic = `Authorization: Basic base64(userName:apiKey)`; token = TOKEN_AUTH,
         token.py T1-T5).
  A3 (I) body: a JSON object of strings: request.py `DialStatusRequest.to_body`, client.py
         `_post` (request_encoding json, the default; form = x-www-form-urlencoded; query = the
         parameters in the query string of a POST without a body).
  A4 (C) parameter names and values: request.py `LeadStatus`, `DialStatusFilter`, `SortBy`,
         `to_body`.
  A5 (C) dates `YYYY-MM-DD HH:MM:SS` in the account's local time (I: no zone, local):
         request.py `_format_local`; client.py `ClientOptions.timezone`.
  A6 (C) messages: errors.py `MSG_*`; (I) they come with HTTP 200: errors.py `ERROR_TYPES`,
         client.py `_interpret`.
  A7 (S) 11th request in a minute: "Max limit exceeded", HTTP 200 or 429:
         errors.py `_is_rate_limit_message`.
  A8 (I) success: `{"status":"success","message":...,"uniqueId":...}`: client.py `_interpret`.
  A9 (C) 10 requests per minute: ratelimit.py (sliding 60 s per account is our reading).
  A10 (I) fromDate/toDate/sortby optional (no star on the vendor page); with sortby 1 or 2 the
         dates are required (our reading of "considering the created/updated date"):
         request.py `DialStatusRequest.validate`.
"""

from lib.cloudagent.client import ClientOptions, CloudAgentClient
from lib.cloudagent.errors import (
    MSG_APIKEY_INVALID,
    MSG_AUTH_FAILED,
    MSG_CALLBACK_INVALID,
    MSG_CAMPAIGN_INVALID,
    MSG_MAX_LIMIT,
    MSG_TOKEN_CREDENTIALS,
    MSG_TOKEN_EXPIRED,
    MSG_TOKEN_INVALID,
    MSG_TOKEN_USERNAME_NULL,
    MSG_USERNAME_INVALID,
    AuthenticationError,
    CloudAgentError,
    CloudAgentTimeoutError,
    CloudAgentUnavailableError,
    InvalidApiKeyError,
    InvalidCallbackUrlError,
    InvalidCampaignError,
    InvalidUserNameError,
    RateLimitedError,
    RequestValidationError,
    TokenLimitError,
    TokenRejectedError,
    UnexpectedResponseError,
    error_for_message,
    parse_answer,
)
from lib.cloudagent.probe import ProbeResult, StepResult, probe
from lib.cloudagent.ratelimit import SlidingWindowLimiter
from lib.cloudagent.request import (
    ALL_DISPOSITIONS,
    Accepted,
    DialStatusFilter,
    DialStatusRequest,
    LeadStatus,
    SortBy,
)
from lib.cloudagent.token import TOKENS, TokenCache, token_url_for

__all__ = [
    "ALL_DISPOSITIONS",
    "MSG_APIKEY_INVALID",
    "MSG_AUTH_FAILED",
    "MSG_CALLBACK_INVALID",
    "MSG_CAMPAIGN_INVALID",
    "MSG_MAX_LIMIT",
    "MSG_TOKEN_CREDENTIALS",
    "MSG_TOKEN_EXPIRED",
    "MSG_TOKEN_INVALID",
    "MSG_TOKEN_USERNAME_NULL",
    "MSG_USERNAME_INVALID",
    "TOKENS",
    "Accepted",
    "AuthenticationError",
    "ClientOptions",
    "CloudAgentClient",
    "CloudAgentError",
    "CloudAgentTimeoutError",
    "CloudAgentUnavailableError",
    "DialStatusFilter",
    "DialStatusRequest",
    "InvalidApiKeyError",
    "InvalidCallbackUrlError",
    "InvalidCampaignError",
    "InvalidUserNameError",
    "LeadStatus",
    "ProbeResult",
    "RateLimitedError",
    "RequestValidationError",
    "SlidingWindowLimiter",
    "SortBy",
    "StepResult",
    "TokenCache",
    "TokenLimitError",
    "TokenRejectedError",
    "UnexpectedResponseError",
    "error_for_message",
    "parse_answer",
    "probe",
    "token_url_for",
]
