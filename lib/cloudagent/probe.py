"""The Settings page's connection check, one request long: was the API reached, were the
credentials accepted, was the request accepted, each in plain words with what to change.

`probe` validates the request, then sends it once through the client's limiter (no retry, so
the 10-per-minute limit holds), and reads the outcome: transport failures from the httpx error
the client keeps as the cause (DNS, TLS, refused, timeout), HTTP statuses that are not
CloudAgent's JSON, then CloudAgent's documented messages (errors.py). With TOKEN_AUTH, what the
token API answered is the credentials step; failing to reach its host is the first step.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from lib.cloudagent.client import CloudAgentClient
from lib.cloudagent.errors import (
    AuthenticationError,
    CloudAgentError,
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
)
from lib.cloudagent.request import DialStatusRequest
from lib.cloudagent.token import wait_words
from lib.config import AUTH_STYLES, REQUEST_ENCODINGS

REACHED, CREDENTIALS, ACCEPTED = "API reached?", "Credentials accepted?", "Request accepted?"
FIX_API_KEY = "CLOUDAGENT_API_KEY (api_key in [cloudagent])"
FIX_USERNAME = "CLOUDAGENT_USERNAME (username in [cloudagent])"
FIX_API_URL = "CLOUDAGENT_API_URL (api_url in [cloudagent])"
FIX_AUTH_STYLE = "CLOUDAGENT_AUTH_STYLE (auth_style in [cloudagent])"
FIX_ENCODING = "CLOUDAGENT_REQUEST_ENCODING (request_encoding in [cloudagent])"
FIX_CAMPAIGN = "the campaign name (exactly as CloudAgent spells it)"
FIX_CALLBACK = "DIALSTATUS_PUBLIC_URL (public_url in [dialstatus]), the callback's address"
# What a message may be about: the apiKey and the request's parameters (request.py `to_body`).
_PARAMETERS = ("apiKey", "userName", "campaignName", "callBackUrl", "status", "dialstatus",
               "dispositions", "sortby", "fromDate", "toDate")  # fmt: skip
# A message saying a parameter did not arrive ("campaignName is required", "... cannot be empty").
_MISSING = re.compile(
    r"missing|required|empty|\bnull\b|mandatory|not (?:be )?(?:passed|given|provided|found)"
)


@dataclass(frozen=True)
class StepResult:
    ok: bool | None  # None: not tried (an earlier step failed, nothing sent) or not known
    title: str
    detail: str  # plain words
    fix: str = ""  # what to change


@dataclass(frozen=True)
class ProbeResult:
    reached: StepResult
    credentials: StepResult
    accepted: StepResult
    unique_id: str | None
    answer_excerpt: str  # redacted (no apiKey, no callback secret, no token)

    @property
    def steps(self) -> tuple[StepResult, StepResult, StepResult]:
        return self.reached, self.credentials, self.accepted

    @property
    def failure(self) -> StepResult | None:
        """The step that failed (its detail and fix say why), None if none did."""
        return next((step for step in self.steps if step.ok is False), None)


def probe(client: CloudAgentClient, request: DialStatusRequest) -> ProbeResult:
    """Sends `request` once and says which step failed and what to change."""
    try:
        body = client.prepare(request)
    except RequestValidationError as error:
        return _not_sent(error)
    try:
        accepted = client.attempt(body)
    except CloudAgentError as error:
        return _Reading(client, body, error).result()
    said = f"“{accepted.message}”, " if accepted.message else ""
    where = _where(client.options.api_url)
    return ProbeResult(
        reached=StepResult(True, REACHED, f"CloudAgent answered at {where}"),
        credentials=StepResult(True, CREDENTIALS, _credentials_words(client)),
        accepted=StepResult(
            True, ACCEPTED, f"CloudAgent queued the request ({said}uniqueId {accepted.unique_id})"
        ),
        unique_id=accepted.unique_id,
        answer_excerpt=accepted.answer,
    )


def _where(url: str) -> str:
    """scheme://host[:port]/path: never a user:password@ or a query."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _credentials_words(client: CloudAgentClient) -> str:
    style = client.options.auth_style
    if style == "token":
        return f"CloudAgent accepted the token of account {client.options.username}"
    sent = "the apiKey header" if style == "apikey" else "HTTP Basic (userName:apiKey)"
    return f"CloudAgent accepted account {client.options.username} and its apiKey ({sent})"


def _not_tried(title: str, why: str) -> StepResult:
    return StepResult(None, title, f"Not tried: {why}")


def _parameter_fix(name: str) -> str:
    fixes = {"apiKey": FIX_API_KEY, "userName": FIX_USERNAME, "campaignName": FIX_CAMPAIGN,
             "callBackUrl": FIX_CALLBACK}  # fmt: skip
    return fixes.get(name, f"the {name} parameter")


def _named_parameter(message: str, names) -> str | None:
    """The parameter a message is about: the first known name it mentions."""
    folded = message.lower()
    found = [(folded.find(name.lower()), name) for name in names if name.lower() in folded]
    return min(found)[1] if found else None


def _not_sent(error: RequestValidationError) -> ProbeResult:
    """Refused on our side: the step the parameter belongs to fails, nothing was sent."""
    name = _named_parameter(error.message, _PARAMETERS)
    detail = f"Not sent: {error.message}"
    if name in ("apiKey", "userName"):
        return ProbeResult(
            _not_tried(REACHED, "the request was refused before sending"),
            StepResult(False, CREDENTIALS, detail, _parameter_fix(name)),
            _not_tried(ACCEPTED, "the credentials are missing"),
            None,
            "",
        )
    return ProbeResult(
        _not_tried(REACHED, "the request was refused before sending"),
        _not_tried(CREDENTIALS, "the request was refused before sending"),
        StepResult(False, ACCEPTED, detail, _parameter_fix(name) if name else ""),
        None,
        "",
    )


class _Reading:
    """One failed attempt read into the three steps."""

    def __init__(self, client: CloudAgentClient, body: dict[str, str], error: CloudAgentError):
        self.client, self.body, self.error = client, body, error
        self.options = client.options
        token_stage = error.stage == "token"
        self.url = client.token_url if token_stage else self.options.api_url
        self.where = _where(self.url)
        self.said = f"“{error.server_message}”" if error.server_message else ""

    def result(self) -> ProbeResult:
        error = self.error
        if isinstance(error.__cause__, httpx.TransportError):
            return self._steps(StepResult(False, REACHED, *self._transport(error.__cause__)))
        if isinstance(error, TokenLimitError):
            return self._token_limit()
        if isinstance(error, RateLimitedError):
            return self._rate_limited()
        if isinstance(error, CloudAgentUnavailableError | UnexpectedResponseError):
            if error.stage == "token":  # the host answered; the token URL did not work
                failed = StepResult(False, CREDENTIALS, *self._not_cloudagent())
                return self._steps(self._reached(), failed)
            return self._steps(StepResult(False, REACHED, *self._not_cloudagent()))
        about = _named_parameter(error.server_message or "", _PARAMETERS)
        if (
            error.stage == "token"
            or about in ("apiKey", "userName")
            or isinstance(error, AuthenticationError | InvalidApiKeyError | InvalidUserNameError)
        ):
            return self._steps(self._reached(), StepResult(False, CREDENTIALS, *self._refused()))
        passed = StepResult(True, CREDENTIALS, "CloudAgent got past the apiKey and userName")
        return self._steps(self._reached(), passed, StepResult(False, ACCEPTED, *self._refused()))

    def _steps(self, reached, credentials=None, accepted=None) -> ProbeResult:
        """The steps after the first failed one are not reached."""
        failed = reached if reached.ok is False else credentials
        why = f"“{failed.title}” failed" if failed is not None else ""
        return ProbeResult(
            reached,
            credentials or _not_tried(CREDENTIALS, why),
            accepted or _not_tried(ACCEPTED, why),
            None,
            self.error.answer,
        )

    def _reached(self) -> StepResult:
        return StepResult(True, REACHED, f"CloudAgent answered at {self.where}")

    def _transport(self, exc: httpx.TransportError) -> tuple[str, str]:
        """(detail, fix) of a connection that failed: timeout, DNS, TLS, refused, other."""
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        chain, cause = [], exc
        while cause is not None and len(chain) < 10:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        text = " ".join(str(item) for item in chain).lower()
        token = f" (generating the token at {self.where})" if self.error.stage == "token" else ""
        if isinstance(exc, httpx.TimeoutException):
            timeout = self.options.timeout
            seconds = {httpx.ConnectTimeout: timeout.connect, httpx.WriteTimeout: timeout.write,
                       httpx.PoolTimeout: timeout.pool}.get(type(exc), timeout.read)  # fmt: skip
            return (
                f"Timed out after {seconds:g} s waiting for {host}:{port}{token}",
                f"{FIX_API_URL}: is {host} reachable from this server (firewall, proxy)?",
            )
        if any(isinstance(item, socket.gaierror) for item in chain) or any(
            words in text for words in ("name or service not known", "nodename nor servname",
                                        "getaddrinfo failed", "name resolution")
        ):  # fmt: skip
            return f"DNS: the host {host} cannot be resolved{token}", f"{FIX_API_URL}: the host"
        tls = next((item for item in chain if isinstance(item, ssl.SSLError)), None)
        if tls is not None or "ssl" in text or "certificate" in text:
            return f"TLS: {_tls_words(tls, text)}{token}", f"{FIX_API_URL}: http or https, the port"
        if any(isinstance(item, ConnectionRefusedError) for item in chain) or "refused" in text:
            return (
                f"Connection refused by {host}:{port}: nothing accepts connections there{token}",
                f"{FIX_API_URL}: the host and the port",
            )
        said = self.client.redact(str(exc), self.body)
        return f"The connection to {host}:{port} failed: {type(exc).__name__}: {said}{token}", (
            FIX_API_URL
        )

    def _not_cloudagent(self) -> tuple[str, str]:
        """(detail, fix) of an answer that is not CloudAgent's JSON, or an HTTP error status."""
        error, status = self.error, self.error.http_status
        what = "the token URL" if error.stage == "token" else FIX_API_URL
        if status is not None and not 200 <= status < 300:
            fix = "wait and try again: CloudAgent's side failed" if status >= 500 else what
            return f"HTTP {status} from {self.where}", fix
        page = (getattr(error, "excerpt", "") or error.answer).lower()
        kind = "a web page (HTML)" if "<html" in page or "<!doctype" in page else "an answer"
        return (
            f"HTTP {status} from {self.where} with {kind} that is not CloudAgent's JSON "
            "(a proxy, a sign-in page or another service answered)",
            what,
        )

    def _token_limit(self) -> ProbeResult:
        error = self.error
        wait = getattr(error, "retry_after", None)
        when = f"wait {wait_words(wait)}" if wait is not None else "wait up to an hour"
        fix = f"{when}: CloudAgent generates at most 10 tokens per account per hour"
        credentials = StepResult(False, CREDENTIALS, error.message, fix)
        if error.http_status is None:  # our own budget: nothing was sent
            return self._steps(_not_tried(REACHED, "no token to send with"), credentials)
        return self._steps(self._reached(), credentials)

    def _rate_limited(self) -> ProbeResult:
        wait = getattr(self.error, "retry_after", None)
        if wait is None:
            wait = self.client.limiter.span_s if self.client.limiter is not None else 60.0
        said = self.said or "that the limit was reached"
        return self._steps(
            self._reached(),
            StepResult(None, CREDENTIALS, "Not known: CloudAgent's rate limit answered first"),
            StepResult(
                False,
                ACCEPTED,
                f"Rate limited: CloudAgent answered {said} (10 requests per minute per account)",
                f"wait {wait_words(wait)} before the next request",
            ),
        )

    def _refused(self) -> tuple[str, str]:
        """(detail, fix) of a documented refusal, by what it is about."""
        error, options = self.error, self.options
        api = "the token API" if error.stage == "token" else "CloudAgent"
        detail = f"{api} answered {self.said or error.message}"
        if isinstance(error, TokenRejectedError):
            tokens = self.client.tokens
            left = tokens.per_hour - tokens.generated(self.client.token_url, options.username)
            return (
                f"{detail}: it keeps only the newest token of an account (another program may "
                "have generated one since); this one is dropped",
                f"run the check again: a new token is generated ({max(left, 0)} of "
                f"{tokens.per_hour} left this hour)",
            )
        if isinstance(error, InvalidApiKeyError):
            others = " or ".join(s for s in AUTH_STYLES if s != options.auth_style)
            fix = f"{FIX_AUTH_STYLE}: try {others} (this request sent {options.auth_style})"
            if options.auth_style == "apikey":
                fix = f"{FIX_API_KEY}; if it is right, {fix}"
            return f"{detail}: it found no apiKey it could read", fix
        if isinstance(error, AuthenticationError):
            wrong = f"{detail}: the apiKey or the userName is wrong"
            return wrong, f"{FIX_API_KEY} or {FIX_USERNAME}"
        name = _named_parameter(error.server_message or error.message, _PARAMETERS)
        if isinstance(error, InvalidUserNameError):
            name = "userName"
        elif isinstance(error, InvalidCampaignError):
            return detail, FIX_CAMPAIGN
        elif isinstance(error, InvalidCallbackUrlError):
            name = "callBackUrl"
        if name is None:
            return detail, ""
        fix = _parameter_fix(name)
        sent = str(self.body.get(name, "")).strip()
        unread = isinstance(error, InvalidUserNameError) or _MISSING.search(
            (error.server_message or "").lower()
        )
        if sent and unread and error.stage != "token":
            others = " or ".join(e for e in REQUEST_ENCODINGS if e != options.request_encoding)
            encodings = (
                f"{FIX_ENCODING}: try {others} ({name} was sent as {options.request_encoding} "
                "but CloudAgent did not read it)"
            )
            # A documented message is also the one for a wrong value: that fix comes first.
            documented = isinstance(error, InvalidUserNameError | InvalidCallbackUrlError)
            fix = (
                f"{fix}; if it is right, {encodings}" if documented else f"{encodings}; else {fix}"
            )
        return detail, fix


def _tls_words(error: ssl.SSLError | None, text: str) -> str:
    """An SSL failure in plain words: "certificate verify failed (self-signed certificate)"."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed ({error.verify_message})"
    if "wrong version number" in text:
        return "wrong version number: the server does not speak TLS on this port (http://?)"
    reason = getattr(error, "reason", None)
    return reason.replace("_", " ").lower() if reason else "the secure connection failed"
