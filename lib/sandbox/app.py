"""A faithful local CloudAgent "Campaign Dial Status" endpoint, as a mountable Starlette app.

    app = create_sandbox_app(SandboxConfig(api_key=..., username=..., public_base_url=...))
    Mount("/api/sandbox", app=app)            # every route below is relative

POST <API_PATH>           the API: validation in the documented order and wording, HTTP 200
                          errors, 10 requests per 60 s per account, then an asynchronous
                          delivery of the selected records to callBackUrl (DeliveryVariant);
                          parameters as a JSON body, a form body or the query string
POST <TOKEN_PATH>         TOKEN_AUTH's token: 60 minutes, 10 per hour per account, the newest only
GET  /files/<token>.csv|.json   files for the link variants
GET  /_sandbox/requests   every request received (no api key; callback secret replaced by ***)
GET  /_sandbox/deliveries what was POSTed where (uniqueId, status code, record count, variant)
GET  /_sandbox/tokens     every token request (account, issued or not, message; no token)
GET  /_sandbox/config     the runtime settings;  POST /_sandbox/config  changes them (JSON body)
POST /_sandbox/reset      clears both logs and the rate-limit windows
POST /_sandbox/leads      dials, edits and adds leads at run time (lib/sandbox/changes.py)

Fault mode (config.Fault): `{"fault": "http_500", "fault_count": 2}` POSTed to /_sandbox/config
makes the next 2 API requests answer HTTP 500; callback faults apply to the deliveries of the
next accepted requests. They act at three seams: `Sandbox.handle_api` (the answer),
`prepare_posts` (the bodies) and `_deliver` (when and how often the callback is posted). Both
logs name each entry's fault; every delivery entry has `as_of`, the data's time it shows.
`clock_offset_s` moves the data's clock, so later versions of leads become visible at once.

What the sandbox assumes beyond the vendor page (C = documented, I = inferred, S = sibling API;
lib/cloudagent/__init__.py lists the client's side):
  S1 (C) the error messages and their triggers; (I) all with HTTP 200: `Sandbox.check`.
  S2 (I) order: apiKey, key value, userName, user value, rate limit, campaign, callBackUrl,
         then status, dialstatus, dispositions, sortby, dates: `Sandbox.check`.
  S3 (I) the limit counts every authenticated request (errors included, refused ones not), per
         userName, sliding `window_s`: `Sandbox._rate_limited`.
  S4 (S) "Max limit exceeded", HTTP 200 or 429 (configurable); Retry-After with 429: `_answer`.
  S5 (I) missing/invalid filter values answer "<param> is invalid"; filter values match in any
         case; sortby defaults to 0; dates are ignored with sortby 0 (but must parse), required
         with 1 and 2, inclusive: `Sandbox._check_filters`.
  S6 (I) success answer `{"status":"success","message":"queued successfully","uniqueId":uuid}`.
  S7 (I/S) delivery shapes: config.DeliveryVariant; single_record posts the bare record
         (no uniqueId); links carry uniqueId, campaignName, fileUrl: `Sandbox.prepare_posts`.
  S8 (C) Pending includes leads with no status; (I) dialstatus buckets as in data.py.
  S9 (I) the API reads only config.auth_style's credential: apikey = the `apiKey` header, basic
         = `Authorization: Basic` userName:apiKey, token = the `apiKey` header and the current
         bearer token; missing: "apiKey is invalid", wrong: "Authentication failed", any other
         token: "Token Expired": `_credentials`, `check`. The query string counts (the body wins).
  S10 (C) the token API: JSON `{"userName"}` with the `apiKey` header; `{"token", "message": ""}`
         or `{"status": "false", "message", "data": null}`; a new token ends the earlier ones;
         (I) the 11th in an hour: "Max limit exceeded": `Sandbox.handle_token`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hmac
import itertools
import json
import logging
import math
import shutil
import tempfile
import threading
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx
import numpy as np
import pyarrow as pa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from lib.config import API_PATH, TOKEN_PATH, presented_token, redact_callback_url
from lib.fields import API_TIMESTAMP_FORMAT
from lib.sandbox.changes import leads_route
from lib.sandbox.config import (
    API_FAULTS,
    CALLBACK_FAULTS,
    DateStyle,
    DeliveryVariant,
    ErrorStyle,
    Fault,
    FieldStyle,
    SandboxConfig,
)
from lib.sandbox.data import DIAL_FILTERS, STATUS_FILTERS, CampaignData, Selection
from lib.sandbox.datagen import generate_campaign, local_naive, local_seconds
from lib.sandbox.encode import envelope_json, records_csv, records_json

logger = logging.getLogger(__name__)

# The vendor page's answers, verbatim (curly quotes included).
APIKEY_INVALID = "apiKey is invalid"
AUTH_FAILED = "Authentication failed"
USERNAME_INVALID = "userName is invalid"
CAMPAIGN_INVALID = "campaignName is invalid"
CALLBACK_INVALID = (
    "callBackUrl cannot be empty (OR) it should contain ‘http://test.com/’ or 'https://test.com/"
)
MAX_LIMIT = "Max limit exceeded"  # sibling APIs' wording (not on the vendor page)
QUEUED = "queued successfully"  # inferred
TOKEN_USERNAME_NULL, TOKEN_CREDENTIALS = "UserName is null", "Invalid userName or apiKey"
TOKEN_EXPIRED, TOKEN_LIFETIME_S, TOKENS_PER_HOUR = "Token Expired", 3600.0, 10  # its vendor page

PARAM_NAMES = ("fromDate", "toDate", "sortby", "status", "dialstatus", "dispositions",
               "campaignName", "userName", "callBackUrl")  # fmt: skip
MAX_REQUEST_BYTES = 64 * 1024
_RUNTIME_FIELDS = {
    "delivery": DeliveryVariant, "rate_limit_http_status": int, "rate_limit": int,
    "window_s": float, "delivery_delay_s": float, "error_style": ErrorStyle,
    "single_record_cap": int, "rate_limit_retry_after": bool, "fault": Fault, "fault_count": int,
    "fault_delay_s": float,  # or null: the fault's default
    "fault_retry_after_s": float, "clock_offset_s": float, "auth_style": str,
    "field_style": FieldStyle, "date_style": DateStyle, "update_fraction": float,
}  # fmt: skip
_FAULT_FIELDS = ("fault", "fault_count")  # setting either restarts the fault's count
GARBAGE_ANSWER = b'{"status": "success", "message": "queued succ\x00\xff\xfe\x9c\x07 %$#'
HTML_ANSWER = (
    "<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Session expired</h1>"
    "<p>Please sign in to continue.</p></body></html>"
)


class _RedactCallbackUrls(logging.Filter):
    """httpx logs every request URL at INFO; a callback URL's last segment is the receiver's
    secret. Rewrites the URLs of in-flight sandbox deliveries in httpx's log records."""

    def __init__(self) -> None:
        super().__init__()
        self._active: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def active(self, url: str) -> Iterator[None]:
        with self._lock:
            self._active[url] += 1
        try:
            yield
        finally:
            with self._lock:
                self._active[url] -= 1
                if self._active[url] <= 0:
                    del self._active[url]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._active and isinstance(record.args, tuple):
            record.args = tuple(
                redact_callback_url(str(arg)) if str(arg) in self._active else arg
                for arg in record.args
            )
        return True


_CALLBACK_LOG_FILTER = _RedactCallbackUrls()
logging.getLogger("httpx").addFilter(_CALLBACK_LOG_FILTER)


@dataclass
class Decision:
    """What the API answers to one request."""

    message: str
    outcome: str  # accepted | rejected | rate_limited
    http_status: int = 200
    retry_after: float | None = None
    selection: Selection | None = None


@dataclass
class DeliveryJob:
    unique_id: str
    campaign: str
    selection: Selection
    now_s: int  # the data's "now" at request time (local wall-clock seconds)
    callback_url: str = field(repr=False)
    variant: DeliveryVariant
    base_url: str  # where this sandbox is reachable (file links)
    entry: dict  # its row in the deliveries log
    fault: Fault = Fault.NONE  # a callback fault played on this delivery
    seq: int = 0  # the request's sequence number (late and out-of-order faults order by it)


def _form_encode(data: bytes) -> bytes:
    """application/x-www-form-urlencoded bytes of `data`, vectorised (unreserved bytes kept)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    safe = np.zeros(256, dtype=bool)
    for chars in (b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz", b"0123456789-._~"):
        safe[np.frombuffer(chars, dtype=np.uint8)] = True
    unsafe = ~safe[raw]
    starts = np.arange(len(raw)) + 2 * (np.cumsum(unsafe) - unsafe)
    out = np.empty(len(raw) + 2 * int(unsafe.sum()), dtype=np.uint8)
    out[starts[~unsafe]] = raw[~unsafe]
    hexdigits = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
    escaped = starts[unsafe]
    out[escaped] = ord("%")
    out[escaped + 1] = hexdigits[raw[unsafe] >> 4]
    out[escaped + 2] = hexdigits[raw[unsafe] & 15]
    return out.tobytes()


class Sandbox:
    """State and behaviour behind the routes; reachable as `app.state.sandbox`."""

    def __init__(self, config: SandboxConfig, token_lifetime_s: float = TOKEN_LIFETIME_S) -> None:
        self.config = dataclasses.replace(config)  # runtime changes never touch the caller's
        self.token_lifetime_s = token_lifetime_s  # tests shorten it
        self._tokens: dict[str, tuple[str, float]] = {}  # account -> (newest token, expiry)
        self._token_log: deque[dict] = deque(maxlen=config.max_log_entries)
        self.data_now = local_naive(config.clock(), config.timezone)  # the generated data's now
        self._lock = threading.Lock()
        self._data: dict[str, CampaignData] = {}
        self._data_lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._requests: deque[dict] = deque(maxlen=config.max_log_entries)
        self._deliveries: deque[dict] = deque(maxlen=config.max_log_entries)
        self._sequence = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._files: OrderedDict[str, Path] = OrderedDict()
        self._own_files_dir = config.files_dir is None
        self.files_dir = config.files_dir or Path(tempfile.mkdtemp(prefix="cloudagent-sandbox-"))
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._fault_left = config.fault_count  # of the current fault; config.fault_count 0: no end
        self._posted_seq: dict[str, int] = {}  # campaign -> newest request seq delivered
        self._out_of_order: list[tuple[DeliveryJob, list[tuple[bytes, str]]]] = []
        self._out_of_order_size = 2

    # -- data ------------------------------------------------------------------------------

    def campaign_data(self, name: str) -> CampaignData:
        """The campaign's generated leads (made on first use; blocking: call from a thread)."""
        with self._data_lock:
            data = self._data.get(name)
            if data is None:
                cfg = self.config
                table = generate_campaign(name, cfg.campaigns[name], cfg.seed, self.data_now,
                                          timezone=cfg.timezone,
                                          update_horizon_h=cfg.update_horizon_h,
                                          update_fraction=cfg.update_fraction)  # fmt: skip
                data = self._data[name] = CampaignData(table)
            return data

    def dataset(self, name: str) -> pa.Table:
        """Every version of every lead of a campaign (what tests compare deliveries with)."""
        return self.campaign_data(name).table

    def warm(self) -> None:
        """Generates every campaign now instead of on its first request."""
        for name in self.config.campaigns:
            self.campaign_data(name)

    def now_s(self) -> int:
        """The data's present (local wall-clock seconds), moved by clock_offset_s."""
        now = local_seconds(local_naive(self.config.clock(), self.config.timezone))
        return now + int(self.config.clock_offset_s)

    # -- faults ----------------------------------------------------------------------------

    def _take_fault(self, kinds: frozenset[Fault]) -> Fault:
        """The configured fault if it is of `kinds` and not used up (counts one use)."""
        with self._lock:
            cfg = self.config
            if cfg.fault not in kinds or (cfg.fault_count and self._fault_left <= 0):
                return Fault.NONE
            if cfg.fault_count == 0:
                return cfg.fault
            self._fault_left -= 1
            if cfg.fault == Fault.OUT_OF_ORDER and self._fault_left == cfg.fault_count - 1:
                self._out_of_order_size = max(2, cfg.fault_count)
            return cfg.fault

    def _fault_answer(self, fault: Fault) -> tuple[Response, str, str]:
        """(the answer, its log outcome, its log message) of an API fault that is not processed."""
        broken = {Fault.HTTP_500: ("Internal Server Error", 500, "text/plain", "HTTP 500"),
                  Fault.GARBAGE: (GARBAGE_ANSWER, 200, "application/json", "garbage answer"),
                  Fault.HTML: (HTML_ANSWER, 200, "text/html", "HTML answer")}  # fmt: skip
        if fault in broken:
            content, status, media, what = broken[fault]
            return Response(content, status, media_type=media), "fault", what
        status = 200 if fault == Fault.RATE_LIMIT_200 else 429
        headers = {}
        if fault == Fault.RATE_LIMIT_429:
            headers["Retry-After"] = str(max(0, math.ceil(self.config.fault_retry_after_s)))
        body = json.dumps({"status": "error", "message": MAX_LIMIT, "uniqueId": ""})
        response = Response(body, status, headers, media_type="application/json")
        return response, "rate_limited", MAX_LIMIT

    async def _hold_answer(self, request: Request) -> None:
        """A timeout: the answer waits until the client hangs up (or fault_delay_s passed)."""
        deadline = self.config.monotonic() + self.config.fault_delay()
        while self.config.monotonic() < deadline and not await request.is_disconnected():
            await anyio.sleep(0.2)

    # -- the API ---------------------------------------------------------------------------

    def _rate_limited(self, key: str, now: float, limit: int = 0, span: float = 0.0):
        """Counts one request for `key`; seconds to wait if over the limit (config's default)."""
        limit, span = limit or self.config.rate_limit, span or self.config.window_s
        with self._lock:
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - span:
                window.popleft()
            if len(window) >= limit:
                return max(0.0, window[len(window) - limit] + span - now)
            window.append(now)
            return None

    def _credentials(self, headers) -> tuple[str | None, str | None]:
        """(the apiKey, what the auth style adds: Basic's user name or the bearer token) (S9)."""
        scheme, _, value = headers.get("authorization", "").strip().partition(" ")
        if self.config.auth_style != "basic":
            bearer = value.strip() if scheme.lower() == "bearer" else None
            return headers.get("apikey"), bearer if self.config.auth_style == "token" else None
        try:
            user, colon, key = base64.b64decode(value, validate=True).decode().partition(":")
        except ValueError:  # not base64, or not UTF-8
            return None, None
        return (key, user) if scheme.lower() == "basic" and colon else (None, None)

    def _token_is_current(self, token: str | None, account: str, now: float) -> bool:
        newest, expires = self._tokens.get(account, ("", 0.0))
        same = bool(token and newest) and hmac.compare_digest(token.encode(), newest.encode())
        return same and now < expires

    def check(
        self, api_key: str | None, params: dict[str, str], now: float, proof: str | None = None
    ) -> Decision:
        """Validates in the documented order (S2; `proof` S9); counts it against the limit."""
        cfg = self.config
        if api_key is None or not api_key.strip():
            return Decision(APIKEY_INVALID, "rejected")
        if not hmac.compare_digest(api_key.strip().encode(), cfg.api_key.encode()):
            return Decision(AUTH_FAILED, "rejected")
        username = params.get("userName", "").strip()
        if not username:
            return Decision(USERNAME_INVALID, "rejected")
        if username != cfg.username or (cfg.auth_style == "basic" and proof != username):
            return Decision(AUTH_FAILED, "rejected")
        if cfg.auth_style == "token" and not self._token_is_current(proof, username, now):
            return Decision(TOKEN_EXPIRED if proof else APIKEY_INVALID, "rejected")
        wait = self._rate_limited(username, now)
        if wait is not None:
            return Decision(MAX_LIMIT, "rate_limited", cfg.rate_limit_http_status, wait)
        campaign = params.get("campaignName", "")
        if not campaign.strip() or campaign not in cfg.campaigns:
            return Decision(CAMPAIGN_INVALID, "rejected")
        try:
            parts = urlsplit(params.get("callBackUrl", "").strip())
            valid_callback = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            valid_callback = False
        if not valid_callback:
            return Decision(CALLBACK_INVALID, "rejected")
        return self._check_filters(params)

    def _check_filters(self, params: dict[str, str]) -> Decision:
        text = {name: params.get(name, "").strip() for name in PARAM_NAMES}
        status, dial = text["status"].lower(), text["dialstatus"].lower()
        sortby_text = text["sortby"] or "0"
        for name, valid in (("status", status in STATUS_FILTERS),
                            ("dialstatus", dial in DIAL_FILTERS),
                            ("dispositions", bool(text["dispositions"])),
                            ("sortby", sortby_text in ("0", "1", "2"))):  # fmt: skip
            if not valid:
                return Decision(f"{name} is invalid", "rejected")
        sortby = int(sortby_text)
        stamps: dict[str, int | None] = {}
        for name in ("fromDate", "toDate"):
            try:
                when = datetime.strptime(text[name], API_TIMESTAMP_FORMAT) if text[name] else None
            except ValueError:
                return Decision(f"{name} is invalid", "rejected")
            stamps[name] = None if when is None else local_seconds(when)
        if sortby and (stamps["fromDate"] is None or stamps["toDate"] is None):
            missing = "fromDate" if stamps["fromDate"] is None else "toDate"
            return Decision(f"{missing} is invalid", "rejected")
        if None not in stamps.values() and stamps["fromDate"] > stamps["toDate"]:
            return Decision("fromDate should not be after toDate", "rejected")
        disposition = None if text["dispositions"].upper() == "ALL" else text["dispositions"]
        selection = Selection(status=STATUS_FILTERS[status], dial_bucket=DIAL_FILTERS[dial],
                              disposition=disposition, sortby=sortby, from_s=stamps["fromDate"],
                              to_s=stamps["toDate"])  # fmt: skip
        return Decision(QUEUED, "accepted", selection=selection)

    def _answer(self, decision: Decision, unique_id: str = "") -> Response:
        ok = decision.outcome == "accepted"
        text = json.dumps({"status": "success" if ok else "error", "message": decision.message,
                           "uniqueId": unique_id})  # fmt: skip
        headers = {}
        limited = decision.http_status == 429 and decision.retry_after is not None
        if limited and self.config.rate_limit_retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
        if not ok and self.config.error_style == ErrorStyle.DOC_QUOTED:
            text = '"' + text.replace('"', '""') + '"'
        return Response(text, decision.http_status, headers, media_type="application/json")

    async def handle_api(self, request: Request) -> Response:
        now, wall = self.config.monotonic(), self.config.clock()
        params, extra, encoding = _read_params(await _read_body(request), request)
        fault = self._take_fault(API_FAULTS)
        if fault not in (Fault.NONE, Fault.SLOW, Fault.TIMEOUT):  # answered by the fault alone
            response, outcome, message = self._fault_answer(fault)
            self._log_request(now, wall, params, extra, outcome, message,
                              response.status_code, "", fault, encoding)  # fmt: skip
            return response
        api_key, proof = self._credentials(request.headers)
        decision = self.check(api_key, params, now, proof)
        unique_id = str(uuid.uuid4()) if decision.outcome == "accepted" else ""
        seq = self._log_request(now, wall, params, extra, decision.outcome, decision.message,
                                decision.http_status, unique_id, fault, encoding)  # fmt: skip
        if fault == Fault.SLOW:
            await anyio.sleep(self.config.fault_delay())
        if decision.outcome == "accepted":
            logger.info("sandbox queued %s for %r", unique_id, params["campaignName"])
            self._start_delivery(request, params, decision.selection, unique_id, seq)
        if fault == Fault.TIMEOUT:
            await self._hold_answer(request)
        return self._answer(decision, unique_id)

    async def handle_token(self, request: Request) -> Response:
        """The token API (S10): the newest token of an account only, TOKENS_PER_HOUR an hour."""
        now, cfg = self.config.monotonic(), self.config
        params = _read_params(await _read_body(request), request)[0]
        account, key = params.get("userName", "").strip(), request.headers.get("apikey", "")
        right = hmac.compare_digest(key.strip().encode(), cfg.api_key.encode())
        token, message = "", TOKEN_CREDENTIALS if account else TOKEN_USERNAME_NULL
        if account == cfg.username and right:  # only a generated token counts
            message = f"{MAX_LIMIT}: at most {TOKENS_PER_HOUR} tokens per hour"
            if self._rate_limited("token:" + account, now, TOKENS_PER_HOUR, 3600.0) is None:
                token, message = uuid.uuid4().hex + uuid.uuid4().hex, ""
        with self._lock:
            if token:
                self._tokens[account] = (token, now + self.token_lifetime_s)
            self._token_log.append({"monotonic": now, "account": account or None,
                                    "issued": bool(token), "message": message})  # fmt: skip
        if token:
            return JSONResponse({"token": token, "message": ""})
        return JSONResponse({"status": "false", "message": message, "data": None})

    def token_requests(self) -> list[dict]:
        """Every token request: monotonic time, account, issued, message (never the token)."""
        with self._lock:
            return [dict(entry) for entry in self._token_log]

    def _log_request(self, now, wall, params, extra, outcome, message, http_status, unique_id,
                     fault: Fault, encoding: str = "json") -> int:  # fmt: skip
        logged = {name: redact_callback_url(params[name]) if name == "callBackUrl" else params[name]
                  for name in PARAM_NAMES if name in params}  # fmt: skip
        entry = {"seq": next(self._sequence), "monotonic": now, "wall_time": wall.isoformat(),
                 "account": params.get("userName") or None,
                 "campaign": params.get("campaignName") or None, "outcome": outcome,
                 "message": message, "http_status": http_status, "unique_id": unique_id or None,
                 "params": logged, "extra_params": extra,
                 "fault": None if fault == Fault.NONE else fault.value,
                 "encoding": encoding}  # fmt: skip
        with self._lock:
            self._requests.append(entry)
        return entry["seq"]

    # -- delivery --------------------------------------------------------------------------

    def _start_delivery(
        self,
        request: Request,
        params: dict[str, str],
        selection: Selection,
        unique_id: str,
        seq: int = 0,
    ) -> None:
        cfg = self.config
        fault = self._take_fault(CALLBACK_FAULTS)
        now_s = self.now_s()
        root = request.scope.get("root_path", "")
        base_url = cfg.public_base_url or str(
            request.url.replace(path=root, query="", fragment="")
        ).rstrip("/")
        entry = {
            "unique_id": unique_id,
            "campaign": params["campaignName"],
            "variant": cfg.delivery.value,
            "url": redact_callback_url(params["callBackUrl"]),
            "state": "pending",
            "status_code": None,
            "records": None,
            "posts": 0,
            "failed_posts": 0,
            "truncated": 0,
            "bytes": 0,
            "error": None,
            "queued_monotonic": cfg.monotonic(),
            "finished_monotonic": None,
            "fault": None if fault == Fault.NONE else fault.value,
            "as_of": (datetime(1970, 1, 1) + timedelta(seconds=now_s)).strftime(
                API_TIMESTAMP_FORMAT
            ),
        }
        with self._lock:
            self._deliveries.append(entry)
        job = DeliveryJob(
            unique_id=unique_id,
            campaign=params["campaignName"],
            selection=selection,
            now_s=now_s,
            callback_url=params["callBackUrl"].strip(),
            variant=cfg.delivery,
            base_url=base_url,
            entry=entry,
            fault=fault,
            seq=seq,
        )
        task = asyncio.get_running_loop().create_task(self._deliver(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: DeliveryJob) -> None:
        entry = job.entry
        try:
            await anyio.sleep(self.config.delivery_delay_s)
            if job.fault == Fault.NO_CALLBACK:
                entry["state"] = "withheld"
                entry["finished_monotonic"] = self.config.monotonic()
                return
            posts = await anyio.to_thread.run_sync(self.prepare_posts, job)
        except Exception as exc:
            self._delivery_failed(job, exc)
            return
        if job.fault == Fault.DOUBLE_CALLBACK:
            posts = posts + posts
        if job.fault == Fault.LATE_CALLBACK:
            entry["state"] = "held"
            await self._wait_for_newer(job)
        if job.fault == Fault.OUT_OF_ORDER:
            entry["state"] = "held"
            for held_job, held_posts in await self._hold_out_of_order(job, posts):
                await self._post_job(held_job, held_posts)
            return
        await self._post_job(job, posts)

    async def _post_job(self, job: DeliveryJob, posts: list[tuple[bytes, str]]) -> None:
        entry = job.entry
        try:
            await self.send_posts(job, posts)
            entry["state"] = "delivered" if entry["failed_posts"] == 0 else "rejected"
        except Exception as exc:  # the log says what went wrong; the server keeps running
            self._delivery_failed(job, exc)
        finally:
            entry["finished_monotonic"] = self.config.monotonic()
            newest = self._posted_seq.get(job.campaign, 0)
            self._posted_seq[job.campaign] = max(newest, job.seq)

    def _delivery_failed(self, job: DeliveryJob, exc: Exception) -> None:
        entry = job.entry
        entry["state"] = "failed"
        entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
        entry["finished_monotonic"] = self.config.monotonic()
        logger.warning("sandbox delivery %s failed: %s", job.unique_id, entry["error"])

    async def _wait_for_newer(self, job: DeliveryJob) -> None:
        """late_callback: until a delivery of a later request for the campaign went out."""
        deadline = self.config.monotonic() + self.config.fault_delay()
        while self._posted_seq.get(job.campaign, 0) <= job.seq:
            if self.config.monotonic() >= deadline:
                return
            await anyio.sleep(0.1)

    async def _hold_out_of_order(self, job: DeliveryJob, posts) -> list:
        """out_of_order: collects the batch's deliveries; the task completing it (or the first
        whose wait ran out) gets them all, newest request first; the others get nothing."""
        self._out_of_order.append((job, posts))
        deadline = self.config.monotonic() + self.config.fault_delay()
        while len(self._out_of_order) < self._out_of_order_size:
            if not any(held is job for held, _ in self._out_of_order):
                return []  # posted by another task
            if self.config.monotonic() >= deadline:
                break
            await anyio.sleep(0.1)
        if not any(held is job for held, _ in self._out_of_order):
            return []
        batch = sorted(self._out_of_order, key=lambda item: item[0].seq, reverse=True)
        self._out_of_order.clear()
        return batch

    def prepare_posts(self, job: DeliveryJob) -> list[tuple[bytes, str]]:
        """Selects the records and builds the POST bodies (CPU work: runs in a worker thread)."""
        table = self.campaign_data(job.campaign).delivered(job.selection, job.now_s, self.config)
        job.entry["records"] = table.num_rows
        header = {"status": "success", "uniqueId": job.unique_id, "campaignName": job.campaign}
        variant = job.variant
        link_fault = job.fault in (Fault.LINK_404, Fault.LINK_TRUNCATED)
        if link_fault and variant not in (DeliveryVariant.CSV_LINK, DeliveryVariant.JSON_LINK):
            variant = DeliveryVariant.JSON_LINK
            job.entry["variant"] = variant.value
        if variant in (
            DeliveryVariant.JSON_DATA,
            DeliveryVariant.JSON_DETAILS,
            DeliveryVariant.JSON_RECORDS,
            DeliveryVariant.FORM_DATA,
        ):
            key = {DeliveryVariant.JSON_DETAILS: "details", DeliveryVariant.JSON_RECORDS: "records"}
            body = envelope_json(header, key.get(variant, "data"), records_json(table))
            if variant == DeliveryVariant.FORM_DATA:
                return [(b"data=" + _form_encode(body), "application/x-www-form-urlencoded")]
            return [(body, "application/json")]
        if variant == DeliveryVariant.SINGLE_RECORD:
            cap = self.config.single_record_cap
            job.entry["truncated"] = max(0, table.num_rows - cap)
            job.entry["records"] = min(cap, table.num_rows)  # what is POSTed
            records = json.loads(records_json(table.slice(0, cap)))
            return [(json.dumps(record).encode(), "application/json") for record in records]
        suffix = ".csv" if variant == DeliveryVariant.CSV_LINK else ".json"
        content = records_csv(table) if suffix == ".csv" else records_json(table)
        if job.fault == Fault.LINK_TRUNCATED:
            content = _truncate(content)
        if job.fault == Fault.LINK_404:
            name = uuid.uuid4().hex + suffix  # never stored: the link answers 404
        else:
            name = self._store_file(content, suffix)
        link = {
            "uniqueId": job.unique_id,
            "campaignName": job.campaign,
            "fileUrl": f"{job.base_url}/files/{name}",
        }
        return [(json.dumps(link).encode(), "application/json")]

    async def send_posts(self, job: DeliveryJob, posts: list[tuple[bytes, str]]) -> None:
        timeout = httpx.Timeout(self.config.callback_timeout_s, connect=10.0)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            with _CALLBACK_LOG_FILTER.active(job.callback_url):
                await self._post_each(client, job, posts)

    async def _post_each(
        self, client: httpx.AsyncClient, job: DeliveryJob, posts: list[tuple[bytes, str]]
    ) -> None:
        entry = job.entry
        for content, content_type in posts:
            entry["bytes"] += len(content)
            response = await client.post(
                job.callback_url, content=content, headers={"Content-Type": content_type}
            )
            entry["posts"] += 1
            entry["status_code"] = response.status_code
            if not 200 <= response.status_code < 300:
                entry["failed_posts"] += 1

    def _store_file(self, content: bytes, suffix: str) -> str:
        name = uuid.uuid4().hex + suffix
        path = self.files_dir / name
        path.write_bytes(content)
        with self._lock:
            self._files[name] = path
            while len(self._files) > self.config.max_files:
                _, old = self._files.popitem(last=False)
                old.unlink(missing_ok=True)
        return name

    def file_path(self, name: str) -> Path | None:
        with self._lock:
            return self._files.get(name)

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Waits for every scheduled delivery (tests against the ASGI app in-process)."""
        with anyio.fail_after(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        """Cancels pending deliveries and removes the sandbox's own temporary files."""
        for task in list(self._tasks):
            loop = task.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        if self._own_files_dir:
            shutil.rmtree(self.files_dir, ignore_errors=True)

    # -- admin -----------------------------------------------------------------------------

    def requests(self) -> list[dict]:
        with self._lock:
            return [dict(entry) for entry in self._requests]

    def deliveries(self) -> list[dict]:
        with self._lock:
            return [dict(entry) for entry in self._deliveries]

    def runtime_config(self) -> dict:
        cfg = self.config
        return {**{name: _plain(getattr(cfg, name)) for name in _RUNTIME_FIELDS},
                "fault_left": None if cfg.fault_count == 0 else self._fault_left,
                "username": cfg.username, "campaigns": dict(cfg.campaigns), "seed": cfg.seed,
                "timezone": cfg.timezone, "data_now": self.data_now.strftime(API_TIMESTAMP_FORMAT),
                "public_base_url": cfg.public_base_url}  # fmt: skip

    def update_config(self, changes: dict) -> dict:
        """Applies runtime changes (validated); raises ValueError naming the bad field."""
        if unknown := set(changes) - set(_RUNTIME_FIELDS):
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values = {}
        for name, value in changes.items():
            kind = _RUNTIME_FIELDS[name]
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
            try:
                null_delay = name == "fault_delay_s" and value is None
                values[name] = None if null_delay else kind(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name}: invalid value {value!r}") from None
        if not 0 <= values.get("delivery_delay_s", 0) <= 60:
            raise ValueError("delivery_delay_s must be between 0 and 60")
        if values.get("single_record_cap", 1) < 1:
            raise ValueError("single_record_cap must be at least 1")
        updated = dataclasses.replace(self.config, **values)  # __post_init__ validates
        with self._lock:
            self.config = updated
            if any(name in changes for name in _FAULT_FIELDS):
                self._fault_left = updated.fault_count
        return self.runtime_config()

    def reset(self) -> dict:
        """Clears the logs and the rate windows (the tokens' too); issued tokens stay valid."""
        with self._lock:
            for log in (self._requests, self._deliveries, self._windows, self._token_log):
                log.clear()
        return {"status": "ok"}


def _truncate(content: bytes) -> bytes:
    """About the first half of a file, cut inside a record (never at a line end): what a
    connection dropped halfway leaves when the sender wrote the short length."""
    cut = max(1, len(content) // 2)
    while cut > 1 and content[cut - 1 : cut] in (b"\n", b"\r"):
        cut -= 1
    return content[:cut]


def _plain(value):
    return value.value if hasattr(value, "value") else value


class BodyTooLarge(Exception):
    """A request body over MAX_REQUEST_BYTES: answered 413 (`_too_large`), never read whole."""


async def _read_body(request: Request) -> bytes:
    """The body, read chunk by chunk and given up as soon as it passes MAX_REQUEST_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(request: Request, exc: Exception) -> Response:
    message = f"the body is over the {MAX_REQUEST_BYTES} byte limit"
    return JSONResponse({"status": "error", "message": message}, 413)


def _read_params(raw: bytes, request: Request) -> tuple[dict[str, str], list[str], str]:
    """The request's parameters from the query string and a JSON or form body (the body wins),
    unknown names listed separately, and how they came: json, form or query."""
    encoding = "form" if "form" in request.headers.get("content-type", "").lower() else "json"
    if encoding == "form":  # a malformed form is an empty request, as a JSON parse error is
        values = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    else:
        try:
            values = json.loads(raw) if raw.strip() else {}
        except ValueError:
            values = {}
        encoding = encoding if raw.strip() else "query"
    values = {**dict(request.query_params), **(values if isinstance(values, dict) else {})}
    params = {str(name): value if isinstance(value, str) else json.dumps(value).strip('"')
              for name, value in values.items() if value is not None}  # fmt: skip
    return params, sorted(name for name in params if name not in PARAM_NAMES), encoding


def create_sandbox_app(
    config: SandboxConfig | None = None, *, token_lifetime_s: float = TOKEN_LIFETIME_S
) -> Starlette:
    """The sandbox as an ASGI app; `app.state.sandbox` is its Sandbox (logs, data, config)."""
    sandbox = Sandbox(config or SandboxConfig(), token_lifetime_s)

    async def files(request: Request) -> Response:
        name = request.path_params["name"]
        path = sandbox.file_path(name)
        if path is None or not path.exists():
            return JSONResponse({"status": "error", "message": "file not found"}, 404)
        media = "text/csv" if name.endswith(".csv") else "application/json"
        return FileResponse(path, media_type=media)

    def listing(read):
        async def route(request: Request) -> Response:
            return JSONResponse(read())

        return route

    async def config_route(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(sandbox.runtime_config())
        try:
            changes = json.loads(await _read_body(request))
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            return JSONResponse(sandbox.update_config(changes))
        except ValueError as exc:
            return JSONResponse({"status": "error", "message": str(exc)}, 400)

    def admin(route):
        """The route behind the sandbox's admin token (see SandboxConfig.admin_token)."""

        async def guarded(request: Request) -> Response:
            expected, given = sandbox.config.admin_token, presented_token(request.headers)
            if expected == "":
                message = "the admin routes are shut: set DIALSTATUS_ADMIN_TOKEN to open them"
            elif expected is not None and not given:
                message = "the admin routes need the admin token as X-Dialstatus-Token"
                return JSONResponse({"status": "error", "message": message}, 401)
            elif expected is None or hmac.compare_digest(given.encode(), expected.encode()):
                return await route(request)
            else:
                message = "wrong admin token"
            return JSONResponse({"status": "error", "message": message}, 403)

        return guarded

    routes = [
        Route(API_PATH, sandbox.handle_api, methods=["POST"]),
        Route(TOKEN_PATH, sandbox.handle_token, methods=["POST"]),
        Route("/files/{name:str}", files, methods=["GET"]),
        Route("/_sandbox/requests", admin(listing(sandbox.requests)), methods=["GET"]),
        Route("/_sandbox/deliveries", admin(listing(sandbox.deliveries)), methods=["GET"]),
        Route("/_sandbox/tokens", admin(listing(sandbox.token_requests)), methods=["GET"]),
        Route("/_sandbox/config", admin(config_route), methods=["GET", "POST"]),
        Route("/_sandbox/reset", admin(listing(sandbox.reset)), methods=["POST"]),
        Route("/_sandbox/leads", admin(leads_route(sandbox, _read_body)), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={BodyTooLarge: _too_large})
    app.state.sandbox = sandbox
    return app
