"""CloudAgent's TOKEN_AUTH: a bearer token per account, cached, renewed early, 10 per hour.

The token API's vendor page (docs.ozonetel.com, "post_ca-apis-catoken-generatetoken"; C unless
marked):
  T1 `POST https://{domain}/ca_apis/CAToken/generateToken`, headers `Content-Type:
     application/json` and `apiKey`, body `{"userName": "<account>"}`: `generate_token`.
  T2 the token is valid for 60 minutes; at most 10 are generated (or refreshed) per hour; a new
     token makes every earlier one invalid: `TokenCache` (one token per account in the process,
     renewed `RENEW_BEFORE_S` early, the 11th generation in a rolling hour refused unsent).
  T3 answers: `{"token": "eyJ...", "message": ""}`; `{"status": "false", "message": "UserName is
     null", "data": null}` (userName missing); "Invalid userName or apiKey"; an API answers
     "Token Expired" to an expired token: errors.py `MSG_TOKEN_*`.
  T4 (I) the token host is the API's: `token_url_for` (ClientOptions.token_url overrides it).
  T5 (I) with TOKEN_AUTH the Dial Status request carries `Authorization: Bearer <token>` and still
     the `apiKey` header (the token versions of sibling APIs list apiKey errors), `userName`
     stays a request parameter: client.py `_auth`.

The token budget is this process's: a restart forgets the hour's generations (CloudAgent does
not), and CloudAgent refuses the 11th with "Max limit exceeded" (TokenLimitError either way).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from lib.cloudagent.errors import (
    CloudAgentError,
    CloudAgentUnavailableError,
    TokenLimitError,
    UnexpectedResponseError,
    error_for_message,
    excerpt,
    parse_answer,
)
from lib.config import API_PATH, TOKEN_PATH

logger = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 3600.0  # T2: valid 60 minutes
RENEW_BEFORE_S = 300.0  # a new token 5 minutes before the old one expires
TOKENS_PER_HOUR = 10  # T2
TOKEN_WINDOW_S = 3600.0


def token_url_for(api_url: str) -> str:
    """The token URL beside an API URL (T4): its scheme, host and port, the part of its path
    before API_PATH (a mount prefix, e.g. the demo sandbox's /api/sandbox), then TOKEN_PATH."""
    parts = urlsplit(api_url)
    path = parts.path.rstrip("/")
    prefix = path[: -len(API_PATH)] if path.endswith(API_PATH) else ""
    host = parts.netloc.rpartition("@")[2]  # never a user:password@ prefix
    return urlunsplit((parts.scheme, host, prefix + TOKEN_PATH, "", ""))


def wait_words(seconds: float) -> str:
    """A wait in plain words: "45 s", "12 min", "1 h", "1 h 5 min" (minutes rounded up)."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = -(-seconds // 60)
    hours, rest = divmod(minutes, 60)
    return f"{minutes} min" if not hours else f"{hours} h" + (f" {rest} min" if rest else "")


def generate_token(http: httpx.Client, url: str, username: str, api_key: str) -> str:
    """One POST to the token API (T1); the token, or the mapped CloudAgentError (stage "token").
    Transport errors (httpx.TransportError) and CloudAgentUnavailableError (HTTP 5xx) are for
    the caller to retry; the others are final."""
    response = http.post(
        url,
        content=json.dumps({"userName": username}).encode("utf-8"),
        headers={"apiKey": api_key, "Content-Type": "application/json"},
    )
    text = response.text.replace(api_key, "***") if api_key else response.text
    status = response.status_code
    details = {"http_status": status, "answer": excerpt(text), "stage": "token"}
    if status >= 500:
        raise CloudAgentUnavailableError(f"the token URL answered HTTP {status}", **details)
    try:
        answer = parse_answer(text)
    except UnexpectedResponseError as error:
        raise UnexpectedResponseError(
            f"HTTP {status} from the token URL {url}: {error.message}",
            excerpt=error.excerpt,
            **details,
        ) from None
    token = answer.get("token")
    if isinstance(token, str) and token.strip() and response.is_success:
        return token.strip()
    message = str(answer.get("message") or "").strip()
    if not message:
        details["answer"] = excerpt(text.replace(token, "***") if isinstance(token, str) else text)
        raise UnexpectedResponseError(
            f"HTTP {status} from the token URL {url}: no token in the answer",
            excerpt=details["answer"],
            **details,
        )
    if "limit" in message.lower():
        raise TokenLimitError(
            f"CloudAgent generates no more tokens for account {username} this hour "
            f"(it answered “{message}”; at most {TOKENS_PER_HOUR} per hour)",
            server_message=message,
            **details,
        )
    raise error_for_message(message, **details)


@dataclass
class _Account:
    """One account's token and its generations (monotonic times) in the last window."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    token: str | None = field(default=None, repr=False)
    key_digest: bytes = field(default=b"", repr=False)  # of the apiKey the token was made with
    expires_at: float = 0.0
    generated: deque[float] = field(default_factory=deque)


class TokenCache:
    """Tokens per (token URL, account), shared by every client of the process (`TOKENS`), so
    the sync engine and the connection check use one token and one budget. Thread-safe: one
    thread generates while the others of that account wait for its token."""

    def __init__(
        self,
        per_hour: int = TOKENS_PER_HOUR,
        window_s: float = TOKEN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_hour = per_hour
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[tuple[str, str], _Account] = {}

    def __repr__(self) -> str:
        return f"TokenCache({len(self._accounts)} account(s))"

    def _account(self, url: str, username: str) -> _Account:
        with self._lock:
            return self._accounts.setdefault((url, username), _Account())

    def token(
        self,
        url: str,
        username: str,
        api_key: str,
        generate: Callable[[], str],
        *,
        lifetime_s: float = TOKEN_LIFETIME_S,
        renew_before_s: float = RENEW_BEFORE_S,
    ) -> str:
        """The account's token: the cached one until `renew_before_s` before it expires, else
        a new one from `generate()`. With the hour's budget spent, a token that has not expired
        yet is used to its end; with none, TokenLimitError names the wait and nothing is sent."""
        account = self._account(url, username)
        digest = hashlib.sha256(api_key.encode("utf-8")).digest()
        with account.lock:
            now = self._clock()
            usable = account.token is not None and account.key_digest == digest
            if usable and now < account.expires_at - renew_before_s:
                return account.token
            while account.generated and account.generated[0] <= now - self.window_s:
                account.generated.popleft()
            if len(account.generated) >= self.per_hour:
                if usable and now < account.expires_at:
                    return account.token
                wait = account.generated[0] + self.window_s - now
                raise TokenLimitError(
                    f"no new CloudAgent token for account {username}: {self.per_hour} were "
                    f"generated in the last hour, CloudAgent's limit; the next can be generated "
                    f"in {wait_words(wait)}",
                    retry_after=wait,
                    stage="token",
                )
            account.generated.append(now)
            try:
                token = generate()
            except CloudAgentError:  # answered: CloudAgent generated nothing
                account.generated.pop()
                raise
            account.token, account.key_digest = token, digest
            account.expires_at = now + lifetime_s  # from the send: never later than CloudAgent's
            logger.info(
                "generated a CloudAgent token for account %r (%d of %d in the last hour)",
                username,
                len(account.generated),
                self.per_hour,
            )
            return token

    def drop(self, url: str, username: str, token: str) -> None:
        """Forgets `token` (the API refused it): the next request generates a new one."""
        account = self._account(url, username)
        with account.lock:
            if account.token == token:
                account.token = None

    def generated(self, url: str, username: str) -> int:
        """Tokens generated for the account in the last window (what the budget counts)."""
        account = self._account(url, username)
        with account.lock:
            now = self._clock()
            return sum(1 for stamp in account.generated if stamp > now - self.window_s)


TOKENS = TokenCache()  # the process's tokens: ClientOptions.tokens=None uses it
